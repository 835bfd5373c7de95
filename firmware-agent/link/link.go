// Package link emulates the serial line between a host and a virtual
// ESP32: a UART at a given baud rate, 8N1, carrying bytes in both
// directions independently, with optional faults.
//
// # Model
//
// A byte costs 10 bit times on the wire (start bit, 8 data bits, stop bit),
// so a line moves baud/10 bytes per second in each direction. Each
// direction has
//
//   - a transmit buffer on the sending side (the OS tty write buffer on the
//     host, the UART driver's TX ring buffer on the device): Write returns
//     as soon as its bytes are in it and blocks while it is full;
//   - the wire, which moves bytes from the transmit buffer to the receiver
//     at the sender's rate, paced by a token bucket against the monotonic
//     clock (the pacer sleeps in chunks of about a millisecond and catches
//     up on oversleeping, so even 4 Mbaud is paced accurately and the line
//     adds no cost beyond the baud rate's);
//   - a receive buffer on the receiving side (the UART driver's RX ring
//     buffer on the device, the tty read buffer on the host).
//
// Host to device, a full device receive buffer stops the wire: the line
// applies backpressure, as hardware flow control (RTS/CTS) does, instead of
// buffering without limit or losing bytes. The host's data therefore never
// overruns the device; it waits. Device to host, a full host receive buffer
// loses bytes (counted as overruns), as a UART without flow control does
// when nobody reads the port: the device's log output never blocks the
// device.
//
// Each end has its own rate (SetBaud). Bytes sent at one rate and received
// at another are garbled as on a real UART: each arrives as an arbitrary
// byte (a real receiver also sees framing errors; the emulation keeps the
// byte count, so a protocol must rely on checksums, not on lengths, to
// notice). SetBaud first waits until the bytes that end already wrote have
// left the wire (uart_wait_tx_done, tcdrain), then switches.
//
// # Faults
//
// DropRate and FlipRate lose or corrupt (one bit of) a byte with the given
// probability, from a seeded math/rand source so tests are reproducible.
// DisconnectAfter cuts the line when the total number of bytes it has
// carried (both directions) reaches each listed count: every Read and Write
// on both ends fails with ErrDisconnected, buffered bytes are lost, and
// the line stays down until Reconnect, as when a USB serial adapter is
// unplugged and plugged in again. The device keeps its rate across a cut.
package link

import (
	"context"
	"errors"
	"math/rand"
	"sort"
	"sync"
	"time"
)

// ErrDisconnected is returned by Read and Write while the line is cut.
var ErrDisconnected = errors.New("link: line disconnected")

// ErrClosed is returned once the line is closed.
var ErrClosed = errors.New("link: line closed")

// Default buffer sizes, in bytes.
const (
	// DefaultDeviceRxBuffer is a typical ESP-IDF uart_driver_install RX
	// ring buffer (the hardware FIFO itself holds 128 bytes).
	DefaultDeviceRxBuffer = 8 << 10
	// DefaultDeviceTxBuffer is the device's UART TX ring buffer.
	DefaultDeviceTxBuffer = 2 << 10
	// DefaultHostRxBuffer is the host's tty and USB adapter buffering.
	DefaultHostRxBuffer = 64 << 10
	// DefaultHostTxBuffer is the host's tty write room.
	DefaultHostTxBuffer = 4 << 10
	// DefaultBaud is the rate an ESP32 console starts at.
	DefaultBaud = 115200
)

// Config describes a line. The zero value is a fault-free 115200 baud line.
type Config struct {
	Baud int // initial rate of both ends in bit/s; 0 = 115200

	DeviceRxBuffer int // bytes; 0 = DefaultDeviceRxBuffer
	DeviceTxBuffer int // bytes; 0 = DefaultDeviceTxBuffer
	HostRxBuffer   int // bytes; 0 = DefaultHostRxBuffer
	HostTxBuffer   int // bytes; 0 = DefaultHostTxBuffer

	DropRate float64 // probability that a byte is lost
	FlipRate float64 // probability that one bit of a byte is inverted
	Seed     int64   // seed of the fault source

	// DisconnectAfter lists cumulative byte counts (both directions
	// together) at which the line is cut, in any order.
	DisconnectAfter []int64

	// OnDisconnect, when set, is called in its own goroutine after each
	// cut, e.g. to close the WebSocket or pseudo-terminal the host uses.
	OnDisconnect func()
}

// Stats counts what the line did.
type Stats struct {
	HostToDevice int64 // bytes carried host to device (including lost and corrupted ones)
	DeviceToHost int64 // bytes carried device to host
	Dropped      int64 // bytes lost by DropRate
	Flipped      int64 // bytes corrupted by FlipRate
	Garbled      int64 // bytes received at a rate other than the one they were sent at
	Overruns     int64 // bytes lost because the host's receive buffer was full
	Disconnects  int   // cuts so far
}

// Line is an emulated serial line. Its two ends are Host and Device.
type Line struct {
	mu      sync.Mutex
	cond    *sync.Cond // broadcast on every state change
	rng     *rand.Rand
	drop    float64
	flip    float64
	cuts    []int64 // pending cut points, ascending
	onCut   func()
	down    bool
	closed  bool
	gen     int // incremented on every cut: operations begun before it fail
	carried int64
	stats   Stats

	baud      int // initial rate
	host, dev *End
	h2d, d2h  *wire
	stop      chan struct{}
	done      sync.WaitGroup
	sig       signalState // the host's modem lines (signals.go)
}

// End is one end of the line: the host's port or the device's UART.
type End struct {
	l    *Line
	name string
	baud int
	tx   *wire // the direction this end sends on
	rx   *wire // the direction this end receives from
}

// wire is one direction of the line.
type wire struct {
	from, to   *End
	tx         ring // sender's transmit buffer
	rx         ring // receiver's receive buffer
	dropOnFull bool // overrun instead of backpressure
	busy       bool // the pacer holds bytes taken from tx that are not yet delivered
	lineFree   time.Time
	carried    *int64
}

// New returns a line and starts its pacers; Close stops them.
func New(cfg Config) *Line {
	baud := cfg.Baud
	if baud <= 0 {
		baud = DefaultBaud
	}
	l := &Line{
		rng:   rand.New(rand.NewSource(cfg.Seed)),
		drop:  cfg.DropRate,
		flip:  cfg.FlipRate,
		onCut: cfg.OnDisconnect,
		baud:  baud,
		stop:  make(chan struct{}),
	}
	l.cond = sync.NewCond(&l.mu)
	l.cuts = append([]int64(nil), cfg.DisconnectAfter...)
	sort.Slice(l.cuts, func(i, j int) bool { return l.cuts[i] < l.cuts[j] })
	l.host = &End{l: l, name: "host", baud: baud}
	l.dev = &End{l: l, name: "device", baud: baud}
	l.h2d = &wire{from: l.host, to: l.dev,
		tx: newRing(orDefault(cfg.HostTxBuffer, DefaultHostTxBuffer)),
		rx: newRing(orDefault(cfg.DeviceRxBuffer, DefaultDeviceRxBuffer)), carried: &l.stats.HostToDevice}
	l.d2h = &wire{from: l.dev, to: l.host, dropOnFull: true,
		tx: newRing(orDefault(cfg.DeviceTxBuffer, DefaultDeviceTxBuffer)),
		rx: newRing(orDefault(cfg.HostRxBuffer, DefaultHostRxBuffer)), carried: &l.stats.DeviceToHost}
	l.host.tx, l.host.rx = l.h2d, l.d2h
	l.dev.tx, l.dev.rx = l.d2h, l.h2d
	l.done.Add(2)
	go l.pace(l.h2d)
	go l.pace(l.d2h)
	return l
}

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// InitialBaud returns the rate both ends started at (the console rate).
func (l *Line) InitialBaud() int { return l.baud }

// Host returns the host's end.
func (l *Line) Host() *End { return l.host }

// Device returns the device's end.
func (l *Line) Device() *End { return l.dev }

// Stats returns the counters so far.
func (l *Line) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Close stops the line; pending and later operations fail with ErrClosed.
func (l *Line) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.stop)
	l.cond.Broadcast()
	l.mu.Unlock()
	l.done.Wait()
	return nil
}

// Disconnect cuts the line now, as a DisconnectAfter point does.
func (l *Line) Disconnect() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cutLocked()
}

func (l *Line) cutLocked() {
	if l.closed {
		return
	}
	l.gen++
	l.stats.Disconnects++
	l.down = true
	for _, w := range []*wire{l.h2d, l.d2h} {
		w.tx.reset()
		w.rx.reset()
	}
	l.cond.Broadcast()
	if l.onCut != nil {
		go l.onCut()
	}
}

// Hangup takes the line down like a cut, but as the normal end of a
// connection (the host closed its port): it is not counted in Stats and
// does not call OnDisconnect.
func (l *Line) Hangup() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down || l.closed {
		return
	}
	l.gen++
	l.down = true
	for _, w := range []*wire{l.h2d, l.d2h} {
		w.tx.reset()
		w.rx.reset()
	}
	l.cond.Broadcast()
}

// Reconnect brings the line up again after a cut, with empty buffers; any
// operation still pending from before the cut fails. Calling it on a line
// that is up also starts a fresh connection (as reopening a port does):
// bytes in flight are lost.
func (l *Line) Reconnect() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.down {
		l.gen++
		for _, w := range []*wire{l.h2d, l.d2h} {
			w.tx.reset()
			w.rx.reset()
		}
	}
	l.down = false
	l.cond.Broadcast()
}

// Up reports whether the line is connected.
func (l *Line) Up() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.down && !l.closed
}

// WaitUp blocks until the line is connected, ctx is done or the line is
// closed.
func (l *Line) WaitUp(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.down && !l.closed && ctx.Err() == nil {
		l.cond.Wait()
	}
	if l.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// byteTime is the wire time of one 8N1 byte at baud.
func byteTime(baud int) time.Duration {
	return time.Duration(10 * int64(time.Second) / int64(baud))
}

// Pacing parameters: the pacer moves about chunkTime worth of bytes at a
// time and forgives up to slack of oversleeping (the bucket depth), so
// the average rate is exact while Go's timer granularity does not matter.
const (
	chunkTime = time.Millisecond
	slack     = 5 * time.Millisecond
)

// pace moves bytes along w at the sender's rate until the line is closed.
func (l *Line) pace(w *wire) {
	defer l.done.Done()
	buf := make([]byte, 0, 4096)
	for {
		l.mu.Lock()
		for !l.closed && (l.down || w.tx.len() == 0 || (!w.dropOnFull && w.rx.free() == 0)) {
			l.cond.Wait()
		}
		if l.closed {
			l.mu.Unlock()
			return
		}
		baud := w.from.baud
		bt := byteTime(baud)
		n := int(chunkTime / bt)
		if n < 1 {
			n = 1
		}
		n = min(n, w.tx.len(), cap(buf))
		if !w.dropOnFull {
			n = min(n, w.rx.free())
		}
		buf = buf[:n]
		w.tx.read(buf)
		w.busy = true
		gen := l.gen
		now := time.Now()
		start := w.lineFree
		if start.Before(now.Add(-slack)) {
			start = now // the line was idle: no burst credit
		}
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
			l.deliverLocked(w, buf, baud)
		}
		l.cond.Broadcast()
		l.mu.Unlock()
	}
}

// deliverLocked applies faults to b, sent at baud, and appends it to w's
// receive buffer.
func (l *Line) deliverLocked(w *wire, b []byte, baud int) {
	garble := w.to.baud != baud
	for _, c := range b {
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
}

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
		if e.rx.rx.len() > 0 {
			n := e.rx.rx.read(p)
			l.cond.Broadcast() // room in rx: the wire may resume
			return n, nil
		}
		l.cond.Wait()
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
		if k := e.tx.tx.write(p[n:]); k > 0 {
			n += k
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

// ring is a fixed-size byte FIFO.
type ring struct {
	b    []byte
	r, n int
}

func newRing(size int) ring { return ring{b: make([]byte, size)} }

func (q *ring) len() int  { return q.n }
func (q *ring) free() int { return len(q.b) - q.n }
func (q *ring) reset()    { q.r, q.n = 0, 0 }

func (q *ring) read(p []byte) int {
	n := 0
	for n < len(p) && q.n > 0 {
		end := q.r + q.n
		if end > len(q.b) {
			end = len(q.b)
		}
		k := copy(p[n:], q.b[q.r:end])
		n += k
		q.r = (q.r + k) % len(q.b)
		q.n -= k
	}
	return n
}

func (q *ring) write(p []byte) int {
	n := 0
	for n < len(p) && q.free() > 0 {
		w := (q.r + q.n) % len(q.b)
		end := len(q.b)
		if w < q.r {
			end = q.r
		}
		k := copy(q.b[w:end], p[n:])
		n += k
		q.n += k
	}
	return n
}

func (q *ring) writeByte(c byte) {
	q.b[(q.r+q.n)%len(q.b)] = c
	q.n++
}
