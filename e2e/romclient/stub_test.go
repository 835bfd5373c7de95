package romclient

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/romloader"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/rom"
)

// stubDir is where build.sh's deps step installs esptool-js 0.7.0, whose
// stubs (esp-flasher-stub v1.2.2) the tests upload.
func stubDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join("..", "..", ".deps", "node_modules", "esptool-js", "lib", "targets", "stub_flasher")
	if _, err := os.Stat(d); err != nil {
		t.Skipf("esptool-js 0.7.0 not installed (./build.sh test installs it into .deps): %v", err)
	}
	return d
}

func loadStub(t testing.TB, chip string) *romloader.Stub {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stubDir(t), chip+".json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := romloader.ParseStub(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStub(t *testing.T) {
	for _, tc := range []struct {
		chip *rom.Chip
		file string
	}{{rom.ESP32, "esp32"}, {rom.ESP32S3, "esp32s3"}, {rom.ESP32C3, "esp32c3"}, {rom.ESP32S2, "esp32s2"}} {
		t.Run(tc.file, func(t *testing.T) {
			b := newBoard(t, tc.chip, link.Config{})
			c := connect(t, b)
			ctx := context.Background()
			if _, err := c.Detect(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.RunStub(ctx, loadStub(t, tc.file)); err != nil {
				t.Fatal(err)
			}
			if !c.Stub() || b.rom.Stub() == nil {
				t.Fatalf("stub not running (client %v, emulator %v)", c.Stub(), b.rom.Stub())
			}
			if err := c.ChangeBaud(ctx, 921600); err != nil {
				t.Fatal(err)
			}
			data := randomImage(150_000)
			if err := c.WriteFlash(ctx, 0x10000, data, nil); err != nil {
				t.Fatal(err)
			}
			got, err := c.ReadFlash(ctx, 0x10000, len(data), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Error("read back differs from what was written")
			}
			if err := c.EraseRegion(ctx, 0x10000, 0x1000); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.fl.Bytes()[0x10000:0x11000], bytes.Repeat([]byte{0xFF}, 0x1000)) {
				t.Error("ERASE_REGION left data")
			}
		})
	}
}

// TestStubMismatch: the ESP32 stub uploaded to an ESP32-C3 is unknown
// code there: the chip goes quiet and RunStub says so.
func TestStubMismatch(t *testing.T) {
	b := newBoard(t, rom.ESP32C3, link.Config{})
	c := connect(t, b)
	ctx := context.Background()
	if _, err := c.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	err := c.RunStub(ctx, loadStub(t, "esp32"))
	if err == nil || !strings.Contains(err.Error(), "OHAI") {
		t.Fatalf("RunStub: %v", err)
	}
}

func TestReadFlashNeedsStub(t *testing.T) {
	b := newBoard(t, rom.ESP32, link.Config{})
	c := connect(t, b)
	if _, err := c.ReadFlash(context.Background(), 0, 0x1000, nil); err == nil || !strings.Contains(err.Error(), "stub") {
		t.Errorf("ReadFlash in ROM: %v", err)
	}
}
