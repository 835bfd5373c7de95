package nodemcu

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// request sends a request and waits for the answer with its seq (reply or
// ERROR).
func (h *rawHost) request(typ protocol.Type, seq uint8, payload []byte) protocol.Frame {
	h.t.Helper()
	h.send(protocol.Frame{Type: typ, Seq: seq, Payload: payload})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		h.poll()
		h.mu.Lock()
		for i, f := range h.frames {
			if f.Seq == seq && (f.Type == typ.Reply() || f.Type == protocol.TypeError) {
				h.frames = append(h.frames[:i], h.frames[i+1:]...)
				h.mu.Unlock()
				return f
			}
		}
		h.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("no answer to %v seq %d; frames %v", typ, seq, h.frames)
	return protocol.Frame{}
}

// wantError checks that f is an ERROR for request req with code and
// message.
func wantError(t *testing.T, f protocol.Frame, req protocol.Type, code uint32, msg string) {
	t.Helper()
	if f.Type != protocol.TypeError {
		t.Fatalf("got %v %q, want ERROR %q", f.Type, f.Payload, msg)
	}
	e, err := protocol.DecodeError(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if e.Request != req || e.Code != code || e.Message != msg {
		t.Errorf("ERROR{%v, 0x%x, %q}, want {%v, 0x%x, %q}", e.Request, e.Code, e.Message, req, code, msg)
	}
}

// acks returns the ACK frames received so far and forgets them.
func (h *rawHost) acks() []protocol.Frame {
	h.poll()
	h.mu.Lock()
	defer h.mu.Unlock()
	var acks, rest []protocol.Frame
	for _, f := range h.frames {
		if f.Type == protocol.TypeAck {
			acks = append(acks, f)
		} else {
			rest = append(rest, f)
		}
	}
	h.frames = rest
	return acks
}

func (h *rawHost) waitAcks(n int) []protocol.Frame {
	h.t.Helper()
	var got []protocol.Frame
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		got = append(got, h.acks()...)
		time.Sleep(5 * time.Millisecond)
	}
	if len(got) < n {
		h.t.Fatalf("%d ACKs, want %d", len(got), n)
	}
	return got
}

func decodeAck(t *testing.T, f protocol.Frame) (protocol.Ack, bool) {
	t.Helper()
	a, err := protocol.DecodeAck(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return a, f.Flags&protocol.FlagGap != 0
}

func begin(size int, image []byte) []byte {
	return protocol.Begin{Size: uint32(size), SHA256: sha256.Sum256(image)}.Encode()
}

func data(off int, b []byte) []byte {
	return protocol.Data{Offset: uint32(off), Bytes: b}.Encode()
}

func TestLuaAgentFrames(t *testing.T) {
	t.Run("requests before HELLO and errors", func(t *testing.T) {
		r := newRig(t, Options{})
		h := newRawHost(t, r)
		if p := h.request(protocol.TypePing, 1, []byte("x")); p.Type != protocol.TypePing.Reply() || string(p.Payload) != "x" {
			t.Errorf("PING before HELLO: %v %q", p.Type, p.Payload)
		}
		wantError(t, h.request(0x33, 2, nil), 0x33, 0x106, "unknown request type 0x33")
		wantError(t, h.request(0x85, 3, nil), 0x85, 0x102, "type 0x85 is not a request")
		wantError(t, h.request(protocol.TypeHello, 4, protocol.Hello{Version: 2}.Encode()), protocol.TypeHello, 0x106, "protocol version 2 not supported")
		wantError(t, h.request(protocol.TypeBegin, 5, []byte{1, 2, 3}), protocol.TypeBegin, 0x102, "BEGIN payload is 3 bytes, need 37")
		wantError(t, h.request(protocol.TypeEnd, 6, []byte{0}), protocol.TypeEnd, 0x103, "no upgrade in progress")
		wantError(t, h.request(protocol.TypeRollback, 7, nil), protocol.TypeRollback, 0x1505, "no other firmware to roll back to")
		// A retried request (same type and seq) is answered from the cache,
		// not run again: the reply still carries the first payload.
		h.request(protocol.TypePing, 8, []byte("first"))
		if p := h.request(protocol.TypePing, 8, []byte("second")); string(p.Payload) != "first" {
			t.Errorf("retried PING answered %q, want the cached %q", p.Payload, "first")
		}
	})

	t.Run("INFO continuation", func(t *testing.T) {
		r := newRig(t, Options{})
		h := newRawHost(t, r)
		total, whole, err := protocol.DecodeInfoChunk(h.request(protocol.TypeInfo, 1, nil).Payload)
		if err != nil || total != len(whole) || !strings.HasPrefix(string(whole), "chip=esp32\nchip_rev=300\nrunning=app0\nnext=app0\npart=app0\nstate=valid\n") {
			t.Fatalf("INFO: total %d text %q err %v", total, whole, err)
		}
		_, tail, err := protocol.DecodeInfoChunk(h.request(protocol.TypeInfo, 2, protocol.EncodeU32(10)).Payload)
		if err != nil || string(tail) != string(whole[10:]) {
			t.Errorf("INFO offset 10: %q, want %q", tail, whole[10:])
		}
		info, err := protocol.DecodeInfo(whole)
		if err != nil {
			t.Fatalf("DecodeInfo: %v", err)
		}
		if info.Chip != "esp32" || info.ChipRev != 300 || info.Running != "app0" || len(info.Partitions) != 2 {
			t.Errorf("decoded INFO: %+v", info)
		}
	})

	t.Run("noise, bad CRC and a cut frame", func(t *testing.T) {
		r := newRig(t, Options{})
		h := newRawHost(t, r)
		h.request(protocol.TypePing, 1, nil) // start a session: text is no longer the REPL's
		bad := protocol.Frame{Type: protocol.TypePing, Seq: 2, Payload: []byte("bad")}.Encode()
		bad[len(bad)-6] ^= 0x40
		// A frame cut short that announces 1000 payload bytes: only the
		// idle rule lets the agent see the next frame in time.
		cut := protocol.Frame{Type: protocol.TypeData, Payload: make([]byte, 1000)}.Encode()[:300]
		h.term.send("\x01\x01junk" + string(bad) + string(cut))
		time.Sleep(350 * time.Millisecond)
		if p := h.request(protocol.TypePing, 3, []byte("ok")); string(p.Payload) != "ok" {
			t.Errorf("PING after noise: %q", p.Payload)
		}
		h.poll()
		for _, f := range h.frames {
			if f.Seq == 2 {
				t.Errorf("the frame with a bad CRC was answered: %v", f)
			}
		}
	})

	t.Run("DATA rules", func(t *testing.T) {
		r := newRig(t, Options{})
		h := newRawHost(t, r)
		img := r.build("9.0.1")
		// DATA without BEGIN: one ERROR a second at most.
		for i := 0; i < 3; i++ {
			h.send(protocol.Frame{Type: protocol.TypeData, Payload: data(0, img[:100])})
		}
		wantError(t, h.waitFrame(protocol.TypeError, 0), protocol.TypeData, 0x103, "no upgrade in progress")
		time.Sleep(100 * time.Millisecond)
		h.poll()
		for _, f := range h.frames {
			if f.Type == protocol.TypeError {
				t.Errorf("more than one DATA error in a second")
			}
		}

		br := h.request(protocol.TypeBegin, 1, begin(len(img), img))
		if br.Type != protocol.TypeBegin.Reply() {
			t.Fatalf("BEGIN: %v %q", br.Type, br.Payload)
		}
		h.send(protocol.Frame{Type: protocol.TypeData, Payload: data(1000, img[1000:2000])}) // a gap
		h.send(protocol.Frame{Type: protocol.TypeData, Payload: data(2000, img[2000:3000])}) // still a gap: silent
		h.send(protocol.Frame{Type: protocol.TypeData, Payload: data(0, img[:1000])})
		h.send(protocol.Frame{Type: protocol.TypeData, Payload: data(0, img[:1000])}) // duplicate
		acks := h.waitAcks(3)
		time.Sleep(50 * time.Millisecond)
		acks = append(acks, h.acks()...)
		want := []struct {
			recv uint32
			gap  bool
		}{{0, true}, {1000, false}, {1000, false}}
		if len(acks) != len(want) {
			t.Fatalf("%d ACKs, want %d", len(acks), len(want))
		}
		for i, w := range want {
			a, gap := decodeAck(t, acks[i])
			if a.Received != w.recv || a.Written != w.recv || gap != w.gap {
				t.Errorf("ACK %d: %+v gap %v, want received=written=%d gap %v", i, a, gap, w.recv, w.gap)
			}
		}
		wantError(t, h.request(protocol.TypeEnd, 2, []byte{0}), protocol.TypeEnd, 0x104,
			"received 1000 of 316944 bytes")
		// STATUS shows the transfer held.
		st, err := protocol.DecodeStatus(h.request(protocol.TypeStatus, 3, nil).Payload)
		if err != nil || st.State != protocol.StatusReceiving || st.Size != uint32(len(img)) || st.Received != 1000 || st.SHA256 != sha256.Sum256(img) {
			t.Errorf("STATUS = %+v, %v", st, err)
		}
		// ABORT forgets it.
		h.request(protocol.TypeAbort, 4, nil)
		if st, _ := protocol.DecodeStatus(h.request(protocol.TypeStatus, 5, nil).Payload); st.State != protocol.StatusIdle {
			t.Errorf("STATUS after ABORT = %+v", st)
		}
	})

	t.Run("write error fails the transfer", func(t *testing.T) {
		r := newRig(t, Options{})
		h := newRawHost(t, r)
		img := r.build("9.0.2")
		bad := append([]byte{0x00}, img[1:1000]...)
		h.request(protocol.TypeBegin, 1, begin(len(img), img))
		h.send(protocol.Frame{Type: protocol.TypeData, Payload: data(0, bad)})
		wantError(t, h.waitFrame(protocol.TypeError, 0), protocol.TypeData, 0x1503, "not a valid ota image")
		if st, _ := protocol.DecodeStatus(h.request(protocol.TypeStatus, 2, nil).Payload); st.State != protocol.StatusFailed {
			t.Errorf("STATUS after a write error = %+v, want failed", st)
		}
		wantError(t, h.request(protocol.TypeEnd, 3, []byte{0}), protocol.TypeData, 0x1503, "not a valid ota image")
	})
}
