package nodemcu

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// luaVersion is what the harness emulates.
const luaVersion = "Lua 5.1"

// programName is the chunk name of the program, as short_src shows it.
const programName = "gota.lua"

// vm is one boot's Lua state with its NodeMCU modules.
type vm struct {
	b      *Board
	L      *lua.LState
	cancel context.CancelFunc
	dead   bool // rebooted or closed: no more Lua may run

	// console input (serial_common.c semantics)
	runInput bool // feed the REPL (INTERACTIVE / uart run_input)
	echo     bool
	dataCB   *lua.LFunction
	needLen  int
	endChar  int // -1 = none
	lineBuf  []byte
	// uartLineBuf: uart.c has a line buffer for the console UART, so
	// uart.on callbacks get console input (UART generations only).
	uartLineBuf bool

	// REPL line editor
	line    []byte
	pending string // incomplete statement awaiting more lines
	lastCR  bool

	timers map[*timer]bool

	egcMode int // node.egc.setmode's last mode
}

func newVM(b *Board) *vm {
	ctx, cancel := context.WithCancel(context.Background())
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	L.SetContext(ctx)
	v := &vm{
		b:        b,
		L:        L,
		cancel:   cancel,
		runInput: true,
		echo:     !b.opt.NoEcho,
		endChar:  -1,
		timers:   map[*timer]bool{},
		// UARTFirmware starts the console's NodeMCU driver, line buffer
		// included, at boot (user_main.c: platform_uart_start).
		uartLineBuf: b.opt.Firmware == UARTFirmware,
		egcMode:     egcAlways, // lua.c pmain (Lua 5.1 builds)
	}
	// The standard libraries NodeMCU's Lua 5.1 builds have, minus what
	// touches a file system the virtual board lacks.
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
		{lua.CoroutineLibName, lua.OpenCoroutine},
		{lua.DebugLibName, lua.OpenDebug},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	for _, name := range []string{"dofile", "loadfile", "_printregs"} {
		L.SetGlobal(name, lua.LNil)
	}
	L.SetGlobal("print", L.NewFunction(v.print))
	v.openModules()
	if b.opt.FS != nil {
		v.openIO()
	}
	return v
}

// kill stops the VM: the program and callbacks stop at their next
// instruction and timers are dropped.
func (v *vm) kill() {
	if v.dead {
		return
	}
	v.dead = true
	v.cancel()
	for t := range v.timers {
		t.stopTimer()
	}
	v.timers = nil
}

// die marks the VM dead from inside a Lua call (node.restart,
// otaupgrade.complete(1), otaupgrade.rollback) and unwinds the call: on
// the chip esp_restart never returns.
func (v *vm) die(L *lua.LState) {
	v.kill()
	L.Error(lua.LString("restarting"), 0)
}

// runProgram runs the program as init.lua.
func (v *vm) runProgram(src []byte, name string) {
	fn, err := v.L.Load(strings.NewReader(string(src)), name)
	if err != nil {
		v.reportError(err.Error())
		return
	}
	v.L.Push(fn)
	v.pcall(0)
}

// pcall calls the function (with nargs arguments) on the stack top in
// protected mode and reports an error as NodeMCU does: printed on the
// console. It reports whether the call succeeded.
func (v *vm) pcall(nargs int) bool {
	err := v.L.PCall(nargs, 0, nil)
	if err == nil {
		return true
	}
	if v.dead {
		return false // a restart unwinding the stack
	}
	msg := err.Error()
	if apiErr, ok := err.(*lua.ApiError); ok {
		msg = lua.LVAsString(apiErr.Object)
		if msg == "" {
			msg = apiErr.Object.String()
		}
	}
	v.reportError(msg)
	return false
}

func (v *vm) reportError(msg string) {
	v.b.recordError(msg)
	v.b.writeText([]byte("Lua error: " + msg + "\n"))
}

// call runs f(args...) protected; used for callbacks.
func (v *vm) call(f *lua.LFunction, args ...lua.LValue) {
	if v.dead || f == nil {
		return
	}
	v.L.Push(f)
	for _, a := range args {
		v.L.Push(a)
	}
	v.pcall(len(args))
}

// print is NodeMCU's print: tab-separated tostring values and a newline,
// on the console.
func (v *vm) print(L *lua.LState) int {
	var sb strings.Builder
	for i := 1; i <= L.GetTop(); i++ {
		if i > 1 {
			sb.WriteByte('\t')
		}
		sb.WriteString(L.ToStringMeta(L.Get(i)).String())
	}
	sb.WriteByte('\n')
	v.b.writeText([]byte(sb.String()))
	return 0
}

// input processes received console bytes one at a time: first to the
// REPL when interactive (console.mode / uart.on's run_input), then to the
// data callback, so a callback switching the mode affects the next byte.
// That is console.c's console_feed_lua, user_main.c's
// console_nodemcu_task on UARTStartFirmware, and platform.c's
// uart_event_task on UARTFirmware (both since d24f2ae4, 2022-08-30). On
// the UART generations the callback needs uart.c's line buffer.
func (v *vm) input(p []byte) {
	uartFW := v.b.opt.Firmware.uartConsole()
	for _, c := range p {
		if v.dead {
			return
		}
		if v.runInput {
			v.replByte(c)
		}
		if v.dead {
			return
		}
		if v.dataCB != nil && (!uartFW || v.uartLineBuf) {
			v.feedData(c)
		}
	}
}

// feedData is serial_input_feed_data: the callback gets need_len bytes,
// or the bytes up to and including end_char (at most 255), or every byte
// when neither is set.
func (v *vm) feedData(c byte) {
	v.lineBuf = append(v.lineBuf, c)
	max := v.needLen
	if v.endChar >= 0 && v.needLen == 0 {
		max = maxSerialInput
	}
	if len(v.lineBuf) >= max || (v.endChar >= 0 && int(c) == v.endChar) {
		chunk := string(v.lineBuf)
		v.lineBuf = v.lineBuf[:0]
		v.call(v.dataCB, lua.LString(chunk))
	}
}

// maxSerialInput is serial_common.c's MAX_SERIAL_INPUT.
const maxSerialInput = 255

// maxLine is the REPL's line buffer (LUA_MAXINPUT).
const maxLine = 256

// replByte is NodeMCU's line editor: echo, backspace, execute complete
// lines.
func (v *vm) replByte(c byte) {
	if c == '\n' && v.lastCR {
		v.lastCR = false
		return
	}
	v.lastCR = c == '\r'
	switch c {
	case '\r', '\n':
		if v.echo {
			v.b.writeText([]byte("\n"))
		}
		line := string(v.line)
		v.line = v.line[:0]
		v.execLine(line)
		if !v.dead {
			v.prompt()
		}
	case 0x08, 0x7f:
		if len(v.line) > 0 {
			v.line = v.line[:len(v.line)-1]
			if v.echo {
				v.b.writeText([]byte("\b \b"))
			}
		}
	default:
		if v.echo {
			v.b.writeText([]byte{c})
		}
		if len(v.line)+1 >= maxLine {
			v.line = v.line[:0] // linput.c discards a line that is too long
		}
		v.line = append(v.line, c)
	}
}

func (v *vm) prompt() {
	if v.pending != "" {
		v.b.writeText([]byte(">> "))
	} else {
		v.b.writeText([]byte("> "))
	}
}

// execLine runs one REPL line, collecting continuation lines of an
// incomplete statement as lua.c does.
func (v *vm) execLine(line string) {
	src := line
	if v.pending != "" {
		src = v.pending + "\n" + line
	}
	if strings.HasPrefix(src, "=") {
		src = "return " + src[1:]
	}
	fn, err := v.L.Load(strings.NewReader(src), "stdin")
	if err != nil {
		if strings.Contains(err.Error(), "EOF") {
			v.pending = src
			return
		}
		v.pending = ""
		v.reportError(err.Error())
		return
	}
	v.pending = ""
	v.L.Push(fn)
	top := v.L.GetTop() - 1
	if err := v.L.PCall(0, lua.MultRet, nil); err != nil {
		if !v.dead {
			v.reportError(err.Error())
		}
		return
	}
	// Print returned values, as "=expr" does.
	if n := v.L.GetTop() - top; n > 0 {
		vals := make([]string, n)
		for i := range vals {
			vals[i] = v.L.ToStringMeta(v.L.Get(top + 1 + i)).String()
		}
		v.L.Pop(n)
		v.b.writeText([]byte(strings.Join(vals, "\t") + "\n"))
	}
}

// raise is luaL_error: the message, prefixed by the position of the
// function calling the module function when that is Lua code
// (luaL_where(L, 1)); no prefix when called straight from pcall.
func raise(L *lua.LState, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if dbg, ok := L.GetStack(1); ok {
		if _, err := L.GetInfo("Sl", dbg, lua.LNil); err == nil && dbg.What != "G" && dbg.CurrentLine > 0 {
			msg = fmt.Sprintf("%s:%d: %s", dbg.Source, dbg.CurrentLine, msg)
		}
	}
	L.Error(lua.LString(msg), 0)
}

// argError is luaL_argerror.
func argError(L *lua.LState, n int, fname, extra string) {
	raise(L, "bad argument #%d to '%s' (%s)", n, fname, extra)
}

func typeError(L *lua.LState, n int, fname, want string) {
	got := "no value"
	if n <= L.GetTop() {
		got = L.Get(n).Type().String()
	}
	argError(L, n, fname, want+" expected, got "+got)
}

// checkInteger is luaL_checkinteger: numbers and numeric strings,
// truncated toward zero.
func checkInteger(L *lua.LState, n int, fname string) int64 {
	v := L.Get(n)
	switch x := v.(type) {
	case lua.LNumber:
		return int64(x)
	case lua.LString:
		if num, err := parseLuaNumber(string(x)); err == nil {
			return int64(num)
		}
	}
	typeError(L, n, fname, "number")
	return 0
}

// checkNumber is luaL_checknumber.
func checkNumber(L *lua.LState, n int, fname string) float64 {
	v := L.Get(n)
	switch x := v.(type) {
	case lua.LNumber:
		return float64(x)
	case lua.LString:
		if num, err := parseLuaNumber(string(x)); err == nil {
			return num
		}
	}
	typeError(L, n, fname, "number")
	return 0
}

// optInteger is luaL_optinteger: none or nil give def.
func optInteger(L *lua.LState, n int, fname string, def int64) int64 {
	if n > L.GetTop() || L.Get(n) == lua.LNil {
		return def
	}
	return checkInteger(L, n, fname)
}

// checkString is luaL_checklstring: strings, and numbers converted.
func checkString(L *lua.LState, n int, fname string) string {
	v := L.Get(n)
	switch x := v.(type) {
	case lua.LString:
		return string(x)
	case lua.LNumber:
		return x.String()
	}
	typeError(L, n, fname, "string")
	return ""
}

// parseLuaNumber converts a numeric string as lua_Number conversion does
// (decimal or hexadecimal, surrounding spaces allowed).
func parseLuaNumber(s string) (float64, error) {
	s = strings.TrimSpace(s)
	neg := false
	body := s
	if strings.HasPrefix(body, "-") {
		neg, body = true, body[1:]
	}
	if strings.HasPrefix(body, "0x") || strings.HasPrefix(body, "0X") {
		u, err := strconv.ParseUint(body[2:], 16, 64)
		if err != nil {
			return 0, err
		}
		if neg {
			return -float64(u), nil
		}
		return float64(u), nil
	}
	return strconv.ParseFloat(s, 64)
}

// strictModule makes a module table whose missing fields raise an error
// rather than read as nil, so the harness cannot silently lack what a
// program uses.
func (v *vm) strictModule(name string, mod module) *lua.LTable {
	L := v.L
	t := L.NewTable()
	for k, f := range mod.funcs {
		t.RawSetString(k, L.NewFunction(f))
	}
	for k, c := range mod.consts {
		t.RawSetString(k, lua.LNumber(c))
	}
	for k, sub := range mod.tables {
		st := v.strictModule(name+"."+k, sub)
		t.RawSetString(k, st)
	}
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		raise(L, "%s.%s is not provided by the Gota NodeMCU harness", name, L.ToStringMeta(L.Get(2)).String())
		return 0
	}))
	L.SetMetatable(t, mt)
	if !strings.Contains(name, ".") {
		L.SetGlobal(name, t)
	}
	return t
}

// Provided lists, per module, the fields the harness provides. Tests check
// the agent's source against it.
func Provided(fw Firmware) map[string][]string {
	v := &vm{b: &Board{opt: Options{Firmware: fw, Crypto: true, FS: NewFS()}}, timers: map[*timer]bool{}}
	m := map[string][]string{}
	for name, mod := range v.modules() {
		var fields []string
		for k := range mod.funcs {
			fields = append(fields, k)
		}
		for k := range mod.consts {
			fields = append(fields, k)
		}
		for k, sub := range mod.tables {
			fields = append(fields, k)
			var sf []string
			for f := range sub.funcs {
				sf = append(sf, f)
			}
			for c := range sub.consts {
				sf = append(sf, c)
			}
			m[name+"."+k] = sf
		}
		m[name] = fields
	}
	m["timer"] = timerMethodNames()
	m["crypto.hasher"] = []string{"update", "finalize"}
	return m
}

type module struct {
	funcs  map[string]lua.LGFunction
	consts map[string]int
	tables map[string]module // sub-tables, such as node.egc
}

func (v *vm) openModules() {
	for name, mod := range v.modules() {
		v.strictModule(name, mod)
	}
	v.openTimerType()
}

func (v *vm) modules() map[string]module {
	mods := map[string]module{
		"uart":       v.uartModule(),
		"node":       v.nodeModule(),
		"tmr":        v.tmrModule(),
		"otaupgrade": v.otaModule(),
	}
	if !v.b.opt.NoBit {
		mods["bit"] = bitModule()
	}
	if v.b.opt.Crypto {
		mods["crypto"] = v.cryptoModule()
	}
	if v.b.opt.FS != nil {
		mods["file"] = v.fileModule()
	}
	if v.b.opt.Firmware == ConsoleFirmware {
		mods["console"] = v.consoleModule()
	}
	return mods
}
