package link

import (
	"fmt"
	"time"
)

// UART names the device's serial hardware, which decides what happens to
// host bytes the device cannot take (see the package documentation).
type UART int

const (
	// Bridge is UART0 behind a USB–UART bridge without flow control: bytes
	// that find the device's RX FIFO full are lost.
	Bridge UART = iota
	// USB is USB-Serial-JTAG or USB-CDC: the host waits, nothing is lost.
	USB
)

// String returns "bridge" or "usb".
func (u UART) String() string {
	switch u {
	case Bridge:
		return "bridge"
	case USB:
		return "usb"
	}
	return fmt.Sprintf("UART(%d)", int(u))
}

// ParseUART returns the UART named "bridge" or "usb".
func ParseUART(s string) (UART, error) {
	switch s {
	case "bridge", "":
		return Bridge, nil
	case "usb":
		return USB, nil
	}
	return 0, fmt.Errorf("link: unknown UART model %q (want bridge or usb)", s)
}

// FIFOSize is the ESP32 UART's hardware RX FIFO, in bytes
// (SOC_UART_FIFO_LEN in ESP-IDF's soc_caps.h for ESP32, S2, S3 and C3).
const FIFOSize = 128

// Receiver is what the device's UART driver was installed with: what a
// real build of an agent has.
type Receiver struct {
	// RingBuffer is the rx_buffer_size passed to uart_driver_install: what
	// the ISR can hold for the task that reads.
	RingBuffer int
	// ISRInIRAM is CONFIG_UART_ISR_IN_IRAM (the ISR registered with
	// ESP_INTR_FLAG_IRAM): it keeps running while a flash operation has
	// the cache disabled.
	ISRInIRAM bool
}

// DefaultReceiver is the device's driver until an agent installs its own:
// ESP-IDF's defaults (CONFIG_UART_ISR_IN_IRAM off) with an 8 KiB ring.
var DefaultReceiver = Receiver{RingBuffer: 8 << 10}

// span is one flash operation's interrupt-off window, from start to its
// modelled end, with the FIFO backlog it found and the bytes that arrived
// during it while the ISR could not run.
type span struct {
	start, end time.Time
	backlog    int
	arrived    int
}

// InstallDriver replaces the device's receive path, as the agent's
// uart_driver_install call does: bytes waiting in the old ring are lost
// unless they fit the new one. Only the device end has a driver; on the
// host end it does nothing.
func (e *End) InstallDriver(r Receiver) {
	if e != e.l.dev {
		return
	}
	l := e.l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.installLocked(r)
}

func (l *Line) installLocked(r Receiver) {
	r.RingBuffer = orDefault(r.RingBuffer, DefaultReceiver.RingBuffer)
	old := l.h2d.rx
	l.h2d.rx = newRing(r.RingBuffer)
	buf := make([]byte, min(old.len(), r.RingBuffer))
	old.read(buf)
	l.h2d.rx.write(buf)
	l.iram = r.ISRInIRAM
	l.cond.Broadcast()
}

// Driver returns the device's receive path as installed.
func (l *Line) Driver() Receiver {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Receiver{RingBuffer: len(l.h2d.rx.b), ISRInIRAM: l.iram}
}

// FlashGuard is told of every flash erase and program, as ESP-IDF's
// spi_flash guard is (its start and end hooks). It satisfies flash.Guard.
type FlashGuard struct{ l *Line }

// FlashGuard returns the guard the device's flash reports its operations
// to.
func (l *Line) FlashGuard() *FlashGuard { return &FlashGuard{l} }

// Start marks the start of a flash operation that keeps interrupts off
// for d: tasks stop until End and, unless the ISR is in IRAM, so does the
// UART interrupt for d. The ISR's window is the modelled d, not the wall
// time until End, so a late timer on the host does not cost the device
// bytes a real chip would keep.
//
// A device Read that is waiting for bytes the ring already holds runs
// first: the agent's reader task has a higher priority than the task that
// writes flash, so the ISR that filled the ring lets it preempt the writer
// before the writer can start another operation.
func (g *FlashGuard) Start(d time.Duration) {
	l := g.l
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.readers > 0 && l.h2d.rx.len() > 0 && l.flashOps == 0 && !l.closed && !l.down {
		l.cond.Wait()
	}
	l.flashOps++
	if l.flashOps > 1 {
		return
	}
	now := time.Now()
	keep := l.spans[:0]
	for _, s := range l.spans {
		if now.Sub(s.end) < time.Second {
			keep = append(keep, s)
		}
	}
	l.spans = append(keep, span{start: now, end: now.Add(d), backlog: l.fifo.len()})
}

// End marks the end of a flash operation: the ISR empties the FIFO into
// the ring and tasks run again.
func (g *FlashGuard) End() {
	l := g.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flashOps == 0 {
		return
	}
	l.flashOps--
	if l.flashOps > 0 {
		return
	}
	now := time.Now()
	for i := range l.spans { // over sooner than announced (unless already pruned)
		if s := &l.spans[i]; !s.start.After(now) && now.Before(s.end) {
			s.end = now
		}
	}
	l.serviceFIFOLocked(now)
	l.cond.Broadcast()
}

// blockingSpan returns the flash operation during which a byte arriving
// at t found the ISR unable to run, or nil.
func (l *Line) blockingSpan(t time.Time) *span {
	if l.iram {
		return nil
	}
	for i := range l.spans {
		s := &l.spans[i]
		if !t.Before(s.start) && t.Before(s.end) {
			return s
		}
	}
	return nil
}

// pruneSpans drops the flash operations that ended before t: no byte
// still to be delivered arrived during them.
func (l *Line) pruneSpans(t time.Time) {
	keep := l.spans[:0]
	for _, s := range l.spans {
		if s.end.After(t) {
			keep = append(keep, s)
		}
	}
	l.spans = keep
}

// receiveLocked takes a host byte that reached the device's UART at t
// (Bridge): the ISR moves it to the ring if it can run and the ring has
// room; otherwise it waits in the FIFO, or is lost if the FIFO is full.
func (l *Line) receiveLocked(c byte, t time.Time) {
	if s := l.blockingSpan(t); s != nil {
		if s.backlog+s.arrived >= FIFOSize || l.fifo.free() == 0 {
			l.stats.DeviceOverruns++
			return
		}
		s.arrived++
		l.fifo.writeByte(c)
		return
	}
	l.serviceFIFOLocked(t)
	switch {
	case l.fifo.len() == 0 && l.h2d.rx.free() > 0:
		l.h2d.rx.writeByte(c)
	case l.fifo.free() > 0: // ring full: the ISR stopped taking bytes
		l.fifo.writeByte(c)
	default:
		l.stats.DeviceOverruns++
	}
}

// serviceFIFOLocked is the ISR, if it can run at t, moving what the FIFO
// holds into the ring, as far as the ring has room.
func (l *Line) serviceFIFOLocked(t time.Time) {
	if l.blockingSpan(t) != nil {
		return
	}
	var buf [FIFOSize]byte
	n := min(l.fifo.len(), l.h2d.rx.free())
	l.fifo.read(buf[:n])
	l.h2d.rx.write(buf[:n])
}

// MarshalText returns the model's name, for flags and JSON.
func (u UART) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText parses "bridge" or "usb".
func (u *UART) UnmarshalText(b []byte) error {
	v, err := ParseUART(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}
