package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/espimage"
)

// mergedImage lays out what `gota device create --app` puts in flash
// (the virtual device's stand-in bootloader, its partition table, the
// app) as esptool merge_bin does: from offset 0 to the end of the app.
func mergedImage(t *testing.T) string {
	t.Helper()
	app := shared(t, "esp32-ledcontroller-v1.1.bin")
	full := filepath.Join(t.TempDir(), "full.flash")
	mustGota(t, "device", "create", full, "--app", writeFile(t, "app.bin", app))
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "factory.bin", b[:0x10000+len(app)])
}

// TestInstallBlankToAgent: a blank virtual ESP32 (it boot-loops on the
// erased flash) gets a merged image through its ROM bootloader with
// `gota install` over the WebSocket line, which carries DTR/RTS to the
// board's auto-reset circuit; after the reset the app's agent answers,
// and OTA updates work from then on.
func TestInstallBlankToAgent(t *testing.T) {
	merged := mergedImage(t)
	blank := filepath.Join(t.TempDir(), "blank.flash")
	mustGota(t, "device", "create", "--blank", blank)
	dev := startDevice(t, blank, "--listen", "127.0.0.1:0")
	m := regexp.MustCompile(`WebSocket serial port (ws://\S+)`).FindStringSubmatch(dev.output())
	if m == nil {
		t.Fatalf("no WebSocket URL printed:\n%s", dev.output())
	}
	url := m[1]

	r := mustGota(t, "install", "--port", url, merged)
	for _, want := range []string{"waiting for download", "ESP32 v3.0", "MD5 matches", "resetting into the app"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("install output lacks %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "agent ready: gota-go/1 on esp32, running app0") {
		t.Fatalf("no agent after install:\n%s", r)
	}
	// From here on the board is updated over the air.
	if in := deviceInfo(t, url); in.Running != "app0" {
		t.Errorf("gota info after install: running %q", in.Running)
	}
	// gota monitor --reset pulses EN through RTS: the whole boot shows.
	r = mustGota(t, "monitor", "--reset", "--port", url, "--timeout", "4s")
	for _, want := range []string{"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)", "Loaded app from partition at offset 0x10000", "gota-agent: ready"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("monitor --reset output lacks %q:\n%s", want, r)
		}
	}
	dev.stop()
	fb, err := os.ReadFile(blank)
	mb, _ := os.ReadFile(merged)
	// Everything but otadata (0xe000, which the bootloader sets at the
	// first boot) is as installed.
	if err != nil || !bytes.Equal(fb[:0xe000], mb[:0xe000]) || !bytes.Equal(fb[0x10000:len(mb)], mb[0x10000:]) {
		t.Errorf("flash file does not hold the merged image (%v)", err)
	}
}

// TestInstallRefusedLeavesDownloadMode: an image for another chip is
// refused before anything is written, and the chip stays in the ROM
// loader: a second install with the right image works without a reset.
func TestInstallRefusedLeavesDownloadMode(t *testing.T) {
	merged := mergedImage(t)
	blank := filepath.Join(t.TempDir(), "blank.flash")
	mustGota(t, "device", "create", "--blank", blank)
	dev := startDevice(t, blank, "--boot", "download", "--chip", "esp32c3")
	r := gota(t, "install", "--port", dev.port, "--wait-agent", "0", merged)
	if r.code == 0 || !strings.Contains(r.stderr, "for esp32, the device is esp32c3") || !strings.Contains(r.stderr, "stays in download mode") {
		t.Fatalf("install of an ESP32 image on a C3: %s", r)
	}
	if !strings.Contains(r.stderr, "has no DTR/RTS") {
		t.Errorf("no note about the pseudo-terminal's missing modem lines:\n%s", r.stderr)
	}
	r = mustGota(t, "chip", "--port", dev.port)
	if !strings.Contains(r.stdout, "ESP32-C3") || !strings.Contains(r.stdout, "bootloader  at 0x0") {
		t.Errorf("gota chip after the refusal:\n%s", r)
	}
	dev.stop()
	fb, _ := os.ReadFile(blank)
	if bytes.Count(fb, []byte{0xFF}) != len(fb) {
		t.Error("the refused install wrote to flash")
	}
}

// TestChipUSBJTAG: an ESP32-S3 on its USB-Serial-JTAG port enters
// download mode at the first attempt with esptool's USB-JTAG sequence
// (--usb-jtag).
func TestChipUSBJTAG(t *testing.T) {
	blank := filepath.Join(t.TempDir(), "blank.flash")
	mustGota(t, "device", "create", "--blank", blank)
	dev := startDevice(t, blank, "--listen", "127.0.0.1:0", "--chip", "esp32s3", "--reset", "usb-jtag")
	m := regexp.MustCompile(`WebSocket serial port (ws://\S+)`).FindStringSubmatch(dev.output())
	if m == nil {
		t.Fatalf("no WebSocket URL printed:\n%s", dev.output())
	}
	r := mustGota(t, "chip", "--usb-jtag", "--port", m[1])
	for _, want := range []string{"ESP32-S3", "bootloader  at 0x0", "4 MB"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("gota chip --usb-jtag lacks %q:\n%s", want, r)
		}
	}
	if n := strings.Count(r.stderr, "waiting for download"); n != 1 || strings.Contains(r.stderr, "SPI_FAST_FLASH_BOOT") {
		t.Errorf("the USB-JTAG sequence took %d download boots (and flash boots in between):\n%s", n, r.stderr)
	}
}

// TestInstallNoisyLine: on a line that flips bits, the ROM's checksum
// errors and the replies lost to garbled frames are retried, and the
// install still ends with every region's MD5 matching and the agent up.
func TestInstallNoisyLine(t *testing.T) {
	merged := mergedImage(t)
	blank := filepath.Join(t.TempDir(), "blank.flash")
	mustGota(t, "device", "create", "--blank", blank)
	dev := startDevice(t, blank, "--listen", "127.0.0.1:0", "--flip-rate", "3e-5", "--seed", "3")
	m := regexp.MustCompile(`WebSocket serial port (ws://\S+)`).FindStringSubmatch(dev.output())
	if m == nil {
		t.Fatalf("no WebSocket URL printed:\n%s", dev.output())
	}
	r := mustGota(t, "install", "--port", m[1], merged)
	if !strings.Contains(r.stderr, "MD5 matches") || !strings.Contains(r.stdout, "agent ready") {
		t.Fatalf("install over a noisy line:\n%s", r)
	}
	dev.stop()
	if st := dev.lineStats(t); st["flipped"] == 0 {
		t.Errorf("the line flipped nothing (%v): the test proves nothing", st)
	}
}

// c3Merged builds a small ESP32-C3 app (DROM at 0x3C000020, IRAM at
// 0x40380000) and lays out what `gota device create --chip esp32c3` puts
// in flash, from 0x0 (where the C3 ROM loads its bootloader) to the end
// of the app.
func c3Merged(t *testing.T) (string, []byte) {
	t.Helper()
	drom := make([]byte, 1024)
	iram := make([]byte, 512)
	for i := range iram {
		iram[i] = byte(i * 13)
	}
	app, err := espimage.Build(espimage.Header{SPIMode: 2, FlashSize: 2, Entry: 0x40380000, WPPin: 0xEE, Chip: espimage.ChipESP32C3, HashAppended: true},
		[]espimage.Segment{{LoadAddr: 0x3C000020, Data: drom}, {LoadAddr: 0x40380000, Data: iram}},
		&espimage.AppDesc{Version: "1.0.0", ProjectName: "c3-demo", Time: "00:00:00", Date: "Jan  1 2026", IDFVer: "v5.3.2"})
	if err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(t.TempDir(), "c3.flash")
	mustGota(t, "device", "create", full, "--chip", "esp32c3", "--app", writeFile(t, "c3app.bin", app))
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "c3.factory.bin", b[:0x10000+len(app)]), app
}

// TestInstallC3USBJTAG: a blank ESP32-C3 behind its USB-Serial-JTAG gets
// a merged image whose bootloader sits at 0x0, through the USB-JTAG
// reset sequence, and its agent answers.
func TestInstallC3USBJTAG(t *testing.T) {
	merged, _ := c3Merged(t)
	r := mustGota(t, "image", "info", merged)
	if !strings.Contains(r.stdout, "merged esp32c3 image") || !strings.Contains(r.stdout, "0x000000  -") {
		t.Fatalf("image info:\n%s", r)
	}
	blank := filepath.Join(t.TempDir(), "blank.flash")
	mustGota(t, "device", "create", "--blank", blank)
	dev := startDevice(t, blank, "--listen", "127.0.0.1:0", "--chip", "esp32c3", "--reset", "usb-jtag")
	m := regexp.MustCompile(`WebSocket serial port (ws://\S+)`).FindStringSubmatch(dev.output())
	if m == nil {
		t.Fatalf("no WebSocket URL printed:\n%s", dev.output())
	}
	r = mustGota(t, "install", "--usb-jtag", "--port", m[1], merged)
	if !strings.Contains(r.stderr, "ESP32-C3") || !strings.Contains(r.stdout, "agent ready: gota-go/1 on esp32c3") {
		t.Fatalf("install on a C3:\n%s", r)
	}
}
