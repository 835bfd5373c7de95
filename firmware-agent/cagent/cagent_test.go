package cagent_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/cagent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/internal/shareddata"
)

// TestFlash updates a virtual ESP32 through the C agent, with DEFLATE,
// and checks the new build runs on trial and the app declared its UART.
func TestFlash(t *testing.T) {
	v10, _ := espimage.SetVersion(shareddata.File(t, "esp32-ledcontroller-v1.0.bin"), "1.0.0")
	v11, _ := espimage.SetVersion(shareddata.File(t, "esp32-ledcontroller-v1.1.bin"), "1.1.0")
	content, err := device.Build(device.CreateOptions{App: v10})
	if err != nil {
		t.Fatal(err)
	}
	con := cagent.NewConsole()
	dev, err := device.Open(device.Config{Flash: flash.FromBytes(content), Log: con})
	if err != nil {
		t.Fatal(err)
	}
	a := cagent.New(dev, con, cagent.Options{})
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, devEnd := net.Pipe()
	go a.Serve(ctx, devEnd)
	s, err := updater.Connect(ctx, pipePort{host}, updater.Options{Compression: true, Log: func(l string) { t.Log(l) }})
	if err != nil {
		t.Fatal(err)
	}
	di, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if di.Running != "app0" || di.Chip != "esp32" {
		t.Errorf("info %+v", di)
	}
	if err := s.Flash(ctx, v11, updater.FlashOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", s.Stats())
	di = s.LastInfo()
	if p := di.Find("app1"); di.Running != "app1" || p.State != "testing" || p.Version != "1.1.0" || p.ImageLen != len(v11) {
		t.Errorf("after flash: running %s, app1 %+v", di.Running, p)
	}
	if u := a.UART(); u.RxBuffer != cagent.DefaultRxBuffer || !u.ISRInIRAM {
		t.Errorf("UART declared %+v", u)
	}
	if c := s.Caps(); c.Window != cagent.DefaultWindow || c.MaxFrame != cagent.DefaultMaxFrame || !c.Compression {
		t.Errorf("caps %+v", c)
	}
}

type pipePort struct{ net.Conn }

func (pipePort) SetBaud(int) error { return nil }
