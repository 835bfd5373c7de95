// Package link emulates the serial line between a host and a virtual
// ESP32: a UART at a given baud rate, 8N1, carrying bytes in both
// directions independently, with optional faults, and the receive side of
// the device's UART as ESP-IDF's driver has it.
//
// # Wire
//
// A byte costs 10 bit times on the wire (start bit, 8 data bits, stop bit),
// so a line moves baud/10 bytes per second in each direction. Each
// direction has a transmit buffer on the sending side (the OS tty write
// buffer on the host, the UART driver's TX ring buffer on the device):
// Write returns as soon as its bytes are in it and blocks while it is full.
// The wire moves bytes from the transmit buffer to the receiver at the
// sender's rate, paced against the monotonic clock: a byte never starts
// before the previous one has left the wire, nor before it was written
// (bytes written after an idle gap get no credit for the gap). The pacer
// sleeps in chunks of about a millisecond and catches up on oversleeping,
// so even 4 Mbaud is paced accurately.
//
// # Device receive path
//
// Which device model applies is Config.UART:
//
//   - Bridge (the default): UART0 behind a USB–UART bridge (CP210x, CH340,
//     FTDI), as on nearly every ESP32 dev board. The bridge's RTS and DTR
//     drive EN and GPIO0 for auto-reset, not flow control, so the host's
//     bytes arrive at the line rate whatever the device is doing. They land
//     in the UART's 128-byte hardware RX FIFO (SOC_UART_FIFO_LEN, ESP32
//     Technical Reference Manual, UART chapter); the driver's ISR moves them
//     into the ring buffer whose size the agent passed to uart_driver_install
//     (ESP-IDF components/driver/uart/uart.c, uart_rx_intr_handler_default).
//     When the ring is full the ISR leaves the bytes in the FIFO and stops
//     taking interrupts until a read makes room (rx_buffer_full_flg); bytes
//     that find the FIFO full are lost and counted in Stats.DeviceOverruns.
//   - USB: USB-Serial-JTAG or USB-CDC (ESP32-S3, C3, C6). USB is
//     flow-controlled: a full device buffer makes the host wait (the
//     endpoint NAKs), and nothing is lost.
//
// While ESP-IDF erases or programs the flash that holds the code it
// disables the cache, stalls the other CPU and disables every interrupt that
// is not IRAM-safe (spi_flash_disable_interrupts_caches_and_other_cpu, called
// by the SPI1 start hook of components/spi_flash/spi_flash_os_func_app.c
// around each operation of esp_flash_api.c). The flash package reports each
// operation to the line's FlashGuard. During one:
//
//   - no task runs, so the device end's Read and Write wait;
//   - the UART ISR runs only if the agent's build has it in IRAM
//     (Receiver.ISRInIRAM, CONFIG_UART_ISR_IN_IRAM; its Kconfig help warns
//     that without it the "UART interrupt will be disabled for a long time
//     and may cause data lost when doing spi flash operation"). Otherwise
//     the FIFO fills at the line rate and overflows after 128 bytes.
//
// How long an operation keeps interrupts off is the flash package's
// business (ESP-IDF v5.1.3: one sector or block erase per guarded window in
// esp_flash_erase_region, whatever CONFIG_SPI_FLASH_YIELD_DURING_ERASE says,
// since its yield only comes between windows; up to MAX_WRITE_CHUNK = 8192
// bytes of page programs per window in esp_flash_write).
//
// Whether a byte found the FIFO full is decided at the byte's own arrival
// time on the wire, against the recorded times of the flash operations,
// not at the pacer's chunk granularity. A read that frees ring room is
// seen by bytes up to one pacer chunk (about a millisecond) earlier than it
// would be on the wire; this only matters when an agent lets its ring fill.
//
// Device to host, a full host receive buffer loses bytes (Stats.Overruns),
// as a UART without flow control does when nobody reads the port: the
// device's log output never blocks the device.
//
// Each end has its own rate (SetBaud). Bytes sent at one rate and received
// at another are garbled as on a real UART: each arrives as an arbitrary
// byte (a real receiver also sees framing errors; the emulation keeps the
// byte count, so a protocol must rely on checksums, not on lengths, to
// notice). Over USB (the USB model) no byte garbles: USB-Serial-JTAG's
// CDC-ACM takes the host's line coding and ignores it, only DTR and RTS
// act (ESP32-C3 Technical Reference Manual, USB Serial/JTAG Controller,
// its CDC-ACM requests); the rates still pace the emulated wire. SetBaud first waits until the bytes that end already wrote have
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

	// UART is the device's serial hardware: Bridge (the default) or USB.
	UART UART
	// Receiver is the device's UART driver until the agent installs its
	// own (End.InstallDriver); zero fields take DefaultReceiver's.
	Receiver Receiver

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
	// DeviceOverruns counts bytes lost because the device's RX FIFO was
	// full (Bridge only): its ISR could not run during a flash operation,
	// or the driver's ring buffer was full.
	DeviceOverruns int64
	Disconnects    int // cuts so far
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

	baud      int  // initial rate
	usb       bool // USB model: no rate on the wire, so nothing garbles
	host, dev *End
	h2d, d2h  *wire
	fifo      ring   // the device UART's RX FIFO (Bridge)
	iram      bool   // the device's UART ISR runs during flash operations
	flashOps  int    // flash operations in progress
	readers   int    // device Reads waiting
	spans     []span // recent flash operations, oldest first
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
	tx         ring      // sender's transmit buffer
	rx         ring      // receiver's receive buffer
	dropOnFull bool      // overrun instead of backpressure
	uartRx     bool      // the receiver is the device's UART FIFO (Bridge): no backpressure
	busy       bool      // the pacer holds bytes taken from tx that are not yet delivered
	lineFree   time.Time // when the last byte taken leaves the wire
	marks      []mark    // when the bytes in tx were written
	written    int64     // bytes ever written into tx
	taken      int64     // bytes ever taken from tx by the pacer
	carried    *int64
}

// mark records that the bytes written into a wire's tx up to the count
// until were written at at.
type mark struct {
	until int64
	at    time.Time
}

// New returns a line and starts its pacers; Close stops them.
func New(cfg Config) *Line {
	baud := cfg.Baud
	if baud <= 0 {
		baud = DefaultBaud
	}
	l := &Line{
		rng:   rand.New(rand.NewSource(cfg.Seed)),
		usb:   cfg.UART == USB,
		drop:  cfg.DropRate,
		flip:  cfg.FlipRate,
		onCut: cfg.OnDisconnect,
		baud:  baud,
		stop:  make(chan struct{}),
		fifo:  newRing(FIFOSize),
	}
	l.cond = sync.NewCond(&l.mu)
	l.cuts = append([]int64(nil), cfg.DisconnectAfter...)
	sort.Slice(l.cuts, func(i, j int) bool { return l.cuts[i] < l.cuts[j] })
	l.host = &End{l: l, name: "host", baud: baud}
	l.dev = &End{l: l, name: "device", baud: baud}
	l.h2d = &wire{from: l.host, to: l.dev,
		tx:     newRing(orDefault(cfg.HostTxBuffer, DefaultHostTxBuffer)),
		uartRx: cfg.UART == Bridge, carried: &l.stats.HostToDevice}
	l.d2h = &wire{from: l.dev, to: l.host, dropOnFull: true,
		tx: newRing(orDefault(cfg.DeviceTxBuffer, DefaultDeviceTxBuffer)),
		rx: newRing(orDefault(cfg.HostRxBuffer, DefaultHostRxBuffer)), carried: &l.stats.DeviceToHost}
	l.installLocked(Receiver{
		RingBuffer: orDefault(cfg.Receiver.RingBuffer, DefaultReceiver.RingBuffer),
		ISRInIRAM:  cfg.Receiver.ISRInIRAM,
	})
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
	l.resetBuffersLocked()
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
	l.resetBuffersLocked()
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
		l.resetBuffersLocked()
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

// resetBuffersLocked empties every buffer on the line, as a cut does.
func (l *Line) resetBuffersLocked() {
	for _, w := range []*wire{l.h2d, l.d2h} {
		w.tx.reset()
		w.rx.reset()
		w.marks = w.marks[:0]
		w.taken = w.written
	}
	l.fifo.reset()
}
