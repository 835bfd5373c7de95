package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gota-dev/gota/internal/shareddata"
)

// writeMerged lays out bootloader, table and app as esptool merge_bin
// does and returns the file's path and the app image.
func writeMerged(t *testing.T, bootloaderAt uint32) (string, []byte) {
	t.Helper()
	dir := shareddata.Dir(t)
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	app := read("esp32-ledcontroller-v1.0.bin")
	out := bytes.Repeat([]byte{0xFF}, 0x10000)
	copy(out[bootloaderAt:], read("bootloader-esp32-arduino.bin"))
	copy(out[0x8000:], read("partitions-arduino-ota.bin"))
	out = append(out, app...)
	name := filepath.Join(t.TempDir(), "factory.bin")
	if err := os.WriteFile(name, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return name, app
}

func TestImageInfoMerged(t *testing.T) {
	name, _ := writeMerged(t, 0x1000)
	var out, errOut bytes.Buffer
	if err := imageInfo(&out, &errOut, []string{name}); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	for _, want := range []string{"merged esp32 image", "0x001000", "bootloader (esp32", "0x008000", "partition table (7 entries)", "0x010000  app0", "arduino-lib-builder", "verdict     valid"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := imageInfo(&out, &errOut, []string{"--json", name}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"merged_chip":"esp32"`) || !strings.Contains(out.String(), `"kind":"app","label":"app0"`) {
		t.Errorf("json: %s", out.String())
	}
}

func TestImageInfoMergedWrongOffset(t *testing.T) {
	name, _ := writeMerged(t, 0x0) // an ESP32 bootloader where S3/C3 have theirs
	var out, errOut bytes.Buffer
	err := imageInfo(&out, &errOut, []string{name})
	if err == nil || !strings.Contains(out.String(), "ROM loads it from 0x1000") {
		t.Errorf("err %v, output:\n%s", err, out.String())
	}
}

func TestAppOfMerged(t *testing.T) {
	name, app := writeMerged(t, 0x1000)
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var msg bytes.Buffer
	got, err := appOfMerged(&msg, name, b)
	if err != nil || !bytes.Equal(got, app) {
		t.Fatalf("appOfMerged: %d bytes, %v", len(got), err)
	}
	if !strings.Contains(msg.String(), "merged image: flashing its app part (app0 at 0x10000") {
		t.Errorf("message %q", msg.String())
	}
	msg.Reset()
	if got, err := appOfMerged(&msg, "app.bin", app); err != nil || !bytes.Equal(got, app) || msg.Len() != 0 {
		t.Errorf("plain app changed: %v %q", err, msg.String())
	}
}
