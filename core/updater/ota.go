package updater

import (
	"context"
	"fmt"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// Accept marks the running (or just completed) build valid.
func (s *Session) Accept(ctx context.Context) error {
	if _, err := s.request(ctx, protocol.TypeAccept, nil, 0); err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	return nil
}

// Status asks the agent what transfer it holds (SPEC.md 5.3).
func (s *Session) Status(ctx context.Context) (protocol.Status, error) {
	f, err := s.request(ctx, protocol.TypeStatus, nil, 0)
	if err != nil {
		return protocol.Status{}, fmt.Errorf("status: %w", err)
	}
	return protocol.DecodeStatus(f.Payload)
}

// Abort makes the agent forget a transfer in progress.
func (s *Session) Abort(ctx context.Context) error {
	if _, err := s.request(ctx, protocol.TypeAbort, nil, 0); err != nil {
		return fmt.Errorf("abort: %w", err)
	}
	return nil
}

// Rollback marks the running build invalid and reboots into the previous
// one; it returns once the device is back and handshaken.
func (s *Session) Rollback(ctx context.Context) error {
	// What runs now, read now: LastInfo may predate a reboot, and a wrong
	// "before" would make a lost READY look like a lost ROLLBACK.
	before, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		if err := s.prepareReboot(ctx); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		rebooted, err := s.rollbackOnce(ctx)
		if err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		if err := s.rejoin(ctx); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		if rebooted {
			return nil
		}
		// Neither READY nor ERROR: READY was lost, or ROLLBACK was. The
		// running partition tells which; only a ROLLBACK that never ran
		// is sent again (a second one would roll the device back twice).
		after, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		if after.Running != before.Running {
			return nil
		}
		if attempt == attempts {
			return fmt.Errorf("rollback: %w: the device still runs %s after %d attempts", ErrTimeout, after.Running, attempts)
		}
	}
}

// rollbackOnce sends ROLLBACK and waits up to readyWait for its outcome:
// READY (boot) is success (SPEC.md 5.8), an ERROR the refusal.
func (s *Session) rollbackOnce(ctx context.Context) (rebooted bool, err error) {
	seq := s.nextSeq()
	ch := make(chan protocol.Frame, 1)
	s.mu.Lock()
	s.waiters[seq] = waiter{protocol.TypeRollback, ch}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, seq)
		s.mu.Unlock()
	}()
	if err := s.write(protocol.Frame{Type: protocol.TypeRollback, Seq: seq}.Encode()); err != nil {
		return false, err
	}
	timer := time.NewTimer(readyWait)
	defer timer.Stop()
	for {
		select {
		case f := <-ch:
			if err := replyError(protocol.TypeRollback, f); err != nil {
				return false, err
			}
			// ROLLBACK_R: READY follows.
		case r := <-s.ready:
			if r.Reason == protocol.ReadyBoot {
				return true, nil
			}
		case <-timer.C:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		case <-s.dead:
			return false, s.deadErr
		}
	}
}
