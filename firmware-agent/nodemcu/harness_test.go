package nodemcu

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// terminal is the host end of a serial line to a board: it collects
// everything the board writes.
type terminal struct {
	t    *testing.T
	conn net.Conn
	mu   sync.Mutex
	buf  bytes.Buffer
	cond chan struct{}
}

// attach starts b.Run on one end of a pipe and returns the other end.
func attach(t *testing.T, b *Board) *terminal {
	t.Helper()
	boardEnd, hostEnd := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- b.Run(ctx, boardEnd) }()
	term := &terminal{t: t, conn: hostEnd, cond: make(chan struct{}, 1)}
	go func() {
		p := make([]byte, 4096)
		for {
			n, err := hostEnd.Read(p)
			term.mu.Lock()
			term.buf.Write(p[:n])
			term.mu.Unlock()
			select {
			case term.cond <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		hostEnd.Close()
		boardEnd.Close()
		<-runDone
	})
	return term
}

func (term *terminal) send(s string) {
	term.t.Helper()
	if _, err := term.conn.Write([]byte(s)); err != nil {
		term.t.Fatalf("write to board: %v", err)
	}
}

// waitFor waits until the output contains s and returns the output.
func (term *terminal) waitFor(s string) string {
	term.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		term.mu.Lock()
		out := term.buf.String()
		term.mu.Unlock()
		if strings.Contains(out, s) {
			return out
		}
		select {
		case <-term.cond:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			term.t.Fatalf("board output never contained %q; got:\n%q", s, out)
		}
	}
}

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.buf.String()
}

func newTestBoard(t *testing.T, script string, opt Options) *Board {
	t.Helper()
	b := NewBoard(nil, []byte(script), opt)
	t.Cleanup(func() { b.Close() })
	return b
}

func TestREPLRunsLinesAndEchoes(t *testing.T) {
	b := newTestBoard(t, `x = 40`, Options{})
	term := attach(t, b)
	term.send("print(x + 2)\r\n")
	out := term.waitFor("42\n")
	if !strings.Contains(out, "print(x + 2)\n") {
		t.Errorf("input not echoed: %q", out)
	}
	term.send("for i = 1, 2 do\nprint('i', i)\nend\n")
	term.waitFor("i\t2\n")
	term.send("=1+1\n")
	term.waitFor("2\n")
	term.send("error('boom')\n")
	term.waitFor("Lua error:")
	if errs := b.LuaErrors(); len(errs) != 1 || !strings.Contains(errs[0], "boom") {
		t.Errorf("LuaErrors = %q, want the one REPL error", errs)
	}
}

func TestNoEcho(t *testing.T) {
	b := newTestBoard(t, ``, Options{NoEcho: true})
	term := attach(t, b)
	term.send("print('a'..'b')\n")
	out := term.waitFor("ab\n")
	if strings.Contains(out, "print(") {
		t.Errorf("input echoed with NoEcho: %q", out)
	}
}

func TestConsoleDataCallbackChunks(t *testing.T) {
	tests := []struct {
		name  string
		on    string // console.on arguments before the function
		input string
		want  string // chunks joined by |
	}{
		{"end char", `"\0"`, "ab\x00cd\x00e", "ab\x00|cd\x00"},
		{"fixed length", `3`, "abcdefg", "abc|def"},
		{"every byte", `0`, "abc", "a|b|c"},
		{"numeric string is a length", `"2"`, "abcde", "ab|cd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBoard(t, `
				chunks = {}
				console.on("data", `+tc.on+`, function(s) chunks[#chunks+1] = s end)
				console.mode(console.NONINTERACTIVE)
			`, Options{})
			term := attach(t, b)
			term.send(tc.input)
			waitLua(t, b, `table.concat(chunks, "|")`, tc.want)
		})
	}
}

// waitLua waits until the Lua expression evaluates to want.
func waitLua(t *testing.T, b *Board, expr, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		got = evalLua(t, b, expr)
		if got == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s = %q, want %q", expr, got, want)
}

func evalLua(t *testing.T, b *Board, expr string) string {
	t.Helper()
	var got string
	var err error
	b.do(func(v *vm) {
		if v == nil || v.dead {
			got = "<rebooting>"
			return
		}
		err = v.L.DoString("return tostring(" + expr + ")")
		if err == nil {
			got = v.L.ToString(-1)
			v.L.Pop(1)
		}
	})
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return got
}

func TestInteractiveConsoleSeesBothREPLAndCallback(t *testing.T) {
	// Until the program switches the console to NONINTERACTIVE, input goes
	// to the REPL and to the callback; the switch takes effect on the next
	// byte.
	b := newTestBoard(t, `
		seen = ""
		console.on("data", "!", function(s)
			seen = seen .. s
			console.mode(console.NONINTERACTIVE)
		end)
	`, Options{})
	term := attach(t, b)
	term.send("y = 7!\nprint('leak')\n")
	waitLua(t, b, "seen", "y = 7!")
	time.Sleep(50 * time.Millisecond)
	if out := term.output(); strings.Contains(out, "leak\n") {
		t.Errorf("REPL ran a line after NONINTERACTIVE: %q", out)
	}
	if !strings.Contains(term.output(), "y = 7!") {
		t.Errorf("bytes before the switch were not echoed: %q", term.output())
	}
	if got := evalLua(t, b, "y"); got != "nil" {
		t.Errorf("y = %s: the line should not have run (no newline before the switch)", got)
	}
}

func TestUARTFirmwareRunInput(t *testing.T) {
	b := newTestBoard(t, `
		got = ""
		uart.on("data", "\n", function(s) got = got .. s end, 0)
	`, Options{Firmware: UARTFirmware})
	term := attach(t, b)
	term.send("print('nope')\n")
	waitLua(t, b, "got", "print('nope')\n")
	if strings.Contains(term.output(), "nope\n") {
		t.Errorf("run_input 0 still ran the line: %q", term.output())
	}
	b.do(func(v *vm) {
		v.L.DoString(`uart.on("data")`) // unregister: back to the REPL
	})
	term.send("print('yes')\n")
	term.waitFor("yes\n")
	if got := evalLua(t, b, "console"); got != "nil" {
		t.Errorf("UARTFirmware has a console module: %s", got)
	}
}

func TestTimers(t *testing.T) {
	b := newTestBoard(t, `
		n, single = 0, 0
		auto = tmr.create()
		auto:alarm(5, tmr.ALARM_AUTO, function(t) n = n + 1; if n == 3 then t:stop() end end)
		tmr.create():alarm(5, tmr.ALARM_SINGLE, function() single = single + 1 end)
	`, Options{})
	waitLua(t, b, "n", "3")
	waitLua(t, b, "single", "1")
	time.Sleep(40 * time.Millisecond)
	if got := evalLua(t, b, "n .. ',' .. single"); got != "3,1" {
		t.Errorf("timers kept firing: %s", got)
	}
	if got := evalLua(t, b, "auto:state()"); got != "false" {
		t.Errorf("stopped auto timer state = %s", got)
	}
	if got := evalLua(t, b, "select(2, pcall(tmr.create().start, tmr.create()))"); !strings.Contains(got, "timer not registered") {
		t.Errorf("start of unregistered timer: %s", got)
	}
}

func TestBit(t *testing.T) {
	b := newTestBoard(t, ``, Options{})
	tests := []struct{ expr, want string }{
		{"bit.bxor(-1, 1)", "-2"},
		{"bit.band(-306674912, 255)", "32"}, // 0xEDB88320
		{"bit.rshift(-1, 1)", "2147483647"},
		{"bit.rshift(-1, 0)", "-1"},
		{"bit.arshift(-8, 1)", "-4"},
		{"bit.lshift(1, 31)", "-2147483648"},
		{"bit.bnot(0)", "-1"},
		{"bit.bor(1, 2, 4)", "7"},
		{"select(2, pcall(bit.band, 4294967295, 1))", "bad argument #1 to 'band' (not a 32-bit signed integer (NodeMCU's lua_Integer))"},
		{"select(2, pcall(bit.rshift, 1, 32))", "bad argument #2 to 'rshift' (shift count out of 0..31)"},
	}
	for _, tc := range tests {
		if got := evalLua(t, b, tc.expr); got != tc.want {
			t.Errorf("%s = %s, want %s", tc.expr, got, tc.want)
		}
	}
}

func TestMissingModuleFieldRaises(t *testing.T) {
	b := newTestBoard(t, ``, Options{})
	got := evalLua(t, b, `select(2, pcall(function() return uart.alt end))`)
	if !strings.Contains(got, "uart.alt is not provided by the Gota NodeMCU harness") {
		t.Errorf("missing field: %s", got)
	}
	got = evalLua(t, b, `select(2, pcall(function() local t = tmr.create(); return t.nonsense end))`)
	if !strings.Contains(got, "timer method nonsense is not provided") {
		t.Errorf("missing timer method: %s", got)
	}
	if got := evalLua(t, b, "wifi"); got != "nil" {
		t.Errorf("absent module reads %s, want nil", got)
	}
}

func TestRaisePosition(t *testing.T) {
	// luaL_error prefixes the position of the Lua caller, none when the
	// module function is called straight from pcall.
	b := newTestBoard(t, ``, Options{})
	if got := evalLua(t, b, `select(2, pcall(console.mode, 7))`); got != "invalid mode" {
		t.Errorf("pcall(console.mode, 7): %q", got)
	}
	if got := evalLua(t, b, `select(2, pcall(function() console.mode(7) end))`); !strings.HasSuffix(got, ":1: invalid mode") {
		t.Errorf("wrapped call: %q", got)
	}
}

func TestRestartRerunsProgram(t *testing.T) {
	b := newTestBoard(t, `boots = (boots or 0) + 1; print("booted")`, Options{})
	term := attach(t, b)
	term.send("marker = 1\n")
	waitLua(t, b, "marker", "1")
	term.send("node.restart()\n")
	// A fresh Lua state: the marker is gone and the program ran once.
	waitLua(t, b, "tostring(marker) .. boots", "nil1")
	term.waitFor("Gota virtual board")
	term.waitFor("booted\n> ")
}
