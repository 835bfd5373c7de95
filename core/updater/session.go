package updater

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// Session is a connected, handshaken line to a device agent.
type Session struct {
	p     Port
	opt   Options
	clock Clock

	wmu sync.Mutex // serialises writes to p

	mu      sync.Mutex
	seq     uint8
	waiters map[uint8]waiter
	caps    Caps
	baud    int
	ack     protocol.Ack
	ackGap  bool
	gapAt   int64         // highest GapAt of the GAP ACKs since the stream last looked; -1 none
	ackTick chan struct{} // signalled on every ACK
	dataErr chan *protocol.Error
	ready   chan protocol.Ready
	info    *DeviceInfo
	stats   Stats
	dead    chan struct{}
	deadErr error

	lastWrite time.Time
	inflight  int           // requests waiting for a reply
	srtt      time.Duration // smoothed round trip of small requests, without line time; 0 until measured
	infoMax   int           // INFO_R payload to ask for: shrinks on a noisy line
}

// Connect synchronises with the agent on p (tolerating log text and
// noise), performs the version/capability handshake and, when opt.Baud is
// set and offered, switches the line rate.
func Connect(ctx context.Context, p Port, opt Options) (*Session, error) {
	s := start(p, opt)
	if err := s.handshake(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func start(p Port, opt Options) *Session {
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Second
	}
	if opt.Keepalive <= 0 {
		opt.Keepalive = keepaliveEvery
	}
	if opt.Clock == nil {
		opt.Clock = systemClock{}
	}
	s := &Session{
		p: p, opt: opt, clock: opt.Clock, baud: DefaultBaud,
		waiters: map[uint8]waiter{},
		ackTick: make(chan struct{}, 1),
		dataErr: make(chan *protocol.Error, 1),
		ready:   make(chan protocol.Ready, 8),
		dead:    make(chan struct{}),
	}
	go s.pump()
	go s.keepalive()
	return s
}

// handshake sends HELLO until the agent answers, then applies opt.Baud.
func (s *Session) handshake(ctx context.Context) error {
	var caps uint32 = protocol.CapBaud | protocol.CapSHA256 | protocol.CapReorder | protocol.CapWireWindow
	if s.opt.Compression {
		caps |= protocol.CapDeflate | protocol.CapDelta
	}
	if !s.opt.NoResume {
		caps |= protocol.CapResume
	}
	hello := protocol.Hello{Version: protocol.Version, Caps: caps, MaxPayload: hostMaxPayload}.Encode()
	f, err := s.requestN(ctx, protocol.TypeHello, hello, helloAttempt, helloAttempts)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	h, err := protocol.DecodeHello(f.Payload)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if h.Version != protocol.Version {
		return fmt.Errorf("handshake: agent speaks protocol version %d, host %d", h.Version, protocol.Version)
	}
	use := h.Caps & caps
	s.mu.Lock()
	s.caps = Caps{
		Version:     int(h.Version),
		MaxFrame:    max(int(h.MaxPayload), protocol.BaseMaxPayload),
		Window:      max(int(h.Window), int(h.MaxPayload)-4),
		Compression: use&protocol.CapDeflate != 0,
		Resume:      use&protocol.CapResume != 0,
		BaudChange:  use&protocol.CapBaud != 0,
		SHA256:      use&protocol.CapSHA256 != 0,
		Reorder:     use&protocol.CapReorder != 0,
		Delta:       use&protocol.CapDeflate != 0 && use&protocol.CapDelta != 0,
		WireWindow:  use&protocol.CapWireWindow != 0,
		Agent:       h.Agent,
	}
	s.mu.Unlock()
	if s.opt.Baud != 0 && s.opt.Baud != s.Baud() && s.caps.BaudChange {
		if err := s.SetBaud(ctx, s.opt.Baud); err != nil {
			s.log(fmt.Sprintf("gota: %v", err))
		}
	}
	return nil
}

// Caps returns the capabilities negotiated with the agent.
func (s *Session) Caps() Caps {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caps
}

// Baud returns the line rate the session believes the line runs at.
func (s *Session) Baud() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baud
}

// Stats returns counters of what was sent.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// LastInfo returns the device state read last (by Info or Flash), or nil.
func (s *Session) LastInfo() *DeviceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

func (s *Session) log(line string) {
	if s.opt.Log != nil {
		s.opt.Log(line)
	}
}

// pump reads the port, splits frames from log text and dispatches them.
func (s *Session) pump() {
	lines := &protocol.Lines{Line: s.log}
	loop := protocol.ReadLoop{
		Decoder: protocol.NewDecoder(hostMaxPayload, s.dispatch, func(b []byte) { lines.Write(b) }),
		// A line without its newline after a pause is shown anyway (a
		// prompt, or text cut by a reset).
		Quiet: lines.Flush, QuietAfter: lineFlushTimeout,
	}
	if err := loop.Run(s.p, s.dead); err != nil {
		lines.Flush()
		s.kill(fmt.Errorf("reading from the device: %w", err))
	}
}

func (s *Session) kill(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deadErr == nil {
		s.deadErr = err
		close(s.dead)
	}
}

// dispatch routes a frame from the device.
func (s *Session) dispatch(f protocol.Frame) {
	switch {
	case f.Type == protocol.TypeAck:
		a, err := protocol.DecodeAck(f.Payload)
		if err != nil {
			return
		}
		s.mu.Lock()
		// Counters only grow within a transfer; a smaller value is a
		// stale ACK from before a rewind or a resume.
		if a.Received >= s.ack.Received {
			s.ack.Received = a.Received
		}
		if a.Written >= s.ack.Written {
			s.ack.Written = a.Written
		}
		if f.Flags&protocol.FlagGap != 0 {
			s.ackGap = true
			if a.HasGapAt {
				s.gapAt = max(s.gapAt, int64(a.GapAt))
			}
		}
		s.mu.Unlock()
		select {
		case s.ackTick <- struct{}{}:
		default:
		}
	case f.Type == protocol.TypeReady:
		if r, err := protocol.DecodeReady(f.Payload); err == nil {
			select {
			case s.ready <- r:
			default:
			}
		}
	case f.Type == protocol.TypeLog:
		lines := protocol.Lines{Line: s.log}
		lines.Write(f.Payload)
		lines.Flush()
	case f.Type == protocol.TypeError && f.Seq == 0:
		if e, err := protocol.DecodeError(f.Payload); err == nil {
			select {
			case s.dataErr <- e:
			default:
			}
		}
	case f.Type&protocol.ReplyBit != 0 || f.Type == protocol.TypeError:
		s.mu.Lock()
		w, ok := s.waiters[f.Seq]
		if ok && w.answers(f) {
			delete(s.waiters, f.Seq)
		} else {
			ok = false
		}
		s.mu.Unlock()
		if ok {
			w.ch <- f
		}
	}
}

// Close returns the line to 115200 baud if the session changed it (so the
// next host finds the agent at the boot rate) and stops the session. It
// does not close the Port, but a Read may still be pending on it: close
// or discard the Port afterwards rather than handing it to a new Session.
func (s *Session) Close() error {
	select {
	case <-s.dead:
		return nil
	default:
	}
	if s.Baud() != DefaultBaud {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		s.SetBaud(ctx, DefaultBaud)
		cancel()
	}
	s.kill(ErrClosed)
	return nil
}
