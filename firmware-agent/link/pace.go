package link

import "time"

// byteTime is the wire time of one 8N1 byte at baud.
func byteTime(baud int) time.Duration {
	return time.Duration(10 * int64(time.Second) / int64(baud))
}

// chunkTime is how much wire time the pacer moves at once: it sleeps
// until the chunk's last byte has left the wire, so the average rate is
// exact while Go's timer granularity does not matter. Oversleeping is
// caught up (the next chunk starts when the last one ended on the wire),
// but idle time is never credited: a chunk starts no earlier than its
// first byte was written.
const chunkTime = time.Millisecond

// pace moves bytes along w at the sender's rate until the line is closed.
func (l *Line) pace(w *wire) {
	defer l.done.Done()
	buf := make([]byte, 0, 4096)
	for {
		l.mu.Lock()
		stopped := false // the wire waited for room at the receiver
		for !l.closed && (l.down || w.tx.len() == 0 || (w.backpressure() && w.rx.free() == 0)) {
			stopped = stopped || (!l.down && w.tx.len() > 0)
			l.cond.Wait()
		}
		if l.closed {
			l.mu.Unlock()
			return
		}
		baud := w.from.baud
		bt := byteTime(baud)
		n := max(int(chunkTime/bt), 1)
		n = min(n, w.tx.len(), cap(buf))
		if w.backpressure() {
			n = min(n, w.rx.free())
		}
		// A chunk starts when the wire is free, but never before its
		// first byte was written or, after a stop, before there was room.
		start := w.lineFree
		first := w.marks[0]
		n = min(n, int(first.until-w.taken))
		if start.Before(first.at) {
			start = first.at
		}
		if now := time.Now(); stopped && start.Before(now) {
			start = now
		}
		buf = buf[:n]
		w.tx.read(buf)
		w.taken += int64(n)
		for len(w.marks) > 0 && w.marks[0].until <= w.taken {
			w.marks = w.marks[1:]
		}
		w.busy = true
		gen := l.gen
		finish := start.Add(time.Duration(n) * bt)
		w.lineFree = finish
		l.cond.Broadcast() // room in tx
		l.mu.Unlock()

		if d := time.Until(finish); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-l.stop:
				t.Stop()
				return
			}
		}

		l.mu.Lock()
		w.busy = false
		if gen == l.gen && !l.closed {
			l.deliverLocked(w, buf, baud, start, bt)
		}
		l.cond.Broadcast()
		l.mu.Unlock()
	}
}

// backpressure reports whether a full receive buffer stops the wire: the
// host to a USB device. A Bridge device loses bytes instead, and the host
// loses the device's bytes when nobody reads.
func (w *wire) backpressure() bool { return !w.dropOnFull && !w.uartRx }

// deliverLocked applies faults to b, sent at baud from start with bt per
// byte, and hands each byte to w's receiver at the time its stop bit
// ends.
func (l *Line) deliverLocked(w *wire, b []byte, baud int, start time.Time, bt time.Duration) {
	garble := w.to.baud != baud && !l.usb
	for i, c := range b {
		l.carried++
		*w.carried++
		lost := false
		switch {
		case garble:
			c = byte(l.rng.Intn(256))
			l.stats.Garbled++
		case l.drop > 0 && l.rng.Float64() < l.drop:
			l.stats.Dropped++
			lost = true
		case l.flip > 0 && l.rng.Float64() < l.flip:
			c ^= 1 << l.rng.Intn(8)
			l.stats.Flipped++
		}
		switch {
		case lost:
		case w.uartRx:
			l.receiveLocked(c, start.Add(time.Duration(i+1)*bt))
		case w.rx.free() == 0:
			l.stats.Overruns++ // only reachable with dropOnFull
		default:
			w.rx.writeByte(c)
		}
		if len(l.cuts) > 0 && l.carried >= l.cuts[0] {
			for len(l.cuts) > 0 && l.carried >= l.cuts[0] {
				l.cuts = l.cuts[1:]
			}
			l.cutLocked()
			return
		}
	}
	if w.uartRx {
		l.pruneSpans(start.Add(time.Duration(len(b)) * bt))
	}
}
