package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/internal/shareddata"
)

// runDeviceCmd runs a device subcommand, returning stdout, stderr and
// its error.
func runDeviceCmd(t *testing.T, f func(o, e io.Writer, a []string) error, args ...string) (string, string, error) {
	t.Helper()
	var o, e bytes.Buffer
	err := f(&o, &e, args)
	return o.String(), e.String(), err
}

var (
	create  = deviceCreate
	inspect = deviceInspect
)

func inspectJSONOf(t *testing.T, path string) inspectJSON {
	t.Helper()
	out, _, err := runDeviceCmd(t, inspect, "--json", path)
	var ee exitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	var rep inspectJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	return rep
}

func TestDeviceCreateAndInspect(t *testing.T) {
	dir := shareddata.Dir(t)
	v10, v11 := filepath.Join(dir, "esp32-ledcontroller-v1.0.bin"), filepath.Join(dir, "esp32-ledcontroller-v1.1.bin")
	path := filepath.Join(t.TempDir(), "esp32.flash")

	out, _, err := runDeviceCmd(t, create, path, "--app", v10)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "arduino-lib-builder 37d69ca (316944 bytes) in app0 at 0x10000") {
		t.Errorf("create output: %s", out)
	}
	before, _ := os.ReadFile(path)
	out, _, err = runDeviceCmd(t, inspect, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"4 MiB flash, partition table at 0x8000 (MD5 ok)",
		"sector 0: blank",
		"on boot the bootloader writes otadata sector 0: seq 1, state valid (initial otadata)",
		"next boot: app0 at 0x10000",
		"empty (erased)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("inspect changed the flash file")
	}
	img, err := espimage.Parse(shareddata.File(t, "esp32-ledcontroller-v1.0.bin"))
	if err != nil {
		t.Fatal(err)
	}
	rep := inspectJSONOf(t, path)
	if rep.Boot.Partition != "app0" || len(rep.Apps) != 2 || rep.Apps[0].SHA256 != hex.EncodeToString(img.Digest[:]) || !rep.Apps[0].Valid || rep.Apps[1].Valid {
		t.Errorf("inspect --json: %+v", rep)
	}

	// Update to v1.1 on the device without rebooting: the bootloader
	// would mark the new entry PENDING_VERIFY and boot app1.
	f, err := flash.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := device.Open(device.Config{Flash: f})
	if err != nil {
		t.Fatal(err)
	}
	app, _ := os.ReadFile(v11)
	if err := d.Commence(); err != nil {
		t.Fatal(err)
	}
	if err := d.Write(app); err != nil {
		t.Fatal(err)
	}
	if err := d.Complete(false); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, _, err = runDeviceCmd(t, inspect, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"sector 0: seq 1 (slot 0), state valid, crc ok",
		"sector 1: seq 2 (slot 1), state new, crc ok  <- active",
		"on boot the bootloader writes otadata sector 1: seq 2, state testing (NEW -> PENDING_VERIFY)",
		"next boot: app1 at 0x190000",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect after update lacks %q:\n%s", want, out)
		}
	}
	rep = inspectJSONOf(t, path)
	if rep.Apps[1].State != "new" || rep.Apps[0].State != "valid" || *rep.Otadata.Active != 1 {
		t.Errorf("inspect --json after update: apps %+v otadata %+v", rep.Apps, rep.Otadata)
	}

	// Corrupt app1: the bootloader falls back to app0.
	raw, _ := os.ReadFile(path)
	raw[0x190000+0x1000] ^= 0xFF
	os.WriteFile(path, raw, 0o644)
	out, _, err = runDeviceCmd(t, inspect, path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "on boot app1 fails to load: ") || !strings.Contains(out, "next boot: app0 at 0x10000") || !strings.Contains(out, "INVALID: ") {
		t.Errorf("inspect with corrupt app1:\n%s", out)
	}
}

func TestDeviceCreateRefuses(t *testing.T) {
	dir := shareddata.Dir(t)
	v10 := filepath.Join(dir, "esp32-ledcontroller-v1.0.bin")
	tmp := t.TempDir()
	small := filepath.Join(tmp, "small.csv")
	os.WriteFile(small, []byte("nvs,data,nvs,,0x5000\notadata,data,ota,,0x2000\napp0,app,ota_0,,256K\napp1,app,ota_1,,256K\n"), 0o644)
	factory := filepath.Join(tmp, "factory.csv")
	os.WriteFile(factory, []byte("nvs,data,nvs,,0x4000\notadata,data,ota,,0x2000\nphy_init,data,phy,,0x1000\nfactory,app,factory,,1M\nota_0,app,ota_0,,1M\nota_1,app,ota_1,,1M\n"), 0o644)
	for _, c := range []struct {
		name string
		args []string
		want string // error text; "" = success
		boot string
	}{
		{"wrong chip", []string{"--app", filepath.Join(dir, "esp32s2-blink.bin")}, "wrong chip", ""},
		{"bootloader", []string{"--app", filepath.Join(dir, "bootloader-esp32-arduino.bin")}, "not an app image", ""},
		{"too big", []string{"--app", v10, "--partitions", small}, "partition \"app0\" holds 262144", ""},
		{"bad flash size", []string{"--app", v10, "--flash-size", "3MB"}, "want 2MB, 4MB, 8MB or 16MB", ""},
		{"table larger than flash", []string{"--app", v10, "--flash-size", "2MB"}, "does not fit a 2 MiB flash", ""},
		{"other chip asked for", []string{"--app", v10, "--chip", "esp32c3"}, "wrong chip", ""},
		{"factory table", []string{"--app", v10, "--partitions", factory}, "", "factory"},
		{"16 MiB", []string{"--app", v10, "--flash-size", "16MB"}, "", "app0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(tmp, strings.ReplaceAll(c.name, " ", "_")+".flash")
			_, _, err := runDeviceCmd(t, create, append([]string{path}, c.args...)...)
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want %q", err, c.want)
				}
				if _, err := os.Stat(path); err == nil {
					t.Error("a refused create left a file behind")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep := inspectJSONOf(t, path); rep.Boot.Partition != c.boot {
				t.Errorf("boots %q, want %q", rep.Boot.Partition, c.boot)
			}
		})
	}
	if _, _, err := runDeviceCmd(t, create, filepath.Join(tmp, "x")); err != (exitError{2}) {
		t.Errorf("create without --app: %v, want exit 2", err)
	}
}

func TestDeviceInspectNothingBootable(t *testing.T) {
	v10 := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	b, err := device.Build(device.CreateOptions{App: v10})
	if err != nil {
		t.Fatal(err)
	}
	b[0x10000] = 0x00 // app0's magic byte
	path := filepath.Join(t.TempDir(), "broken.flash")
	os.WriteFile(path, b, 0o644)
	out, _, err := runDeviceCmd(t, inspect, path)
	if err != (exitError{1}) {
		t.Errorf("exit %v, want 1", err)
	}
	if !strings.Contains(out, "next boot: NOTHING bootable") {
		t.Errorf("output:\n%s", out)
	}
}

// TestDeviceInspectBootErrors: the boot attempts and the reset reason
// carry ESP-IDF v5.1.3's own messages (esp_image_format.c image_load,
// bootloader_utility.c read_otadata), not Go error text.
func TestDeviceInspectBootErrors(t *testing.T) {
	v10 := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	dir := t.TempDir()

	b, err := device.Build(device.CreateOptions{App: v10})
	if err != nil {
		t.Fatal(err)
	}
	b[0x10000+0x1000] ^= 0xFF // app0 data: checksum and SHA-256 now wrong
	broken := filepath.Join(dir, "checksum.flash")
	os.WriteFile(broken, b, 0o644)
	rep := inspectJSONOf(t, broken)
	if len(rep.Boot.Attempts) == 0 || !strings.HasPrefix(rep.Boot.Attempts[0].Error, "Checksum failed. Calculated 0x") {
		t.Errorf("attempts %+v, want ESP-IDF's checksum message", rep.Boot.Attempts)
	}
	log := strings.Join(rep.Boot.Log, "\n")
	if !strings.Contains(log, "I esp_image: segment 0: paddr=00010020 vaddr=3f400020") || !strings.Contains(log, "E esp_image: Checksum failed.") {
		t.Errorf("boot log:\n%s", log)
	}

	// An otadata partition of one sector: the bootloader resets at once.
	tb := device.DefaultTable()
	tb.Find("otadata").Size = 0x1000
	b, err = device.Build(device.CreateOptions{App: v10, Table: tb})
	if err == nil {
		t.Fatal("Build accepted a 0x1000-byte otadata (gen_esp32part.py refuses it)")
	}
	b, err = device.Build(device.CreateOptions{App: v10})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := tb.Encode()
	if err != nil {
		t.Fatal(err)
	}
	copy(b[0x8000:], enc)
	small := filepath.Join(dir, "small-otadata.flash")
	os.WriteFile(small, b, 0o644)
	out, _, err := runDeviceCmd(t, inspect, small)
	if err != (exitError{1}) {
		t.Errorf("exit %v, want 1", err)
	}
	if !strings.Contains(out, "on boot the bootloader resets before trying any app: otadata partition smaller than two sectors") {
		t.Errorf("output:\n%s", out)
	}
}
