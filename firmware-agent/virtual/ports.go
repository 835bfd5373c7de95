package virtual

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/gota-dev/gota/firmware-agent/link"
)

// ports connects the host end of the line to the pseudo-terminal and/or
// the WebSocket client.
type ports struct {
	line *link.Line
	ctx  context.Context // ends the pump

	pumpOnce sync.Once
	// active is the port that last wrote or connected (portPTY, portWS):
	// its rate is the host's rate.
	active atomic.Int32

	mu   sync.Mutex
	pty  *ptyPort
	srv  *http.Server // Listen's server
	conn *websocket.Conn
	out  chan []byte // bytes for conn, written by its writer goroutine
}

// Host ports, for ports.active.
const (
	portPTY = 1
	portWS  = 2
)

// startPump starts copying the host end of the line to the ports, once.
func (p *ports) startPump() { p.pumpOnce.Do(func() { go p.pump() }) }

// pump copies what the device sends to the host ports until the line is
// closed. Writes to the ports never block the line: a port that does not
// keep up loses bytes, as a UART nobody reads does.
func (p *ports) pump() {
	buf := make([]byte, 4096)
	host := p.line.Host()
	for p.ctx.Err() == nil {
		n, err := host.Read(buf)
		if n > 0 {
			p.mu.Lock()
			pty := p.pty
			p.mu.Unlock()
			if pty != nil {
				pty.send(buf[:n])
			}
			p.sendWS(buf[:n])
		}
		if errors.Is(err, link.ErrClosed) {
			return
		}
		if err != nil {
			p.line.WaitUp(p.ctx)
		}
	}
}

// disconnected runs after the line was cut by a fault: the host loses its
// port (the pseudo-terminal is replaced, the WebSocket closed) and must
// open it again.
func (p *ports) disconnected() {
	p.dropWS(websocket.StatusGoingAway, "line disconnected")
	p.mu.Lock()
	pty := p.pty
	p.mu.Unlock()
	if pty != nil {
		if err := pty.replace(); err != nil {
			return
		}
		p.line.Reconnect()
	}
}

// exclusiveWS reports whether the WebSocket is the only host port, so
// that the line is down while no client is connected.
func (p *ports) exclusiveWS() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pty == nil
}

// Listen serves the WebSocket port at ws://ADDR/serial and returns its
// URL. Until a client connects (and unless a pseudo-terminal shares the
// line), nobody listens: the line is down.
func (p *ports) Listen(addr string) (url string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err // "listen tcp ADDR: ..." names what failed
	}
	mux := http.NewServeMux()
	mux.Handle("/serial", p)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	if p.exclusiveWS() {
		p.line.Hangup()
	}
	p.startPump()
	go srv.Serve(ln)
	return "ws://" + ln.Addr().String() + "/serial", nil
}

// Baud limits of ?baud=N.
const (
	minBaud = 300
	maxBaud = 10_000_000
)

// ServeHTTP carries the serial line over a WebSocket, one connection at
// a time: each connection is a port open (fresh line buffers), ?baud=N
// the host's rate (default: the line's power-on rate); binary messages in
// both directions hold raw line bytes, text messages from the client set
// DTR/RTS (signals.go). A new connection takes the line
// over and closes the previous one, as reopening a Web Serial port does.
func (p *ports) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	baud := p.line.InitialBaud()
	if q := r.URL.Query().Get("baud"); q != "" {
		b, err := strconv.Atoi(q)
		if err != nil || b < minBaud || b > maxBaud {
			http.Error(rw, fmt.Sprintf("baud %q: want a rate between %d and %d", q, minBaud, maxBaud), http.StatusBadRequest)
			return
		}
		baud = b
	}
	// The lock is held from the handshake to the registration: a client
	// that opened after another, once its handshake is answered, must own
	// the line after it, however the handlers are scheduled.
	p.mu.Lock()
	c, err := websocket.Accept(rw, r, &websocket.AcceptOptions{
		// The browser UI may run from another local server.
		OriginPatterns: []string{"localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", "[::1]:*"},
	})
	if err != nil {
		p.mu.Unlock()
		return // Accept has answered
	}
	c.SetReadLimit(1 << 20)
	p.startPump()
	out := make(chan []byte, 256)
	// A port open: fresh buffers, the host's rate.
	p.line.Reconnect()
	p.line.Host().SetBaudNow(baud)
	p.active.Store(portWS)
	prev := p.conn
	if prev != nil {
		close(p.out)
	}
	p.conn, p.out = c, out
	p.mu.Unlock()
	if prev != nil {
		// Close waits for the client's reply; do not hold the lock.
		go prev.Close(websocket.StatusNormalClosure, "port opened again")
	}

	ctx := r.Context()
	go func() {
		for b := range out {
			if err := c.Write(ctx, websocket.MessageBinary, b); err != nil {
				for range out {
				}
				return
			}
		}
	}()
	status, reason := p.relay(ctx, c, baud)
	p.release(c)
	c.Close(status, reason)
}

// relay carries client c's messages to the line until c closes, another
// connection takes the line over, or c sends bad modem lines (the status
// and reason to close with). Host to device, Write blocks while the
// device's receive buffer is full, which stops reading the socket and
// pushes back on the client.
func (p *ports) relay(ctx context.Context, c *websocket.Conn, baud int) (websocket.StatusCode, string) {
	host := p.line.Host()
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			return websocket.StatusNormalClosure, ""
		}
		p.mu.Lock()
		owner := p.conn == c
		p.mu.Unlock()
		if !owner {
			return websocket.StatusNormalClosure, ""
		}
		if typ == websocket.MessageText {
			// Modem lines (signals.go).
			s, err := ParseSignals(data, p.line.Signals())
			if err != nil {
				reason := err.Error()
				if len(reason) > 120 {
					reason = reason[:120]
				}
				return websocket.StatusUnsupportedData, reason
			}
			p.line.SetSignals(s)
			continue
		}
		if p.active.Swap(portWS) != portWS {
			host.SetBaudNow(baud) // back from the pseudo-terminal's rate
		}
		if _, err := host.Write(data); err != nil && errors.Is(err, link.ErrClosed) {
			return websocket.StatusNormalClosure, ""
		}
	}
}

// release closes the port c held, unless another connection took it.
func (p *ports) release(c *websocket.Conn) {
	p.mu.Lock()
	owned := p.conn == c
	if owned {
		p.conn = nil
		close(p.out)
		p.out = nil
		// The port is closed: nobody listens until the next open (unless
		// a pseudo-terminal shares the line).
		if p.pty == nil {
			p.line.Hangup()
		}
	}
	p.mu.Unlock()
	if owned && p.line.Signals() != (link.Signals{}) {
		p.line.SetSignals(link.Signals{}) // a closed port drops DTR and RTS
	}
}

// sendWS queues b for the connected client, if any.
func (p *ports) sendWS(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		return
	}
	select {
	case p.out <- append([]byte(nil), b...):
	default:
	}
}

// dropWS closes the current WebSocket connection, if any.
func (p *ports) dropWS(code websocket.StatusCode, reason string) {
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	if c != nil {
		go c.Close(code, reason)
	}
}

// Unplug closes the WebSocket connection that owns the line, as pulling
// the USB cable does to a serial port; the device keeps running.
func (p *ports) Unplug() { p.dropWS(websocket.StatusGoingAway, "unplugged") }

// close closes every port.
func (p *ports) close() {
	p.dropWS(websocket.StatusGoingAway, "device stopped")
	p.mu.Lock()
	srv, pty := p.srv, p.pty
	p.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	if pty != nil {
		pty.close()
	}
}
