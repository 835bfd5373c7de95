package updater

import (
	"context"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// stream sends image[start:] with a sliding window (SPEC.md 6.3) until the
// agent has received all of it; base, when set, is the running build for
// DELTA frames (6.7). The sender decides what goes on the line; stream
// feeds it the agent's ACKs and its deadlines.
func (s *Session) stream(ctx context.Context, image, base []byte, start int, report func(Progress)) error {
	s.mu.Lock()
	s.ack = protocol.Ack{Received: uint32(start), Written: uint32(start)}
	s.ackGap, s.gapAt = false, -1
	s.stats.ResumedFrom = start
	s.mu.Unlock()
	select {
	case <-s.dataErr: // stale
	default:
	}
	t := newSender(s.clock, s, s.Caps(), image, base, start)
	report(Progress{Phase: PhaseSend, Sent: start})
	for {
		s.mu.Lock()
		r, w, gap, gapAt := int(s.ack.Received), int(s.ack.Written), s.ackGap, int(s.gapAt)
		s.ackGap, s.gapAt = false, -1
		s.mu.Unlock()
		if p, ok := t.acked(r, w); ok {
			report(p)
		}
		if t.done() {
			return nil
		}
		if gap {
			if err := t.gap(gapAt); err != nil {
				return err
			}
		}
		if err := t.fill(); err != nil {
			return err
		}
		select {
		case <-s.ackTick:
		case e := <-s.dataErr:
			return e
		case <-s.clock.After(max(t.deadline().Sub(s.clock.Now()), time.Millisecond)):
			if err := t.expired(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-s.dead:
			return s.deadErr
		}
	}
}

// sendData writes a DATA frame and counts it (resent: on its own, after a
// GAP, to an agent with Reorder).
func (s *Session) sendData(fr outFrame, resent bool) error {
	if err := s.write(fr.b); err != nil {
		return err
	}
	s.mu.Lock()
	if resent {
		s.stats.Resent++
	}
	s.stats.DataFrames++
	s.stats.DataBytes += fr.n
	s.stats.WireBytes += len(fr.b) - protocol.Overhead - 4
	s.mu.Unlock()
	return nil
}

func (s *Session) countRewind() {
	s.mu.Lock()
	s.stats.Rewinds++
	s.mu.Unlock()
}

func (s *Session) countDelta() {
	s.mu.Lock()
	s.stats.DeltaFrames++
	s.mu.Unlock()
}
