//go:build js && wasm

// Package webserial binds the browser's Web Serial API (navigator.serial,
// SerialPort) to Go so that the updater session runs over it exactly as it
// runs over a serial device on the host.
//
// A Port is an io.ReadWriter with SetBaud: reads come from a loop that
// drains port.readable into a buffer; writes wait for the writer to be
// ready (backpressure) and hand over one chunk at a time; SetBaud closes
// and reopens the port because Web Serial cannot change the rate of an
// open port. The same code drives any object with SerialPort's shape,
// including the virtual port in web/static/virtual-serial.js.
package webserial

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall/js"
	"time"
)

// BufferSize is the receive and transmit buffer requested from the
// browser. The default of 255 bytes drops data on fast links.
const BufferSize = 64 << 10

// Trace, when set, receives timing notes (baud changes) for benchmarks.
var Trace func(string)

// ErrDisconnected is returned once the device has gone away.
var ErrDisconnected = errors.New("serial port disconnected")

// ErrClosed is returned by operations on a port closed with Close.
var ErrClosed = errors.New("serial port closed")

// Supported reports whether the browser has navigator.serial.
func Supported() bool {
	return js.Global().Get("navigator").Get("serial").Truthy()
}

// RequestPort starts Chrome's port picker. It must be called while the
// page has transient user activation (from a click handler); it returns
// at once and the returned function waits for the user's choice, so the
// waiting can happen off the event goroutine.
func RequestPort() (wait func() (js.Value, error)) {
	serial := js.Global().Get("navigator").Get("serial")
	if !serial.Truthy() {
		return func() (js.Value, error) {
			return js.Undefined(), errors.New("this browser has no Web Serial (navigator.serial)")
		}
	}
	p, err := try(func() js.Value { return serial.Call("requestPort") })
	return func() (js.Value, error) {
		if err != nil {
			return js.Undefined(), err
		}
		return Await(p)
	}
}

// Port is an open serial port.
type Port struct {
	port js.Value // the SerialPort (or an object with its shape)
	baud int

	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte // received, not yet read
	readErr error  // sticky: ErrDisconnected, ErrClosed, or a stream error
	waiting int    // Reads blocked for bytes (tests wait for one)

	reader      js.Value // ReadableStreamDefaultReader while open (mu)
	writer      js.Value // WritableStreamDefaultWriter while open
	loopDone    chan struct{}
	onDisc      js.Func
	disconnect  func()
	wmu         sync.Mutex // serialises Write and SetBaud
	lastWrite   js.Value   // promise of the last write, awaited before close
	opened      bool
	closed      bool
	disconnectd bool

	// LineErrors counts non-fatal line errors (framing, parity, break,
	// overrun) the port recovered from.
	LineErrors int
}

// Open opens port at baud and starts reading. onDisconnect, when not nil,
// runs once if the device goes away (USB unplugged, WebSocket closed).
// Open blocks on a promise, so call it off the event goroutine.
func Open(port js.Value, baud int, onDisconnect func()) (*Port, error) {
	p := &Port{port: port, baud: baud, disconnect: onDisconnect}
	p.cond = sync.NewCond(&p.mu)
	p.onDisc = js.FuncOf(func(this js.Value, args []js.Value) any {
		// Runs on the JavaScript event goroutine: do not block here.
		p.mu.Lock()
		first := !p.disconnectd
		p.disconnectd = true
		if p.readErr == nil {
			p.readErr = ErrDisconnected
		}
		p.cond.Broadcast()
		p.mu.Unlock()
		if first && p.disconnect != nil {
			go p.disconnect()
		}
		return nil
	})
	if _, err := try(func() js.Value {
		return port.Call("addEventListener", "disconnect", p.onDisc)
	}); err != nil {
		p.onDisc.Release()
		return nil, fmt.Errorf("listen for disconnect: %w", err)
	}
	if err := p.open(); err != nil {
		p.releaseListener()
		return nil, err
	}
	return p, nil
}

// Info returns what SerialPort.getInfo() reports (USB vendor and product
// IDs when the port is a USB device), as a short description.
func (p *Port) Info() string {
	v, err := try(func() js.Value { return p.port.Call("getInfo") })
	if err != nil || !v.Truthy() {
		return ""
	}
	vid, pid := v.Get("usbVendorId"), v.Get("usbProductId")
	if vid.Type() != js.TypeNumber {
		if n := v.Get("name"); n.Type() == js.TypeString {
			return n.String()
		}
		return ""
	}
	return fmt.Sprintf("USB %04x:%04x", vid.Int(), pid.Int())
}

// Baud returns the current line rate.
func (p *Port) Baud() int { return p.baud }

func (p *Port) open() error {
	opts := js.Global().Get("Object").New()
	opts.Set("baudRate", p.baud)
	opts.Set("bufferSize", BufferSize)
	pr, err := try(func() js.Value { return p.port.Call("open", opts) })
	if err == nil {
		_, err = Await(pr)
	}
	if err != nil {
		return fmt.Errorf("open serial port at %d baud: %w", p.baud, err)
	}
	readable, writable := p.port.Get("readable"), p.port.Get("writable")
	if !readable.Truthy() || !writable.Truthy() {
		return fmt.Errorf("open serial port at %d baud: port has no readable or writable stream", p.baud)
	}
	p.reader = readable.Call("getReader")
	p.writer = writable.Call("getWriter")
	p.lastWrite = js.Undefined()
	p.loopDone = make(chan struct{})
	p.opened = true
	go p.readLoop(p.reader, p.loopDone)
	return nil
}

// readLoop moves chunks from reader into p.buf until the stream ends,
// fails, or is cancelled by close. A non-fatal line error (framing,
// parity, break, buffer overrun: what garbage at a wrong baud rate causes
// on real hardware) errors the stream, and Web Serial then offers a fresh
// port.readable; the loop carries on with it, as the spec intends.
func (p *Port) readLoop(reader js.Value, done chan struct{}) {
	defer close(done)
	var chunk []byte
	for {
		res, err := Await(reader.Call("read"))
		if err != nil {
			if next, ok := p.recoverReader(reader, err); ok {
				reader = next
				continue
			}
			p.fail(fmt.Errorf("serial read: %w", err))
			return
		}
		if res.Get("done").Bool() {
			return // cancelled by close/SetBaud, or the stream ended
		}
		v := res.Get("value")
		n := v.Get("byteLength").Int()
		if cap(chunk) < n {
			chunk = make([]byte, n)
		}
		chunk = chunk[:n]
		js.CopyBytesToGo(chunk, v)
		p.mu.Lock()
		p.buf = append(p.buf, chunk...)
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// nonFatal lists the DOMException names after which a SerialPort stays
// open and replaces its readable stream.
var nonFatal = map[string]bool{"BreakError": true, "BufferOverrunError": true, "FramingError": true, "ParityError": true}

// recoverReader returns a reader on the port's new readable stream after
// a non-fatal error.
func (p *Port) recoverReader(old js.Value, err error) (js.Value, bool) {
	var de *DOMError
	if !errors.As(err, &de) || !nonFatal[de.Name] {
		return js.Undefined(), false
	}
	try(func() js.Value { old.Call("releaseLock"); return js.Undefined() })
	readable := p.port.Get("readable")
	if !readable.Truthy() {
		return js.Undefined(), false
	}
	next, gerr := try(func() js.Value { return readable.Call("getReader") })
	if gerr != nil {
		return js.Undefined(), false
	}
	p.mu.Lock()
	p.reader = next
	p.LineErrors++
	p.mu.Unlock()
	return next, true
}

func (p *Port) fail(err error) {
	p.mu.Lock()
	if p.readErr == nil {
		if p.disconnectd {
			err = ErrDisconnected
		}
		p.readErr = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Read blocks until bytes arrive or the port fails or closes.
func (p *Port) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.buf) == 0 && p.readErr == nil {
		p.waiting++
		p.cond.Wait()
		p.waiting--
	}
	if len(p.buf) == 0 {
		return 0, p.readErr
	}
	n := copy(b, p.buf)
	p.buf = p.buf[n:]
	if len(p.buf) == 0 {
		p.buf = nil // let a large buffer go
	}
	return n, nil
}

// Buffered returns how many received bytes wait to be read.
func (p *Port) Buffered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.buf)
}

// Write sends b. It waits for writer.ready before each chunk, so a slow
// line pushes back on the caller instead of queueing without bound, and
// it reports the failure of any earlier chunk.
func (p *Port) Write(b []byte) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if err := p.writeErr(); err != nil {
		return 0, err
	}
	const maxChunk = 16 << 10
	written := 0
	for written < len(b) {
		n := min(len(b)-written, maxChunk)
		if _, err := Await(p.writer.Get("ready")); err != nil {
			return written, p.wrapWriteErr(err)
		}
		arr := js.Global().Get("Uint8Array").New(n)
		js.CopyBytesToJS(arr, b[written:written+n])
		pr, err := try(func() js.Value { return p.writer.Call("write", arr) })
		if err != nil {
			return written, p.wrapWriteErr(err)
		}
		p.lastWrite = pr
		written += n
	}
	return written, nil
}

// Flush waits until the browser has accepted every byte written so far.
func (p *Port) Flush() error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.flushLocked()
}

func (p *Port) flushLocked() error {
	if p.lastWrite.Truthy() {
		pr := p.lastWrite
		p.lastWrite = js.Undefined()
		if _, err := Await(pr); err != nil {
			return p.wrapWriteErr(err)
		}
	}
	return nil
}

func (p *Port) writeErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case p.disconnectd:
		return ErrDisconnected
	case !p.opened:
		return errors.New("serial port not open")
	}
	return nil
}

func (p *Port) wrapWriteErr(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disconnectd {
		return ErrDisconnected
	}
	return fmt.Errorf("serial write: %w", err)
}

// SetBaud changes the line rate: Web Serial fixes the rate at open, so
// the port is drained, closed and opened again. Bytes already received
// stay buffered.
func (p *Port) SetBaud(baud int) error {
	if baud <= 0 {
		return fmt.Errorf("baud rate %d: must be positive", baud)
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if err := p.writeErr(); err != nil {
		return err
	}
	if baud == p.baud {
		return nil
	}
	start := time.Now()
	if err := p.shut(); err != nil {
		return fmt.Errorf("change baud to %d: %w", baud, err)
	}
	closed := time.Since(start)
	old := p.baud
	p.baud = baud
	if err := p.open(); err != nil {
		p.baud = old
		return fmt.Errorf("change baud from %d to %d: %w", old, baud, err)
	}
	if Trace != nil {
		Trace(fmt.Sprintf("baud %d->%d: closed in %v, reopened in %v", old, baud, closed.Round(time.Millisecond), (time.Since(start) - closed).Round(time.Millisecond)))
	}
	return nil
}

// shut releases the streams and closes the port (wmu held).
func (p *Port) shut() error {
	if !p.opened {
		return nil
	}
	p.opened = false
	flushErr := p.flushLocked()
	// Cancelling the reader makes the pending read() resolve with done.
	p.mu.Lock()
	reader := p.reader
	p.mu.Unlock()
	if pr, err := try(func() js.Value { return reader.Call("cancel") }); err == nil {
		Await(pr)
	}
	<-p.loopDone
	p.mu.Lock()
	reader = p.reader
	p.mu.Unlock()
	try(func() js.Value { reader.Call("releaseLock"); return js.Undefined() })
	if pr, err := try(func() js.Value { return p.writer.Call("close") }); err == nil {
		Await(pr)
	}
	try(func() js.Value { p.writer.Call("releaseLock"); return js.Undefined() })
	pr, err := try(func() js.Value { return p.port.Call("close") })
	if err == nil {
		_, err = Await(pr)
	}
	if err != nil {
		return fmt.Errorf("close serial port: %w", err)
	}
	return flushErr
}

// Close closes the port; pending and later reads return ErrClosed.
func (p *Port) Close() error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	disc := p.disconnectd
	p.mu.Unlock()
	var err error
	if !disc {
		err = p.shut()
	}
	p.mu.Lock()
	if p.readErr == nil || p.readErr == ErrDisconnected {
		p.readErr = ErrClosed
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.releaseListener()
	return err
}

func (p *Port) releaseListener() {
	try(func() js.Value {
		p.port.Call("removeEventListener", "disconnect", p.onDisc)
		return js.Undefined()
	})
	p.onDisc.Release()
}

// try runs f and turns a JavaScript exception thrown synchronously into
// an error instead of a panic.
func try(f func() js.Value) (v js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if je, ok := r.(js.Error); ok {
				err = jsError(je.Value)
				return
			}
			panic(r)
		}
	}()
	return f(), nil
}

var _ io.ReadWriteCloser = (*Port)(nil)
