package virtual

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.bug.st/serial"

	"github.com/gota-dev/gota/firmware-agent/link"
)

// readN reads exactly n bytes from r or fails the test after a while.
func readN(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	c := make(chan result, 1)
	go func() {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		c <- result{b, err}
	}()
	select {
	case res := <-c:
		if res.err != nil {
			t.Fatalf("read: %v", res.err)
		}
		return res.b
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out reading %d bytes", n)
	}
	return nil
}

// portsOn wires a bare line (no agent) to host ports as a Device does.
func portsOn(t *testing.T, cfg link.Config) (*link.Line, *ports) {
	p := &ports{}
	cfg.OnDisconnect = p.disconnected
	line := link.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	p.line, p.ctx = line, ctx
	t.Cleanup(func() { cancel(); line.Close(); p.close() })
	return line, p
}

func TestPTYPortCarriesBytesAndRates(t *testing.T) {
	line, p := portsOn(t, link.Config{Baud: 115200})
	ttyLink := filepath.Join(t.TempDir(), "ttyESP")
	if _, err := p.AttachPTY(ttyLink); err != nil {
		t.Fatal(err)
	}

	port, err := serial.Open(ttyLink, &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatalf("serial.Open(%s): %v", ttyLink, err)
	}
	defer port.Close()

	dev := line.Device()
	msg := []byte("host to device\x00\xff\r\n")
	if _, err := port.Write(msg); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, dev, len(msg)); !bytes.Equal(got, msg) {
		t.Fatalf("device got %q", got)
	}
	reply := []byte("device to host\x00\xff\r\n")
	dev.Write(reply)
	if got := readN(t, port, len(reply)); !bytes.Equal(got, reply) {
		t.Fatalf("host got %q", got)
	}

	// The host switches its port to 921600 while the device stays at
	// 115200: what it sends arrives garbled.
	if err := port.SetMode(&serial.Mode{BaudRate: 921600}); err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0x55}, 64)
	port.Write(junk)
	if got := readN(t, dev, len(junk)); bytes.Equal(got, junk) {
		t.Fatal("bytes sent at 921600 arrived intact at a 115200 device")
	}
	if line.Host().Baud() != 921600 {
		t.Fatalf("host rate %d after SetMode(921600)", line.Host().Baud())
	}
	dev.SetBaud(921600)
	port.Write(msg)
	if got := readN(t, dev, len(msg)); !bytes.Equal(got, msg) {
		t.Fatalf("after both switched: device got %q", got)
	}
	// A rate without a Bnnn constant (termios BOTHER).
	port.SetMode(&serial.Mode{BaudRate: 1234567})
	dev.SetBaud(1234567)
	port.Write(msg)
	if got := readN(t, dev, len(msg)); !bytes.Equal(got, msg) {
		t.Fatalf("at 1234567 baud: device got %q", got)
	}
}

func TestPTYPortDisconnect(t *testing.T) {
	line, p := portsOn(t, link.Config{Baud: 2000000})
	ttyLink := filepath.Join(t.TempDir(), "ttyESP")
	if _, err := p.AttachPTY(ttyLink); err != nil {
		t.Fatal(err)
	}

	port, err := serial.Open(ttyLink, &serial.Mode{BaudRate: 2000000})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	readErr := make(chan error, 1)
	go func() {
		_, err := port.Read(make([]byte, 16))
		readErr <- err
	}()
	line.Disconnect()
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("read on the old port succeeded after the cut")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the host's port did not fail after the line was cut")
	}
	// The link points at a new terminal (perhaps reusing the number)
	// that works.
	var port2 serial.Port
	for i := 0; ; i++ {
		port2, err = serial.Open(ttyLink, &serial.Mode{BaudRate: 2000000})
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("reopen %s: %v", ttyLink, err)
	}
	defer port2.Close()
	if err := line.WaitUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	port2.Write([]byte("again"))
	if got := readN(t, line.Device(), 5); string(got) != "again" {
		t.Fatalf("after reconnect: %q", got)
	}
}

func TestWebSocketPort(t *testing.T) {
	line, p := portsOn(t, link.Config{Baud: 115200})
	url, err := p.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if line.Up() {
		t.Fatal("line up with no client")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, _, err := websocket.Dial(ctx, url+"?baud=460800", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := line.WaitUp(ctx); err != nil {
		t.Fatal(err)
	}
	if b := line.Host().Baud(); b != 460800 {
		t.Fatalf("host rate %d, want the ?baud=460800 of the connection", b)
	}
	line.Device().SetBaud(460800)
	msg := []byte("over the socket")
	c.Write(ctx, websocket.MessageBinary, msg)
	if got := readN(t, line.Device(), len(msg)); !bytes.Equal(got, msg) {
		t.Fatalf("device got %q", got)
	}
	line.Device().Write([]byte("reply"))
	var got []byte
	for len(got) < 5 {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	if string(got) != "reply" {
		t.Fatalf("client got %q", got)
	}

	// A second connection replaces the first.
	c2, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err == nil {
		t.Fatal("first connection still open after a second one")
	}
	if b := line.Host().Baud(); b != 115200 {
		t.Fatalf("host rate %d, want the default 115200", b)
	}
	// A line cut closes the connection.
	line.Disconnect()
	if _, _, err := c2.Read(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("connection not closed by the cut: %v", err)
	}
}
