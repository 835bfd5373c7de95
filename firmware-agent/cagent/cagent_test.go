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

func TestSmoke(t *testing.T) {
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
	t.Logf("%+v caps %+v", di, s.Caps())
	if err := s.Flash(ctx, v11, updater.FlashOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", s.Stats())
	di = s.LastInfo()
	t.Logf("running %s %+v", di.Running, di.Find("app1"))
}

type pipePort struct{ net.Conn }

func (pipePort) SetBaud(int) error { return nil }
