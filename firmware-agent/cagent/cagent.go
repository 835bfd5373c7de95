// Package cagent runs the C agent of firmware-agent/esp-idf (the ESP-IDF
// component) on the host: the same C sources, compiled with cgo against a
// host implementation of the ESP-IDF API subset they call (include/ and
// esp_host.c: same signatures and esp_err_t codes as ESP-IDF v5.1.3),
// backed by the virtual ESP32 of package device. It is the "c" agent of
// `gota device run --agent c` and `gota serve --agent c`.
//
// The agent's sources are symbolic links here (to ../esp-idf/src and
// ../esp-idf/include), so that cgo builds, and its cache tracks, the very
// files of the component. The ROM's inflater, tinfl_decompress of
// rom/miniz.h, is host_tinfl.c: the ROM's API on Debian's zlib.
//
// Each Agent runs the C app on its own OS thread, as the firmware's one
// task; an esp_restart (or a reboot of the device from outside) boots the
// C app again from app_main.
package cagent

/*
#cgo CFLAGS: -std=gnu99 -Wall -Wextra -Werror -Wno-unused-parameter -DGOTA_HOST_INSTANCES
#cgo CFLAGS: -I${SRCDIR}/include
#cgo LDFLAGS: -lmbedcrypto -lz
#include <stdlib.h>
#include "host.h"
*/
import "C"

import (
	"context"
	"errors"
	"io"
	"runtime"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gota-dev/gota/firmware-agent/device"
)

// Name is the agent name the C agent announces.
const Name = "gota-c/1"

// Capability bits of the C agent's configuration (gota_agent.h).
const (
	capDeflate = 1 << 0
	capResume  = 1 << 1
	capBaud    = 1 << 2
	capReorder = 1 << 4
	capDelta   = 1 << 5
)

// Defaults for Options: the component's Kconfig defaults.
const (
	DefaultMaxFrame = 2048
	DefaultRxBuffer = 32768
	// DefaultWindow is the window the agent grants with those to a host
	// that counts frame bytes (SPEC.md 6.8), as the Go host does.
	DefaultWindow = DefaultRxBuffer - (DefaultMaxFrame + overhead) // 30709
)

// overhead is a frame's bytes besides its payload (SPEC.md 2).
const overhead = 11

// Window returns the window the C agent announces with opt to a host
// that counts frame bytes (SPEC.md 6.8), as gota_idf.c and gota_core.c
// compute it: its UART ring less a frame for requests, within the image
// ring. Without a UART ISR that runs during flash operations, or a ring
// too small for a second frame, it offers no wire window and grants
// image bytes: as many frames as the ring holds, or one.
func Window(opt Options) int {
	mf, rx := opt.MaxFrame, opt.RxBuffer
	if mf <= 0 {
		mf = DefaultMaxFrame
	}
	if rx <= 0 {
		rx = DefaultRxBuffer
	}
	if opt.NoISRInIRAM {
		return mf - 4
	}
	if wire := min(rx-(mf+overhead), ringSize-mf); wire >= mf+overhead {
		return wire
	}
	return max(min(rx/(mf+overhead)*(mf-4), ringSize-mf), mf-4)
}

// ringSize is GOTA_RING_SIZE.
const ringSize = 32768

// Held is the most image bytes the agent holds received but not written
// with frames of maxFrame (0: the default) and a wire window: what its
// image ring takes beside a frame being inflated.
func Held(maxFrame int) int {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return ringSize - maxFrame
}

// RxBufferFor returns the smallest UART ring buffer for which Window is
// at least window with frames of maxFrame (0: the default).
func RxBufferFor(window, maxFrame int) int {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	if window >= maxFrame+overhead {
		return window + maxFrame + overhead
	}
	frames := (window + maxFrame - 5) / (maxFrame - 4)
	return max(frames, 1) * (maxFrame + overhead)
}

// Options configure the C app as its Kconfig would.
type Options struct {
	MaxFrame      int  // CONFIG_GOTA_MAX_PAYLOAD; 0 = DefaultMaxFrame
	RxBuffer      int  // CONFIG_GOTA_UART_RX_BUFFER; 0 = DefaultRxBuffer
	NoISRInIRAM   bool // CONFIG_UART_ISR_IN_IRAM off: the agent grants one frame
	NoCompression bool
	NoResume      bool
	NoBaudChange  bool
	NoReorder     bool
	NoDelta       bool
	// RateCheck and RateIdle shorten SPEC.md 7's 3 s and 5 s (tests).
	RateCheck, RateIdle time.Duration
	// AcceptOnBoot gives the app an accept hook that accepts every
	// build it boots on trial (gota_agent_config_t.accept).
	AcceptOnBoot bool
	// SetBaud is called when the agent switches its line rate; nil means
	// the rate is not modelled.
	SetBaud func(baud int) error
	// InstallDriver is called when the app installs its UART driver
	// (uart_driver_install), with what it declared; nil means the
	// receive path is not modelled (link.End.InstallDriver models it).
	InstallDriver func(UART)
	// QuietAttach is for a line on which the app cannot tell that a host
	// opened the port (UART0 behind a USB–UART bridge): Serve does not
	// call gota_agent_notify_attach, so no READY (attach) is sent.
	QuietAttach bool
}

// UART is what the C app declared to its UART driver
// (uart_driver_install): the ring buffer size and whether its ISR runs
// during flash operations.
type UART struct {
	RxBuffer  int
	ISRInIRAM bool
}

// Agent is the C agent running on one virtual device.
type Agent struct {
	dev  *device.Device
	con  *Console
	opt  Options
	h    cgo.Handle
	host *C.host_dev_t

	port     *port  // the connection attached by Serve
	left     []byte // bytes read from the line, not yet taken by the app
	rebooted atomic.Bool
	stopped  atomic.Bool
	done     chan struct{}

	mu      sync.Mutex
	conn    io.Writer
	baud    int
	uart    UART
	info    *device.Info // deviceInfo's snapshot
	infoAt  time.Time
	ended   string // partition the last esp_ota_end completed
	target  string // partition of the OTA in progress
	started bool
	served  bool   // a Serve has attached a connection
	early   []byte // what the app wrote before that (earlyMax at most)
}

// earlyMax bounds what the app's start-up output waits for the first
// Serve: the UART driver's TX ring buffer holds about this much before
// uart_write_bytes blocks.
const earlyMax = 4096

// Console is the device's log output: the app's ESP_LOG stream, which
// the C agent serialises with its frames (esp_log_set_vprintf). Text
// written while no host is attached is lost, as on a UART.
type Console struct {
	mu sync.Mutex
	a  *Agent
}

// NewConsole returns a Console for device.Config.Log, to be passed to New.
func NewConsole() *Console { return &Console{} }

// Write sends p through the C app's log path.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	a := c.a
	c.mu.Unlock()
	if a == nil || len(p) == 0 {
		return len(p), nil
	}
	cs := C.CBytes(p)
	defer C.free(cs)
	C.host_log(a.host, (*C.char)(cs), C.int(len(p)))
	return len(p), nil
}

// New starts the C app on dev; con must be the device's log writer.
func New(dev *device.Device, con *Console, opt Options) *Agent {
	if opt.MaxFrame <= 0 {
		opt.MaxFrame = DefaultMaxFrame
	}
	if opt.RxBuffer <= 0 {
		opt.RxBuffer = DefaultRxBuffer
	}
	a := &Agent{dev: dev, con: con, opt: opt, done: make(chan struct{}), baud: 115200}
	a.h = cgo.NewHandle(a)
	a.host = C.host_new(C.uintptr_t(a.h))
	caps := 0
	if !opt.NoCompression {
		caps |= capDeflate
		if !opt.NoDelta {
			caps |= capDelta
		}
	}
	if !opt.NoResume {
		caps |= capResume
	}
	if !opt.NoBaudChange {
		caps |= capBaud
	}
	if !opt.NoReorder {
		caps |= capReorder
	}
	a.host.caps = C.uint32_t(caps)
	a.host.max_payload = C.uint16_t(opt.MaxFrame)
	a.host.rx_buffer = C.int(opt.RxBuffer)
	if !opt.NoISRInIRAM {
		a.host.isr_in_iram = 1
	}
	a.host.rate_check_ms = C.uint32_t(opt.RateCheck.Milliseconds())
	a.host.rate_idle_ms = C.uint32_t(opt.RateIdle.Milliseconds())
	if opt.AcceptOnBoot {
		a.host.accept_on_boot = 1
	}
	dev.OnReboot(func() {
		a.changed()
		a.rebooted.Store(true)
	})
	con.mu.Lock()
	con.a = a
	con.mu.Unlock()
	go a.run()
	return a
}

func (a *Agent) run() {
	runtime.LockOSThread()
	defer close(a.done)
	C.host_run(a.host)
}

// Close stops the C app and waits for its thread.
func (a *Agent) Close() {
	a.stopped.Store(true)
	<-a.done
}

// UART returns what the app declared to its UART driver.
func (a *Agent) UART() UART {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.uart
}

// Baud returns the agent's line rate.
func (a *Agent) Baud() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.baud
}

// Serve attaches conn as the device's UART until ctx is done or reading
// conn fails (nil at EOF). The app keeps running across connections; a
// new connection gets READY (attach) unless Options.QuietAttach.
func (a *Agent) Serve(ctx context.Context, conn io.ReadWriter) error {
	p := newPort(conn)
	defer p.close()
	a.mu.Lock()
	if !a.served {
		// The app started before the first Serve (the virtual device
		// attaches the line once the boot log has gone out): its
		// start-up banner and READY (boot) go out first.
		a.served = true
		if len(a.early) > 0 {
			conn.Write(a.early)
		}
		a.early = nil
	}
	a.port = p
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		if a.port == p {
			a.port = nil
		}
		a.mu.Unlock()
	}()
	if !a.opt.QuietAttach {
		C.host_attach(a.host)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-p.dead:
		if errors.Is(p.err, io.EOF) {
			return nil
		}
		return p.err
	}
}

// port reads a connection only when the app asks (uart_read_bytes), so
// that bytes the app has not asked for stay in the line's receive path
// (the UART driver's ring of link.End) as on a chip. A read the app gave
// up waiting for stays pending and serves its next call.
type port struct {
	conn    io.ReadWriter
	req     chan int
	res     chan []byte
	stop    chan struct{}
	dead    chan struct{} // closed when reading conn failed
	err     error
	pending bool // a request is out (used by the app's thread only)
}

func newPort(conn io.ReadWriter) *port {
	p := &port{conn: conn, req: make(chan int), res: make(chan []byte, 1), stop: make(chan struct{}), dead: make(chan struct{})}
	go p.reader()
	return p
}

func (p *port) reader() {
	for {
		select {
		case n := <-p.req:
			b := make([]byte, n)
			k, err := p.conn.Read(b)
			p.res <- b[:k]
			if err != nil {
				p.err = err
				close(p.dead)
				return
			}
		case <-p.stop:
			return
		}
	}
}

func (p *port) close() { close(p.stop) }

// read returns what the line holds, waiting up to timeout for a byte.
func (p *port) read(n int, timeout time.Duration) []byte {
	if !p.pending {
		select {
		case p.req <- n:
			p.pending = true
		case <-p.dead:
		case <-p.stop:
		}
	}
	if !p.pending {
		return nil
	}
	var t <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		t = timer.C
	}
	select {
	case b := <-p.res:
		p.pending = false
		return b
	default:
	}
	if t == nil {
		return nil
	}
	select {
	case b := <-p.res:
		p.pending = false
		return b
	case <-t:
		return nil
	}
}

// buffered is uart_get_buffered_data_len: what the line's receive path
// holds (link.End.Buffered), or 0 for a connection that cannot tell.
func (p *port) buffered() int {
	if b, ok := p.conn.(interface{ Buffered() int }); ok {
		return b.Buffered()
	}
	return len(p.res)
}

func agentOf(h C.uintptr_t) *Agent { return cgo.Handle(h).Value().(*Agent) }

func bytesOf(p *C.uint8_t, n C.int) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)) }

// code is the esp_err_t of a device error.
func code(err error) C.int {
	if err == nil {
		return 0
	}
	var de *device.Error
	if errors.As(err, &de) {
		return C.int(de.Code)
	}
	return C.int(device.ErrFail)
}

//export goCheckpoint
func goCheckpoint(h C.uintptr_t) C.int {
	a := agentOf(h)
	if a.stopped.Load() {
		return 2
	}
	if a.rebooted.Swap(false) {
		return 1
	}
	return 0
}

//export goUartRead
func goUartRead(h C.uintptr_t, buf *C.uint8_t, n C.int, timeoutMs C.int) C.int {
	a := agentOf(h)
	out := bytesOf(buf, n)
	if len(a.left) == 0 {
		a.mu.Lock()
		p := a.port
		a.mu.Unlock()
		if p == nil {
			// No line: as a UART without a host, nothing arrives.
			time.Sleep(time.Duration(timeoutMs) * time.Millisecond)
			return 0
		}
		a.left = p.read(len(out), time.Duration(timeoutMs)*time.Millisecond)
	}
	k := copy(out, a.left)
	a.left = a.left[k:]
	return C.int(k)
}

//export goUartBuffered
func goUartBuffered(h C.uintptr_t) C.int {
	a := agentOf(h)
	a.mu.Lock()
	p := a.port
	a.mu.Unlock()
	n := len(a.left)
	if p != nil {
		n += p.buffered()
	}
	return C.int(n)
}

//export goUartWrite
func goUartWrite(h C.uintptr_t, buf *C.uint8_t, n C.int) C.int {
	a := agentOf(h)
	a.mu.Lock()
	p := a.port
	if p == nil && !a.served && len(a.early)+int(n) <= earlyMax {
		a.early = append(a.early, bytesOf(buf, n)...)
	}
	a.mu.Unlock()
	if p != nil && n > 0 {
		p.conn.Write(append([]byte(nil), bytesOf(buf, n)...))
	}
	return n
}

//export goUartDrain
func goUartDrain(h C.uintptr_t) {
	a := agentOf(h)
	a.mu.Lock()
	p := a.port
	a.mu.Unlock()
	if p == nil {
		return
	}
	if d, ok := p.conn.(interface{ Drain() error }); ok {
		d.Drain()
	}
}

//export goUartConfig
func goUartConfig(h C.uintptr_t, rxBuffer C.int, iram C.int) {
	a := agentOf(h)
	u := UART{RxBuffer: int(rxBuffer), ISRInIRAM: iram != 0}
	a.mu.Lock()
	a.uart = u
	a.mu.Unlock()
	if a.opt.InstallDriver != nil {
		a.opt.InstallDriver(u)
	}
}

//export goSetBaud
func goSetBaud(h C.uintptr_t, baud C.uint32_t) C.int {
	a := agentOf(h)
	a.mu.Lock()
	changed := a.baud != int(baud)
	a.baud = int(baud)
	a.mu.Unlock()
	if changed && a.opt.SetBaud != nil {
		if err := a.opt.SetBaud(int(baud)); err != nil {
			return C.int(device.ErrInvalidArg)
		}
	}
	return 0
}
