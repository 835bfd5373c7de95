package link

import (
	"errors"
	"time"
)

// Read reads bytes received by this end, blocking until at least one is
// available. It fails with ErrDisconnected when the line is cut.
func (e *End) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	l := e.l
	l.mu.Lock()
	defer l.mu.Unlock()
	gen := l.gen
	for {
		if l.closed {
			return 0, ErrClosed
		}
		if l.down || l.gen != gen {
			return 0, ErrDisconnected
		}
		if e.rx.rx.len() > 0 && !e.stalled() {
			n := e.rx.rx.read(p)
			if e == l.dev {
				l.serviceFIFOLocked(time.Now()) // room in the ring: the ISR takes the FIFO again
			}
			l.cond.Broadcast() // room in rx: the wire may resume
			return n, nil
		}
		e.wait()
	}
}

// Write queues p for sending, blocking while this end's transmit buffer is
// full. It fails with ErrDisconnected when the line is cut.
func (e *End) Write(p []byte) (int, error) {
	l := e.l
	l.mu.Lock()
	defer l.mu.Unlock()
	gen := l.gen
	n := 0
	for n < len(p) {
		if l.closed {
			return n, ErrClosed
		}
		if l.down || l.gen != gen {
			return n, ErrDisconnected
		}
		if e.stalled() {
			l.cond.Wait()
			continue
		}
		if k := e.tx.tx.write(p[n:]); k > 0 {
			n += k
			e.tx.written += int64(k)
			e.tx.marks = append(e.tx.marks, mark{until: e.tx.written, at: time.Now()})
			l.cond.Broadcast()
			continue
		}
		l.cond.Wait()
	}
	return n, nil
}

// Drain waits until every byte this end wrote has left the wire.
func (e *End) Drain() error {
	l := e.l
	l.mu.Lock()
	defer l.mu.Unlock()
	gen := l.gen
	for e.tx.tx.len() > 0 || e.tx.busy {
		if l.closed {
			return ErrClosed
		}
		if l.down || l.gen != gen {
			return ErrDisconnected
		}
		l.cond.Wait()
	}
	return nil
}

// SetBaud waits until the bytes this end wrote have left the wire, then
// switches this end to baud. Bytes cannot be lost by switching: if the
// line is cut meanwhile, the rate is switched anyway.
func (e *End) SetBaud(baud int) error {
	if baud <= 0 {
		return errors.New("link: baud rate must be positive")
	}
	err := e.Drain()
	e.SetBaudNow(baud)
	if errors.Is(err, ErrDisconnected) {
		err = nil
	}
	return err
}

// SetBaudNow switches this end to baud at once, without waiting for its
// transmit buffer to drain (as a host that reconfigures its port does).
func (e *End) SetBaudNow(baud int) {
	if baud <= 0 {
		return
	}
	e.l.mu.Lock()
	e.baud = baud
	e.l.cond.Broadcast()
	e.l.mu.Unlock()
}

// Baud returns this end's current rate.
func (e *End) Baud() int {
	e.l.mu.Lock()
	defer e.l.mu.Unlock()
	return e.baud
}

// String returns "host" or "device".
func (e *End) String() string { return e.name }

// stalled reports whether this end cannot run now: the device during a
// flash operation, when no task runs.
func (e *End) stalled() bool { return e == e.l.dev && e.l.flashOps > 0 }

// wait waits for a change on the line, counted as a waiting reader on
// the device end (FlashGuard.Start lets it run first).
func (e *End) wait() {
	l := e.l
	if e == l.dev {
		l.readers++
		defer func() { l.readers-- }()
	}
	l.cond.Wait()
}

// Buffered returns how many received bytes wait to be read at this end,
// as uart_get_buffered_data_len does on the device (the ring and, for a
// Bridge device, the FIFO).
func (e *End) Buffered() int {
	l := e.l
	l.mu.Lock()
	defer l.mu.Unlock()
	n := e.rx.rx.len()
	if e == l.dev {
		n += l.fifo.len()
	}
	return n
}
