package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/coder/websocket"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/agent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
)

// VirtualDevice is a virtual ESP32 running the Go agent, reachable one
// connection at a time over an emulated serial line. Each connection gets
// a fresh line whose host end runs at the rate the connection asks for
// (Web Serial reopens the port to change rate) and whose device end runs
// at the agent's current rate, so a host that forgets to follow a baud
// change sees garbage, as with a real UART.
type VirtualDevice struct {
	Device *device.Device
	flash  *flash.Flash
	agent  *agent.Agent

	mu   sync.Mutex
	baud int        // the agent's line rate
	line *link.Line // the attached line, nil when none
	stop func()     // detaches the attached line and waits for its agent loop
}

// VirtualOptions configure OpenVirtual.
type VirtualOptions struct {
	Agent agent.Options     // SetBaud is filled in
	Log   func(line string) // optional copy of the device console (boot log)
}

// OpenVirtual boots a virtual device on the flash file at path.
func OpenVirtual(path string, opt VirtualOptions) (*VirtualDevice, error) {
	fl, err := flash.Open(path)
	if err != nil {
		return nil, fmt.Errorf("virtual device: %w", err)
	}
	v, err := newVirtual(fl, opt)
	if err != nil {
		fl.Close()
		return nil, err
	}
	return v, nil
}

// NewVirtual boots a virtual device on fl (a memory flash in tests).
func NewVirtual(fl *flash.Flash, opt VirtualOptions) (*VirtualDevice, error) {
	return newVirtual(fl, opt)
}

func newVirtual(fl *flash.Flash, opt VirtualOptions) (*VirtualDevice, error) {
	v := &VirtualDevice{flash: fl, baud: updater.DefaultBaud}
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
	aopt := opt.Agent
	aopt.SetBaud = v.agentSetBaud
	v.agent = agent.New(dev, con, aopt)
	return v, nil
}

// agentSetBaud follows the agent's rate changes on the attached line.
func (v *VirtualDevice) agentSetBaud(baud int) error {
	v.mu.Lock()
	v.baud = baud
	l := v.line
	v.mu.Unlock()
	if l != nil {
		return l.Device().SetBaud(baud)
	}
	return nil
}

// Attach connects a new line whose host end runs at hostBaud, detaching
// any previous one first. It returns the host end (an updater.Port) and a
// function that detaches it.
func (v *VirtualDevice) Attach(hostBaud int, cfg link.Config) (*link.End, func()) {
	v.mu.Lock()
	prev := v.stop
	v.mu.Unlock()
	if prev != nil {
		prev()
	}

	cfg.Baud = hostBaud
	l := link.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	v.mu.Lock()
	l.Device().SetBaudNow(v.baud)
	v.line = l
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			l.Close() // unblocks the agent's pending read
			<-done
			v.mu.Lock()
			if v.line == l {
				v.line, v.stop = nil, nil
			}
			v.mu.Unlock()
		})
	}
	v.stop = stop
	v.mu.Unlock()
	go func() {
		defer close(done)
		v.agent.Serve(ctx, l.Device())
	}()
	return l.Host(), stop
}

// Close detaches the line and closes the flash file.
func (v *VirtualDevice) Close() error {
	v.mu.Lock()
	stop := v.stop
	v.mu.Unlock()
	if stop != nil {
		stop()
	}
	return v.flash.Close()
}

// ServeHTTP carries the serial line over a WebSocket: binary messages in
// both directions hold raw line bytes; ?baud=N sets the host side's rate
// (default 115200). A new connection replaces the previous one, like a
// port opened again.
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
	host, stop := v.Attach(baud, link.Config{})
	defer stop()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// Device to browser.
	go func() {
		defer cancel()
		buf := make([]byte, 16<<10)
		for {
			n, err := host.Read(buf)
			if n > 0 {
				if werr := c.Write(ctx, websocket.MessageBinary, buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				c.Close(websocket.StatusGoingAway, "line closed")
				return
			}
		}
	}()
	// Browser to device: Write blocks while the device's receive buffer is
	// full, which stops reading the socket and pushes back on the browser.
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageBinary {
			c.Close(websocket.StatusUnsupportedData, "send serial bytes as binary messages")
			return
		}
		if _, err := host.Write(b); err != nil {
			if !errors.Is(err, link.ErrClosed) {
				c.Close(websocket.StatusInternalError, err.Error())
			}
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
