package agent_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gota-dev/gota/protocol"
)

// rawAgent starts an agent of kind k on a fresh device and returns a
// function sending one request frame and returning the reply frame.
func rawAgent(t *testing.T, k agentKind) func(f protocol.Frame) protocol.Frame {
	h := newRawHost(t, k, image(t, "esp32-ledcontroller-v1.0.bin"))
	return func(f protocol.Frame) protocol.Frame {
		h.send(f)
		for {
			if r := h.next(); r.Type != protocol.TypeReady && r.Type != protocol.TypeAck {
				return r
			}
		}
	}
}

// TestErrorPaths sends each agent the requests SPEC.md answers with an
// ERROR (short payloads, a bad version, an unknown type, a rate out of
// range, END and DATA without a transfer, an image too large) and checks
// every agent answers each with the same request type, code and message.
func TestErrorPaths(t *testing.T) {
	requests := []protocol.Frame{
		{Type: protocol.TypeHello, Payload: []byte{1, 2, 3}},
		{Type: protocol.TypeHello, Payload: protocol.Hello{Version: 9, MaxPayload: 256}.Encode()},
		{Type: protocol.TypeInfo, Payload: []byte{1, 2}},
		// END before any BEGIN, and after a BEGIN refused for its size.
		{Type: protocol.TypeEnd, Payload: []byte{0}},
		{Type: protocol.TypeBegin, Payload: make([]byte, 36)},
		{Type: protocol.TypeBegin, Payload: protocol.Begin{Size: 16 << 20}.Encode()},
		{Type: protocol.TypeEnd, Payload: []byte{0}},
		{Type: protocol.TypeBaud, Payload: []byte{1}},
		{Type: protocol.TypeBaud, Payload: protocol.EncodeU32(3000000)},
		{Type: protocol.TypeBaud, Payload: protocol.EncodeU32(100)},
		{Type: 0x33},
		{Type: protocol.TypeData, Payload: []byte{1, 2}},
	}
	replies := map[string][]string{}
	for _, k := range agentKinds {
		send := rawAgent(t, k)
		for i, req := range requests {
			req.Seq = uint8(i + 1)
			if req.Type == protocol.TypeData {
				req.Seq = 0
			}
			r := send(req)
			e, err := protocol.DecodeError(r.Payload)
			if r.Type != protocol.TypeError || err != nil || e.Request != req.Type || r.Seq != req.Seq {
				t.Errorf("%s: %v %x: reply %v seq %d %+v", k.name, req.Type, req.Payload, r.Type, r.Seq, e)
				continue
			}
			msg := e.Message
			if req.Type == protocol.TypeBaud && len(req.Payload) == 4 {
				// The upper limit is each agent's own (its UART ring).
				msg = strings.SplitAfter(msg, "..")[0]
			}
			replies[k.name] = append(replies[k.name], fmt.Sprintf("%v 0x%x %s", e.Request, e.Code, msg))
		}
	}
	for i, want := range replies["go"] {
		if i >= len(replies["c"]) || replies["c"][i] != want {
			got := "(none)"
			if i < len(replies["c"]) {
				got = replies["c"][i]
			}
			t.Errorf("request %d (%v): Go agent %q, C agent %q", i+1, requests[i].Type, want, got)
		}
	}
	t.Logf("%q", replies)
}
