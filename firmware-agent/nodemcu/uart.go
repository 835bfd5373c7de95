package nodemcu

import (
	lua "github.com/yuin/gopher-lua"
)

// errConsoleUART is uart.c's ensure_valid_id refusal on ConsoleFirmware.
const errConsoleUART = "uart in use by system console; use the 'console' module instead"

// uartModule is uart.c of the emulated generation. On the UART
// generations uart.on on the console UART gets console input (on
// UARTStartFirmware only after uart.start(0)); on ConsoleFirmware every
// function refuses the console UART.
func (v *vm) uartModule() module {
	u := uartLib{v}
	return module{
		funcs: map[string]lua.LGFunction{
			"setup": u.setup, "write": u.write, "on": u.on,
			"start": u.start, "stop": u.stop, "getconfig": u.getconfig,
		},
		consts: map[string]int{
			"PARITY_NONE": parityNone, "PARITY_EVEN": parityEven, "PARITY_ODD": parityOdd,
			"STOPBITS_1": stopBits1, "STOPBITS_1_5": stopBits1_5, "STOPBITS_2": stopBits2,
		},
	}
}

// uartLib is the uart module of one board.
type uartLib struct{ v *vm }

// checkID is MOD_CHECK_ID plus, on ConsoleFirmware, ensure_valid_id.
func (u uartLib) checkID(L *lua.LState, id int64) {
	u.v.checkUARTID(L, id)
	if id == consoleUART && !u.v.b.opt.Firmware.uartConsole() {
		raise(L, "%s", errConsoleUART)
	}
}

// setup is uart.setup(id, baud, databits, parity, stopbits[, echo]): on
// the console it changes the rate.
func (u uartLib) setup(L *lua.LState) int {
	id := checkInteger(L, 1, "setup")
	u.checkID(L, id)
	baud := checkInteger(L, 2, "setup")
	checkInteger(L, 3, "setup")
	checkInteger(L, 4, "setup")
	checkInteger(L, 5, "setup")
	if id == consoleUART {
		if L.GetTop() >= 6 && L.Get(6) != lua.LNil {
			u.v.echo = checkInteger(L, 6, "setup") > 0
		}
		if u.v.b.opt.SetBaud != nil {
			if err := u.v.b.opt.SetBaud(int(baud)); err != nil {
				raise(L, "%s", err.Error())
			}
		}
		u.v.b.mu.Lock()
		u.v.b.baud = int(baud)
		u.v.b.mu.Unlock()
	}
	L.Push(lua.LNumber(baud))
	return 1
}

// write is uart.write(id, ...): numbers as bytes, strings as they are.
func (u uartLib) write(L *lua.LState) int {
	id := checkInteger(L, 1, "write")
	u.checkID(L, id)
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
		u.v.b.write(out)
	}
	return 0
}

// on is uart.on([id,] event, ...): only the console has a line.
func (u uartLib) on(L *lua.LState) int {
	id := int64(consoleUART)
	base := 1
	if _, ok := luaIsNumber(L.Get(1)); ok {
		id = checkInteger(L, 1, "on")
		base = 2
	}
	u.checkID(L, id)
	if id != consoleUART {
		return 0 // other UARTs have no line attached
	}
	u.v.uartOn(L, base)
	return 0
}

// start is uart.start(id) (UARTStartFirmware's line buffer).
func (u uartLib) start(L *lua.LState) int {
	id := checkInteger(L, 1, "start")
	u.checkID(L, id)
	if id == consoleUART && u.v.b.opt.Firmware == UARTStartFirmware {
		// uart.c allocates the line buffer, then
		// platform_uart_start refuses the console UART.
		u.v.uartLineBuf = true
	}
	// The console's driver is installed already (UARTFirmware:
	// uart_driver_install fails a second time); other UARTs
	// have no pins on the virtual board.
	L.Push(lua.LBool(id != consoleUART))
	return 1
}

// stop is uart.stop(id).
func (u uartLib) stop(L *lua.LState) int {
	id := checkInteger(L, 1, "stop")
	u.checkID(L, id)
	if id == consoleUART && u.v.b.opt.Firmware == UARTStartFirmware {
		u.v.uartLineBuf = false
	}
	return 0
}

// getconfig is uart.getconfig(id): the console's rate, 8N1.
func (u uartLib) getconfig(L *lua.LState) int {
	id := checkInteger(L, 1, "getconfig")
	u.checkID(L, id)
	baud := u.v.b.opt.ConsoleBaud
	u.v.b.mu.Lock()
	if u.v.b.baud != 0 {
		baud = u.v.b.baud
	}
	u.v.b.mu.Unlock()
	L.Push(lua.LNumber(baud))
	L.Push(lua.LNumber(8))
	L.Push(lua.LNumber(parityNone))
	L.Push(lua.LNumber(stopBits1))
	return 4
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
