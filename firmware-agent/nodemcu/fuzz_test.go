package nodemcu

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/gota-dev/gota/protocol"
)

// lockedBuffer is a console sink for tests that drive the board directly.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

// FuzzAgentInput feeds arbitrary bytes to gota.lua's receiver in the
// middle of a session and checks that it survives: no Lua error escapes,
// no internal error is reported, and a PING sent afterwards (behind
// enough filler to end any candidate frame) is answered.
func FuzzAgentInput(f *testing.F) {
	ping := func(seq uint8, p string) []byte {
		return protocol.Frame{Type: protocol.TypePing, Seq: seq, Payload: []byte(p)}.Encode()
	}
	f.Add([]byte{})
	f.Add(ping(3, "hello"))
	f.Add([]byte("\x01\x01\x01\x01\x01\x01\x01\x01"))
	f.Add(protocol.Frame{Type: protocol.TypeHello, Seq: 4, Payload: protocol.Hello{Version: 1, MaxPayload: 300}.Encode()}.Encode())
	f.Add(protocol.Frame{Type: protocol.TypeInfo, Seq: 5, Payload: []byte{0xff, 0xff, 0xff, 0x7f}}.Encode())
	f.Add(protocol.Frame{Type: protocol.TypeData, Payload: make([]byte, 1020)}.Encode()[:500])
	f.Add(protocol.Frame{Type: protocol.TypeBaud, Seq: 6, Payload: []byte{1, 0, 0, 0}}.Encode())
	f.Add(protocol.Frame{Type: protocol.TypeStatus, Seq: 7}.Encode())
	f.Fuzz(func(t *testing.T, in []byte) {
		out := &lockedBuffer{}
		b := NewBoard(nil, AgentScript, Options{})
		defer b.Close()
		b.con.attach(out)
		feed := func(p []byte) { b.do(func(v *vm) { v.input(p) }) }
		feed(ping(1, "start")) // a session: the input is not REPL text
		feed(in)
		feed(make([]byte, 1100)) // ends any candidate (no SOF inside)
		feed(ping(2, "after"))

		var answered bool
		var text strings.Builder
		dec := protocol.NewDecoder(protocol.LimitMaxPayload, func(fr protocol.Frame) {
			if fr.Type == protocol.TypePing.Reply() && fr.Seq == 2 && string(fr.Payload) == "after" {
				answered = true
			}
		}, func(p []byte) { text.Write(p) })
		dec.Write(out.Bytes())
		if errs := b.LuaErrors(); len(errs) > 0 {
			t.Fatalf("Lua errors: %q", errs)
		}
		if strings.Contains(text.String(), "gota.lua: internal error") {
			t.Fatalf("agent reported an internal error:\n%s", text.String())
		}
		if !answered {
			t.Fatalf("PING after the input was not answered; output text:\n%q", text.String())
		}
	})
}
