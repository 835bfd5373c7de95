package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"

	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/rom"
	"github.com/gota-dev/gota/internal/shareddata"
)

// ptyChip is a virtual chip in download mode behind a pseudo-terminal:
// the test runs the CLI on the terminal's name. A pseudo-terminal has no
// DTR/RTS, so the CLI cannot reset it (as with a board without the
// auto-reset circuit whose BOOT button is held).
type ptyChip struct {
	name string
	fl   *flash.Flash
	done chan error
}

// ptmxPort is the device end of the pseudo-terminal; it has no rate.
type ptmxPort struct{ *os.File }

func (ptmxPort) SetBaud(int) error { return nil }
func (ptmxPort) Baud() int         { return 115200 }

func newPTYChip(t *testing.T, chip *rom.Chip) *ptyChip {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	pc := &ptyChip{name: tty.Name(), fl: flash.NewMemory(4 << 20), done: make(chan error, 1)}
	// Raw mode: the line discipline must pass SLIP bytes unchanged.
	if _, err := term.MakeRaw(int(tty.Fd())); err != nil {
		t.Fatal(err)
	}
	l := rom.New(rom.Config{Chip: chip, Flash: pc.fl})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { pc.done <- l.Serve(ctx, ptmxPort{ptmx}) }()
	t.Cleanup(func() {
		cancel()
		ptmx.Close()
		tty.Close()
	})
	return pc
}

func TestInstallMergedOverPTY(t *testing.T) {
	pc := newPTYChip(t, rom.ESP32)
	name, _ := writeMerged(t, 0x1000)
	merged, _ := os.ReadFile(name)
	var out, errOut bytes.Buffer
	err := romInstall(&out, &errOut, []string{"--port", pc.name, "--wait-agent", "0", "--timeout", "60s", name})
	if err != nil {
		t.Fatalf("install: %v\n%s", err, errOut.String())
	}
	if got := pc.fl.Bytes()[:len(merged)]; !bytes.Equal(got, merged) {
		t.Error("flash does not hold the merged image at 0x0")
	}
	for _, want := range []string{"ESP32 v3.0", "4 MB flash", "0x010000  app arduino-lib-builder", "MD5 matches", "FLASH_END"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, errOut.String())
		}
	}
	select {
	case err := <-pc.done:
		var exit *rom.Exit
		if !errors.As(err, &exit) {
			t.Errorf("loader ended with %v, want it to leave download mode", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the chip is still in the loader after the install")
	}
}

func TestInstallRefusals(t *testing.T) {
	merged, _ := writeMerged(t, 0x1000)
	tests := []struct {
		name string
		chip *rom.Chip
		args []string
		want string
	}{
		{"esp32 image on c3", rom.ESP32C3, []string{merged}, "for esp32, the device is esp32c3"},
		{"part past flash", rom.ESP32, []string{merged + "@0x3f0000"}, "past the end of the 4M flash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pc := newPTYChip(t, tc.chip)
			var out, errOut bytes.Buffer
			args := append([]string{"--port", pc.name, "--wait-agent", "0", "--timeout", "30s"}, tc.args...)
			err := romInstall(&out, &errOut, args)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "stays in download mode") {
				t.Fatalf("install: %v, want %q", err, tc.want)
			}
			if !bytes.Equal(pc.fl.Bytes(), bytes.Repeat([]byte{0xFF}, 4<<20)) {
				t.Error("the refused install wrote to flash")
			}
		})
	}
}

func TestChipCommand(t *testing.T) {
	pc := newPTYChip(t, rom.ESP32S3)
	var out, errOut bytes.Buffer
	if err := romChip(&out, &errOut, []string{"--port", pc.name, "--timeout", "30s"}); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	for _, want := range []string{"ESP32-S3", "v0.2", "24:0a:c4:12:34:56", "4 MB", "bootloader  at 0x0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// esptoolJSStubs is where build.sh's deps step puts esptool-js 0.7.0's
// flasher stubs.
func esptoolJSStubs(t *testing.T) string {
	t.Helper()
	d := filepath.Join("..", "..", ".deps", "node_modules", "esptool-js", "lib", "targets", "stub_flasher")
	if _, err := os.Stat(d); err != nil {
		t.Skipf("esptool-js 0.7.0 not installed (./build.sh test installs it into .deps): %v", err)
	}
	return d
}

func TestInstallWithStubAndReadBack(t *testing.T) {
	stubs := esptoolJSStubs(t)
	pc := newPTYChip(t, rom.ESP32)
	name, _ := writeMerged(t, 0x1000)
	merged, _ := os.ReadFile(name)
	var out, errOut bytes.Buffer
	err := romInstall(&out, &errOut, []string{"--port", pc.name, "--stub", stubs, "--no-reset", "--timeout", "60s", name})
	if err != nil {
		t.Fatalf("install: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "flasher stub running") {
		t.Errorf("no stub in the output:\n%s", errOut.String())
	}
	if !bytes.Equal(pc.fl.Bytes()[:len(merged)], merged) {
		t.Fatal("flash does not hold the merged image")
	}
	// The chip stayed in the (stub) loader: read the app partition back.
	back := filepath.Join(t.TempDir(), "backup.bin")
	out.Reset()
	errOut.Reset()
	err = romReadFlash(&out, &errOut, []string{"--port", pc.name, "--stub", stubs, "--offset", "0x10000", "--size", "0x1000", "--timeout", "60s", back})
	if err != nil {
		t.Fatalf("read-flash: %v\n%s", err, errOut.String())
	}
	got, _ := os.ReadFile(back)
	if !bytes.Equal(got, merged[0x10000:0x11000]) {
		t.Error("backup differs from flash")
	}
	if !strings.Contains(out.String(), "MD5 checked") {
		t.Errorf("output: %s", out.String())
	}
}

func TestReadFlashNeedsStubFlag(t *testing.T) {
	t.Setenv("GOTA_STUB_DIR", "")
	var out, errOut bytes.Buffer
	err := romReadFlash(&out, &errOut, []string{"--port", "/dev/null", filepath.Join(t.TempDir(), "x.bin")})
	if err == nil || !strings.Contains(err.Error(), "needs a flasher stub") {
		t.Errorf("%v", err)
	}
}

// TestInstallManifestURL: an ESP Web Tools manifest on a web server,
// parts relative to it; the build for the chip found is picked.
func TestInstallManifestURL(t *testing.T) {
	dir := shareddata.Dir(t)
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	files := map[string][]byte{
		"/fw/manifest.json": []byte(`{"name":"LED","version":"1.0","builds":[
			{"chipFamily":"ESP32-C3","parts":[{"path":"c3/boot.bin","offset":0}]},
			{"chipFamily":"ESP32","parts":[
				{"path":"boot.bin","offset":4096},{"path":"/fw/table.bin","offset":32768},{"path":"app.bin","offset":65536}]}]}`),
		"/fw/boot.bin":  read("bootloader-esp32-arduino.bin"),
		"/fw/table.bin": read("partitions-arduino-ota.bin"),
		"/fw/app.bin":   read("esp32-ledcontroller-v1.0.bin"),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	pc := newPTYChip(t, rom.ESP32)
	var out, errOut bytes.Buffer
	if err := romInstall(&out, &errOut, []string{"--port", pc.name, "--wait-agent", "0", "--timeout", "60s", srv.URL + "/fw/manifest.json"}); err != nil {
		t.Fatalf("install: %v\n%s", err, errOut.String())
	}
	fb := pc.fl.Bytes()
	for name, off := range map[string]int{"/fw/boot.bin": 0x1000, "/fw/table.bin": 0x8000, "/fw/app.bin": 0x10000} {
		if !bytes.Equal(fb[off:off+len(files[name])], files[name]) {
			t.Errorf("%s not at 0x%x", name, off)
		}
	}
	if strings.Count(errOut.String(), "MD5 matches") != 3 {
		t.Errorf("want three verified parts:\n%s", errOut.String())
	}
	// No build for an ESP32-S3: refused, nothing written.
	s3 := newPTYChip(t, rom.ESP32S3)
	err := romInstall(&out, &errOut, []string{"--port", s3.name, "--wait-agent", "0", "--timeout", "60s", srv.URL + "/fw/manifest.json"})
	if err == nil || !strings.Contains(err.Error(), "has builds for ESP32-C3, ESP32, none for the ESP32-S3") {
		t.Errorf("S3: %v", err)
	}
}

// TestInstallErase: --erase clears the whole flash first (through the ROM:
// FLASH_BEGIN over the whole flash), so data outside the image is gone.
func TestInstallErase(t *testing.T) {
	pc := newPTYChip(t, rom.ESP32)
	if err := pc.fl.Program(0x300000, []byte("old NVS data")); err != nil {
		t.Fatal(err)
	}
	name, _ := writeMerged(t, 0x1000)
	merged, _ := os.ReadFile(name)
	var out, errOut bytes.Buffer
	if err := romInstall(&out, &errOut, []string{"--port", pc.name, "--erase", "--wait-agent", "0", "--timeout", "120s", name}); err != nil {
		t.Fatalf("install --erase: %v\n%s", err, errOut.String())
	}
	fb := pc.fl.Bytes()
	if !bytes.Equal(fb[:len(merged)], merged) {
		t.Error("flash does not hold the merged image")
	}
	if !bytes.Equal(fb[len(merged):], bytes.Repeat([]byte{0xFF}, len(fb)-len(merged))) {
		t.Error("--erase left data after the image")
	}
	if !strings.Contains(errOut.String(), "erase the whole 4 MB flash first") {
		t.Errorf("the plan does not say it erases everything:\n%s", errOut.String())
	}
}
