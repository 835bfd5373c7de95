package agent_test

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/gota-dev/gota/protocol"
)

// TestReorderKeptFrames sends DATA frames in an order that puts plain
// frames (kept in the image ring) and DEFLATE frames (kept raw) after the
// same gap, then fills the gap with a plain or a DEFLATE frame: whatever
// the agent keeps, every byte must land at its own offset. With a plain
// frame filling the gap, the C agent once lost track of kept DEFLATE frame
// and inflated its bytes in place of the next one (found by TestHeavyNoise).
func TestReorderKeptFrames(t *testing.T) { forAgents(t, testReorderKeptFrames) }

func testReorderKeptFrames(t *testing.T, k agentKind) {
	for _, gapDeflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate-fills-gap=%v", gapDeflate), func(t *testing.T) {
			reorderKeptFrames(t, k, gapDeflate)
		})
	}
}

func reorderKeptFrames(t *testing.T, k agentKind, gapDeflate bool) {
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	h := newRawHost(t, k, image(t, "esp32-ledcontroller-v1.0.bin"))
	hello := protocol.Hello{Version: protocol.Version, Caps: protocol.CapDeflate | protocol.CapReorder, MaxPayload: 1024}
	if f := h.request(protocol.TypeHello, 1, hello.Encode()); f.Type != protocol.TypeHello.Reply() {
		t.Fatalf("HELLO: %v", f.Type)
	} else if got, _ := protocol.DecodeHello(f.Payload); got.Caps&hello.Caps != hello.Caps {
		t.Fatalf("agent grants caps %#x, the test needs %#x", got.Caps, hello.Caps)
	}
	begin := protocol.Begin{Size: uint32(len(v11)), SHA256: sha256.Sum256(v11)}
	f := h.request(protocol.TypeBegin, 2, begin.Encode())
	if f.Type != protocol.TypeBegin.Reply() {
		e, _ := protocol.DecodeError(f.Payload)
		t.Fatalf("BEGIN: %v %v", f.Type, e)
	}
	target, err := protocol.DecodeBeginReply(f.Payload)
	if err != nil {
		t.Fatal(err)
	}

	const chunk = 512
	plain := func(i int) protocol.Frame {
		d := protocol.Data{Offset: uint32(i * chunk), Bytes: v11[i*chunk : (i+1)*chunk]}
		return protocol.Frame{Type: protocol.TypeData, Payload: d.Encode()}
	}
	deflate := func(i int) protocol.Frame {
		d := protocol.Data{Offset: uint32(i * chunk), Bytes: protocol.Deflate(v11[:i*chunk], v11[i*chunk:(i+1)*chunk])}
		return protocol.Frame{Type: protocol.TypeData, Flags: protocol.FlagDeflate, Payload: d.Encode()}
	}
	first := plain
	if gapDeflate {
		first = deflate
	}
	// Chunk 0 is late; 1 (DEFLATE) waits between plain 3 and 4, and 6
	// (DEFLATE) after them. Then the rest arrives in order.
	for _, f := range []protocol.Frame{plain(3), deflate(1), plain(4), first(0), deflate(6), plain(2), plain(3), plain(4), plain(5)} {
		h.send(f)
	}
	h.fill(v11, chunk)
	if f := h.request(protocol.TypeEnd, 3, []byte{0}); f.Type != protocol.TypeEnd.Reply() {
		e, _ := protocol.DecodeError(f.Payload)
		t.Errorf("END: %v", e)
	}
	slot := h.dev.Table().Find(target.Label)
	if slot == nil {
		t.Fatalf("BEGIN_R names %q, not in the table", target.Label)
	}
	got := make([]byte, len(v11))
	h.dev.Flash().ReadAt(got, int64(slot.Offset))
	if i := firstDiff(got, v11); i >= 0 {
		t.Errorf("%s differs from the image from byte %d", target.Label, i)
	}
}

// firstDiff returns the first index where a and b differ, or -1.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
