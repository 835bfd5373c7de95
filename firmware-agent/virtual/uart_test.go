package virtual

import (
	"errors"
	"testing"
	"time"

	"github.com/gota-dev/gota/firmware-agent/link"
)

// TestUARTPort: a life's port reads the line, reports what waits
// (Buffered), and fails once the chip is reset; the next life does not get
// bytes the old one had taken.
func TestUARTPort(t *testing.T) {
	line := link.New(link.Config{Baud: 921600})
	defer line.Close()
	u := newUART(line.Device())
	p := u.port()
	line.Host().Write([]byte("0123456789"))
	for end := time.Now().Add(time.Second); p.Buffered() < 10; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("Buffered %d, want 10", p.Buffered())
		}
	}
	buf := make([]byte, 3)
	if n, err := p.Read(buf); err != nil || string(buf[:n]) != "012" {
		t.Fatalf("Read: %q %v", buf[:n], err)
	}
	if b := p.Buffered(); b != 7 {
		t.Errorf("Buffered after reading 3: %d, want 7", b)
	}
	done := make(chan error, 1)
	go func() {
		big := make([]byte, 64)
		for {
			if _, err := p.Read(big); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	q := u.port() // reset
	select {
	case err := <-done:
		if !errors.Is(err, errReset) {
			t.Fatalf("old port after reset: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("old port's Read still blocked after reset")
	}
	if _, err := p.Write([]byte("x")); !errors.Is(err, errReset) {
		t.Errorf("old port Write after reset: %v", err)
	}
	line.Host().Write([]byte("AB"))
	if n, err := q.Read(buf); err != nil || buf[0] != 'A' {
		t.Fatalf("new port reads %q %v, want what came after the reset", buf[:n], err)
	}
}
