package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/agent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
)

// VirtualDevice is a virtual ESP32 running the Go agent on an emulated
// serial line (package link) that lives as long as the device. The host
// end is reached either in-process (Host) or over WebSocket (ServeHTTP),
// one connection at a time: a new connection takes the line over and sets
// the host side's rate from ?baud=N, as reopening a Web Serial port does.
// The device side runs at the agent's rate, so a host that does not follow
// a baud change sees garbage, as on a real UART; device output sent while
// no one is connected is lost, as on a UART nobody listens to.
type VirtualDevice struct {
	Device *device.Device
	flash  *flash.Flash
	agent  *agent.Agent
	line   *link.Line
	cancel context.CancelFunc
	done   chan struct{} // closed when the agent loop ends

	pumpOnce sync.Once
	mu       sync.Mutex
	conn     *websocket.Conn // the connection that owns the line, nil when none
	gen      int             // incremented per connection
}

// VirtualOptions configure OpenVirtual.
type VirtualOptions struct {
	Agent agent.Options     // SetBaud is filled in
	Line  link.Config       // the emulated line (Baud is the initial rate of both ends)
	Log   func(line string) // optional copy of the device console (boot log)
}

// OpenVirtual boots a virtual device on the flash file at path.
func OpenVirtual(path string, opt VirtualOptions) (*VirtualDevice, error) {
	fl, err := flash.Open(path)
	if err != nil {
		return nil, fmt.Errorf("virtual device: %w", err)
	}
	v, err := NewVirtual(fl, opt)
	if err != nil {
		fl.Close()
		return nil, err
	}
	return v, nil
}

// NewVirtual boots a virtual device on fl (a memory flash in tests).
func NewVirtual(fl *flash.Flash, opt VirtualOptions) (*VirtualDevice, error) {
	v := &VirtualDevice{flash: fl, done: make(chan struct{})}
	con := agent.NewConsole()
	var logw io.Writer = con
	if opt.Log != nil {
		logw = io.MultiWriter(con, &lineWriter{f: opt.Log})
	}
	dev, err := device.Open(device.Config{Flash: fl, Log: logw})
	if err != nil {
		return nil, fmt.Errorf("virtual device: boot: %w", err)
	}
	v.Device = dev
	v.line = link.New(opt.Line)
	aopt := opt.Agent
	aopt.SetBaud = v.line.Device().SetBaud
	v.agent = agent.New(dev, con, aopt)
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	go func() {
		defer close(v.done)
		v.agent.Serve(ctx, v.line.Device())
	}()
	return v, nil
}

// Host returns the host end of the line, for an in-process session.
// Do not use it together with ServeHTTP.
func (v *VirtualDevice) Host() *link.End { return v.line.Host() }

// Line returns the emulated line (statistics, fault injection).
func (v *VirtualDevice) Line() *link.Line { return v.line }

// Close stops the agent, the line and closes the flash file.
func (v *VirtualDevice) Close() error {
	v.cancel()
	v.line.Close() // unblocks the agent's pending read
	<-v.done
	v.mu.Lock()
	if v.conn != nil {
		v.conn.Close(websocket.StatusGoingAway, "device stopped")
		v.conn = nil
	}
	v.mu.Unlock()
	return v.flash.Close()
}

// pump moves device output to whichever connection owns the line.
func (v *VirtualDevice) pump() {
	host := v.line.Host()
	buf := make([]byte, 16<<10)
	for {
		n, err := host.Read(buf)
		if n > 0 {
			v.mu.Lock()
			c := v.conn
			v.mu.Unlock()
			if c != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				werr := c.Write(ctx, websocket.MessageBinary, buf[:n])
				cancel()
				if werr != nil {
					v.drop(c, websocket.StatusGoingAway, "write failed")
				}
			}
		}
		if errors.Is(err, link.ErrClosed) {
			return
		}
		if err != nil && !errors.Is(err, link.ErrDisconnected) {
			return
		}
	}
}

// drop detaches c if it still owns the line.
func (v *VirtualDevice) drop(c *websocket.Conn, code websocket.StatusCode, reason string) {
	v.mu.Lock()
	if v.conn == c {
		v.conn = nil
	}
	v.mu.Unlock()
	c.Close(code, reason)
}

// Unplug closes the WebSocket that owns the line, as pulling the USB
// cable does to a serial port; the device keeps running.
func (v *VirtualDevice) Unplug() {
	v.mu.Lock()
	c := v.conn
	v.conn = nil
	v.mu.Unlock()
	if c != nil {
		c.Close(websocket.StatusGoingAway, "unplugged")
	}
}

// ServeHTTP carries the serial line over a WebSocket: binary messages in
// both directions hold raw line bytes; ?baud=N sets the host side's rate
// (default 115200).
func (v *VirtualDevice) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	baud := updater.DefaultBaud
	if s := r.URL.Query().Get("baud"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 300 || n > 10_000_000 {
			http.Error(w, fmt.Sprintf("baud %q: want a rate between 300 and 10000000", s), http.StatusBadRequest)
			return
		}
		baud = n
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered
	}
	c.SetReadLimit(1 << 20)
	v.pumpOnce.Do(func() { go v.pump() })

	host := v.line.Host()
	v.mu.Lock()
	prev := v.conn
	v.conn = c
	v.gen++
	host.SetBaudNow(baud)
	v.mu.Unlock()
	if prev != nil {
		prev.Close(websocket.StatusNormalClosure, "port opened again")
	}
	defer v.drop(c, websocket.StatusNormalClosure, "")

	// Browser to device: Write blocks while the device's receive buffer is
	// full, which stops reading the socket and pushes back on the browser.
	for {
		typ, b, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if typ != websocket.MessageBinary {
			v.drop(c, websocket.StatusUnsupportedData, "send serial bytes as binary messages")
			return
		}
		v.mu.Lock()
		owner := v.conn == c
		v.mu.Unlock()
		if !owner {
			return
		}
		if _, err := host.Write(b); err != nil {
			return
		}
	}
}

// lineWriter splits written text into lines.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	f   func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := indexNL(w.buf)
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		w.f(line)
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// Flash returns the device's emulated flash chip.
func (v *VirtualDevice) Flash() *flash.Flash { return v.flash }
