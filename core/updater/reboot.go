package updater

import (
	"context"
	"fmt"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// Reboot restarts the device and handshakes again.
func (s *Session) Reboot(ctx context.Context) error {
	if err := s.prepareReboot(ctx); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	if _, err := s.request(ctx, protocol.TypeReboot, nil, 0); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	if err := s.waitReboot(ctx); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

// prepareReboot brings the line back to the boot rate before a request
// that reboots the device, so the host never has to chase the device's
// rate change (a reopened port could miss the READY), and forgets old
// READY announcements.
func (s *Session) prepareReboot(ctx context.Context) error {
	if s.Baud() != DefaultBaud {
		if err := s.SetBaud(ctx, DefaultBaud); err != nil {
			return err
		}
	}
	for {
		select {
		case <-s.ready:
		default:
			return nil
		}
	}
}

// waitReboot waits for READY after a reboot and handshakes again. READY
// is sent once, so on a noisy line it can be lost: after readyWait the
// host stops waiting for it and looks for the agent with HELLO (the
// device has rebooted by then).
func (s *Session) waitReboot(ctx context.Context) error {
	timer := time.NewTimer(rebootTimeout)
	defer timer.Stop()
	probe := time.NewTimer(readyWait)
	defer probe.Stop()
	for {
		select {
		case r := <-s.ready:
			if r.Reason == protocol.ReadyBoot {
				return s.rejoin(ctx)
			}
		case <-probe.C:
			if err := s.rejoin(ctx); err == nil || ctx.Err() != nil {
				return err
			}
		case <-timer.C:
			return fmt.Errorf("%w: the device did not announce itself within %v after the reboot", ErrTimeout, rebootTimeout)
		case <-ctx.Done():
			return ctx.Err()
		case <-s.dead:
			return s.deadErr
		}
	}
}

// rejoin handshakes again after a reboot (the agent forgot the session).
func (s *Session) rejoin(ctx context.Context) error {
	s.mu.Lock()
	s.baud = DefaultBaud
	s.mu.Unlock()
	if err := s.handshake(ctx); err != nil {
		return fmt.Errorf("after reboot: %w", err)
	}
	return nil
}
