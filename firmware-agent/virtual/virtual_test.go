package virtual

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/nodemcu"
	"github.com/gota-dev/gota/internal/shareddata"
)

// TestLuaAgent runs the Lua agent on an emulated line and flashes a new
// build through it: on the default board (current NodeMCU with the
// console module, whose rate is fixed, and a bootloader without
// rollback, as stock NodeMCU builds have) and on an older firmware with
// a rollback-enabled bootloader, switching to a faster rate with the BAUD
// request (uart.setup in gota.lua).
func TestLuaAgent(t *testing.T) {
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	tests := []struct {
		name      string
		cfg       Config
		ask       int    // rate the host asks for
		baud      int    // reached after Connect
		wantState string // of the new build after Flash
	}{
		{"default", Config{Agent: "lua"}, 921600, 115200, "undefined"},
		// gota.lua offers up to 230400 (its console reads byte by byte).
		{"uart-start+rollback", Config{Agent: "lua", Profile: "uart-start", Rollback: true}, 230400, 230400, "testing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			content, err := device.Build(device.CreateOptions{App: v11})
			if err != nil {
				t.Fatal(err)
			}
			tc.cfg.Line = link.Config{Baud: 115200}
			d, err := New(flash.FromBytes(content), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			line := d.Line()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()

			s, err := updater.Connect(ctx, d.Host(), updater.Options{Baud: tc.ask})
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer s.Close()
			if got := s.Caps().Agent; got != "gota-lua/1" {
				t.Fatalf("agent %q, want gota-lua/1", got)
			}
			if s.Baud() != tc.baud || line.Device().Baud() != tc.baud {
				t.Fatalf("baud: host %d device %d, want %d both", s.Baud(), line.Device().Baud(), tc.baud)
			}
			img, err := espimage.SetVersion(v11, "9.8.0")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Flash(ctx, img, updater.FlashOptions{}); err != nil {
				t.Fatalf("Flash: %v", err)
			}
			// The reboot brought the console back to 115200; the session followed.
			if line.Device().Baud() != s.Baud() {
				t.Errorf("after reboot: host %d device %d", s.Baud(), line.Device().Baud())
			}
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if p := info.Find(info.Running); info.Running != "app1" || p == nil || p.Version != "9.8.0" || p.State != tc.wantState {
				t.Errorf("after Flash: running %s %+v, want state %q", info.Running, p, tc.wantState)
			}
		})
	}
}

func TestUnknownProfile(t *testing.T) {
	_, err := New(flash.NewMemory(4<<20), Config{Agent: "lua", Profile: "dev"})
	if err == nil || !strings.Contains(err.Error(), `profile "dev"`) {
		t.Fatalf("err %v, want one naming the profile", err)
	}
}

func TestUnknownAgent(t *testing.T) {
	_, err := New(flash.NewMemory(4<<20), Config{Agent: "python"})
	if !errors.Is(err, ErrUnknownAgent) || !strings.Contains(err.Error(), `agent "python"`) {
		t.Fatalf("err %v, want ErrUnknownAgent naming the agent", err)
	}
}

func TestLineLog(t *testing.T) {
	var got []string
	w := LineLog(func(l string) { got = append(got, l) })
	for _, chunk := range []string{"I (31) boot: ESP-IDF", " v5.3\r\nI (", "40) next\n\npartial"} {
		w.Write([]byte(chunk))
	}
	want := []string{"I (31) boot: ESP-IDF v5.3", "I (40) next", ""}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q (the unfinished line held back)", got, want)
	}
}

// TestLuaAgentReceivePath flashes through gota.lua on the uart-start
// generation with realistic flash timing and NodeMCU's console receive
// path (128-byte FIFO, 256-byte ring, ISR stopped during flash
// operations, 100-byte task queue, the board reading only as Lua takes
// bytes) at the fastest rate the agent offers (230400). The control lets
// the agent take 921600 and advertise a 16 KiB window, as an agent that
// overrated its buffering would: the device's FIFO overruns, which shows
// the model can tell. (Overruns at 230400 are logged, not failed: on a
// loaded test machine the emulation itself can fall behind.)
func TestLuaAgentReceivePath(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of emulated erase and line time")
	}
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	img, err := espimage.SetVersion(v11, "9.8.1")
	if err != nil {
		t.Fatal(err)
	}
	overrated := bytes.Replace(nodemcu.AgentScript, []byte("local WINDOW = MAX_PAYLOAD - 4"), []byte("local WINDOW = 16384"), 1)
	if bytes.Equal(overrated, nodemcu.AgentScript) {
		t.Fatal("WINDOW line not found in gota.lua")
	}
	overrated = append([]byte("gota_config = { max_baud = 921600 }\n"), overrated...)
	for _, tc := range []struct {
		name     string
		script   []byte
		baud     int
		wantLoss bool
	}{
		{"gota.lua", nil, 230400, false},
		{"16 KiB window at 921600", overrated, 921600, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content, err := device.Build(device.CreateOptions{App: v11})
			if err != nil {
				t.Fatal(err)
			}
			fl := flash.FromBytes(content)
			fl.SetTiming(flash.RealisticTiming)
			d, err := New(fl, Config{Agent: "lua", Profile: "uart-start", agentScript: tc.script})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			s, err := updater.Connect(ctx, d.Host(), updater.Options{Baud: tc.baud})
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer s.Close()
			if s.Baud() != tc.baud {
				t.Fatalf("line at %d, want %d", s.Baud(), tc.baud)
			}
			err = s.Flash(ctx, img, updater.FlashOptions{NoReboot: true, Progress: func(updater.Progress) {
				if tc.wantLoss && d.Line().Stats().DeviceOverruns > 0 {
					cancel() // shown: no need to finish
				}
			}})
			st := d.Line().Stats()
			t.Logf("flash: %v; %d bytes overran the device's FIFO, %d rewinds", err, st.DeviceOverruns, s.Stats().Rewinds)
			if tc.wantLoss {
				if st.DeviceOverruns == 0 {
					t.Errorf("the overrated window overran nothing: the receive model is not working")
				}
				return
			}
			if err != nil {
				t.Fatalf("Flash: %v", err)
			}
		})
	}
}
