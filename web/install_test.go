package web

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gota-dev/gota/internal/shareddata"
)

func TestPlanFor(t *testing.T) {
	app := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	merged := bytes.Repeat([]byte{0xFF}, 0x10000)
	copy(merged[0x1000:], shareddata.File(t, "bootloader-esp32-arduino.bin"))
	copy(merged[0x8000:], shareddata.File(t, "partitions-arduino-ota.bin"))
	merged = append(merged, app...)

	p, err := planFor("factory.bin", merged)
	if err != nil {
		t.Fatal(err)
	}
	f := &InstallFile{Name: "factory.bin", Plan: p}
	lines := strings.Join(f.PlanLines(true), "\n")
	for _, want := range []string{"erase the whole", "write 0x000000-0x05d610", "0x010000  app arduino-lib-builder", "in app0"} {
		if !strings.Contains(lines, want) {
			t.Errorf("plan lacks %q:\n%s", want, lines)
		}
	}
	if _, err := planFor("app.bin", app); err == nil || !strings.Contains(err.Error(), "OTA panel") {
		t.Errorf("app alone: %v", err)
	}
	if _, err := planFor("manifest.json", []byte(`{"builds":[]}`)); err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Errorf("manifest: %v", err)
	}
}

func TestMergedApp(t *testing.T) {
	app := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	merged := bytes.Repeat([]byte{0xFF}, 0x10000)
	copy(merged[0x1000:], shareddata.File(t, "bootloader-esp32-arduino.bin"))
	copy(merged[0x8000:], shareddata.File(t, "partitions-arduino-ota.bin"))
	merged = append(merged, app...)
	got, note := mergedApp("factory.bin", merged)
	if !bytes.Equal(got, app) || !strings.Contains(note, "its app part (app0, 0x10000") {
		t.Errorf("mergedApp: %d bytes, note %q", len(got), note)
	}
	if got, _ := mergedApp("app.bin", app); got != nil {
		t.Error("a plain app taken for a merged image")
	}
}
