package updater

import (
	"fmt"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// Clock is the time source of a transfer. Tests inject one that they move
// by hand, so that timeouts of seconds cost nothing.
type Clock interface {
	Now() time.Time
	// After is time.After: the current time is sent on the channel once d
	// has elapsed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// dataLink is what the sender needs from a session: a way to put DATA
// frames on the line (and count them), and the line's timing.
type dataLink interface {
	sendData(fr outFrame, resent bool) error
	countRewind()
	countDelta()
	// rtt is the smoothed round trip of small requests, without line
	// time (rttDefault until measured).
	rtt() time.Duration
	// lineTime is how long n bytes take on the line at its rate.
	lineTime(n int) time.Duration
}

// outFrame is a DATA frame ready to (re)send.
type outFrame struct {
	b      []byte    // encoded frame
	n      int       // image bytes it carries
	sentAt time.Time // last written
}

// Frame sizing on a lossy line (SPEC.md 6.3): a loss halves the payload
// limit down to minChunk; growAfter frames' worth of image bytes received
// without a loss double it again, up to what the agent accepts.
const (
	// windowProbe is how often the host probes a full window whose
	// writer ACK may have been lost.
	windowProbe = 250 * time.Millisecond
	minChunk    = 128
	minWindow   = 2048
	growAfter   = 16
)

// sender streams one image with a sliding window (SPEC.md 6.3). It keeps
// no goroutine and no timer: its owner feeds it ACKs (acked, gap), lets it
// put frames on the line (fill), and calls expired once deadline has
// passed. The three jobs it does are the window (which frames may go out),
// congestion (frame size and cwnd, halved on a loss and grown on a clean
// run) and recovery (resend one frame, or go back).
type sender struct {
	clock       Clock
	link        dataLink
	image, base []byte // base: the running build for DELTA frames, or nil
	start       int
	compress    bool
	reorder     bool

	chunkMax int // largest payload the agent accepts, less the offset
	floor    int // smallest payload limit
	window   int // image bytes the agent buffers ahead of flash, or frame bytes (wire)
	// wire: the window and cwnd count the bytes on the line of the frames
	// beyond recv (SPEC.md 6.8).
	wire bool

	// Congestion state.
	chunk      int // payload limit now: starts at chunkMax (the clean-line fast path)
	plainChunk int // DEFLATE: image bytes tried per frame, adapted
	// cwnd bounds the image bytes in flight beyond recv, as TCP's
	// congestion window does: after a loss a resend must not queue behind
	// a whole window of new frames.
	cwnd  int
	clean int // image bytes received since the last loss

	// Window state.
	cache         map[int]outFrame // frames cut, by offset, not yet received
	next          int              // offset of the next new frame
	recv, written int              // as the agent acknowledged

	// Recovery state. The last recovery (resend or go-back): where, when,
	// and how long its frame needs to reach the agent behind what was
	// already in flight. A GAP for the same offset within that time is
	// about frames sent before the recovery and is ignored.
	recoveredAt  time.Time
	recoveredPos int
	recoveryTime time.Duration
	// resentEnd is where the frame resent last ends. A new loss right
	// there means the agent kept nothing after that frame (its window
	// was full, or the frames were lost too): resending one frame per
	// round trip would crawl, so the host goes back instead.
	resentEnd int
	// probes lets new frames past cwnd follow a resend, so that if the
	// resend is lost too the agent's repeated GAP says so before an RTO;
	// each GAP (a frame that left the line) lets one more out, as TCP's
	// fast recovery does with duplicate ACKs.
	probes int

	// Timeout state.
	t0, lastProgress time.Time
	rtos             int      // timeouts in a row
	probeFrame       outFrame // the frame that ends at recv: a window probe
	probedAt         time.Time
}

func newSender(clock Clock, link dataLink, caps Caps, image, base []byte, start int) *sender {
	chunkMax := caps.MaxFrame - 4
	window := max(caps.Window, chunkMax)
	now := clock.Now()
	return &sender{
		clock: clock, link: link, image: image, base: base, start: start,
		compress: caps.Compression, reorder: caps.Reorder, wire: caps.WireWindow,
		chunkMax: chunkMax, floor: min(minChunk, chunkMax), window: window,
		chunk: chunkMax, plainChunk: 2 * chunkMax, cwnd: window,
		cache: map[int]outFrame{}, next: start, recv: start, written: start,
		recoveredPos: -1, resentEnd: -1,
		t0: now, lastProgress: now,
	}
}

// done reports whether the agent has received the whole image.
func (t *sender) done() bool { return t.recv >= len(t.image) }

// acked takes the counters of the agent's latest ACK. When received
// advanced it returns the progress to report.
func (t *sender) acked(r, w int) (p Progress, advanced bool) {
	if r <= t.recv && w <= t.written {
		return Progress{}, false
	}
	now := t.clock.Now()
	t.lastProgress, t.rtos = now, 0
	if r > t.recv {
		t.grow(r - t.recv)
		for off, fr := range t.cache {
			if off < r {
				if off+fr.n == r {
					t.probeFrame = fr
				}
				delete(t.cache, off)
			}
		}
		p = Progress{Phase: PhaseSend, Sent: r}
		if el := now.Sub(t.t0).Seconds(); el > 0.05 && r > t.start {
			p.Rate = float64(r-t.start) / el
			p.ETA = time.Duration(float64(len(t.image)-r) / p.Rate * float64(time.Second))
		}
		advanced = true
	}
	t.recv, t.written = max(t.recv, r), max(t.written, w)
	// After a go-back the agent's kept frames may have carried received
	// past what is being resent.
	t.next = max(t.next, t.recv)
	return p, advanced
}

// grow counts n image bytes received without a loss: every growAfter
// frames' worth doubles frame size and cwnd again.
func (t *sender) grow(n int) {
	t.clean += n
	if t.clean >= growAfter*t.chunk && (t.chunk < t.chunkMax || t.cwnd < t.window) {
		t.chunk, t.cwnd, t.clean = min(2*t.chunk, t.chunkMax), min(2*t.cwnd, t.window), t.clean-growAfter*t.chunk
	}
}

// lost shrinks frames and cwnd after a loss: a long frame on a noisy line
// is rarely received intact.
func (t *sender) lost(timeout bool) {
	t.chunk = max(t.chunk/2, t.floor)
	if timeout {
		// Nothing got through for a whole RTO: frames are far too long
		// for this line.
		t.chunk = max(t.chunk/2, t.floor)
	}
	t.cwnd = max(t.cwnd/2, min(minWindow, t.window))
	t.plainChunk = max(t.plainChunk/2, t.chunk)
	t.clean = 0
}

// gap takes a GAP ACK raised by the frame at gapAt (-1: not named). A GAP
// at the offset of the last recovery is about frames sent before it,
// unless the agent names a frame sent after the resend (then the resend
// was lost too) or the recovery has had time to arrive.
func (t *sender) gap(gapAt int) error {
	t.probes = min(t.probes+1, 4)
	if t.recv >= t.next {
		return nil
	}
	if t.recv == t.recoveredPos && !t.sentAfter(gapAt, t.recoveredAt) && t.clock.Now().Sub(t.recoveredAt) < t.recoveryTime {
		return nil
	}
	return t.recover(true, false)
}

// sentAfter reports whether the frame at off was last sent after at: a
// GAP it raised then comes after everything sent before at.
func (t *sender) sentAfter(off int, at time.Time) bool {
	fr, ok := t.cache[off]
	return off >= 0 && ok && fr.sentAt.After(at)
}

// limits reports whether fr, the next new frame, is within the agent's
// window, and whether it would take what is in flight beyond recv past
// cwnd. Both count image bytes (the window beyond written, cwnd beyond
// recv), or with a wire window the bytes on the line of the frames beyond
// recv, of which one may always go.
func (t *sender) limits(fr outFrame) (fits, beyondCwnd bool) {
	ahead := t.next > t.recv
	if t.wire {
		flight := t.inFlight()
		return flight == 0 || flight+len(fr.b) <= t.window, ahead && flight+len(fr.b) > t.cwnd
	}
	return t.next+fr.n <= t.written+t.window, ahead && t.next+fr.n > t.recv+t.cwnd
}

// inFlight is the wire size of the frames sent but not acknowledged.
func (t *sender) inFlight() int {
	n := 0
	for off, fr := range t.cache {
		if off >= t.recv && off < t.next {
			n += len(fr.b)
		}
	}
	return n
}

// recover reacts to a loss at recv: with REORDER, resend only the missing
// frame, unless it is much longer than frames are now or a second hole
// sits right behind the last resend; otherwise go back.
func (t *sender) recover(resendOK, timeout bool) error {
	flight := t.inFlight()
	t.lost(timeout)
	t.recoveredAt, t.recoveredPos = t.clock.Now(), t.recv
	if fr, ok := t.cache[t.recv]; ok && resendOK && t.reorder && t.recv != t.resentEnd && len(fr.b) <= 2*(t.chunk+protocol.Overhead+4) {
		// A GAP raised by a frame sent after this one means it was lost
		// too: trust GAPs once it has had time to arrive.
		t.recoveryTime = t.gapTrust(flight + len(fr.b) + t.chunk)
		t.resentEnd = t.recv + fr.n
		t.probes = 2
		fr.sentAt = t.recoveredAt
		t.cache[t.recv] = fr
		return t.link.sendData(fr, true)
	}
	t.recoveryTime = t.gapTrust(flight + t.chunk)
	t.resentEnd = -1
	t.goBack()
	return nil
}

// goBack sends everything again from recv, re-cut at the current frame
// size.
func (t *sender) goBack() {
	// Frames keep their cut (the agent may hold some of them after the
	// gap) unless they are much longer than frames are now.
	if fr, ok := t.cache[t.recv]; ok && len(fr.b) > 2*(t.chunk+protocol.Overhead+4) {
		for off := range t.cache {
			if off >= t.recv {
				delete(t.cache, off)
			}
		}
	}
	t.next = t.recv
	t.link.countRewind()
}

// gapTrust is how long after a recovery a GAP for the same offset still
// describes frames sent before it: the time n bytes take on the line plus
// the round trip.
func (t *sender) gapTrust(n int) time.Duration {
	return t.link.lineTime(n) + 2*t.link.rtt() + 2*time.Millisecond
}

// fill sends new frames while the window and cwnd allow.
func (t *sender) fill() error {
	for t.next < len(t.image) {
		fr, ok := t.cache[t.next]
		if !ok {
			fr = t.dataFrame(t.next)
			t.cache[t.next] = fr
		}
		fits, beyond := t.limits(fr)
		if !fits || (beyond && t.probes == 0) {
			break
		}
		if beyond {
			t.probes--
		}
		if err := t.link.sendData(fr, false); err != nil {
			return err
		}
		fr.sentAt = t.clock.Now()
		t.cache[t.next] = fr
		t.next += fr.n
	}
	return nil
}

// timing returns when the next timeout starts counting and how long it
// is. The retransmission timeout is the time the bytes in flight take on
// the line at its rate, twice, plus the round trip and a flash
// operation's stall; longer after each timeout in a row (the line may be
// down for a while).
func (t *sender) timing() (since time.Time, wait time.Duration) {
	rto := (rtoMin + 3*t.link.rtt() + flashStall + 2*t.link.lineTime(t.inFlight())) * time.Duration(1+min(t.rtos, 3))
	since = t.lastProgress
	if t.recoveredAt.After(since) {
		since = t.recoveredAt
	}
	wait = rto
	if t.next == t.recv {
		// Window full, nothing in flight: waiting for the agent's
		// writer. Its ACK may be lost, and nothing else would make it
		// send another: probe now and then.
		wait = max(rto, windowProbe)
		if t.probedAt.After(since) {
			since = t.probedAt
		}
	}
	return since, wait
}

// deadline is when expired should be called if no ACK arrives first.
func (t *sender) deadline() time.Time {
	since, wait := t.timing()
	return since.Add(wait)
}

// expired handles the deadline: a window probe when nothing is in flight,
// otherwise a retransmission timeout (the first in a row resends the frame
// at recv alone: most likely one lost frame with nothing after it to
// raise a GAP). Called early, it does nothing.
func (t *sender) expired() error {
	since, wait := t.timing()
	now := t.clock.Now()
	if now.Sub(since) < wait {
		return nil
	}
	if t.next == t.recv {
		if stalled := now.Sub(t.lastProgress); stalled >= windowStallMax {
			return fmt.Errorf("device wrote nothing for %v at offset %d (%w)", stalled.Round(time.Second), t.written, ErrTimeout)
		}
		// A duplicate of the last acknowledged frame: the agent drops it
		// and ACKs with what it has written (SPEC.md 6.2).
		t.probedAt = now
		if t.probeFrame.b != nil {
			return t.link.sendData(t.probeFrame, false)
		}
		return nil
	}
	t.rtos++
	if t.rtos >= dataMaxRTOs {
		return fmt.Errorf("device stopped acknowledging at offset %d (%w)", t.recv, ErrTimeout)
	}
	return t.recover(t.rtos == 1, true)
}
