package nodemcu

import (
	lua "github.com/yuin/gopher-lua"
)

// nodeModule is the part of node.c the harness provides.
func (v *vm) nodeModule() module {
	return module{funcs: map[string]lua.LGFunction{
		"restart": func(L *lua.LState) int {
			if v.b.dev != nil {
				v.b.dev.Reboot()
			} else {
				v.b.post(v.b.boot)
			}
			v.die(L)
			return 0
		},
		"heap": func(L *lua.LState) int {
			L.Push(lua.LNumber(v.b.opt.HeapFree))
			return 1
		},
		"info": v.nodeInfo,
	}, tables: map[string]module{"egc": v.egcModule()}}
}

// EGC modes of lua.h (dev-esp32, components/lua/lua-5.1/lua.h).
const (
	egcNotActive      = 0
	egcOnAllocFailure = 1
	egcOnMemLimit     = 2
	egcAlways         = 4
)

// egcModule is node.egc: setmode(mode, [limit]) with node.c's argument
// checks. The mode is recorded (EGCMode); gopher-lua's own collector is
// not changed by it. lua.c's pmain starts Lua 5.1 builds with
// lua_setegcmode(L, EGC_ALWAYS, 4096).
func (v *vm) egcModule() module {
	return module{
		funcs: map[string]lua.LGFunction{
			"setmode": func(L *lua.LState) int {
				mode := checkInteger(L, 1, "setmode")
				limit := optInteger(L, 2, "setmode", 0)
				if mode < 0 || mode > egcOnAllocFailure|egcOnMemLimit|egcAlways {
					argError(L, 1, "setmode", "invalid mode")
				}
				if mode&egcOnMemLimit != 0 && limit == 0 {
					argError(L, 1, "setmode", "limit must be non-zero")
				}
				v.egcMode = int(mode)
				return 0
			},
		},
		consts: map[string]int{
			"NOT_ACTIVE": egcNotActive, "ON_ALLOC_FAILURE": egcOnAllocFailure,
			"ON_MEM_LIMIT": egcOnMemLimit, "ALWAYS": egcAlways,
		},
	}
}

// nodeInfo is node.info([group]) of dev-esp32's node.c: "hw" from the
// virtual chip, the other groups with what the virtual board can say.
func (v *vm) nodeInfo(L *lua.LState) int {
	group := "default"
	if L.GetTop() >= 1 && L.Get(1) != lua.LNil {
		group = checkString(L, 1, "info")
	}
	t := L.NewTable()
	switch group {
	case "hw":
		chip, rev, flashKB := "esp32", uint16(300), 4096
		if dev := v.b.dev; dev != nil {
			c, r := dev.Chip()
			chip, rev = c.String(), r
			flashKB = dev.Flash().Size() / 1024
		}
		t.RawSetString("chip_model", lua.LString(chip))
		t.RawSetString("chip_features", lua.LNumber(0))
		t.RawSetString("chip_major_rev", lua.LNumber(rev/100))
		t.RawSetString("chip_minor_rev", lua.LNumber(rev%100))
		t.RawSetString("cpu_cores", lua.LNumber(2))
		t.RawSetString("flash_size", lua.LNumber(flashKB))
		t.RawSetString("flash_id", lua.LNumber(0))
	case "sw_version":
		t.RawSetString("node_version", lua.LString("gota-virtual"))
	case "build_config":
		t.RawSetString("ssl", lua.LFalse)
		t.RawSetString("lfs_size", lua.LNumber(0))
		t.RawSetString("number_type", lua.LString("float"))
		t.RawSetString("esp_console", lua.LString("uart"))
	case "lfs":
		for _, k := range []string{"lfs_mapped", "lfs_base", "lfs_size", "lfs_used"} {
			t.RawSetString(k, lua.LNumber(0))
		}
	case "default":
	default:
		argError(L, 1, "info", "invalid option '"+group+"'")
	}
	L.Push(t)
	return 1
}
