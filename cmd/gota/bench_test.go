package main

import (
	"bytes"
	"compress/flate"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/firmware-agent/flash"
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

// TestBenchFlash runs one benchmark flash in process (line, agent,
// device, updater) and checks it reports sane figures; it asserts no
// times.
func TestBenchFlash(t *testing.T) {
	img, err := randomAppImage(128<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, agent := range benchAgents() {
		r := benchFlash(context.Background(), benchImage{name: "random", data: img}, 2000000, flash.Timing{}, agent)
		if r.Err != nil {
			t.Fatalf("%s: %v", agent, r.Err)
		}
		if r.Gota <= 0 || r.Raw <= 0 || r.WireBytes < int64(len(img)) {
			t.Fatalf("%s: result %+v: incompressible data cannot take fewer wire bytes than its size", agent, r)
		}
		t.Logf("%s: %d bytes at 2 Mbaud: raw %v, gota %v, ratio %.3f", agent, r.Size, r.Raw, r.Gota, r.Ratio())
	}
}

func TestBenchCommand(t *testing.T) {
	img, err := randomAppImage(64<<10, 4)
	if err != nil {
		t.Fatal(err)
	}
	name := t.TempDir() + "/small.bin"
	if err := writeFileForTest(name, img); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := bench(context.Background(), &out, &errOut, []string{"--baud", "2000000", "--fast-flash", name}); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "small.bin") || !strings.Contains(out.String(), "raw @2000000") {
		t.Fatalf("table:\n%s", out.String())
	}
	for _, agent := range benchAgents() {
		if !strings.Contains(out.String(), " "+agent+" ") {
			t.Errorf("no row for agent %s:\n%s", agent, out.String())
		}
	}
	if err := bench(context.Background(), &out, &errOut, []string{"--agents", "go,python", name}); err == nil || !strings.Contains(err.Error(), "python") {
		t.Errorf("--agents go,python: %v", err)
	}
	if err := bench(context.Background(), &out, &errOut, []string{"--baud", "0"}); err == nil {
		t.Fatal("--baud 0 accepted")
	}
}

func writeFileForTest(name string, b []byte) error { return os.WriteFile(name, b, 0o644) }
