package agent_test

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gota-dev/gota/protocol"
)

// TestReorderKeptFrames sends DATA frames in orders that put plain frames
// (which the C agent keeps in its image ring) and DEFLATE frames (kept
// raw) after the same gap, then the whole image in order: whatever the
// agent keeps, every byte must land at its own offset. The first orders
// are the ones that made the C agent lose track of a kept DEFLATE frame
// and inflate its bytes in place of the next one (found by
// TestHeavyNoise); the rest are random: frames of chunks 0..15, each plain
// or DEFLATE, shuffled, some twice, some never.
func TestReorderKeptFrames(t *testing.T) { forAgents(t, testReorderKeptFrames) }

// chunkFrame is DATA frame i of an image cut into reorderChunk-byte
// chunks, plain or DEFLATE.
type chunkFrame struct {
	i       int
	deflate bool
}

const reorderChunk = 512

func testReorderKeptFrames(t *testing.T, k agentKind) {
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	orders := map[string][]chunkFrame{
		"plain fills the gap":   {{3, false}, {1, true}, {4, false}, {0, false}, {6, true}, {2, false}, {3, false}, {4, false}, {5, false}},
		"deflate fills the gap": {{3, false}, {1, true}, {4, false}, {0, true}, {6, true}, {2, false}, {3, false}, {4, false}, {5, false}},
	}
	for seed := range 24 {
		rng := rand.New(rand.NewPCG(uint64(seed), 0))
		var order []chunkFrame
		for _, i := range rng.Perm(16) {
			for range rng.IntN(3) { // 0, 1 or 2 times
				order = append(order, chunkFrame{i, rng.IntN(2) == 0})
			}
		}
		orders[fmt.Sprintf("random %d", seed)] = order
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) { sendInOrder(t, k, v11, order) })
	}
}

// sendInOrder begins an update to img, sends order, then img in order,
// ends the update and checks the slot byte for byte.
func sendInOrder(t *testing.T, k agentKind, img []byte, order []chunkFrame) {
	h := newRawHost(t, k, image(t, "esp32-ledcontroller-v1.0.bin"))
	hello := protocol.Hello{Version: protocol.Version, Caps: protocol.CapDeflate | protocol.CapReorder, MaxPayload: 1024}
	if f := h.request(protocol.TypeHello, 1, hello.Encode()); f.Type != protocol.TypeHello.Reply() {
		t.Fatalf("HELLO: %v", f.Type)
	} else if got, _ := protocol.DecodeHello(f.Payload); got.Caps&hello.Caps != hello.Caps {
		t.Fatalf("agent grants caps %#x, the test needs %#x", got.Caps, hello.Caps)
	}
	begin := protocol.Begin{Size: uint32(len(img)), SHA256: sha256.Sum256(img)}
	f := h.request(protocol.TypeBegin, 2, begin.Encode())
	if f.Type != protocol.TypeBegin.Reply() {
		e, _ := protocol.DecodeError(f.Payload)
		t.Fatalf("BEGIN: %v %v", f.Type, e)
	}
	target, err := protocol.DecodeBeginReply(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range order {
		off := c.i * reorderChunk
		d := protocol.Data{Offset: uint32(off), Bytes: img[off : off+reorderChunk]}
		var flags uint8
		if c.deflate {
			d.Bytes, flags = protocol.Deflate(img[:off], d.Bytes), protocol.FlagDeflate
		}
		h.send(protocol.Frame{Type: protocol.TypeData, Flags: flags, Payload: d.Encode()})
	}
	h.fill(img, reorderChunk)
	if f := h.request(protocol.TypeEnd, 3, []byte{0}); f.Type != protocol.TypeEnd.Reply() {
		e, _ := protocol.DecodeError(f.Payload)
		t.Errorf("END: %v", e)
	}
	slot := h.dev.Table().Find(target.Label)
	if slot == nil {
		t.Fatalf("BEGIN_R names %q, not in the table", target.Label)
	}
	got := make([]byte, len(img))
	h.dev.Flash().ReadAt(got, int64(slot.Offset))
	if i := firstDiff(got, img); i >= 0 {
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
