package updater

import (
	"context"
	"fmt"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// SetBaud switches the line rate (SPEC.md 7): the agent acknowledges at the
// old rate, both switch, and a PING must get through at the new one. On
// failure the session goes back to the old rate and reports the error.
func (s *Session) SetBaud(ctx context.Context, baud int) error {
	if !s.Caps().BaudChange {
		return fmt.Errorf("baud %d: the agent does not offer baud-rate change", baud)
	}
	old := s.Baud()
	if _, err := s.request(ctx, protocol.TypeBaud, protocol.EncodeU32(uint32(baud)), 0); err != nil {
		return fmt.Errorf("baud %d: %w", baud, err)
	}
	// Give the agent time to finish sending BAUD_R and switch (its
	// uart_wait_tx_done) before the first byte at the new rate.
	time.Sleep(baudSettle)
	if err := s.p.SetBaud(baud); err != nil {
		return fmt.Errorf("baud %d: port: %w", baud, err)
	}
	s.mu.Lock()
	s.baud = baud
	s.mu.Unlock()
	// Short PING attempts: all of them fit in the agent's 3 s check.
	if _, err := s.requestN(ctx, protocol.TypePing, []byte("baud"), 400*time.Millisecond, 5); err == nil {
		return nil
	} else if ctx.Err() != nil {
		return err
	}
	// The agent reverts on its own when no frame arrives at the new rate.
	s.p.SetBaud(old)
	s.mu.Lock()
	s.baud = old
	s.mu.Unlock()
	select {
	case <-time.After(baudRevertWait):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := s.Ping(ctx); err != nil {
		return fmt.Errorf("baud %d failed and the line does not answer at %d either: %w", baud, old, err)
	}
	return fmt.Errorf("baud %d: no answer at the new rate; staying at %d", baud, old)
}

// keepalive PINGs while the line runs at a negotiated rate and nothing
// else is sent: an agent returns to 115200 after 5 s without frames
// (SPEC.md 7), which would strand a session that is merely idle.
func (s *Session) keepalive() {
	t := time.NewTicker(s.opt.Keepalive / 4)
	defer t.Stop()
	for {
		select {
		case <-s.dead:
			return
		case <-t.C:
		}
		s.mu.Lock()
		due := s.baud != DefaultBaud && s.inflight == 0 && time.Since(s.lastWrite) >= s.opt.Keepalive
		s.mu.Unlock()
		if due {
			ctx, cancel := context.WithTimeout(context.Background(), s.opt.Timeout)
			s.requestN(ctx, protocol.TypePing, nil, s.opt.Timeout, 1)
			cancel()
		}
	}
}
