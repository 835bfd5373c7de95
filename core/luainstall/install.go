// Package luainstall installs the Gota Lua agent (gota.lua) on a board
// running NodeMCU (dev-esp32) through its Lua REPL, the way
// nodemcu-uploader and ESPlorer upload files: one short Lua line at a
// time, each answered before the next is sent.
//
// It writes gota.lua and an init.lua that starts it, keeps the user's own
// init.lua (renamed to init-user.lua and run after the agent), checks each
// file by a checksum the board computes over what it reads back, restarts
// the board and waits for the agent's READY frame. A port that is not a
// NodeMCU REPL gets a clear error before anything is written.
//
// The package does no I/O of its own: it drives an io.ReadWriter (a
// serial port, Web Serial in the browser, a pipe in tests).
package luainstall

import (
	"context"
	"errors"
	"fmt"
	"hash/adler32"
	"io"
	"strconv"
	"strings"
	"time"
)

// Names of the files on the board's file system (SPIFFS).
const (
	AgentFile    = "gota.lua"
	InitFile     = "init.lua"
	UserInitFile = "init-user.lua"
)

// initMarker starts the init.lua the installer writes, so that a second
// install recognises it and does not take it for the user's.
const initMarker = "-- gota: starts the Gota OTA agent"

// InitScript is the init.lua the installer writes: the agent first (a
// failure is printed, not raised, so the user's program still starts),
// then the user's previous init.lua when there was one.
const InitScript = initMarker + ` (gota.lua), then init-user.lua if present.
local ok, err = pcall(dofile, "gota.lua")
if not ok then print("gota: " .. tostring(err)) end
local f = io.open("init-user.lua", "r")
if f then
  f:close()
  dofile("init-user.lua")
end
`

// Options configure Install.
type Options struct {
	// Agent is the content of gota.lua (required).
	Agent []byte
	// Progress, when set, is called with the bytes written so far and the
	// total, after every chunk.
	Progress func(done, total int)
	// Log, when set, receives one line per step.
	Log func(string)
	// LineTimeout bounds each REPL line's answer (default 5 s).
	LineTimeout time.Duration
	// ReadyTimeout bounds the wait for the agent's READY after the restart
	// (default 15 s).
	ReadyTimeout time.Duration
}

// Result says what Install did.
type Result struct {
	Lua          string // the board's _VERSION
	Console      bool   // the firmware has the console module
	KeptUserInit bool   // the user's init.lua was renamed to init-user.lua
	Bytes        int    // bytes of gota.lua written
}

// NotREPLError reports a port that does not answer like a NodeMCU REPL;
// nothing was written to it.
type NotREPLError struct {
	What string // "silence", "MicroPython", "unrecognised"
	Got  string // what the port printed (shortened)
}

func (e *NotREPLError) Error() string {
	switch e.What {
	case "silence":
		return "not a NodeMCU REPL: the port printed nothing in answer to a Lua line (is the board running NodeMCU, at 115200 baud?); nothing was written"
	case "MicroPython":
		return fmt.Sprintf("not a NodeMCU REPL: the board runs MicroPython (it printed %q); nothing was written", e.Got)
	}
	return fmt.Sprintf("not a NodeMCU REPL: it answered %q to a Lua line; nothing was written", e.Got)
}

// Install writes the agent and init.lua through the REPL on rw and
// restarts the board. rw must be at the console's rate (115200 on stock
// builds). Install reads rw in the background until rw fails: close it
// afterwards.
func Install(ctx context.Context, rw io.ReadWriter, opt Options) (*Result, error) {
	if len(opt.Agent) == 0 {
		return nil, errors.New("luainstall: no agent script given")
	}
	if opt.LineTimeout <= 0 {
		opt.LineTimeout = 5 * time.Second
	}
	if opt.ReadyTimeout <= 0 {
		opt.ReadyTimeout = 15 * time.Second
	}
	in := &installer{x: newREPL(rw), opt: opt}
	return in.run(ctx)
}

type installer struct {
	x   *repl
	opt Options
}

func (in *installer) log(format string, args ...any) {
	if in.opt.Log != nil {
		in.opt.Log(fmt.Sprintf(format, args...))
	}
}

func (in *installer) run(ctx context.Context) (*Result, error) {
	res, err := in.probe(ctx)
	if err != nil {
		return nil, err
	}
	in.log("NodeMCU REPL found (%s, %s)", res.Lua, map[bool]string{true: "console module", false: "uart console"}[res.Console])
	if err := in.writeFile(ctx, AgentFile+".tmp", in.opt.Agent, len(in.opt.Agent)); err != nil {
		return nil, fmt.Errorf("writing %s: %w", AgentFile, err)
	}
	res.Bytes = len(in.opt.Agent)
	if err := in.writeFile(ctx, InitFile+".tmp", []byte(InitScript), 0); err != nil {
		return nil, fmt.Errorf("writing %s: %w", InitFile, err)
	}
	kept, err := in.swapIn(ctx)
	if err != nil {
		return nil, err
	}
	res.KeptUserInit = kept
	if err := in.restart(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// probeLine is a Lua line whose answer only a Lua REPL gives: the echo
// shows "GOTA".."OK", the output GOTAOK.
const probeLine = `print("GOTA".."OK", _VERSION, console ~= nil, io ~= nil and io.open ~= nil)`

// probe checks that the port is a NodeMCU REPL with the io module.
func (in *installer) probe(ctx context.Context) (*Result, error) {
	// gota.lua's own REPL ignores typing for 5 s after the last frame
	// (a host that just disconnected): keep asking for longer than that.
	var out string
	for attempt := 0; attempt < 4; attempt++ {
		m := in.x.mark()
		// A newline first ends whatever half line the REPL holds.
		if _, err := io.WriteString(in.x.w, "\n"+probeLine+"\n"); err != nil {
			return nil, fmt.Errorf("writing to the port: %w", err)
		}
		got, err := in.x.wait(ctx, m, 2*time.Second, func(s string) bool {
			i := strings.Index(s, "\nGOTAOK\t")
			return i >= 0 && strings.Contains(s[i+1:], "\n")
		})
		out += got
		if err == nil {
			i := strings.Index(got, "\nGOTAOK\t")
			fields := strings.Split(strings.SplitN(got[i+1:], "\n", 2)[0], "\t")
			if len(fields) < 4 {
				return nil, &NotREPLError{What: "unrecognised", Got: shorten(got)}
			}
			res := &Result{Lua: strings.TrimSpace(fields[1]), Console: strings.TrimSpace(fields[2]) == "true"}
			if strings.TrimSpace(fields[3]) != "true" {
				return nil, fmt.Errorf("the firmware has no io module (CONFIG_LUA_BUILTIN_IO): cannot write files; nothing was written")
			}
			// Let the prompt after the answer arrive before the next line.
			in.x.wait(ctx, in.x.mark(), 300*time.Millisecond, func(s string) bool { return prompted("\n" + s) })
			return res, nil
		}
		if !errors.Is(err, errTimeout) {
			return nil, err
		}
		if strings.Contains(out, ">>> ") || strings.Contains(out, "MicroPython") {
			return nil, &NotREPLError{What: "MicroPython", Got: shorten(out)}
		}
	}
	if strings.TrimSpace(out) == "" {
		return nil, &NotREPLError{What: "silence"}
	}
	return nil, &NotREPLError{What: "unrecognised", Got: shorten(out)}
}

func shorten(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// maxLine is the longest REPL line sent: NodeMCU's line buffer holds
// LUA_MAXINPUT (256) bytes, newline included.
const maxLine = 240

// writeFile writes data to name on the board in checked chunks, then
// has the board read it back and compares length and Adler-32.
func (in *installer) writeFile(ctx context.Context, name string, data []byte, progressTotal int) error {
	in.log("writing %s (%d bytes)", strings.TrimSuffix(name, ".tmp"), len(data))
	if err := in.exec(ctx, fmt.Sprintf(`__gf = io.open(%q, "w") __gn = 0`, name), ""); err != nil {
		return err
	}
	if err := in.exec(ctx, `function __g(s) __gf:write(s) __gn = __gn + #s print("GOTAW" .. __gn) end`, ""); err != nil {
		return err
	}
	if err := in.exec(ctx, `print("GOTAF" .. tostring(__gf ~= nil))`, "GOTAFtrue"); err != nil {
		return fmt.Errorf("cannot open %s for writing: %w", name, err)
	}
	done := 0
	for done < len(data) {
		lit, n := luaLiteral(data[done:], maxLine-len(`__g("")`))
		done += n
		if err := in.exec(ctx, "__g("+lit+")", "GOTAW"+strconv.Itoa(done)); err != nil {
			return fmt.Errorf("chunk ending at byte %d: %w", done, err)
		}
		if in.opt.Progress != nil && progressTotal > 0 {
			in.opt.Progress(done, progressTotal)
		}
	}
	if err := in.exec(ctx, `__gf:close() __gf, __g, __gn = nil, nil, nil print("GOTAC")`, "GOTAC"); err != nil {
		return err
	}
	return in.verify(ctx, name, data)
}

// verifyLines define and run a read-back checksum (Adler-32, in integer
// arithmetic that is exact on Lua 5.1's doubles and 5.3's 32-bit
// integers alike).
var verifyLines = []string{
	`function __gv(p)`,
	`local f, a, b, n = io.open(p, "r"), 1, 0, 0`,
	`if not f then return print("GOTAV-1:0:0") end`,
	`while true do local s = f:read(256) if not s then break end`,
	`for i = 1, #s do a = (a + s:byte(i)) % 65521 b = (b + a) % 65521 end n = n + #s end`,
	`f:close() print("GOTAV" .. n .. ":" .. a .. ":" .. b) end`,
}

func (in *installer) verify(ctx context.Context, name string, data []byte) error {
	for _, l := range verifyLines {
		if _, err := in.x.line(ctx, l, in.opt.LineTimeout); err != nil {
			return fmt.Errorf("read-back check: %w", err)
		}
	}
	sum := adler32.Checksum(data)
	want := fmt.Sprintf("GOTAV%d:%d:%d", len(data), sum&0xFFFF, sum>>16)
	if err := in.exec(ctx, fmt.Sprintf(`__gv(%q) __gv = nil`, name), want); err != nil {
		return fmt.Errorf("read-back check of %s: %w", name, err)
	}
	return nil
}

// exec runs one line and, when want is not empty, requires an output line
// equal to it.
func (in *installer) exec(ctx context.Context, line, want string) error {
	out, err := in.x.line(ctx, line, in.opt.LineTimeout)
	if err != nil {
		return fmt.Errorf("no prompt after %q: %w (board printed %q)", shorten(line), err, shorten(out))
	}
	if want == "" {
		if strings.TrimSpace(out) != "" {
			return fmt.Errorf("the board answered %q to %q", shorten(out), shorten(line))
		}
		return nil
	}
	for _, l := range strings.Split(out, "\n") {
		if l == want {
			return nil
		}
	}
	return fmt.Errorf("expected %q, the board printed %q", want, shorten(out))
}

// swapIn moves the checked files into place: the user's init.lua (one
// the installer did not write) becomes init-user.lua.
func (in *installer) swapIn(ctx context.Context) (keptUser bool, err error) {
	// What is init.lua now: none, ours, or the user's?
	out, err := in.x.line(ctx, `local f = io.open("init.lua", "r") print("GOTAI" .. (f and (f:read(#"`+initMarker+`") == "`+initMarker+`" and "ours" or "user") or "none")) if f then f:close() end`, in.opt.LineTimeout)
	if err != nil {
		return false, err
	}
	var kind string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "GOTAI") {
			kind = strings.TrimPrefix(l, "GOTAI")
		}
	}
	if kind == "" {
		return false, fmt.Errorf("checking init.lua: the board printed %q", shorten(out))
	}
	// rename fails on SPIFFS when the target exists: remove it first. The
	// file module has rename and remove on dev-esp32; os may not be built.
	mv := `function __gm(a, b) if file and file.rename then file.remove(b) return file.rename(a, b) end os.remove(b) return os.rename(a, b) end`
	if err := in.exec(ctx, mv, ""); err != nil {
		return false, err
	}
	if kind == "user" {
		in.log("keeping your init.lua as %s (the new init.lua runs it after the agent)", UserInitFile)
		if err := in.exec(ctx, `print("GOTAR" .. tostring(__gm("init.lua", "init-user.lua")))`, "GOTARtrue"); err != nil {
			return false, fmt.Errorf("renaming your init.lua to %s: %w", UserInitFile, err)
		}
	}
	for _, f := range []string{AgentFile, InitFile} {
		if err := in.exec(ctx, fmt.Sprintf(`print("GOTAR" .. tostring(__gm(%q, %q)))`, f+".tmp", f), "GOTARtrue"); err != nil {
			return kind == "user", fmt.Errorf("moving %s into place: %w", f, err)
		}
	}
	in.exec(ctx, `__gm = nil`, "")
	return kind == "user", nil
}

// restart reboots the board and waits for the agent's READY.
func (in *installer) restart(ctx context.Context) error {
	in.log("restarting the board")
	before := in.x.readyCount()
	m := in.x.mark()
	if _, err := io.WriteString(in.x.w, "node.restart()\n"); err != nil {
		return fmt.Errorf("writing to the port: %w", err)
	}
	_, err := in.x.wait(ctx, m, in.opt.ReadyTimeout, func(string) bool { return in.x.readyCount() > before })
	if err != nil {
		return fmt.Errorf("the agent did not announce itself (READY) after the restart: %w; the board printed %q", err, shorten(in.x.since(m)))
	}
	in.log("the agent is running")
	return nil
}

// luaLiteral encodes a prefix of data as a double-quoted Lua string
// literal of at most max characters and returns it with the number of
// bytes it holds. Printable ASCII stays as is; everything else (and the
// quote and backslash) becomes a three-digit decimal escape, which both
// Lua 5.1 and 5.3 read and which survives any console line-ending
// translation.
func luaLiteral(data []byte, max int) (string, int) {
	var b strings.Builder
	b.WriteByte('"')
	n := 0
	for _, c := range data {
		var piece string
		if c >= 0x20 && c < 0x7F && c != '"' && c != '\\' {
			piece = string(rune(c))
		} else {
			piece = fmt.Sprintf("\\%03d", c)
		}
		if b.Len()+len(piece)+1 > max {
			break
		}
		b.WriteString(piece)
		n++
	}
	b.WriteByte('"')
	return b.String(), n
}
