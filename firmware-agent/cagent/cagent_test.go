package cagent_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/cagent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/internal/shareddata"
	"github.com/gota-dev/gota/protocol"
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

// hostEnd is the host side of an emulated line as an updater.Port.
type hostEnd struct{ *link.End }

func (h hostEnd) SetBaud(b int) error { h.End.SetBaudNow(b); return nil }

// TestUARTModel flashes over the emulated bridge UART with realistic flash
// timing, where the ISR stops during flash operations unless it is in
// IRAM: with the ISR in IRAM the agent grants a window its ring holds,
// without it a single frame; either way no byte is lost to a full FIFO.
func TestUARTModel(t *testing.T) {
	v10, _ := espimage.SetVersion(shareddata.File(t, "esp32-ledcontroller-v1.0.bin"), "1.0.0")
	v11, _ := espimage.SetVersion(shareddata.File(t, "esp32-ledcontroller-v1.1.bin"), "1.1.0")
	for _, tc := range []struct {
		name   string
		noIRAM bool
		window int
	}{
		{"ISR in IRAM", false, cagent.DefaultWindow},
		{"ISR in flash", true, cagent.DefaultMaxFrame - 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content, err := device.Build(device.CreateOptions{App: v10})
			if err != nil {
				t.Fatal(err)
			}
			fl := flash.FromBytes(content)
			fl.SetTiming(flash.RealisticTiming)
			line := link.New(link.Config{})
			defer line.Close()
			fl.SetGuard(line.FlashGuard())
			defer fl.SetGuard(nil)
			con := cagent.NewConsole()
			dev, err := device.Open(device.Config{Flash: fl, Log: con})
			if err != nil {
				t.Fatal(err)
			}
			uart := line.Device()
			a := cagent.New(dev, con, cagent.Options{NoISRInIRAM: tc.noIRAM, SetBaud: uart.SetBaud,
				InstallDriver: func(u cagent.UART) {
					uart.InstallDriver(link.Receiver{RingBuffer: u.RxBuffer, ISRInIRAM: u.ISRInIRAM})
				}})
			defer a.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			go a.Serve(ctx, uart)
			s, err := updater.Connect(ctx, hostEnd{line.Host()}, updater.Options{Baud: 921600, Compression: true})
			if err != nil {
				t.Fatal(err)
			}
			if c := s.Caps(); c.Window != tc.window {
				t.Errorf("window %d, want %d", c.Window, tc.window)
			}
			if d := line.Driver(); d.ISRInIRAM == tc.noIRAM || d.RingBuffer != cagent.DefaultRxBuffer {
				t.Errorf("driver on the line %+v", d)
			}
			if err := s.Flash(ctx, v11, updater.FlashOptions{NoReboot: true}); err != nil {
				t.Fatal(err)
			}
			st := line.Stats()
			t.Logf("line %+v, session %+v", st, s.Stats())
			if st.DeviceOverruns != 0 {
				t.Errorf("%d bytes lost to a full RX FIFO", st.DeviceOverruns)
			}
			if ss := s.Stats(); ss.Rewinds+ss.Resent != 0 {
				t.Errorf("data sent again on a clean line: %+v", ss)
			}
		})
	}
}

// TestAcceptHook: an app whose accept hook approves its build marks it
// valid as it starts; without a hook the new build stays on trial.
func TestAcceptHook(t *testing.T) {
	v10, _ := espimage.SetVersion(shareddata.File(t, "esp32-ledcontroller-v1.0.bin"), "1.0.0")
	v11, _ := espimage.SetVersion(shareddata.File(t, "esp32-ledcontroller-v1.1.bin"), "1.1.0")
	for _, tc := range []struct {
		hook bool
		want protocol.OTAState
	}{{false, "testing"}, {true, "valid"}} {
		t.Run(fmt.Sprintf("hook=%v", tc.hook), func(t *testing.T) {
			content, err := device.Build(device.CreateOptions{App: v10})
			if err != nil {
				t.Fatal(err)
			}
			con := cagent.NewConsole()
			dev, err := device.Open(device.Config{Flash: flash.FromBytes(content), Log: con})
			if err != nil {
				t.Fatal(err)
			}
			a := cagent.New(dev, con, cagent.Options{AcceptOnBoot: tc.hook})
			defer a.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			host, devEnd := net.Pipe()
			defer host.Close()
			go a.Serve(ctx, devEnd)
			s, err := updater.Connect(ctx, pipePort{host}, updater.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Flash(ctx, v11, updater.FlashOptions{}); err != nil {
				t.Fatal(err)
			}
			di, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if p := di.Find("app1"); di.Running != "app1" || p.State != tc.want {
				t.Errorf("running %s, app1 %q, want %q", di.Running, p.State, tc.want)
			}
		})
	}
}
