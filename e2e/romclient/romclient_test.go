// Package romclient tests the ROM-loader client of core/romloader against
// the virtual chip's ROM loader (firmware-agent/rom) over the emulated
// line, as a host talks to a real board in download mode.
package romclient

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/romloader"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/rom"
)

// board is a virtual chip held in download mode on one end of a line.
type board struct {
	line *link.Line
	fl   *flash.Flash
	rom  *rom.Loader
	done chan error
}

func newBoard(t *testing.T, chip *rom.Chip, lc link.Config) *board {
	t.Helper()
	b := &board{line: link.New(lc), fl: flash.NewMemory(4 << 20), done: make(chan error, 1)}
	b.rom = rom.New(rom.Config{Chip: chip, Flash: b.fl, Rev: 301})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { b.done <- b.rom.Serve(ctx, b.line.Device()) }()
	t.Cleanup(func() {
		cancel()
		b.line.Close()
		<-b.done
	})
	return b
}

func connect(t *testing.T, b *board) *romloader.Client {
	t.Helper()
	c := romloader.New(b.line.Host(), romloader.Options{})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c
}

func TestDetect(t *testing.T) {
	tests := []struct {
		chip *rom.Chip
		want espimage.Chip
		name string
	}{
		{rom.ESP32, espimage.ChipESP32, "ESP32"},
		{rom.ESP32S2, espimage.ChipESP32S2, "ESP32-S2"},
		{rom.ESP32S3, espimage.ChipESP32S3, "ESP32-S3"},
		{rom.ESP32C3, espimage.ChipESP32C3, "ESP32-C3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBoard(t, tc.chip, link.Config{})
			c := connect(t, b)
			info, err := c.Detect(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if info.Chip != tc.want || info.Name != tc.name {
				t.Errorf("chip %v %q, want %v %q", info.Chip, info.Name, tc.want, tc.name)
			}
			if info.MAC != rom.DefaultMAC {
				t.Errorf("MAC %s, want %x", info.MACString(), rom.DefaultMAC)
			}
			if info.Rev != 301 {
				t.Errorf("revision %s, want v3.1", info.RevString())
			}
			if info.FlashSize != 4<<20 {
				t.Errorf("flash size %d (ID 0x%06x), want 4 MiB", info.FlashSize, info.FlashID)
			}
			if c.Stub() {
				t.Error("Stub() is true in the ROM loader")
			}
		})
	}
}

func randomImage(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewSource(1))
	for i := range b {
		if i%7 < 3 {
			b[i] = byte(r.Intn(256))
		}
	}
	return b
}

func TestWriteFlash(t *testing.T) {
	b := newBoard(t, rom.ESP32, link.Config{})
	c := connect(t, b)
	ctx := context.Background()
	if _, err := c.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFlashParams(ctx, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := c.ChangeBaud(ctx, 921600); err != nil {
		t.Fatal(err)
	}
	data := randomImage(100_000)
	var last int
	if err := c.WriteFlash(ctx, 0x10000, data, func(done, total int) { last = done }); err != nil {
		t.Fatal(err)
	}
	if last != len(data) {
		t.Errorf("progress ended at %d of %d", last, len(data))
	}
	got := b.fl.Bytes()[0x10000 : 0x10000+len(data)]
	if !bytes.Equal(got, data) {
		t.Error("flash does not hold the data")
	}
	// A corrupt byte in flash must fail the MD5 check.
	i := bytes.IndexFunc(data[5000:], func(r rune) bool { return r != 0 }) + 5000
	if err := b.fl.Program(0x10000+uint32(i), []byte{0}); err != nil { // NOR programming clears bits
		t.Fatal(err)
	}
	var me *romloader.MD5Error
	if err := c.VerifyMD5(ctx, 0x10000, data); !errors.As(err, &me) {
		t.Errorf("VerifyMD5 after corruption: %v, want MD5Error", err)
	}
}

func TestEraseRegion(t *testing.T) {
	b := newBoard(t, rom.ESP32C3, link.Config{})
	copy(b.fl.Bytes()[0x20000:], bytes.Repeat([]byte{0}, 0x3000))
	b.fl.Program(0x20000, bytes.Repeat([]byte{0}, 0x3000))
	c := connect(t, b)
	ctx := context.Background()
	if _, err := c.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.EraseRegion(ctx, 0x20000, 0x2000); err != nil {
		t.Fatal(err)
	}
	fb := b.fl.Bytes()
	if !bytes.Equal(fb[0x20000:0x22000], bytes.Repeat([]byte{0xFF}, 0x2000)) || fb[0x22000] != 0 {
		t.Error("erase did not cover exactly 0x20000..0x22000")
	}
	if err := c.EraseRegion(ctx, 0x20001, 0x1000); err == nil {
		t.Error("misaligned erase accepted")
	}
}

// TestNoisyLine writes through a line that flips bits: checksum errors
// and lost replies are retried, and the MD5 still matches.
func TestNoisyLine(t *testing.T) {
	b := newBoard(t, rom.ESP32, link.Config{FlipRate: 3e-5, Seed: 3})
	c := connect(t, b)
	ctx := context.Background()
	if _, err := c.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.ChangeBaud(ctx, 921600); err != nil {
		t.Fatal(err)
	}
	data := randomImage(300_000)
	if err := c.WriteFlash(ctx, 0x10000, data, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.fl.Bytes()[0x10000:0x10000+len(data)], data) {
		t.Error("flash does not hold the data")
	}
	st := b.line.Stats()
	t.Logf("line: %+v", st)
	if st.Flipped == 0 {
		t.Error("the line flipped no bit: the test proves nothing")
	}
}

// TestNotInDownloadMode: a port where the chip runs its app (here: a
// line nobody answers on, with boot text) gives the hold-BOOT message.
func TestNotInDownloadMode(t *testing.T) {
	line := link.New(link.Config{})
	t.Cleanup(func() { line.Close() })
	go func() {
		line.Device().Write([]byte("ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"))
		buf := make([]byte, 256)
		for {
			if _, err := line.Device().Read(buf); err != nil {
				return
			}
		}
	}()
	c := romloader.New(line.Host(), romloader.Options{Attempts: 2})
	defer c.Close()
	err := c.Connect(context.Background())
	var nd *romloader.NotInDownloadModeError
	if !errors.As(err, &nd) {
		t.Fatalf("Connect: %v, want NotInDownloadModeError", err)
	}
	if nd.BootMode != "0x13" || !bytes.Contains([]byte(err.Error()), []byte("hold BOOT")) {
		t.Errorf("error %q (boot mode %q)", err, nd.BootMode)
	}
}

// TestCutMidWrite: the line is cut in the middle of a compressed write.
// The write fails with the cut named; the chip stays in its loader (USB
// unplugged and replugged does not reset a board powered on its own), so
// after the line is back a new client syncs and writes it all again.
func TestCutMidWrite(t *testing.T) {
	b := newBoard(t, rom.ESP32, link.Config{DisconnectAfter: []int64{25_000}})
	c := connect(t, b)
	ctx := context.Background()
	if _, err := c.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	data := randomImage(80_000)
	err := c.WriteFlash(ctx, 0x10000, data, nil)
	if err == nil {
		t.Fatal("WriteFlash survived the cut")
	}
	t.Logf("cut: %v", err)
	if !strings.Contains(err.Error(), "write at 0x10000") {
		t.Errorf("error %q does not say where the write stopped", err)
	}
	<-b.done // the loader's Serve ends with the line
	b.line.Reconnect()
	go func() { b.done <- b.rom.Serve(context.Background(), b.line.Device()) }()
	c2 := connect(t, b)
	if _, err := c2.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c2.WriteFlash(ctx, 0x10000, data, nil); err != nil {
		t.Fatalf("write after reconnecting: %v", err)
	}
	if !bytes.Equal(b.fl.Bytes()[0x10000:0x10000+len(data)], data) {
		t.Error("flash does not hold the data after the second write")
	}
}
