package updater

import (
	"context"
	"fmt"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// replyError returns the device's *protocol.Error when f, the reply to a
// request of type t, is an ERROR, nil for any other reply.
func replyError(t protocol.Type, f protocol.Frame) error {
	if f.Type != protocol.TypeError {
		return nil
	}
	e, err := protocol.DecodeError(f.Payload)
	if err != nil {
		return fmt.Errorf("%v: %w", t, err)
	}
	return e
}

// waiter is a request waiting for its reply.
type waiter struct {
	request protocol.Type
	ch      chan protocol.Frame // capacity 1
}

// answers reports whether f is the reply to w's request. A reply with the
// right seq but for another request type was sent to an earlier host
// (it sat in the port's buffer, or the line delivered it late) and is
// ignored like any late duplicate.
func (w waiter) answers(f protocol.Frame) bool {
	if f.Type == protocol.TypeError {
		e, err := protocol.DecodeError(f.Payload)
		return err != nil || e.Request == w.request
	}
	return f.Type == w.request.Reply()
}

func (s *Session) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	s.lastWrite = time.Now()
	s.mu.Unlock()
	_, err := s.p.Write(b)
	if err != nil {
		return fmt.Errorf("writing to the device: %w", err)
	}
	return nil
}

func (s *Session) nextSeq() uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	if s.seq == 0 {
		s.seq = 1
	}
	return s.seq
}

// request sends a request and waits for its reply with the default
// retries (SPEC.md 4.2). An ERROR reply is returned as *protocol.Error.
func (s *Session) request(ctx context.Context, t protocol.Type, payload []byte, timeout time.Duration) (protocol.Frame, error) {
	if timeout == 0 {
		timeout = s.opt.Timeout
	}
	return s.requestN(ctx, t, payload, timeout, 4)
}

// requestSlow is request for BEGIN and END, whose work on the agent may
// take up to budget: four attempts whose timeouts double from budget/15,
// so that a request lost on the line costs budget/15, not budget. A retry
// reaching an agent still busy with the request is answered from its
// reply cache once the work is done (SPEC.md 4.2).
func (s *Session) requestSlow(ctx context.Context, t protocol.Type, payload []byte, budget time.Duration) (protocol.Frame, error) {
	first := budget / 15
	return s.requestTimeouts(ctx, t, payload, []time.Duration{first, 2 * first, 4 * first, 8 * first})
}

// requestN is a request with attempts tries of timeout each.
func (s *Session) requestN(ctx context.Context, t protocol.Type, payload []byte, timeout time.Duration, attempts int) (protocol.Frame, error) {
	timeouts := make([]time.Duration, attempts)
	for i := range timeouts {
		timeouts[i] = timeout
	}
	return s.requestTimeouts(ctx, t, payload, timeouts)
}

// requestTimeouts sends a request, waits for its reply up to timeouts[i]
// on attempt i and sends it again (same seq) after each timeout.
func (s *Session) requestTimeouts(ctx context.Context, t protocol.Type, payload []byte, timeouts []time.Duration) (protocol.Frame, error) {
	seq := s.nextSeq()
	ch := make(chan protocol.Frame, 1)
	frame := protocol.Frame{Type: t, Seq: seq, Payload: payload}.Encode()
	s.mu.Lock()
	s.inflight++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, seq)
		s.inflight--
		s.mu.Unlock()
	}()
	for attempt, timeout := range timeouts {
		s.mu.Lock()
		s.waiters[seq] = waiter{t, ch}
		s.mu.Unlock()
		if err := s.write(frame); err != nil {
			return protocol.Frame{}, err
		}
		sent := time.Now()
		timer := time.NewTimer(timeout)
		select {
		case f := <-ch:
			timer.Stop()
			if attempt == 0 && measuresRTT(t) {
				s.sampleRTT(time.Since(sent) - s.lineTime(len(frame)+len(f.Payload)+protocol.Overhead))
			}
			return f, replyError(t, f)
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return protocol.Frame{}, ctx.Err()
		case <-s.dead:
			timer.Stop()
			return protocol.Frame{}, s.deadErr
		}
	}
	var total time.Duration
	for _, d := range timeouts {
		total += d
	}
	return protocol.Frame{}, fmt.Errorf("%v: %w after %d attempts in %v", t, ErrTimeout, len(timeouts), total)
}

// Ping checks the line with a PING round trip.
func (s *Session) Ping(ctx context.Context) error {
	_, err := s.request(ctx, protocol.TypePing, []byte("gota"), 0)
	return err
}
