package updater

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// fakeClock is a Clock the test moves by hand.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// After is not used by the sender (its owner waits); it fires at once.
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.now.Add(d)
	return ch
}

// memAgent is an in-memory agent that keeps the rules of SPEC.md 6.2:
// in-order frames that fit the window are taken, duplicates are ACKed,
// anything else raises a GAP (with gap_at); with reorder it keeps frames
// after a gap while they fit. Its writer runs whenever the test lets it
// (not before stallUntil).
type memAgent struct {
	window     int
	reorder    bool
	img        []byte // bytes received, in order
	written    int
	kept       map[int]protocol.Frame
	keptBytes  int
	stallUntil time.Time

	acks       []protocol.Frame
	gaps       int // GAP ACKs sent
	duplicates int // frames below received (resends, window probes)
	overflows  int // in-order frames refused for want of buffer
}

func (a *memAgent) received() int { return len(a.img) }

func (a *memAgent) ack(gap bool, gapAt int) {
	f := protocol.Frame{Type: protocol.TypeAck}
	m := protocol.Ack{Received: uint32(a.received()), Written: uint32(a.written)}
	if gap {
		f.Flags |= protocol.FlagGap
		m.GapAt, m.HasGapAt = uint32(gapAt), true
		a.gaps++
	}
	f.Payload = m.Encode()
	a.acks = append(a.acks, f)
}

// receive takes one encoded DATA frame off the line.
func (a *memAgent) receive(t *testing.T, b []byte) {
	var frames []protocol.Frame
	dec := protocol.NewDecoder(protocol.LimitMaxPayload, func(f protocol.Frame) { frames = append(frames, f) }, nil)
	dec.Write(b)
	if len(frames) != 1 || frames[0].Type != protocol.TypeData {
		t.Fatalf("the sender wrote %d frames (% x…), want one DATA frame", len(frames), b[:min(len(b), 8)])
	}
	a.data(t, frames[0])
}

// data takes one DATA frame.
func (a *memAgent) data(t testing.TB, f protocol.Frame) {
	d, err := protocol.DecodeData(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	o := int(d.Offset)
	switch {
	case o < a.received():
		a.duplicates++
		a.ack(false, 0)
	case o == a.received():
		if !a.take(t, f) {
			a.overflows++
			a.ack(true, o)
			return
		}
		for {
			k, ok := a.kept[a.received()]
			if !ok || !a.take(t, k) {
				break
			}
		}
		for off, k := range a.kept {
			if off < a.received() {
				delete(a.kept, off)
				a.keptBytes -= len(k.Payload)
			}
		}
		a.ack(false, 0)
	default:
		if a.reorder && a.keptBytes+len(f.Payload)+a.received()-a.written <= a.window {
			if _, dup := a.kept[o]; !dup {
				a.kept[o] = f
				a.keptBytes += len(f.Payload)
			}
		}
		a.ack(true, o)
	}
}

// take appends the frame at received if the buffer holds it, dropping
// kept frames first when they are what is in the way.
func (a *memAgent) take(t testing.TB, f protocol.Frame) bool {
	d, _ := protocol.DecodeData(f.Payload)
	b := d.Bytes
	if f.Flags&protocol.FlagDeflate != 0 {
		var err error
		if b, err = protocol.Inflate(a.img, d.Bytes, a.window); err != nil {
			t.Fatalf("frame at %d: %v", d.Offset, err)
		}
	}
	free := a.window - (a.received() - a.written)
	if len(b) > free {
		return false
	}
	if _, fromKept := a.kept[int(d.Offset)]; !fromKept && len(b)+a.keptBytes > free {
		a.kept, a.keptBytes = map[int]protocol.Frame{}, 0
	}
	if k, ok := a.kept[int(d.Offset)]; ok {
		delete(a.kept, int(d.Offset))
		a.keptBytes -= len(k.Payload)
	}
	a.img = append(a.img, b...)
	return true
}

// write is the agent's writer: everything received goes to flash, and an
// ACK says so.
func (a *memAgent) write(now time.Time) {
	if now.Before(a.stallUntil) || a.written == a.received() {
		return
	}
	a.written = a.received()
	a.ack(false, 0)
}

// memLink carries DATA frames from the sender to a memAgent and ACKs
// back, losing the ones the test picks; it is the sender's dataLink.
type memLink struct {
	t        *testing.T
	clock    *fakeClock
	agent    *memAgent
	baud     int
	loseData func(n int) bool // n counts frames sent, from 1
	loseAck  func(f protocol.Frame) bool

	wire                          []outFrame
	sent, resent, rewinds, deltas int
}

func (l *memLink) sendData(fr outFrame, resent bool) error {
	l.sent++
	if resent {
		l.resent++
	}
	if l.loseData == nil || !l.loseData(l.sent) {
		l.wire = append(l.wire, fr)
	}
	return nil
}

func (l *memLink) countRewind()       { l.rewinds++ }
func (l *memLink) countDelta()        { l.deltas++ }
func (l *memLink) rtt() time.Duration { return time.Millisecond }
func (l *memLink) lineTime(n int) time.Duration {
	return time.Duration(int64(n) * 10 * int64(time.Second) / int64(l.baud))
}

// run drives s as Session.stream does, with time standing still while
// frames and ACKs move and jumping to the sender's deadline when nothing
// moves. It returns the virtual time the transfer took.
func (l *memLink) run(s *sender) (time.Duration, error) {
	start := l.clock.now
	for range 1_000_000 {
		for _, fr := range l.wire {
			l.agent.receive(l.t, fr.b)
		}
		moved := len(l.wire) > 0
		l.wire = nil
		l.agent.write(l.clock.now)
		acks := l.agent.acks
		l.agent.acks = nil
		for _, f := range acks {
			if l.loseAck != nil && l.loseAck(f) {
				continue
			}
			moved = true
			a, err := protocol.DecodeAck(f.Payload)
			if err != nil {
				l.t.Fatal(err)
			}
			s.acked(int(a.Received), int(a.Written))
			if s.done() {
				return l.clock.now.Sub(start), nil
			}
			if f.Flags&protocol.FlagGap != 0 {
				if err := s.gap(int(a.GapAt)); err != nil {
					return 0, err
				}
			}
		}
		if s.next-s.written > s.window {
			l.t.Fatalf("%d bytes beyond written %d, window %d", s.next-s.written, s.written, s.window)
		}
		if err := s.fill(); err != nil {
			return 0, err
		}
		if moved || len(l.wire) > 0 {
			continue
		}
		if d := s.deadline(); d.After(l.clock.now) {
			l.clock.now = d
		}
		l.agent.write(l.clock.now)
		if len(l.agent.acks) > 0 {
			continue // the writer's ACK comes before the deadline
		}
		if err := s.expired(); err != nil {
			return l.clock.now.Sub(start), err
		}
	}
	l.t.Fatal("the transfer does not end")
	return 0, nil
}

// testImage is n bytes that DEFLATE shrinks to about half (random
// bytes from an alphabet of 16).
func testImage(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(r.IntN(16))
	}
	return b
}

func newMemTransfer(t *testing.T, caps Caps, image []byte) (*sender, *memLink) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	agent := &memAgent{window: caps.Window, reorder: caps.Reorder, kept: map[int]protocol.Frame{}}
	l := &memLink{t: t, clock: clock, agent: agent, baud: 921600}
	return newSender(clock, l, caps, image, nil, 0), l
}

var goCaps = Caps{MaxFrame: 4096, Window: 64 << 10, Reorder: true}

func TestSenderCleanLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		caps Caps
	}{
		{"go agent", goCaps},
		{"lua-like window of two frames", Caps{MaxFrame: 1024, Window: 2048}},
		{"compression", Caps{MaxFrame: 4096, Window: 64 << 10, Reorder: true, Compression: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image := testImage(300_000)
			s, l := newMemTransfer(t, tc.caps, image)
			took, err := l.run(s)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(l.agent.img, image) {
				t.Fatal("the agent received other bytes than the image")
			}
			if l.resent+l.rewinds+l.agent.gaps+l.agent.overflows != 0 {
				t.Errorf("clean line: %d resent, %d rewinds, %d GAPs, %d overflows; want none", l.resent, l.rewinds, l.agent.gaps, l.agent.overflows)
			}
			if want := (len(image) + tc.caps.MaxFrame - 5) / (tc.caps.MaxFrame - 4); !tc.caps.Compression && l.sent != want {
				t.Errorf("sent %d frames, want %d (frames of the agent's maximum)", l.sent, want)
			}
			if tc.caps.Compression && l.sent >= len(image)/(tc.caps.MaxFrame-4) {
				t.Errorf("compression: sent %d frames for %d bytes", l.sent, len(image))
			}
			if took != 0 {
				t.Errorf("took %v of virtual time, want no timeout", took)
			}
		})
	}
}

func TestSenderOneLoss(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		reorder                bool
		lose                   int // frame lost, counted from 1
		wantResent, wantRewind int
		wantTimeout            bool
	}{
		{"reorder: resend the frame alone", true, 10, 1, 0, false},
		{"go-back-N", false, 10, 0, 1, false},
		// The last frame raises no GAP: the retransmission timeout finds it.
		{"last frame: timeout resends it", true, 74, 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image := testImage(300_000) // 74 frames of 4092 bytes
			caps := goCaps
			caps.Reorder = tc.reorder
			s, l := newMemTransfer(t, caps, image)
			l.loseData = func(n int) bool { return n == tc.lose }
			took, err := l.run(s)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(l.agent.img, image) {
				t.Fatal("the agent received other bytes than the image")
			}
			if l.resent != tc.wantResent || l.rewinds != tc.wantRewind {
				t.Errorf("%d resent, %d rewinds; want %d, %d", l.resent, l.rewinds, tc.wantResent, tc.wantRewind)
			}
			if tc.wantTimeout != (took > 0) {
				t.Errorf("took %v of virtual time; a timeout expected: %v", took, tc.wantTimeout)
			}
			// At most one retransmission timeout: a flash stall, the
			// round trip and the line time of what was in flight.
			if took > flashStall+100*time.Millisecond {
				t.Errorf("took %v of virtual time to recover one frame", took)
			}
		})
	}
}

// TestSenderShrinksAndGrows checks congestion control: a loss halves the
// frame size and cwnd, a clean run of growAfter frames doubles them.
func TestSenderShrinksAndGrows(t *testing.T) {
	s, l := newMemTransfer(t, goCaps, testImage(100_000))
	if err := s.fill(); err != nil {
		t.Fatal(err)
	}
	if s.recover(true, false); s.chunk != s.chunkMax/2 || s.cwnd != s.window/2 {
		t.Fatalf("after a GAP: chunk %d, cwnd %d; want %d, %d", s.chunk, s.cwnd, s.chunkMax/2, s.window/2)
	}
	if s.recover(false, true); s.chunk != s.chunkMax/8 || s.cwnd != s.window/4 {
		t.Fatalf("after a timeout: chunk %d, cwnd %d; want %d, %d", s.chunk, s.cwnd, s.chunkMax/8, s.window/4)
	}
	for range 20 {
		s.recover(false, true)
	}
	if s.chunk != minChunk || s.cwnd != minWindow {
		t.Fatalf("after many losses: chunk %d, cwnd %d; want the floors %d, %d", s.chunk, s.cwnd, minChunk, minWindow)
	}
	s.acked(s.recv+growAfter*minChunk, 0)
	if s.chunk != 2*minChunk || s.cwnd != 2*minWindow {
		t.Fatalf("after %d clean frames: chunk %d, cwnd %d; want %d, %d", growAfter, s.chunk, s.cwnd, 2*minChunk, 2*minWindow)
	}
	if l.resent != 1 || l.rewinds != 21 {
		t.Errorf("%d resent, %d rewinds; want 1, 21", l.resent, l.rewinds)
	}
}

// TestSenderNoisyLine loses frames and ACKs at random; the image arrives
// whole, and in much less virtual time than the timeouts would allow.
func TestSenderNoisyLine(t *testing.T) {
	for _, reorder := range []bool{true, false} {
		caps := goCaps
		caps.Reorder = reorder
		image := testImage(200_000)
		s, l := newMemTransfer(t, caps, image)
		r := rand.New(rand.NewPCG(3, 4))
		l.loseData = func(int) bool { return r.IntN(100) < 5 }
		l.loseAck = func(protocol.Frame) bool { return r.IntN(100) < 5 }
		took, err := l.run(s)
		if err != nil {
			t.Fatalf("reorder %v: %v", reorder, err)
		}
		if !bytes.Equal(l.agent.img, image) {
			t.Fatalf("reorder %v: the agent received other bytes than the image", reorder)
		}
		if l.resent+l.rewinds == 0 {
			t.Errorf("reorder %v: no recovery on a line that loses 5%% of frames", reorder)
		}
		t.Logf("reorder %v: %d frames, %d resent, %d rewinds, %v virtual", reorder, l.sent, l.resent, l.rewinds, took)
		if took > 5*time.Second {
			t.Errorf("reorder %v: %v of virtual time for 200 KB", reorder, took)
		}
	}
}

// TestSenderWindowProbe: the window is full while the agent's writer
// stalls (an erase), and the writer's ACK is lost. Only a window probe
// (a duplicate of the last frame) makes the agent say what it wrote.
func TestSenderWindowProbe(t *testing.T) {
	image := testImage(200_000)
	s, l := newMemTransfer(t, goCaps, image)
	l.agent.stallUntil = l.clock.now.Add(2 * time.Second)
	lostWriterAck := false
	l.loseAck = func(f protocol.Frame) bool {
		a, _ := protocol.DecodeAck(f.Payload)
		if !lostWriterAck && a.Written > 0 {
			lostWriterAck = true
			return true
		}
		return false
	}
	took, err := l.run(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(l.agent.img, image) {
		t.Fatal("the agent received other bytes than the image")
	}
	if !lostWriterAck || l.agent.duplicates == 0 {
		t.Errorf("writer ACK lost: %v, probes the agent saw: %d; want a probe", lostWriterAck, l.agent.duplicates)
	}
	if took < 2*time.Second || took > 2*time.Second+2*windowProbe {
		t.Errorf("took %v; want the 2 s stall plus at most two probe intervals", took)
	}
	if l.agent.overflows != 0 {
		t.Errorf("%d frames sent beyond the agent's window", l.agent.overflows)
	}
}

func TestSenderGivesUp(t *testing.T) {
	t.Run("dead line", func(t *testing.T) {
		s, l := newMemTransfer(t, goCaps, testImage(100_000))
		l.loseData = func(n int) bool { return n > 5 }
		took, err := l.run(s)
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "stopped acknowledging at offset 20460") {
			t.Fatalf("err = %v; want ErrTimeout at offset 20460", err)
		}
		// Eight timeouts, backing off to four times the first, each at
		// least a flash stall; far less than the 30 s a stalled writer
		// gets.
		if took < 8*flashStall || took > 20*time.Second {
			t.Errorf("gave up after %v of virtual time", took)
		}
		// The first timeout would resend the frame alone, but it is
		// four times as long as frames are after a timeout: go back.
		if l.resent != 0 || l.rewinds != dataMaxRTOs-1 {
			t.Errorf("%d resent, %d rewinds; want 0 and %d", l.resent, l.rewinds, dataMaxRTOs-1)
		}
	})
	t.Run("writer stalls for good", func(t *testing.T) {
		s, l := newMemTransfer(t, goCaps, testImage(200_000))
		l.agent.stallUntil = l.clock.now.Add(time.Hour)
		took, err := l.run(s)
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "device wrote nothing for 30s at offset 0") {
			t.Fatalf("err = %v; want ErrTimeout after 30 s without a write", err)
		}
		if took < windowStallMax || took > windowStallMax+windowProbe {
			t.Errorf("gave up after %v of virtual time, want %v", took, windowStallMax)
		}
	})
}

// TestSenderWireWindow: with WireWindow the window counts the bytes on
// the line of the frames beyond recv (SPEC.md 6.8), so compressed frames
// carry more image bytes than the window, and frames the agent has taken
// but not written no longer count.
func TestSenderWireWindow(t *testing.T) {
	const window = 8000
	image := testImage(100_000)
	s, l := newMemTransfer(t, Caps{MaxFrame: 2048, Window: window, Compression: true, WireWindow: true}, image)
	if err := s.fill(); err != nil {
		t.Fatal(err)
	}
	wire, img := 0, 0
	for _, fr := range l.wire {
		wire += len(fr.b)
		img += fr.n
	}
	if wire > window || wire+len(l.wire[0].b) <= window && s.next < len(image) {
		t.Errorf("%d frames, %d bytes on the line: want the window (%d) filled and not exceeded", len(l.wire), wire, window)
	}
	if img <= window {
		t.Errorf("the frames carry %d image bytes; compressed, they should carry more than the window", img)
	}
	// The agent takes them all and writes nothing: the window is free
	// again.
	l.wire = nil
	s.acked(s.next, 0)
	if err := s.fill(); err != nil {
		t.Fatal(err)
	}
	if len(l.wire) == 0 {
		t.Error("frames taken but not written still hold the wire window")
	}
}
