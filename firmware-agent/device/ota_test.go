package device

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gota-dev/gota/firmware-agent/flash"
)

// TestEmptyWriteNeedsNoHandle: esp_ota_write (esp_ota_ops.c, v5.1.3)
// returns ESP_OK for size 0 before it looks the handle up, so
// otaupgrade.write("") succeeds with no upgrade in progress, while a
// non-empty write without a handle fails with ESP_ERR_INVALID_ARG
// ("not found the handle" in the log, "write not possible" from NodeMCU).
func TestEmptyWriteNeedsNoHandle(t *testing.T) {
	var log bytes.Buffer
	f := layout{table: smallTable(false, 2), images: map[string][]byte{"ota_0": synthApp(t, "v1")}}.build(t)
	d, err := Open(Config{Flash: f, Log: &log})
	must(t, err)
	before := f.Bytes()
	if err := d.Write(nil); err != nil {
		t.Errorf("empty write without a handle: %v, want nil", err)
	}
	if err := d.Write([]byte{}); err != nil {
		t.Errorf("empty write without a handle: %v, want nil", err)
	}
	if !bytes.Equal(f.Bytes(), before) {
		t.Error("an empty write changed the flash")
	}
	log.Reset()
	wantDeviceErr(t, d.Write([]byte{0xE9}), ErrInvalidArg, MsgWriteNotPossible)
	if !strings.Contains(log.String(), ") esp_ota_ops: not found the handle\n") {
		t.Errorf("log lacks esp_ota_write's message:\n%s", log.String())
	}
	// After commence an empty first write does not trip the magic-byte check.
	must(t, d.Commence())
	must(t, d.Write(nil))
	must(t, d.Write(synthApp(t, "v2")))
	must(t, d.Complete(false))
}

// TestCompleteIgnoresSetBoot: otaupgrade.c's complete() drops what
// esp_ota_set_boot_partition returns. With the otadata write failing
// (power cut after esp_ota_end's verify) Complete still succeeds, and the
// next boot runs whatever otadata selects: the old build.
func TestCompleteIgnoresSetBoot(t *testing.T) {
	v1 := synthApp(t, "v1")
	f := layout{table: smallTable(false, 2), images: map[string][]byte{"ota_0": v1}}.build(t)
	d := mustOpen(t, f)
	must(t, otaUpdateNoComplete(d, synthApp(t, "v2")))
	f.CutPowerAfter(0, false) // the otadata sector erase never happens
	if err := d.Complete(false); err != nil {
		t.Fatalf("Complete: %v, want nil (the set-boot result is ignored)", err)
	}
	if !f.PoweredOff() {
		t.Fatal("set-boot did not reach the flash")
	}
	f.PowerOn()
	d2 := mustOpen(t, f)
	if d2.image.Digest != digestOf(t, v1) {
		t.Errorf("after the failed set-boot running %s, want v1", runningName(d2))
	}
	// With reboot requested the failure shows when the chip restarts.
	f = layout{table: smallTable(false, 2), images: map[string][]byte{"ota_0": v1}}.build(t)
	d = mustOpen(t, f)
	must(t, otaUpdateNoComplete(d, synthApp(t, "v2")))
	f.CutPowerAfter(0, false)
	if err := d.Complete(true); !errors.Is(err, flash.ErrPowerCut) {
		t.Errorf("Complete(true): %v, want the power cut from the reboot", err)
	}
}
