package main

import (
	"context"
	"testing"
	"time"

	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/virtual"
	"github.com/gota-dev/gota/internal/shareddata"
)

// TestWSSignals: a ws:// port drives the virtual board's reset circuit as
// esptool's classic reset does, and a hard reset brings the app back.
func TestWSSignals(t *testing.T) {
	content, err := device.Build(device.CreateOptions{App: shareddata.File(t, "esp32-ledcontroller-v1.1.bin")})
	if err != nil {
		t.Fatal(err)
	}
	d, err := virtual.New(flash.FromBytes(content), virtual.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	url, err := d.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := dialWSLine(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	steps := []struct {
		dtr, rts bool
		wait     time.Duration
	}{{false, true, 100 * time.Millisecond}, {true, false, 50 * time.Millisecond}, {false, false, 0}}
	for _, s := range steps {
		if err := p.SetSignals(s.dtr, s.rts); err != nil {
			t.Fatal(err)
		}
		time.Sleep(s.wait)
	}
	waitState(t, d, "download")
	p.SetSignals(false, true)
	time.Sleep(50 * time.Millisecond)
	p.SetSignals(false, false)
	waitState(t, d, "app")
}

func waitState(t *testing.T, d *virtual.Device, want string) {
	t.Helper()
	for end := time.Now().Add(3 * time.Second); d.State() != want; {
		if time.Now().After(end) {
			t.Fatalf("state %q, want %q", d.State(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
