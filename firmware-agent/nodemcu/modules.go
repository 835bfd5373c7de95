package nodemcu

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/gota-dev/gota/firmware-agent/device"
)

// Constants of NodeMCU's platform.h and console.c.
const (
	parityNone = 0
	parityEven = 1
	parityOdd  = 2

	stopBits1   = 1
	stopBits1_5 = 2
	stopBits2   = 3

	nonInteractive = 0
	interactive    = 1
)

// consoleModule is console.c (dev-esp32 since 2024-10).
func (v *vm) consoleModule() module {
	return module{
		funcs: map[string]lua.LGFunction{
			"on": func(L *lua.LState) int {
				v.registerInput(L, 1, "on")
				return 0
			},
			"mode": func(L *lua.LState) int {
				switch checkInteger(L, 1, "mode") {
				case nonInteractive:
					v.runInput = false
				case interactive:
					v.runInput = true
				default:
					raise(L, "invalid mode")
				}
				return 0
			},
			"write": func(L *lua.LState) int {
				var out []byte
				for i := 1; i <= L.GetTop(); i++ {
					val := L.Get(i)
					if n, ok := luaIsNumber(val); ok { // lua_isnumber: numeric strings too
						if n < 0 || n > 255 {
							raise(L, "invalid number")
						}
						out = append(out, byte(n))
						continue
					}
					s, ok := val.(lua.LString)
					if !ok {
						typeError(L, i, "write", "string")
					}
					out = append(out, s...)
				}
				v.b.write(out)
				return 0
			},
		},
		consts: map[string]int{"INTERACTIVE": interactive, "NONINTERACTIVE": nonInteractive},
	}
}

// luaIsNumber is lua_isnumber + lua_tointeger.
func luaIsNumber(val lua.LValue) (int64, bool) {
	switch x := val.(type) {
	case lua.LNumber:
		return int64(x), true
	case lua.LString:
		if f, err := parseLuaNumber(string(x)); err == nil {
			return int64(f), true
		}
	}
	return 0, false
}

// registerInput is serial_input_register: on("data"|"error",
// [number|end_char], function) with the method at stack index base.
func (v *vm) registerInput(L *lua.LState, base int, fname string) {
	method := checkString(L, base, fname)
	if method != "data" && method != "error" {
		raise(L, "method not supported")
	}
	fn := -1
	arg := L.Get(base + 1)
	if n, ok := luaIsNumber(arg); ok {
		v.needLen, v.endChar = int(n), -1
	} else if s, ok := arg.(lua.LString); ok {
		if len(s) != 1 {
			raise(L, "only single byte end marker supported")
		}
		v.needLen, v.endChar = 0, int(s[0])
	} else if _, ok := arg.(*lua.LFunction); ok {
		fn = base + 1
	}
	if fn == -1 {
		if _, ok := L.Get(base + 2).(*lua.LFunction); ok {
			fn = base + 2
		}
	}
	if method != "data" {
		return // errors are never reported by the virtual console
	}
	if fn == -1 {
		v.dataCB = nil
		v.lineBuf = v.lineBuf[:0]
		return
	}
	v.dataCB = L.Get(fn).(*lua.LFunction)
}

// errConsoleUART is uart.c's ensure_valid_id refusal on ConsoleFirmware.
const errConsoleUART = "uart in use by system console; use the 'console' module instead"

// uartModule is uart.c of the emulated generation. On the UART
// generations uart.on on the console UART gets console input (on
// UARTStartFirmware only after uart.start(0)); on ConsoleFirmware every
// function refuses the console UART.
func (v *vm) uartModule() module {
	fw := v.b.opt.Firmware
	// checkID is MOD_CHECK_ID plus, on ConsoleFirmware, ensure_valid_id.
	checkID := func(L *lua.LState, id int64) {
		v.checkUARTID(L, id)
		if id == consoleUART && !fw.uartConsole() {
			raise(L, "%s", errConsoleUART)
		}
	}
	return module{
		funcs: map[string]lua.LGFunction{
			"setup": func(L *lua.LState) int {
				id := checkInteger(L, 1, "setup")
				checkID(L, id)
				baud := checkInteger(L, 2, "setup")
				checkInteger(L, 3, "setup")
				checkInteger(L, 4, "setup")
				checkInteger(L, 5, "setup")
				if id == consoleUART {
					if L.GetTop() >= 6 && L.Get(6) != lua.LNil {
						v.echo = checkInteger(L, 6, "setup") > 0
					}
					if v.b.opt.SetBaud != nil {
						if err := v.b.opt.SetBaud(int(baud)); err != nil {
							raise(L, "%s", err.Error())
						}
					}
					v.b.mu.Lock()
					v.b.baud = int(baud)
					v.b.mu.Unlock()
				}
				L.Push(lua.LNumber(baud))
				return 1
			},
			"write": func(L *lua.LState) int {
				id := checkInteger(L, 1, "write")
				checkID(L, id)
				var out []byte
				for i := 2; i <= L.GetTop(); i++ {
					switch x := L.Get(i).(type) {
					case lua.LNumber: // lua_type == LUA_TNUMBER only
						if x < 0 || x > 255 {
							raise(L, "invalid number")
						}
						out = append(out, byte(x))
					case lua.LString:
						out = append(out, x...)
					default:
						typeError(L, i, "write", "string")
					}
				}
				if id == consoleUART {
					v.b.write(out)
				}
				return 0
			},
			"on": func(L *lua.LState) int {
				id := int64(consoleUART)
				base := 1
				if _, ok := luaIsNumber(L.Get(1)); ok {
					id = checkInteger(L, 1, "on")
					base = 2
				}
				checkID(L, id)
				if id != consoleUART {
					return 0 // other UARTs have no line attached
				}
				v.uartOn(L, base)
				return 0
			},
			"start": func(L *lua.LState) int {
				id := checkInteger(L, 1, "start")
				checkID(L, id)
				if id == consoleUART && fw == UARTStartFirmware {
					// uart.c allocates the line buffer, then
					// platform_uart_start refuses the console UART.
					v.uartLineBuf = true
				}
				// The console's driver is installed already (UARTFirmware:
				// uart_driver_install fails a second time); other UARTs
				// have no pins on the virtual board.
				L.Push(lua.LBool(id != consoleUART))
				return 1
			},
			"stop": func(L *lua.LState) int {
				id := checkInteger(L, 1, "stop")
				checkID(L, id)
				if id == consoleUART && fw == UARTStartFirmware {
					v.uartLineBuf = false
				}
				return 0
			},
			"getconfig": func(L *lua.LState) int {
				id := checkInteger(L, 1, "getconfig")
				checkID(L, id)
				baud := v.b.opt.ConsoleBaud
				v.b.mu.Lock()
				if v.b.baud != 0 {
					baud = v.b.baud
				}
				v.b.mu.Unlock()
				L.Push(lua.LNumber(baud))
				L.Push(lua.LNumber(8))
				L.Push(lua.LNumber(parityNone))
				L.Push(lua.LNumber(stopBits1))
				return 4
			},
		},
		consts: map[string]int{
			"PARITY_NONE": parityNone, "PARITY_EVEN": parityEven, "PARITY_ODD": parityOdd,
			"STOPBITS_1": stopBits1, "STOPBITS_1_5": stopBits1_5, "STOPBITS_2": stopBits2,
		},
	}
}

func (v *vm) checkUARTID(L *lua.LState, id int64) {
	if id < 0 || id > 2 {
		raise(L, "uart %d does not exist", id)
	}
}

// uartOn is uart_on for the console UART on the UART generations:
// uart.on("data", [n|char], [function], [run_input]).
func (v *vm) uartOn(L *lua.LState, base int) {
	method := checkString(L, base, "on")
	stack := base + 1
	if n, ok := L.Get(stack).(lua.LNumber); ok {
		if n > 255 {
			raise(L, "wrong arg range")
		}
		v.needLen, v.endChar = int(n), -1
		stack++
	} else if s, ok := L.Get(stack).(lua.LString); ok {
		if len(s) != 1 {
			raise(L, "wrong arg range")
		}
		v.needLen, v.endChar = 0, int(s[0])
		stack++
	}
	fn, isFn := L.Get(stack).(*lua.LFunction)
	run := int64(1)
	if isFn {
		if n, ok := luaIsNumber(L.Get(stack + 1)); ok {
			run = n
		}
	}
	switch method {
	case "data":
		v.runInput = true
		v.dataCB = nil
		if isFn {
			v.dataCB = fn
			if run == 0 {
				v.runInput = false
			}
		}
	case "error":
	default:
		raise(L, "method not supported")
	}
}

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

const hashType = "crypto.hasher"

// cryptoModule is crypto.c's new_hash (mbedtls digests; new_hmac is not
// provided). finalize returns the binary digest.
func (v *vm) cryptoModule() module {
	L := v.L
	if L != nil {
		mt := L.NewTypeMetatable(hashType)
		methods := L.NewTable()
		check := func(L *lua.LState) hash.Hash {
			if ud, ok := L.Get(1).(*lua.LUserData); ok {
				if h, ok := ud.Value.(hash.Hash); ok {
					return h
				}
			}
			typeError(L, 1, "update", hashType)
			return nil
		}
		methods.RawSetString("update", L.NewFunction(func(L *lua.LState) int {
			h := check(L)
			h.Write([]byte(checkString(L, 2, "update")))
			return 0
		}))
		methods.RawSetString("finalize", L.NewFunction(func(L *lua.LState) int {
			L.Push(lua.LString(check(L).Sum(nil)))
			return 1
		}))
		mt.RawSetString("__index", methods)
	}
	algos := map[string]func() hash.Hash{
		"MD5": md5.New, "SHA1": sha1.New, "SHA224": sha256.New224, "SHA256": sha256.New,
		"SHA384": sha512.New384, "SHA512": sha512.New,
	}
	return module{funcs: map[string]lua.LGFunction{
		"new_hash": func(L *lua.LState) int {
			algo := checkString(L, 1, "new_hash")
			mk, ok := algos[strings.ToUpper(algo)] // strcasecmp
			if !ok {
				raise(L, "Unsupported algorithm: %s", algo)
			}
			ud := L.NewUserData()
			ud.Value = mk()
			L.SetMetatable(ud, L.GetTypeMetatable(hashType))
			L.Push(ud)
			return 1
		},
	}}
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

// otaModule is otaupgrade.c backed by the virtual device.
func (v *vm) otaModule() module {
	dev := v.b.dev
	// otaErr raises NodeMCU's message for err.
	otaErr := func(L *lua.LState, err error, fallback string) {
		var de *device.Error
		if errors.As(err, &de) && de.Message != "" {
			raise(L, "%s", de.Message)
		}
		raise(L, "%s", fallback)
	}
	noDevice := func(L *lua.LState) {
		if dev == nil {
			raise(L, "no OTA partition available")
		}
	}
	return module{funcs: map[string]lua.LGFunction{
		"commence": func(L *lua.LState) int {
			noDevice(L)
			v.b.setBusy(true)
			err := dev.Commence()
			v.b.setBusy(false)
			if err != nil {
				otaErr(L, err, "ota error")
			}
			return 0
		},
		"write": func(L *lua.LState) int {
			data := checkString(L, 1, "write")
			noDevice(L)
			v.b.setBusy(true)
			err := dev.Write([]byte(data))
			v.b.setBusy(false)
			if err != nil {
				otaErr(L, err, "ota error")
			}
			return 0
		},
		"complete": func(L *lua.LState) int {
			noDevice(L)
			// otaupgrade.c ends the OTA and sets the boot partition before
			// it looks at its argument.
			v.b.setBusy(true)
			err := dev.Complete(false)
			v.b.setBusy(false)
			if err != nil {
				otaErr(L, err, "ota error")
			}
			if optInteger(L, 1, "complete", 0) != 0 {
				dev.Reboot()
				v.die(L)
			}
			return 0
		},
		"accept": func(L *lua.LState) int {
			noDevice(L)
			if err := dev.Accept(); err != nil {
				raise(L, "firmware accept failed")
			}
			return 0
		},
		"rollback": func(L *lua.LState) int {
			noDevice(L)
			if err := dev.Rollback(); err != nil {
				otaErr(L, err, "ota error")
			}
			v.die(L) // on success the chip reboots
			return 0
		},
		"info": func(L *lua.LState) int {
			noDevice(L)
			info, err := dev.Info()
			if err != nil {
				otaErr(L, err, "ota error")
			}
			pushLabel := func(s string) {
				if s == "" {
					L.Push(lua.LNil)
				} else {
					L.Push(lua.LString(s))
				}
			}
			pushLabel(info.Running)
			pushLabel(info.Next)
			t := L.NewTable()
			for _, p := range info.Partitions {
				// ESP_PARTITION_SUBTYPE_APP_OTA_MIN..OTA_MAX (0x10..0x20)
				if p.Subtype < 0x10 || p.Subtype > 0x20 {
					continue
				}
				pt := L.NewTable()
				if p.State != "" {
					pt.RawSetString("state", lua.LString(p.State))
					if p.App != nil {
						pt.RawSetString("name", lua.LString(p.App.ProjectName))
						pt.RawSetString("version", lua.LString(p.App.Version))
						pt.RawSetString("secure_version", lua.LNumber(p.App.SecureVersion))
						pt.RawSetString("date", lua.LString(p.App.Date))
						pt.RawSetString("time", lua.LString(p.App.Time))
						pt.RawSetString("idf_version", lua.LString(p.App.IDFVer))
					}
				}
				t.RawSetString(p.Label, pt)
			}
			L.Push(t)
			return 3
		},
	}}
}

// bitModule is bit.c with NodeMCU's 32-bit lua_Integer. Arguments outside
// the int32 range raise an error: on the chip their conversion is
// undefined behaviour, so the agent must never pass one.
func bitModule() module {
	toBit := func(L *lua.LState, n int, fname string) int32 {
		f := checkNumber(L, n, fname)
		if f != float64(int64(f)) || f < -2147483648 || f > 2147483647 {
			argError(L, n, fname, "not a 32-bit signed integer (NodeMCU's lua_Integer)")
		}
		return int32(f)
	}
	shift := func(L *lua.LState, fname string) uint {
		s := checkNumber(L, 2, fname)
		if s < 0 || s > 31 {
			argError(L, 2, fname, "shift count out of 0..31")
		}
		return uint(s)
	}
	push := func(L *lua.LState, x int32) int { L.Push(lua.LNumber(x)); return 1 }
	variadic := func(name string, op func(a, b int32) int32) lua.LGFunction {
		return func(L *lua.LState) int {
			w := toBit(L, 1, name)
			for i := 2; i <= L.GetTop(); i++ {
				w = op(w, toBit(L, i, name))
			}
			return push(L, w)
		}
	}
	return module{funcs: map[string]lua.LGFunction{
		"bnot": func(L *lua.LState) int { return push(L, ^toBit(L, 1, "bnot")) },
		"band": variadic("band", func(a, b int32) int32 { return a & b }),
		"bor":  variadic("bor", func(a, b int32) int32 { return a | b }),
		"bxor": variadic("bxor", func(a, b int32) int32 { return a ^ b }),
		"lshift": func(L *lua.LState) int {
			x := toBit(L, 1, "lshift")
			return push(L, x<<shift(L, "lshift"))
		},
		"rshift": func(L *lua.LState) int {
			x := toBit(L, 1, "rshift")
			return push(L, int32(uint32(x)>>shift(L, "rshift")))
		},
		"arshift": func(L *lua.LState) int {
			x := toBit(L, 1, "arshift")
			return push(L, x>>shift(L, "arshift"))
		},
		"bit": func(L *lua.LState) int {
			n := toBit(L, 1, "bit")
			if n < 0 || n > 31 {
				argError(L, 1, "bit", "bit position out of 0..31")
			}
			return push(L, int32(uint32(1)<<uint(n)))
		},
		"isset": func(L *lua.LState) int {
			x, pos := toBit(L, 1, "isset"), toBit(L, 2, "isset")
			L.Push(lua.LBool(pos >= 0 && pos < 32 && uint32(x)&(1<<uint(pos)) != 0))
			return 1
		},
		"isclear": func(L *lua.LState) int {
			x, pos := toBit(L, 1, "isclear"), toBit(L, 2, "isclear")
			L.Push(lua.LBool(!(pos >= 0 && pos < 32 && uint32(x)&(1<<uint(pos)) != 0)))
			return 1
		},
	}}
}

// Timer modes (tmr.c).
const (
	alarmSingle = 0
	alarmAuto   = 1
	alarmSemi   = 2
	modeOff     = 3

	maxTimeout = 6870947 // ms, tmr.c's MAX_TIMEOUT
)

const timerType = "tmr.timer"

// timer is a tmr.create() object.
type timer struct {
	v        *vm
	ud       *lua.LUserData
	cb       *lua.LFunction
	interval time.Duration
	mode     int
	idle     bool
	t        *time.Timer
	gen      int // bumps on every (re)start so stale expiries are ignored
}

func (v *vm) tmrModule() module {
	return module{
		funcs: map[string]lua.LGFunction{
			"create": func(L *lua.LState) int {
				t := &timer{v: v, mode: modeOff, idle: true}
				ud := L.NewUserData()
				ud.Value = t
				t.ud = ud
				L.SetMetatable(ud, L.GetTypeMetatable(timerType))
				L.Push(ud)
				return 1
			},
		},
		consts: map[string]int{"ALARM_SINGLE": alarmSingle, "ALARM_SEMI": alarmSemi, "ALARM_AUTO": alarmAuto},
	}
}

func timerMethods(v *vm) map[string]lua.LGFunction {
	register := func(L *lua.LState) int {
		t := checkTimer(L, "register")
		ms := checkInteger(L, 2, "register")
		if ms <= 0 || ms > maxTimeout {
			argError(L, 2, "register", "Range: 1-6870947")
		}
		mode := checkInteger(L, 3, "register")
		if mode != alarmSingle && mode != alarmSemi && mode != alarmAuto {
			argError(L, 3, "register", "Invalid mode")
		}
		fn, ok := L.Get(4).(*lua.LFunction)
		if !ok {
			typeError(L, 4, "register", "function")
		}
		t.stopTimer()
		t.cb, t.mode, t.idle = fn, int(mode), true
		t.interval = time.Duration(ms) * time.Millisecond
		return 0
	}
	start := func(L *lua.LState) int {
		t := checkTimer(L, "start")
		if t.cb == nil {
			raise(L, "timer not registered")
		}
		if !t.idle {
			L.Push(lua.LFalse)
			return 1
		}
		t.idle = false
		t.schedule()
		L.Push(lua.LTrue)
		return 1
	}
	stop := func(L *lua.LState) int {
		t := checkTimer(L, "stop")
		if !t.idle && t.mode != modeOff {
			t.idle = true
			t.stopTimer()
			L.Push(lua.LTrue)
		} else {
			L.Push(lua.LFalse)
		}
		return 1
	}
	unregister := func(L *lua.LState) int {
		t := checkTimer(L, "unregister")
		t.stopTimer()
		t.cb, t.mode, t.idle = nil, modeOff, true
		return 0
	}
	return map[string]lua.LGFunction{
		"register": register,
		"alarm": func(L *lua.LState) int {
			register(L)
			return start(L)
		},
		"start":      start,
		"stop":       stop,
		"unregister": unregister,
		"interval": func(L *lua.LState) int {
			t := checkTimer(L, "interval")
			ms := checkInteger(L, 2, "interval")
			if ms <= 0 || ms > maxTimeout {
				argError(L, 2, "interval", "Range: 1-6870947")
			}
			if t.mode != modeOff {
				t.interval = time.Duration(ms) * time.Millisecond
				if !t.idle {
					t.schedule() // xTimerChangePeriod restarts a running timer
				}
			}
			return 0
		},
		"state": func(L *lua.LState) int {
			t := checkTimer(L, "state")
			if t.mode == modeOff {
				L.Push(lua.LNil)
				return 1
			}
			L.Push(lua.LBool(!t.idle))
			L.Push(lua.LNumber(t.mode))
			return 2
		},
	}
}

func timerMethodNames() []string {
	var names []string
	for k := range timerMethods(nil) {
		names = append(names, k)
	}
	return names
}

func (v *vm) openTimerType() {
	L := v.L
	mt := L.NewTypeMetatable(timerType)
	methods := L.NewTable()
	for k, f := range timerMethods(v) {
		methods.RawSetString(k, L.NewFunction(f))
	}
	methodsMT := L.NewTable()
	methodsMT.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		raise(L, "timer method %s is not provided by the Gota NodeMCU harness", L.ToStringMeta(L.Get(2)).String())
		return 0
	}))
	L.SetMetatable(methods, methodsMT)
	mt.RawSetString("__index", methods)
}

func checkTimer(L *lua.LState, fname string) *timer {
	ud, ok := L.Get(1).(*lua.LUserData)
	if ok {
		if t, ok := ud.Value.(*timer); ok {
			return t
		}
	}
	typeError(L, 1, fname, timerType)
	return nil
}

// schedule (re)arms the Go timer; its expiry is posted to the Lua
// goroutine.
func (t *timer) schedule() {
	t.stopTimer()
	t.gen++
	gen := t.gen
	v := t.v
	v.timers[t] = true
	t.t = time.AfterFunc(t.interval, func() {
		v.b.post(func() { t.fire(gen) })
	})
}

func (t *timer) stopTimer() {
	if t.t != nil {
		t.t.Stop()
		t.t = nil
	}
	t.gen++
	if t.v != nil && t.v.timers != nil {
		delete(t.v.timers, t)
	}
}

// fire is tmr.c's alarm_timer_task.
func (t *timer) fire(gen int) {
	v := t.v
	if v.dead || gen != t.gen || t.cb == nil || t.idle {
		return
	}
	cb := t.cb
	switch t.mode {
	case alarmSingle:
		t.cb, t.mode, t.idle = nil, modeOff, true
		delete(v.timers, t)
	case alarmSemi:
		t.idle = true
		delete(v.timers, t)
	case alarmAuto:
		t.schedule()
	}
	v.call(cb, t.ud)
}
