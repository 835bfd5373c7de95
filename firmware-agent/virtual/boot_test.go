package virtual

import (
	"bytes"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/internal/shareddata"
	"github.com/gota-dev/gota/protocol"
)

// TestRebootLogAtConsoleRate resets a device whose app had switched its
// UART to 921600 while the host listens at 115200, as a terminal on a
// real board does: the boot log must arrive readable, each line no
// earlier than the time since reset it claims, and the reset must take
// at least the modelled boot time.
func TestRebootLogAtConsoleRate(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a boot")
	}
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	content, err := device.Build(device.CreateOptions{App: v11})
	if err != nil {
		t.Fatal(err)
	}
	fl := flash.FromBytes(content)
	fl.SetTiming(flash.RealisticTiming)
	d, err := New(fl, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	host, dev := d.Line().Host(), d.Line().Device()
	dev.SetBaudNow(921600) // the app's rate; the host stays at 115200

	var (
		mu    sync.Mutex
		buf   bytes.Buffer
		reset bool                         // the reset's ROM banner arrived
		lines = map[string]time.Duration{} // first arrival of each line after it
	)
	var start time.Time
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := host.Read(b)
			mu.Lock()
			buf.Write(b[:n])
			for {
				i := bytes.IndexByte(buf.Bytes(), '\n')
				if i < 0 {
					break
				}
				l := string(buf.Next(i + 1))
				// The power-on boot's log may still be crossing the line.
				if bytes.HasPrefix([]byte(l), []byte("rst:0xc (SW_CPU_RESET)")) {
					reset = true
				}
				if _, ok := lines[l]; !ok && reset {
					lines[l] = time.Since(start)
				}
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	// Let the power-on boot's log cross the line first.
	time.Sleep(time.Second)
	mu.Lock()
	start = time.Now()
	mu.Unlock()
	if err := d.Device().Reboot(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	took, bt := time.Since(start), d.Device().BootTime()
	mu.Unlock()
	if took < bt || bt < 300*time.Millisecond {
		t.Errorf("reboot returned after %v, modelled boot %v", took, bt)
	}
	if got := dev.Baud(); got != 115200 {
		t.Errorf("device UART at %d after the reset, want 115200", got)
	}
	// Let the last lines cross the line.
	deadline := time.Now().Add(5 * time.Second)
	stamp := regexp.MustCompile(`^I \((\d+)\) main_task: Calling app_main\(\)`)
	for {
		mu.Lock()
		var appMain string
		var at time.Duration
		for l, a := range lines {
			if stamp.MatchString(l) {
				appMain, at = l, a
			}
		}
		_, banner := lines["I (29) boot: ESP-IDF v5.1.3 2nd stage bootloader\n"]
		seen := len(lines)
		mu.Unlock()
		if appMain != "" {
			m := stamp.FindStringSubmatch(appMain)
			ms, _ := strconv.Atoi(m[1])
			if at < time.Duration(ms)*time.Millisecond {
				t.Errorf("%q arrived %v after the reset", appMain, at)
			}
			if !banner {
				t.Errorf("the bootloader's banner did not arrive readable at 115200 (%d lines)", seen)
			}
			return
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("no readable app_main line at 115200; got %q", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestResetAnnouncesBoot resets each agent's device (EN) while the host
// listens: the app that starts after the reset prints its banner and
// sends READY (boot), as it does at power-on. On a bridge line nothing
// else announces it: the host opening the port sends no READY (attach).
func TestResetAnnouncesBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for two boots")
	}
	app := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	for _, agent := range []string{"go", "c"} {
		t.Run(agent, func(t *testing.T) {
			if !slices.Contains(Agents(), agent) {
				t.Fatalf("agent %q not built in (cgo off?)", agent)
			}
			content, err := device.Build(device.CreateOptions{App: app})
			if err != nil {
				t.Fatal(err)
			}
			d, err := New(flash.FromBytes(content), Config{Agent: agent})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			readies := make(chan protocol.Ready, 8)
			var mu sync.Mutex
			var text bytes.Buffer
			dec := protocol.NewDecoder(protocol.LimitMaxPayload, func(f protocol.Frame) {
				if r, err := protocol.DecodeReady(f.Payload); f.Type == protocol.TypeReady && err == nil {
					readies <- r
				}
			}, func(b []byte) { mu.Lock(); text.Write(b); mu.Unlock() })
			go io.Copy(dec, d.Host())
			wait := func(what string) {
				t.Helper()
				select {
				case r := <-readies:
					if r.Reason != protocol.ReadyBoot {
						t.Errorf("%s: READY reason %d, want boot", what, r.Reason)
					}
				case <-time.After(10 * time.Second):
					mu.Lock()
					defer mu.Unlock()
					t.Fatalf("%s: no READY within 10 s; console:\n%s", what, text.String())
				}
			}
			wait("power-on")
			d.Board().Reset()
			wait("after the reset")
			mu.Lock()
			defer mu.Unlock()
			if n := strings.Count(text.String(), "gota-agent: ready"); n != 2 {
				t.Errorf("banner printed %d times, want 2 (power-on, reset):\n%s", n, text.String())
			}
			select {
			case r := <-readies:
				t.Errorf("an extra READY (reason %d)", r.Reason)
			case <-time.After(300 * time.Millisecond):
			}
		})
	}
}
