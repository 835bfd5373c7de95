package link

import "sync"

// Signals are the modem control lines the host's port drives, true =
// asserted: what pyserial's setDTR/setRTS (TIOCMSET) and Web Serial's
// setSignals({dataTerminalReady, requestToSend}) set. A board wires them
// to its reset and boot pins (package rom, Board); the line only carries
// them, instantly, as the USB adapter's control requests do.
type Signals struct {
	DTR, RTS bool
}

// signalState is the line's copy of the host's lines and who watches them.
type signalState struct {
	mu       sync.Mutex // serialises SetSignals, so watchers see changes in order
	cur      Signals
	watchers []func(Signals)
}

// SetSignals sets the host's DTR and RTS and tells every watcher, in
// order, before it returns. Signals survive cuts (they belong to the
// port, not to the bytes in flight).
func (l *Line) SetSignals(s Signals) {
	l.sig.mu.Lock()
	defer l.sig.mu.Unlock()
	l.sig.cur = s
	for _, f := range l.sig.watchers {
		f(s)
	}
}

// Signals returns the host's lines as last set (both deasserted at first).
func (l *Line) Signals() Signals {
	l.sig.mu.Lock()
	defer l.sig.mu.Unlock()
	return l.sig.cur
}

// WatchSignals registers f to be called with every SetSignals. f must not
// call SetSignals.
func (l *Line) WatchSignals(f func(Signals)) {
	l.sig.mu.Lock()
	defer l.sig.mu.Unlock()
	l.sig.watchers = append(l.sig.watchers, f)
}
