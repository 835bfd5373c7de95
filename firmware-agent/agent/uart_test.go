package agent_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/agent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/virtual"
)

// bridgeDevice boots the Go agent on a virtual ESP32 with realistic flash
// timing behind the default (lossy) UART bridge.
func bridgeDevice(t *testing.T, running []byte) (*virtual.Device, *flash.Flash) {
	t.Helper()
	content, err := device.Build(device.CreateOptions{App: running})
	if err != nil {
		t.Fatal(err)
	}
	fl := flash.FromBytes(content)
	fl.SetTiming(flash.RealisticTiming)
	vd, err := virtual.New(fl, virtual.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vd.Close() })
	if got := vd.Line().Driver(); got != agent.UART {
		t.Fatalf("the agent installed %+v, want its declared %+v", got, agent.UART)
	}
	return vd, fl
}

// TestKeepsUpAtEveryRate flashes at every rate the Go agent accepts, up
// to MaxBaud, behind the lossy bridge with flash operations stopping its
// tasks: no byte may be lost to an overrun, and the slot must hold the
// image exactly.
func TestKeepsUpAtEveryRate(t *testing.T) {
	v10, v11 := image(t, "esp32-ledcontroller-v1.0.bin"), image(t, "esp32-ledcontroller-v1.1.bin")
	for _, baud := range []int{460800, 921600, agent.MaxBaud} {
		vd, fl := bridgeDevice(t, v10)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		s, err := updater.Connect(ctx, vd.Host(), updater.Options{Baud: baud, Compression: true})
		if err != nil {
			t.Fatal(err)
		}
		if s.Baud() != baud {
			t.Fatalf("session at %d baud, asked for %d", s.Baud(), baud)
		}
		if err := s.Flash(ctx, v11, updater.FlashOptions{NoReboot: true}); err != nil {
			t.Fatalf("%d baud: %v", baud, err)
		}
		st := vd.Line().Stats()
		if st.DeviceOverruns != 0 {
			t.Errorf("%d baud: %d bytes lost to device overruns", baud, st.DeviceOverruns)
		}
		if got := nextSlot(t, vd, fl, len(v11)); !bytes.Equal(got, v11) {
			t.Errorf("%d baud: the slot that boots next does not hold the image", baud)
		}
		if ss := s.Stats(); ss.Rewinds+ss.Resent != 0 {
			t.Errorf("%d baud: %d rewinds and %d resends on a fault-free line", baud, ss.Rewinds, ss.Resent)
		}
		s.Close()
		cancel()
	}
}

// TestRefusesRatesItCannotTake: above MaxBaud the ring would overrun
// during a block erase, so BAUD is refused with the reason and the
// session stays at 115200.
func TestRefusesRatesItCannotTake(t *testing.T) {
	vd, _ := bridgeDevice(t, image(t, "esp32-ledcontroller-v1.0.bin"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs []string
	s, err := updater.Connect(ctx, vd.Host(), updater.Options{Baud: 2000000, Log: func(l string) { logs = append(logs, l) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Baud() != link.DefaultBaud {
		t.Fatalf("session at %d baud, want it to stay at %d", s.Baud(), link.DefaultBaud)
	}
	if all := strings.Join(logs, "\n"); !strings.Contains(all, "receive ring overruns") {
		t.Errorf("the refusal does not say why:\n%s", all)
	}
}

// TestModelBitesNaiveAgent: an agent whose UART ISR is not in IRAM loses
// the host's bytes while the flash works, so the same update needs
// resends. The line model must not be kinder than the board.
func TestModelBitesNaiveAgent(t *testing.T) {
	v10, v11 := image(t, "esp32-ledcontroller-v1.0.bin"), image(t, "esp32-ledcontroller-v1.1.bin")
	vd, _ := bridgeDevice(t, v10)
	vd.Line().Device().InstallDriver(link.Receiver{RingBuffer: agent.UART.RingBuffer}) // ESP-IDF's default: ISR not in IRAM
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	s, err := updater.Connect(ctx, vd.Host(), updater.Options{Baud: 921600, Compression: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Flash(ctx, v11, updater.FlashOptions{NoReboot: true}); err != nil {
		t.Fatal(err)
	}
	st, ss := vd.Line().Stats(), s.Stats()
	if st.DeviceOverruns == 0 || ss.Rewinds+ss.Resent == 0 {
		t.Errorf("no overruns (%d) or no resends (%+v) with the ISR out of IRAM during flash operations", st.DeviceOverruns, ss)
	}
	t.Logf("overruns %d, session %+v", st.DeviceOverruns, ss)
}

// nextSlot reads n bytes of the partition the device boots next.
func nextSlot(t *testing.T, vd *virtual.Device, fl *flash.Flash, n int) []byte {
	t.Helper()
	info, err := vd.Device().Info()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range info.Partitions {
		if p.Label == info.Next {
			b := make([]byte, n)
			if _, err := fl.ReadAt(b, int64(p.Offset)); err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("next boot partition %q not in %+v", info.Next, info.Partitions)
	return nil
}
