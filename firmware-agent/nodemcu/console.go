package nodemcu

import (
	lua "github.com/yuin/gopher-lua"
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
