package server

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/rom"
	"github.com/gota-dev/gota/firmware-agent/virtual"
)

// wsPort is an updater.Port over the virtual device's WebSocket that
// reconnects with ?baud=N to change rate, as web/static/virtual-serial.js
// does in the browser.
type wsPort struct {
	url       string
	mu        sync.Mutex
	cond      *sync.Cond
	conn      net.Conn
	baud      int
	switching bool // SetBaud in progress: errors on the old connection are expected
}

func dialPort(t *testing.T, url string, baud int) *wsPort {
	p := &wsPort{url: url}
	p.cond = sync.NewCond(&p.mu)
	if err := p.SetBaud(baud); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.close() })
	return p
}

func (p *wsPort) current() net.Conn { p.mu.Lock(); defer p.mu.Unlock(); return p.conn }

func (p *wsPort) Read(b []byte) (int, error) {
	for {
		c := p.current()
		n, err := c.Read(b)
		if err != nil {
			p.mu.Lock()
			for p.switching {
				p.cond.Wait()
			}
			replaced := p.conn != c
			p.mu.Unlock()
			if replaced {
				continue // reopened by SetBaud: read from the new connection
			}
		}
		return n, err
	}
}

func (p *wsPort) Write(b []byte) (int, error) { return p.current().Write(b) }

func (p *wsPort) SetBaud(baud int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.mu.Lock()
	p.switching = true
	p.mu.Unlock()
	c, _, err := websocket.Dial(ctx, p.url+"?baud="+itoa(baud), nil)
	p.mu.Lock()
	defer p.cond.Broadcast()
	p.switching = false
	if err != nil {
		p.mu.Unlock()
		return err
	}
	old := p.conn
	p.conn, p.baud = websocket.NetConn(context.Background(), c, websocket.MessageBinary), baud
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (p *wsPort) close() {
	if c := p.current(); c != nil {
		c.Close()
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// TestVirtualDeviceOverWebSocket runs an update session over the
// WebSocket bridge, switching to 921600 baud by reconnecting.
func TestVirtualDeviceOverWebSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flash.bin")
	if _, err := EnsureFlash(path, nil); err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	var serverLog []string
	dev, err := virtual.Open(path, virtual.Config{Log: virtual.LineLog(func(l string) { logMu.Lock(); serverLog = append(serverLog, l); logMu.Unlock() })})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	s, err := New(Config{Dir: writeSite(t), Device: dev})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + SerialPath

	port := dialPort(t, url, updater.DefaultBaud)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var hostLog []string
	sess, err := updater.Connect(ctx, port, updater.Options{Baud: 921600, Log: func(l string) { hostLog = append(hostLog, l) }})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	info, err := sess.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := info.Running
	if p := info.Find(first); p == nil || p.Name != "gota-demo" || p.Version != "1.0.0" {
		t.Errorf("running %q = %+v, want the demo app 1.0.0", first, p)
	}
	if sess.Caps().BaudChange && port.baud != 921600 {
		t.Errorf("port at %d baud after the handshake, want 921600", port.baud)
	}

	img, err := DemoApp("2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Flash(ctx, img, updater.FlashOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err = sess.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := info.Find(info.Running); info.Running == first || p == nil || p.Version != "2.0.0" || p.State != "testing" {
		t.Errorf("after flashing: running %q %+v, want the other slot with 2.0.0 testing", info.Running, p)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !containsLine(serverLog, "Loaded app from partition") {
		t.Errorf("device log lacks the boot log: %q", serverLog)
	}
	if !containsLine(hostLog, "Loaded app from partition") {
		t.Errorf("the host did not receive the boot log: %q", hostLog)
	}
}

func containsLine(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// serveDevice boots a virtual device on a new flash file holding the demo
// app and serves its WebSocket; it returns the device and the ws:// URL.
func serveDevice(t *testing.T) (*virtual.Device, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "flash.bin")
	if _, err := EnsureFlash(path, nil); err != nil {
		t.Fatal(err)
	}
	dev, err := virtual.Open(path, virtual.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(dev)
	t.Cleanup(func() { ts.Close(); dev.Close() })
	return dev, "ws" + strings.TrimPrefix(ts.URL, "http")
}

// TestVirtualDeviceRejectsBadBaud checks the ?baud= validation.
func TestVirtualDeviceRejectsBadBaud(t *testing.T) {
	_, url := serveDevice(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, url+"?baud=fast", nil)
	if err == nil || resp == nil || resp.StatusCode != 400 {
		t.Errorf("baud=fast: err %v, resp %v; want a 400", err, resp)
	}
	var ce websocket.CloseError
	_ = errors.As(err, &ce)
}

// TestVirtualDeviceTakeover: a second connection takes the line over
// (closing the first, as reopening a port does), and Unplug closes the
// owner while the device keeps running.
func TestVirtualDeviceTakeover(t *testing.T) {
	dev, url := serveDevice(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	first, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for {
		// Output sent while it owned the line may come first.
		if _, _, err := first.Read(ctx); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				t.Errorf("first connection after a second one opened: %v, want a normal closure", err)
			}
			break
		}
	}
	// The second one owns the line: a session works over it.
	nc := websocket.NetConn(ctx, second, websocket.MessageBinary)
	sess, err := updater.Connect(ctx, &connPort{nc}, updater.Options{})
	if err != nil {
		t.Fatalf("session over the second connection: %v", err)
	}
	if _, err := sess.Info(ctx); err != nil {
		t.Fatal(err)
	}
	sess.Close()

	dev.Unplug()
	// The unplugged connection fails (the session's reader sees the close).
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := nc.Write([]byte{0}); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("connection still writable 5 s after Unplug")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Plugged in again: a new connection works.
	third, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer third.CloseNow()
	sess, err = updater.Connect(ctx, &connPort{websocket.NetConn(ctx, third, websocket.MessageBinary)}, updater.Options{})
	if err != nil {
		t.Fatalf("session after replugging: %v", err)
	}
	sess.Close()
}

// connPort is a fixed-rate updater.Port.
type connPort struct{ net.Conn }

func (connPort) SetBaud(int) error { return nil }

// TestVirtualDeviceUSBIDs: /virtual-device says which USB serial device
// the virtual port is, by its reset circuit, as getInfo() would.
func TestVirtualDeviceUSBIDs(t *testing.T) {
	for _, c := range []struct {
		reset rom.Circuit
		want  string
	}{
		{rom.AutoReset, `"usbVendorId":4292,"usbProductId":60000`},
		{rom.USBSerialJTAG, `"usbVendorId":12346,"usbProductId":4097`},
	} {
		dev, err := virtual.New(flash.NewMemory(4<<20), virtual.Config{Reset: c.reset})
		if err != nil {
			t.Fatal(err)
		}
		h, err := New(Config{Dir: writeSite(t), Device: dev})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", VirtualDevicePath, nil))
		dev.Close()
		if !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("reset %v: %s, want %s", c.reset, rec.Body.String(), c.want)
		}
	}
}
