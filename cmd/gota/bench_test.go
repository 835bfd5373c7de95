package main

import (
	"bytes"
	"compress/flate"
	"context"
	"testing"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/virtual"
)

func TestRandomAppImage(t *testing.T) {
	b, err := randomAppImage(1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 1<<20 || len(b) < 1<<20-64 {
		t.Fatalf("image is %d bytes, want just under 1 MiB", len(b))
	}
	img, err := espimage.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Verify(espimage.VerifyOptions{Chip: espimage.ChipESP32, CheckChip: true, ChipRev: 300,
		PartitionOffset: 0x10000, RequireApp: true}); err != nil {
		t.Fatalf("random image does not verify: %v", err)
	}
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestCompression)
	w.Write(b)
	w.Close()
	if z.Len() < len(b)*99/100 {
		t.Fatalf("random image compresses to %d of %d bytes", z.Len(), len(b))
	}
	if b2, _ := randomAppImage(1<<20, 1); !bytes.Equal(b, b2) {
		t.Fatal("same seed, different image")
	}
}

// TestBenchOnce times one small update per agent in process (line,
// agent, device, updater) and checks the figures are consistent; it
// asserts no times, only what the emulation can never do: carry bytes
// faster than the wire.
func TestBenchOnce(t *testing.T) {
	img, err := randomAppImage(48<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	running, err := randomAppImage(16<<10, 5)
	if err != nil {
		t.Fatal(err)
	}
	sc := benchScenario{name: "random", image: img, running: running}
	for _, agent := range virtual.Agents() {
		t.Run(agent, func(t *testing.T) {
			r, err := benchOnce(context.Background(), agent, sc, benchOptions{baud: 921600, runs: 1, timing: flash.RealisticTiming})
			if err != nil {
				t.Fatal(err)
			}
			if r.transfer <= 0 || r.endToEnd < r.transfer {
				t.Fatalf("transfer %v, end to end %v", r.transfer, r.endToEnd)
			}
			if r.wire < int64(len(img)) {
				t.Fatalf("%d wire bytes for %d incompressible image bytes", r.wire, len(img))
			}
			if u := r.utilisation(); u > 1 {
				t.Fatalf("line use %.3f: the emulated wire carried bytes faster than %d baud", u, r.baud)
			}
			t.Logf("%s at %d baud: transfer %v, end to end %v, %d wire bytes, line use %.3f", agent, r.baud, r.transfer, r.endToEnd, r.wire, r.utilisation())
		})
	}
}

func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{{"--baud", "0"}, {"--runs", "0"}, {"--agent", "python"}, {"--uart", "rs485"}, {"extra"}} {
		var out, errOut bytes.Buffer
		if err := bench(context.Background(), &out, &errOut, args); err == nil {
			t.Errorf("bench %v: accepted", args)
		}
	}
}

func TestGoalNote(t *testing.T) {
	o := benchOptions{uart: link.Bridge, timing: flash.RealisticTiming}
	if got := goalNote("go", "LEDController v1.1 over v1.0", 921600, o, 0.57, 0.70); got != "transfer ≤ 0.58 met, e2e ≤ 0.66 MISSED" {
		t.Errorf("goalNote = %q", got)
	}
	if got := goalNote("lua", "LEDController v1.1 over v1.0", 115200, o, 1, 1); got != "" {
		t.Errorf("goalNote for another agent = %q, want none", got)
	}
	o.timing = flash.Timing{}
	if got := goalNote("go", "LEDController v1.1 over v1.0", 921600, o, 1, 1); got != "" {
		t.Errorf("goalNote with instant flash = %q, want none", got)
	}
}
