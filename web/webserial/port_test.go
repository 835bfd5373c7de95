//go:build js && wasm

package webserial

import (
	"bytes"
	"errors"
	"io"
	"syscall/js"
	"testing"
	"time"
)

// fakePortJS defines makeFakePort(): an object with SerialPort's shape
// over WHATWG streams that echoes what is written, records every open
// (baud and bufferSize) and every chunk written, applies backpressure
// (each write resolves only after a tick) and can be unplugged.
const fakePortJS = `
globalThis.makeFakePort = function () {
  const port = new EventTarget();
  port.opens = [];
  port.writes = [];
  port.closed = 0;
  port.minDesired = Infinity; // writer.desiredSize seen at each write() call
  let ctl = null;
  port.open = async function (o) {
    if (this.readable) throw new DOMException("already open", "InvalidStateError");
    this.opens.push({ baudRate: o.baudRate, bufferSize: o.bufferSize });
    this.readable = new ReadableStream({ start(c) { ctl = c; }, cancel() { ctl = null; } });
    const self = this;
    this.writable = new WritableStream({
      async write(chunk) {
        self.writes.push(chunk.length);
        await new Promise((r) => setTimeout(r, 1));
        if (ctl) ctl.enqueue(new Uint8Array(chunk)); // echo
      },
    }, new CountQueuingStrategy({ highWaterMark: 1 }));
    const getWriter = this.writable.getWriter.bind(this.writable);
    this.writable.getWriter = () => {
      const w = getWriter();
      const write = w.write.bind(w);
      w.write = (c) => { self.minDesired = Math.min(self.minDesired, w.desiredSize); return write(c); };
      return w;
    };
  };
  port.close = async function () {
    if (this.readable.locked || this.writable.locked) throw new TypeError("Cannot close a locked stream");
    this.readable = null; this.writable = null; this.closed++;
  };
  port.getInfo = function () { return { usbVendorId: 0x303a, usbProductId: 0x1001 }; };
  // glitch errors the readable stream with a non-fatal line error and
  // offers a new one, as Chrome does after a framing error.
  port.glitch = function (name) {
    const old = ctl;
    this.readable = new ReadableStream({ start(c) { ctl = c; }, cancel() { ctl = null; } });
    old.error(new DOMException("line error", name));
  };
  port.unplug = function () {
    if (ctl) { try { ctl.error(new DOMException("The device has been lost.", "NetworkError")); } catch (e) {} }
    ctl = null;
    this.dispatchEvent(new Event("disconnect"));
  };
  return port;
};
`

func fakePort(t *testing.T) js.Value {
	t.Helper()
	js.Global().Call("eval", fakePortJS)
	return js.Global().Call("makeFakePort")
}

// waitFor waits until cond holds, letting the port's goroutines and the
// JavaScript event loop run meanwhile.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// readBlocked reports whether a Read waits for bytes on p.
func readBlocked(p *Port) func() bool {
	return func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.waiting > 0
	}
}

func readFull(t *testing.T, p *Port, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(p, b); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("read %d bytes: %v", n, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("read %d bytes: timed out", n)
	}
	return b
}

func TestOpenWriteReadEcho(t *testing.T) {
	fp := fakePort(t)
	p, err := Open(fp, 115200, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	open := fp.Get("opens").Index(0)
	if got := open.Get("baudRate").Int(); got != 115200 {
		t.Errorf("opened at %d baud, want 115200", got)
	}
	if got := open.Get("bufferSize").Int(); got < 64<<10 {
		t.Errorf("bufferSize %d, want at least 64 KiB", got)
	}
	msg := bytes.Repeat([]byte("gota\x00\xff"), 10000) // 60000 bytes: several chunks
	if n, err := p.Write(msg); err != nil || n != len(msg) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got := readFull(t, p, len(msg)); !bytes.Equal(got, msg) {
		t.Fatal("echo differs from what was written")
	}
	if fp.Get("writes").Length() < 2 {
		t.Fatalf("%d chunks written, want several", fp.Get("writes").Length())
	}
	if got := fp.Get("minDesired").Float(); got <= 0 {
		t.Errorf("write() called with writer.desiredSize %v: Write does not wait for writer.ready", got)
	}
	if got := p.Info(); got != "USB 303a:1001" {
		t.Errorf("Info = %q", got)
	}
}

func TestSetBaudReopens(t *testing.T) {
	fp := fakePort(t)
	p, err := Open(fp, 115200, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// A Read blocked across the baud change continues on the new port.
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, 3)
		io.ReadFull(p, b)
		got <- b
	}()
	waitFor(t, "the Read to block", readBlocked(p))
	if err := p.SetBaud(921600); err != nil {
		t.Fatal(err)
	}
	if n := fp.Get("closed").Int(); n != 1 {
		t.Errorf("port closed %d times by SetBaud, want 1", n)
	}
	opens := fp.Get("opens")
	if opens.Length() != 2 || opens.Index(1).Get("baudRate").Int() != 921600 {
		t.Fatalf("opens = %d, want a second open at 921600", opens.Length())
	}
	if _, err := p.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if string(b) != "abc" {
			t.Errorf("read %q after the baud change, want abc", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read blocked across SetBaud never returned")
	}
	if err := p.SetBaud(921600); err != nil || fp.Get("opens").Length() != 2 {
		t.Errorf("SetBaud to the current rate reopened the port (err %v)", err)
	}
	if err := p.SetBaud(0); err == nil {
		t.Error("SetBaud(0) succeeded")
	}
}

func TestDisconnect(t *testing.T) {
	fp := fakePort(t)
	lost := make(chan struct{}, 2)
	p, err := Open(fp, 115200, func() { lost <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := p.Read(make([]byte, 1))
		readErr <- err
	}()
	waitFor(t, "the Read to block", readBlocked(p))
	fp.Call("unplug")
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("onDisconnect not called")
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrDisconnected) {
			t.Errorf("Read after unplug: %v, want ErrDisconnected", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after unplug")
	}
	if _, err := p.Write([]byte("x")); !errors.Is(err, ErrDisconnected) {
		t.Errorf("Write after unplug: %v, want ErrDisconnected", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close after unplug: %v", err)
	}
	if _, err := p.Read(make([]byte, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	select {
	case <-lost:
		t.Error("onDisconnect called twice")
	default:
	}
}

func TestAwaitRejection(t *testing.T) {
	p := js.Global().Get("Promise").Call("reject", js.Global().Get("DOMException").New("No port selected by the user.", "NotFoundError"))
	_, err := Await(p)
	var de *DOMError
	if !errors.As(err, &de) || de.Name != "NotFoundError" {
		t.Errorf("Await(rejected) = %v, want a NotFoundError DOMError", err)
	}
	v, err := Await(js.Global().Get("Promise").Call("resolve", 42))
	if err != nil || v.Int() != 42 {
		t.Errorf("Await(resolve 42) = %v, %v", v, err)
	}
}

func TestOpenFailure(t *testing.T) {
	fp := fakePort(t)
	fp.Set("open", js.Global().Call("eval", `(async () => { throw new DOMException("Failed to open serial port.", "NetworkError"); })`))
	_, err := Open(fp, 115200, nil)
	var de *DOMError
	if !errors.As(err, &de) || de.Name != "NetworkError" {
		t.Errorf("Open on a failing port = %v, want a NetworkError", err)
	}
}

func TestNonFatalLineError(t *testing.T) {
	fp := fakePort(t)
	p, err := Open(fp, 115200, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fp.Call("glitch", "FramingError")
	waitFor(t, "the port to take the new readable stream", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.LineErrors > 0
	})
	if _, err := p.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, p, 5); string(got) != "after" {
		t.Errorf("read %q after a framing error, want after", got)
	}
	if p.LineErrors != 1 {
		t.Errorf("LineErrors = %d, want 1", p.LineErrors)
	}
	// SetBaud still works with the replaced reader.
	if err := p.SetBaud(921600); err != nil {
		t.Fatal(err)
	}
}
