package updater

import (
	"context"
	"fmt"
	"time"

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
	for _, w := range plan.Warnings {
		if opt.Warning != nil {
			opt.Warning(w)
		} else {
			s.log("gota: warning: " + w)
		}
	}

	report(Progress{Phase: "begin"})
	caps := s.Caps()
	var flags uint8
	if caps.Resume && !s.opt.NoResume {
		flags |= protocol.BeginResume
	}
	begin := protocol.Begin{Size: uint32(len(image)), SHA256: plan.SHA256, Flags: flags}
	f, err := s.request(ctx, protocol.TypeBegin, begin.Encode(), beginTimeout)
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

	if err := s.stream(ctx, image, int(br.Offset), report); err != nil {
		return fmt.Errorf("sending image: %w", err)
	}

	report(Progress{Phase: "verify", Sent: len(image)})
	var endFlags uint8
	if !opt.NoReboot {
		endFlags |= protocol.EndReboot
		if err := s.prepareReboot(ctx); err != nil {
			return fmt.Errorf("complete: %w", err)
		}
	}
	if _, err := s.request(ctx, protocol.TypeEnd, []byte{endFlags}, endTimeout); err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	if !opt.NoReboot {
		report(Progress{Phase: "reboot", Sent: len(image)})
		if err := s.waitReboot(ctx); err != nil {
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
			return fmt.Errorf("the device %s %s, not the new build in %s", what, want, target)
		}
	}
	report(Progress{Phase: "done", Sent: len(image)})
	return nil
}

// outFrame is a DATA frame ready to (re)send.
type outFrame struct {
	b []byte // encoded frame
	n int    // image bytes it carries
}

// stream sends image[start:] with a sliding window (SPEC.md 6.3) until the
// agent has received all of it.
func (s *Session) stream(ctx context.Context, image []byte, start int, report func(Progress)) error {
	caps := s.Caps()
	chunkMax := caps.MaxFrame - 4
	window := max(caps.Window, chunkMax)
	s.mu.Lock()
	s.ack = protocol.Ack{Received: uint32(start), Written: uint32(start)}
	s.ackGap = false
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
	rewoundAt := -1
	t0 := time.Now()
	lastProgress := t0
	rate := float64(DefaultBaud / 10) // bytes/s, until measured
	rtos := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	report(Progress{Phase: "send", Sent: start})

	for {
		s.mu.Lock()
		r, w, gap := int(s.ack.Received), int(s.ack.Written), s.ackGap
		s.ackGap = false
		s.mu.Unlock()
		if r > recv || w > written {
			now := time.Now()
			lastProgress, rtos = now, 0
			if r > recv {
				if el := now.Sub(t0).Seconds(); el > 0.05 {
					rate = float64(r-start) / el
				}
				for off := range cache {
					if off < r {
						delete(cache, off)
					}
				}
				p := Progress{Phase: "send", Sent: r, Rate: rate}
				if rate > 0 {
					p.ETA = time.Duration(float64(len(image)-r) / rate * float64(time.Second))
				}
				report(p)
			}
			recv, written = max(recv, r), max(written, w)
		}
		if recv >= len(image) {
			return nil
		}
		if gap && recv < next && recv != rewoundAt {
			rewoundAt = recv
			if fr, ok := cache[recv]; ok && caps.Reorder {
				// The agent kept what followed the gap: resend only the
				// missing frame.
				if err := s.resend(fr); err != nil {
					return err
				}
			} else {
				// Go-back-N, once per position.
				next = recv
				s.countRewind()
			}
		}
		for next < len(image) {
			fr, ok := cache[next]
			if !ok {
				fr = s.dataFrame(image, next, chunkMax, window, caps.Compression, &plainChunk)
				cache[next] = fr
			}
			if next+fr.n > written+window {
				break
			}
			if err := s.send(fr); err != nil {
				return err
			}
			next += fr.n
		}
		// Retransmission timeout: 1 s plus twice the time the bytes in
		// flight take on the line, so a slow line is not flooded.
		rto := dataRTO + time.Duration(2*float64(next-recv)/rate*float64(time.Second))
		timer.Reset(rto)
		select {
		case <-s.ackTick:
		case e := <-s.dataErr:
			return e
		case <-timer.C:
			stalled := time.Since(lastProgress)
			switch {
			case next > recv && stalled >= rto:
				rtos++
				if rtos >= dataMaxRTOs {
					return fmt.Errorf("device stopped acknowledging at offset %d (%w)", recv, ErrTimeout)
				}
				if fr, ok := cache[recv]; ok && caps.Reorder && rtos == 1 {
					// Most likely one lost frame with nothing after it to
					// raise a GAP: resend it alone first.
					if err := s.resend(fr); err != nil {
						return err
					}
					break
				}
				next, rewoundAt = recv, -1
				s.countRewind()
			case next == recv && stalled >= windowStallMax:
				return fmt.Errorf("device wrote nothing for %v at offset %d (%w)", stalled.Round(time.Second), written, ErrTimeout)
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-s.dead:
			return s.deadErr
		}
	}
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
// (SPEC.md 6.4). plainChunk is the adaptive guess of how many image bytes
// compress into one frame.
func (s *Session) dataFrame(image []byte, off, chunkMax, window int, compress bool, plainChunk *int) outFrame {
	plain := func(n int) outFrame {
		d := protocol.Data{Offset: uint32(off), Bytes: image[off : off+n]}
		return outFrame{b: protocol.Frame{Type: protocol.TypeData, Payload: d.Encode()}.Encode(), n: n}
	}
	left := len(image) - off
	if !compress {
		return plain(min(chunkMax, left))
	}
	try := min(*plainChunk, left, window)
	for {
		comp := protocol.Deflate(image[:off], image[off:off+try])
		if len(comp) <= chunkMax && len(comp) < try {
			if len(comp) < chunkMax*3/4 && try < window {
				*plainChunk = min(try+try/4, window)
			}
			d := protocol.Data{Offset: uint32(off), Bytes: comp}
			return outFrame{b: protocol.Frame{Type: protocol.TypeData, Flags: protocol.FlagDeflate, Payload: d.Encode()}.Encode(), n: try}
		}
		if len(comp) >= try || try <= chunkMax {
			return plain(min(chunkMax, left)) // does not compress
		}
		try = max(int(float64(try)*float64(chunkMax)/float64(len(comp))*0.9), chunkMax)
		*plainChunk = try
	}
}
