package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gota-dev/gota/core/install"
	"github.com/gota-dev/gota/core/romloader"
)

func init() {
	register(&command{name: "read-flash", usage: "--port PORT --stub DIR OUT [--offset N --size N]\n                       back up flash through the ROM bootloader and a flasher stub", run: runReadFlash})
}

// stubFlag adds --stub to a ROM command's flags.
func (rf *romFlags) stubFlag() *string {
	return rf.fs.String("stub", os.Getenv("GOTA_STUB_DIR"), "flasher stub: a JSON file as esptool-js publishes them, or a directory of them named by chip (esp32.json, esp32s3.json; e.g. node_modules/esptool-js/lib/targets/stub_flasher); default $GOTA_STUB_DIR")
}

// stubLoader returns the stub for the detected chip from path (a file or
// a directory of per-chip files); nil when path is empty.
func stubLoader(path string) func(*romloader.ChipInfo) (*romloader.Stub, error) {
	if path == "" {
		return nil
	}
	return func(info *romloader.ChipInfo) (*romloader.Stub, error) {
		file := path
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			file = filepath.Join(path, info.Chip.String()+".json")
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--stub: %w", err)
		}
		s, err := romloader.ParseStub(b)
		if err != nil {
			return nil, fmt.Errorf("--stub %s: %w", file, err)
		}
		return s, nil
	}
}

func runReadFlash(args []string) error { return romReadFlash(os.Stdout, os.Stderr, args) }

func romReadFlash(stdout, stderr io.Writer, args []string) error {
	rf := newROMFlags("read-flash --port PORT --stub DIR OUT [--offset N --size N]", stderr, 921600, "line rate for the transfer")
	stub := rf.stubFlag()
	offStr := rf.fs.String("offset", "0", "flash offset to start at (decimal or 0x hex)")
	sizeStr := rf.fs.String("size", "0", "bytes to read (0 = to the end of the flash)")
	pos, err := parseArgs(rf.fs, args, 1, 1)
	if err != nil {
		return err
	}
	if _, err := rf.parse(nil, 0); err != nil {
		return err
	}
	off, err := install.ParseOffset(*offStr)
	if err != nil {
		return fmt.Errorf("--offset: %w", err)
	}
	size, err := install.ParseOffset(*sizeStr)
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	load := stubLoader(*stub)
	if load == nil {
		return fmt.Errorf("read-flash needs a flasher stub (the ESP32-family ROM cannot read flash): give --stub %s", filepath.Join("node_modules", "esptool-js", "lib", "targets", "stub_flasher"))
	}
	ctx, cancel := rf.context()
	defer cancel()
	out := &output{w: stderr}
	p, c, info, err := rf.detectROM(ctx, out)
	if err != nil {
		return err
	}
	defer p.Close()
	defer c.Close()
	s, err := load(info)
	if err != nil {
		return err
	}
	if err := c.RunStub(ctx, s); err != nil {
		return err
	}
	if size == 0 {
		if info.FlashSize == 0 || int(off) >= info.FlashSize {
			return fmt.Errorf("--size: the flash size is unknown or the offset lies past it; give --size")
		}
		size = uint32(info.FlashSize) - off
	}
	if info.FlashSize > 0 && uint64(off)+uint64(size) > uint64(info.FlashSize) {
		return fmt.Errorf("0x%x+0x%x runs past the end of the %d MB flash", off, size, info.FlashSize>>20)
	}
	if rf.baud > 0 {
		if err := c.ChangeBaud(ctx, rf.baud); err != nil {
			return err
		}
	}
	data, err := c.ReadFlash(ctx, off, int(size), func(done, total int) { out.progress("read", done, total) })
	out.endProgress()
	if err != nil {
		return err
	}
	if err := os.WriteFile(pos[0], data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "read 0x%x..0x%x of the %s into %s (MD5 checked)\n", off, off+size, strings.ToLower(info.Name), pos[0])
	return nil
}
