package updater

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/protocol"
)

// Progress reports transfer progress.
type Progress struct {
	Phase string        // "check", "begin", "send", "verify", "reboot", "done"
	Sent  int           // image bytes acknowledged as received by the device
	Total int           // image bytes
	Rate  float64       // bytes per second (image bytes, this session)
	ETA   time.Duration // estimate of the time left in this phase
}

// FlashOptions control Flash.
type FlashOptions struct {
	Force          bool // turn host-side refusals into warnings
	AllowDowngrade bool
	NoReboot       bool // complete without rebooting into the new build
	Progress       func(Progress)
	Warning        func(string) // Check's warnings; nil logs them through Options.Log
	// Base is the image the device runs, if the caller has it: with an
	// agent that offers DELTA, frames are compressed against it (SPEC.md
	// 6.7), which shrinks a new build of the same project to a fraction.
	// It is used only when its appended SHA-256 is the running build's.
	Base []byte
}

// Flash checks image against the device (refusals become warnings with
// Force), streams it (continuing a transfer the device holds for the same
// SHA-256), completes the update and, unless NoReboot, waits for the device
// to reboot, handshakes again and re-reads its state (LastInfo).
func (s *Session) Flash(ctx context.Context, image []byte, opt FlashOptions) error {
	report := func(p Progress) {
		if opt.Progress != nil {
			p.Total = len(image)
			opt.Progress(p)
		}
	}
	report(Progress{Phase: "check"})
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	plan, err := Check(info, image, CheckOptions{Force: opt.Force, AllowDowngrade: opt.AllowDowngrade})
	if err != nil {
		return err
	}
	warn := func(w string) {
		if opt.Warning != nil {
			opt.Warning(w)
		} else {
			s.log("gota: warning: " + w)
		}
	}
	for _, w := range plan.Warnings {
		warn(w)
	}
	caps := s.Caps()
	base, warning := deltaBase(info, caps, opt.Base)
	if warning != "" {
		warn(warning)
	}

	report(Progress{Phase: "begin"})
	var flags uint8
	if caps.Resume && !s.opt.NoResume {
		flags |= protocol.BeginResume
	}
	begin := protocol.Begin{Size: uint32(len(image)), SHA256: plan.SHA256, Flags: flags}
	f, err := s.requestSlow(ctx, protocol.TypeBegin, begin.Encode(), beginTimeout)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	br, err := protocol.DecodeBeginReply(f.Payload)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if int(br.Offset) > len(image) {
		return fmt.Errorf("begin: device holds %d bytes of a %d-byte image", br.Offset, len(image))
	}
	if br.Label != "" && plan.Target != "" && br.Label != plan.Target {
		s.log(fmt.Sprintf("gota: warning: the device writes to %s, not %s", br.Label, plan.Target))
	}
	target := br.Label
	if target == "" {
		target = plan.Target
	}

	if err := s.stream(ctx, image, base, int(br.Offset), report); err != nil {
		return fmt.Errorf("sending image: %w", err)
	}

	report(Progress{Phase: "verify", Sent: len(image)})
	var endErr error // END's reply lost, but the device rebooted
	if opt.NoReboot {
		if _, err := s.requestSlow(ctx, protocol.TypeEnd, []byte{0}, endTimeout); err != nil {
			return fmt.Errorf("complete: %w", err)
		}
	} else {
		if err := s.prepareReboot(ctx); err != nil {
			return fmt.Errorf("complete: %w", err)
		}
		booted, err := s.completeAndReboot(ctx)
		if err != nil {
			// The reply can be lost while the device completes and
			// reboots (it reboots only after a successful complete; a
			// retried END then finds no transfer). Whether it runs the
			// new build is checked below.
			if ctx.Err() != nil || !(booted || isInvalidState(err)) {
				return fmt.Errorf("complete: %w", err)
			}
			endErr = err
		}
		report(Progress{Phase: "reboot", Sent: len(image)})
		if booted || endErr != nil {
			err = s.rejoin(ctx)
		} else {
			err = s.waitReboot(ctx)
		}
		if err != nil {
			return fmt.Errorf("reboot: %w", err)
		}
	}
	after, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if target != "" {
		want := after.Next
		if !opt.NoReboot {
			want = after.Running
		}
		if want != target {
			what := "is set to boot"
			if !opt.NoReboot {
				what = "booted"
			}
			if endErr != nil {
				return fmt.Errorf("complete: %w (the device rebooted into %s, not %s)", endErr, want, target)
			}
			return fmt.Errorf("the device %s %s, not the new build in %s", what, want, target)
		}
	}
	report(Progress{Phase: "done", Sent: len(image)})
	return nil
}

// completeAndReboot sends END with reboot. On a lossy line the device can
// complete and reboot while END's reply is lost: READY (boot) then
// arrives instead, and booted reports it (END's wait is cut short, so err
// may be context.Canceled).
func (s *Session) completeAndReboot(ctx context.Context) (booted bool, err error) {
	endCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	watched := make(chan bool, 1)
	go func() {
		for {
			select {
			case r := <-s.ready:
				if r.Reason == protocol.ReadyBoot {
					cancel()
					watched <- true
					return
				}
			case <-endCtx.Done():
				watched <- false
				return
			}
		}
	}()
	_, err = s.requestSlow(endCtx, protocol.TypeEnd, []byte{protocol.EndReboot}, endTimeout)
	cancel()
	return <-watched, err
}

// espErrInvalidState is ESP_ERR_INVALID_STATE: for END, no transfer in
// progress.
const espErrInvalidState = 0x103

func isInvalidState(err error) bool {
	var e *protocol.Error
	return errors.As(err, &e) && e.Code == espErrInvalidState
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

// deltaBase returns base if DELTA frames can use it: the agent offers
// DELTA and base is the running build (its appended digest is the one the
// device reports). A base that cannot be used is explained in warning.
func deltaBase(info *DeviceInfo, caps Caps, base []byte) (usable []byte, warning string) {
	if base == nil || !caps.Delta {
		return nil, ""
	}
	img, err := espimage.Parse(base)
	if err != nil || !img.HashAppended {
		return nil, "base image is not an app image with an appended SHA-256; sending without delta"
	}
	running := info.Find(info.Running)
	digest := hex.EncodeToString(img.Digest[:])
	if running == nil || running.SHA256 != digest {
		return nil, fmt.Sprintf("base image (sha256 %s…) is not the running build; sending without delta", digest[:16])
	}
	return base[:img.Length], ""
}

// stream sends image[start:] with a sliding window (SPEC.md 6.3) until the
// agent has received all of it; base, when set, is the running build for
// DELTA frames (6.7).
func (s *Session) stream(ctx context.Context, image, base []byte, start int, report func(Progress)) error {
	caps := s.Caps()
	chunkMax := caps.MaxFrame - 4
	floor := min(minChunk, chunkMax)
	chunk := chunkMax // payload limit now: the clean-line fast path starts at the agent's maximum
	window := max(caps.Window, chunkMax)
	s.mu.Lock()
	s.ack = protocol.Ack{Received: uint32(start), Written: uint32(start)}
	s.ackGap, s.gapAt = false, -1
	s.stats.ResumedFrom = start
	s.mu.Unlock()
	select {
	case <-s.dataErr: // stale
	default:
	}

	cache := map[int]outFrame{}
	plainChunk := 2 * chunkMax // DEFLATE: image bytes tried per frame, adapted
	next := start
	recv, written := start, start
	clean := 0 // image bytes received since the last loss
	// cwnd bounds the image bytes in flight beyond received, as TCP's
	// congestion window does: after a loss a resend must not queue
	// behind a whole window of new frames.
	minCwnd := minWindow
	cwnd := window

	// The last recovery (resend or go-back): where, when, and how long
	// its frame needs to reach the agent behind what was already in
	// flight. A GAP for the same offset within that time is about frames
	// sent before the recovery and is ignored.
	recoveredAt, recoveredPos, recoveryTime := time.Time{}, -1, time.Duration(0)
	// resentEnd is where the frame resent last ends. A new loss right
	// there means the agent kept nothing after that frame (its window was
	// full, or the frames were lost too): resending one frame per round
	// trip would crawl, so the host goes back instead.
	resentEnd := -1
	// probes lets new frames past cwnd follow a resend, so that if the
	// resend is lost too the agent's repeated GAP says so before an RTO;
	// each GAP (a frame that left the line) lets one more out, as TCP's
	// fast recovery does with duplicate ACKs.
	probes := 0
	// sentAfter reports whether the frame at off was last sent after t:
	// a GAP it raised then comes after everything sent before t.
	sentAfter := func(off int, t time.Time) bool {
		fr, ok := cache[off]
		return off >= 0 && ok && fr.sentAt.After(t)
	}

	t0 := time.Now()
	lastProgress := t0
	rtos := 0
	var probeFrame outFrame // the frame that ends at recv: a window probe
	var probedAt time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	report(Progress{Phase: "send", Sent: start})

	// inFlight is the wire size of the frames sent but not acknowledged.
	inFlight := func() int {
		n := 0
		for off, fr := range cache {
			if off >= recv && off < next {
				n += len(fr.b)
			}
		}
		return n
	}
	// lost shrinks frames after a loss: a long frame on a noisy line is
	// rarely received intact.
	lost := func(timeout bool) {
		chunk = max(chunk/2, floor)
		if timeout {
			// Nothing got through for a whole RTO: frames are far too
			// long for this line.
			chunk = max(chunk/2, floor)
		}
		cwnd = max(cwnd/2, min(minCwnd, window))
		plainChunk = max(plainChunk/2, chunk)
		clean = 0
	}
	// goBack sends everything again from recv, re-cut at the current
	// frame size.
	goBack := func() {
		// Frames keep their cut (the agent may hold some of them after
		// the gap) unless they are much longer than frames are now.
		if fr, ok := cache[recv]; ok && len(fr.b) > 2*(chunk+protocol.Overhead+4) {
			for off := range cache {
				if off >= recv {
					delete(cache, off)
				}
			}
		}
		next = recv
		s.countRewind()
	}
	// recover reacts to a loss at recv: with REORDER, resend only the
	// missing frame, unless it is much longer than frames are now;
	// otherwise go back.
	recover := func(resendOK, timeout bool) error {
		flight := inFlight()
		lost(timeout)
		recoveredAt, recoveredPos = time.Now(), recv
		if fr, ok := cache[recv]; ok && resendOK && caps.Reorder && recv != resentEnd && len(fr.b) <= 2*(chunk+protocol.Overhead+4) {
			// A GAP raised by a frame sent after this one means it was
			// lost too: trust GAPs once it has had time to arrive.
			recoveryTime = s.gapTrust(flight + len(fr.b) + chunk)
			resentEnd = recv + fr.n
			probes = 2
			fr.sentAt = recoveredAt
			cache[recv] = fr
			return s.resend(fr)
		}
		recoveryTime = s.gapTrust(flight + chunk)
		resentEnd = -1
		goBack()
		return nil
	}

	for {
		s.mu.Lock()
		r, w, gap, gapAt := int(s.ack.Received), int(s.ack.Written), s.ackGap, int(s.gapAt)
		s.ackGap, s.gapAt = false, -1
		s.mu.Unlock()
		if r > recv || w > written {
			now := time.Now()
			lastProgress, rtos = now, 0
			if r > recv {
				if clean += r - recv; clean >= growAfter*chunk && (chunk < chunkMax || cwnd < window) {
					chunk, cwnd, clean = min(2*chunk, chunkMax), min(2*cwnd, window), clean-growAfter*chunk
				}
				for off, fr := range cache {
					if off < r {
						if off+fr.n == r {
							probeFrame = fr
						}
						delete(cache, off)
					}
				}
				p := Progress{Phase: "send", Sent: r}
				if el := now.Sub(t0).Seconds(); el > 0.05 && r > start {
					p.Rate = float64(r-start) / el
					p.ETA = time.Duration(float64(len(image)-r) / p.Rate * float64(time.Second))
				}
				report(p)
			}
			recv, written = max(recv, r), max(written, w)
			// After a go-back the agent's kept frames may have carried
			// received past what is being resent.
			next = max(next, recv)
		}
		if recv >= len(image) {
			return nil
		}
		if gap {
			probes = min(probes+1, 4)
		}
		// A GAP at the offset of the last recovery is about frames sent
		// before it, unless the agent names a frame sent after the
		// resend (then the resend was lost too) or the recovery has had
		// time to arrive.
		if gap && recv < next && (recv != recoveredPos || sentAfter(gapAt, recoveredAt) || time.Since(recoveredAt) >= recoveryTime) {
			if err := recover(true, false); err != nil {
				return err
			}
		}
		for next < len(image) {
			fr, ok := cache[next]
			if !ok {
				fr = s.dataFrame(image, base, next, chunk, window, caps.Compression, &plainChunk)
				cache[next] = fr
			}
			beyond := next > recv && next+fr.n > recv+cwnd
			if next+fr.n > written+window || (beyond && probes == 0) {
				break
			}
			if beyond {
				probes--
			}
			if err := s.send(fr); err != nil {
				return err
			}
			fr.sentAt = time.Now()
			cache[next] = fr
			next += fr.n
		}
		// Retransmission timeout: the time the bytes in flight take on
		// the line at its rate, twice, plus the round trip and a flash
		// operation's stall; longer after each timeout in a row (the line
		// may be down for a while).
		rto := (s.rtoBase() + flashStall + 2*s.lineTime(inFlight())) * time.Duration(1+min(rtos, 3))
		since := lastProgress
		if recoveredAt.After(since) {
			since = recoveredAt
		}
		wait := rto
		if next == recv {
			// Window full, nothing in flight: waiting for the agent's
			// writer. Its ACK may be lost, and nothing else would make
			// it send another: probe now and then.
			wait = max(rto, windowProbe)
			if probedAt.After(since) {
				since = probedAt
			}
		}
		timer.Reset(max(time.Until(since.Add(wait)), time.Millisecond))
		select {
		case <-s.ackTick:
		case e := <-s.dataErr:
			return e
		case <-timer.C:
			if time.Since(since) < wait {
				break
			}
			if next == recv {
				if time.Since(lastProgress) >= windowStallMax {
					return fmt.Errorf("device wrote nothing for %v at offset %d (%w)", time.Since(lastProgress).Round(time.Second), written, ErrTimeout)
				}
				// A duplicate of the last acknowledged frame: the agent
				// drops it and ACKs with what it has written (SPEC.md 6.2).
				probedAt = time.Now()
				if probeFrame.b != nil {
					if err := s.send(probeFrame); err != nil {
						return err
					}
				}
				break
			}
			rtos++
			if rtos >= dataMaxRTOs {
				return fmt.Errorf("device stopped acknowledging at offset %d (%w)", recv, ErrTimeout)
			}
			// The first timeout in a row is most likely one lost frame
			// with nothing after it to raise a GAP: resend it alone.
			if err := recover(rtos == 1, true); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-s.dead:
			return s.deadErr
		}
	}
}

// gapTrust is how long after a recovery a GAP for the same offset still
// describes frames sent before it: the time n bytes take on the line plus
// the round trip.
func (s *Session) gapTrust(n int) time.Duration {
	s.mu.Lock()
	rtt := s.srtt
	s.mu.Unlock()
	if rtt == 0 {
		rtt = rttDefault
	}
	return s.lineTime(n) + 2*rtt + 2*time.Millisecond
}

// send writes a DATA frame and counts it.
func (s *Session) send(fr outFrame) error {
	if err := s.write(fr.b); err != nil {
		return err
	}
	s.mu.Lock()
	s.stats.DataFrames++
	s.stats.DataBytes += fr.n
	s.stats.WireBytes += len(fr.b) - protocol.Overhead - 4
	s.mu.Unlock()
	return nil
}

// resend writes a DATA frame again on its own (agents with Reorder).
func (s *Session) resend(fr outFrame) error {
	s.mu.Lock()
	s.stats.Resent++
	s.mu.Unlock()
	return s.send(fr)
}

func (s *Session) countRewind() {
	s.mu.Lock()
	s.stats.Rewinds++
	s.mu.Unlock()
}

// dataFrame builds the DATA frame starting at off: uncompressed, or with
// DEFLATE when that shrinks it, carrying as many image bytes as fit
// (SPEC.md 6.4); with a base (the running build, 6.7) each try is also
// compressed against it and the smaller stream is sent. plainChunk is the
// adaptive guess of how many image bytes compress into one frame.
func (s *Session) dataFrame(image, base []byte, off, chunkMax, window int, compress bool, plainChunk *int) outFrame {
	plain := func(n int) outFrame {
		d := protocol.Data{Offset: uint32(off), Bytes: image[off : off+n]}
		return outFrame{b: protocol.Frame{Type: protocol.TypeData, Payload: d.Encode()}.Encode(), n: n}
	}
	left := len(image) - off
	if !compress {
		return plain(min(chunkMax, left))
	}
	if base != nil {
		// Past DeltaReach a frame's bytes have no base bytes left at
		// their own offset in the dictionary.
		window = min(window, protocol.DeltaReach)
	}
	try := min(*plainChunk, left, window)
	for {
		comp, flags := deflateFrame(image, base, off, try)
		if len(comp) <= chunkMax && len(comp) < try {
			if len(comp) < chunkMax*3/4 && try < window {
				*plainChunk = min(try+try/4, window)
			}
			if flags&protocol.FlagDelta != 0 {
				s.mu.Lock()
				s.stats.DeltaFrames++
				s.mu.Unlock()
			}
			d := protocol.Data{Offset: uint32(off), Bytes: comp}
			return outFrame{b: protocol.Frame{Type: protocol.TypeData, Flags: flags, Payload: d.Encode()}.Encode(), n: try}
		}
		if len(comp) >= try || try <= chunkMax {
			return plain(min(chunkMax, left)) // does not compress
		}
		try = max(int(float64(try)*float64(chunkMax)/float64(len(comp))*0.9), chunkMax)
		*plainChunk = try
	}
}

// deflateFrame compresses image[off:off+n] against the image bytes before
// it and, given a base, against the base around off, and returns the
// smaller stream with its DATA flags.
func deflateFrame(image, base []byte, off, n int) ([]byte, uint8) {
	comp, flags := protocol.Deflate(image[:off], image[off:off+n]), protocol.FlagDeflate
	if base != nil {
		start, end := protocol.DeltaRange(off, len(base))
		if delta := protocol.DeflateDict(base[start:end], image[off:off+n]); len(delta) < len(comp) {
			comp, flags = delta, protocol.FlagDeflate|protocol.FlagDelta
		}
	}
	return comp, flags
}
