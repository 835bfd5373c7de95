package nodemcu

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// rawHost is a host that speaks frames by hand over a line to the board
// and keeps the text and frames the board sends apart.
type rawHost struct {
	t      *testing.T
	term   *terminal
	mu     sync.Mutex
	frames []protocol.Frame
	text   strings.Builder
	dec    *protocol.Decoder
	seen   int // bytes of term output already decoded
}

func newRawHost(t *testing.T, r *rig) *rawHost {
	h := &rawHost{t: t, term: attach(t, r.board)}
	h.dec = protocol.NewDecoder(protocol.LimitMaxPayload,
		func(f protocol.Frame) { h.frames = append(h.frames, f) },
		func(b []byte) { h.text.Write(b) })
	t.Cleanup(func() {
		if txt := h.textSoFar(); strings.Contains(txt, "gota.lua: internal error") {
			t.Errorf("gota.lua reported an internal error:\n%s", txt)
		}
	})
	return h
}

// poll decodes what arrived since the last call.
func (h *rawHost) poll() {
	out := h.term.output()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dec.Write([]byte(out[h.seen:]))
	h.seen = len(out)
}

func (h *rawHost) send(f protocol.Frame) { h.term.send(string(f.Encode())) }

// waitText waits until the text outside frames contains s.
func (h *rawHost) waitText(s string) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		h.poll()
		h.mu.Lock()
		got := h.text.String()
		h.mu.Unlock()
		if strings.Contains(got, s) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("text %q never came; text so far:\n%q", s, h.text.String())
}

// waitFrame waits for a frame of type typ and seq and returns it.
func (h *rawHost) waitFrame(typ protocol.Type, seq uint8) protocol.Frame {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		h.poll()
		h.mu.Lock()
		for i, f := range h.frames {
			if f.Type == typ && f.Seq == seq {
				h.frames = append(h.frames[:i], h.frames[i+1:]...)
				h.mu.Unlock()
				return f
			}
		}
		h.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("no %v frame with seq %d; frames: %v", typ, seq, h.frames)
	return protocol.Frame{}
}

func (h *rawHost) textSoFar() string {
	h.poll()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.text.String()
}

// TestLuaAgentREPL: with gota.lua listening, typed lines still run (the
// agent's REPL), frames never reach the interpreter, typing during a
// session is ignored, and gota.stop() gives the console back.
func TestLuaAgentREPL(t *testing.T) {
	for _, fw := range []struct {
		name string
		fw   Firmware
	}{{"console", ConsoleFirmware}, {"uart", UARTFirmware}} {
		t.Run(fw.name, func(t *testing.T) {
			script := append([]byte("gota_config = { quiet_ms = 300 }\n"), AgentScript...)
			r := newRigWith(t, Options{Firmware: fw.fw}, nil, script)
			r.allowLuaErrors = true // checked below: only after gota.stop()
			h := newRawHost(t, r)

			h.term.send("x = 6*7\r\n=x\r\n")
			h.waitText("=x\n42\n> ")
			h.term.send("for i = 1, 2 do\rprint('i' .. i)\rend\r")
			h.waitText(">> ")
			h.waitText("i2\n")
			h.term.send("error('boom')\n")
			h.waitText("boom")
			h.term.send("prinx\x08t(100 + 23)\n") // backspace edits the line
			h.waitText("\n123\n")

			// A frame starts a session: its bytes and typing meanwhile are
			// not run.
			h.send(protocol.Frame{Type: protocol.TypePing, Seq: 9, Payload: []byte("\nprint('frame')\n")})
			if p := h.waitFrame(protocol.TypePing.Reply(), 9); string(p.Payload) != "\nprint('frame')\n" {
				t.Errorf("PING_R payload %q", p.Payload)
			}
			h.term.send("print('typed in session')\n")
			time.Sleep(100 * time.Millisecond)
			// After the quiet time the REPL is back.
			time.Sleep(500 * time.Millisecond)
			h.term.send("print('back')\n")
			h.waitText("back\n")
			if txt := h.textSoFar(); strings.Contains(txt, "frame\n") || strings.Contains(txt, "typed in session\n") {
				t.Errorf("input during a session was run:\n%q", txt)
			}

			// gota.stop(): NodeMCU's own interpreter takes the console again.
			if errs := r.board.LuaErrors(); len(errs) > 0 {
				t.Fatalf("Lua errors before gota.stop(): %q", errs)
			}
			h.term.send("gota.stop()\n")
			h.waitText("> ")
			h.term.send("print('native ' .. tostring(gota ~= nil))\n")
			h.waitText("native true\n")
			h.send(protocol.Frame{Type: protocol.TypePing, Seq: 10})
			time.Sleep(100 * time.Millisecond)
			h.poll()
			for _, f := range h.frames {
				if f.Type == protocol.TypePing.Reply() && f.Seq == 10 {
					t.Errorf("agent answered after gota.stop()")
				}
			}
			// The frame after stop reached NodeMCU's interpreter, which
			// can only reject it as Lua.
			for _, e := range r.board.LuaErrors() {
				if !strings.Contains(e, "stdin") {
					t.Errorf("Lua error: %s", e)
				}
			}
		})
	}
}
