package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.bug.st/serial"

	"github.com/gota-dev/gota/core/updater"
)

// openPort opens a serial device or a WebSocket URL at 115200 baud.
func openPort(ctx context.Context, name string) (port, error) {
	if strings.HasPrefix(name, "ws://") || strings.HasPrefix(name, "wss://") {
		return dialWSLine(ctx, name)
	}
	return openSerial(name)
}

// port is an updater.Port that can be closed.
type port interface {
	updater.Port
	Close() error
}

// serialLine is a local serial device.
type serialLine struct {
	serial.Port
	name string
}

func openSerial(name string) (*serialLine, error) {
	// DTR and RTS low: on boards with the auto-reset circuit, asserted
	// lines would hold the chip in reset or in the ROM bootloader.
	p, err := serial.Open(name, &serial.Mode{BaudRate: updater.DefaultBaud, InitialStatusBits: &serial.ModemOutputBits{}})
	if err != nil {
		// Pseudo-terminals (the virtual device) have no modem lines.
		p, err = serial.Open(name, &serial.Mode{BaudRate: updater.DefaultBaud})
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	// What the driver holds from before the open was meant for an earlier
	// host (esptool flushes it too); the session would only skip it.
	if err := p.ResetInputBuffer(); err != nil {
		p.Close()
		return nil, fmt.Errorf("open %s: discard stale input: %w", name, err)
	}
	return &serialLine{Port: p, name: name}, nil
}

// SetBaud reconfigures the open port.
func (p *serialLine) SetBaud(baud int) error {
	if err := p.Port.SetMode(&serial.Mode{BaudRate: baud}); err != nil {
		return fmt.Errorf("%s: set %d baud: %w", p.name, baud, err)
	}
	return nil
}

// wsLine is the virtual device's WebSocket line. A rate change reconnects
// with ?baud=N (the server reads the host's rate from each connection,
// as a browser reopens a Web Serial port); Read carries on over the new
// connection.
type wsLine struct {
	url       string
	mu        sync.Mutex
	cond      *sync.Cond
	conn      net.Conn
	ws        *websocket.Conn // conn's WebSocket, for control messages (signals.go)
	switching bool
	closed    bool
}

func dialWSLine(ctx context.Context, u string) (*wsLine, error) {
	p := &wsLine{url: u}
	p.cond = sync.NewCond(&p.mu)
	if err := p.dial(ctx, updater.DefaultBaud); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *wsLine) dial(ctx context.Context, baud int) error {
	u, err := url.Parse(p.url)
	if err != nil {
		return fmt.Errorf("port %q: %w", p.url, err)
	}
	q := u.Query()
	q.Set("baud", strconv.Itoa(baud))
	u.RawQuery = q.Encode()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, u.String(), nil)
	if err != nil {
		return fmt.Errorf("connect %s: %w", p.url, err)
	}
	c.SetReadLimit(1 << 20)
	nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	p.mu.Lock()
	old := p.conn
	p.conn, p.ws = nc, c
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (p *wsLine) current() net.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn
}

func (p *wsLine) Read(b []byte) (int, error) {
	for {
		c := p.current()
		n, err := c.Read(b)
		if err == nil || n > 0 {
			return n, err
		}
		p.mu.Lock()
		for p.switching {
			p.cond.Wait()
		}
		replaced := p.conn != c && !p.closed
		p.mu.Unlock()
		if !replaced {
			return n, err
		}
	}
}

func (p *wsLine) Write(b []byte) (int, error) { return p.current().Write(b) }

// SetBaud reconnects at the new rate.
func (p *wsLine) SetBaud(baud int) error {
	p.mu.Lock()
	p.switching = true
	p.mu.Unlock()
	err := p.dial(context.Background(), baud)
	p.mu.Lock()
	p.switching = false
	p.cond.Broadcast()
	p.mu.Unlock()
	return err
}

func (p *wsLine) Close() error {
	p.mu.Lock()
	p.closed = true
	c := p.conn
	p.mu.Unlock()
	return c.Close()
}
