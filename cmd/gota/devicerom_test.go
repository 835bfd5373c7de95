package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/gota-dev/gota/firmware-agent/rom"
)

// TestBlankDownloadPTY: `gota device create --blank`, then `gota device
// run --boot download --pty`: a serial program on the pseudo-terminal
// sees the ROM's download banner and gets SYNC and READ_REG answers.
func TestBlankDownloadPTY(t *testing.T) {
	dir := t.TempDir()
	fpath := filepath.Join(dir, "blank.bin")
	var out bytes.Buffer
	if err := deviceCreate(&out, io.Discard, []string{"--blank", "--flash-size", "2MB", fpath}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(fpath); err != nil || len(b) != 2<<20 || bytes.Count(b, []byte{0xFF}) != len(b) {
		t.Fatalf("blank flash: %d bytes, err %v", len(b), err)
	}
	if err := deviceCreate(io.Discard, io.Discard, []string{"--blank", "--app", "x.bin", fpath}); err == nil || !strings.Contains(err.Error(), "no --app") {
		t.Errorf("--blank with --app: %v", err)
	}
	tty := filepath.Join(dir, "tty")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- deviceRun(ctx, io.Discard, io.Discard, []string{"--pty", tty, "--boot", "download", "--fast-flash", fpath})
	}()
	defer func() { cancel(); <-done }()
	var port serial.Port
	var err error
	for i := 0; i < 100; i++ {
		if port, err = serial.Open(tty, &serial.Mode{BaudRate: 115200}); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("open %s: %v", tty, err)
	}
	defer port.Close()
	port.SetReadTimeout(100 * time.Millisecond)
	read := func(until []byte, d time.Duration) []byte {
		var got []byte
		buf := make([]byte, 512)
		for end := time.Now().Add(d); time.Now().Before(end) && !bytes.Contains(got, until); {
			n, _ := port.Read(buf)
			got = append(got, buf[:n]...)
		}
		return got
	}
	// The banner was printed at power-on, before the port was open: a
	// pseudo-terminal keeps it. Reset (EN) to see it again either way.
	sync := append([]byte{0, rom.OpSync, 36, 0, 0, 0, 0, 0, 7, 7, 0x12, 0x20}, bytes.Repeat([]byte{0x55}, 32)...)
	var got []byte
	for try := 0; try < 5 && !bytes.Contains(got, []byte{0xC0, 0x01, rom.OpSync}); try++ {
		port.Write(rom.AppendSLIP(nil, sync))
		got = read([]byte{0xC0, 0x01, rom.OpSync}, 300*time.Millisecond)
	}
	if !bytes.Contains(got, []byte{0xC0, 0x01, rom.OpSync, 4, 0, 0x07, 0x07, 0x12, 0x20}) {
		t.Fatalf("no SYNC reply on the pseudo-terminal: % x", got)
	}
	read([]byte("never"), 200*time.Millisecond) // the other 7 replies
	req := make([]byte, 12)
	req[1] = rom.OpReadReg
	binary.LittleEndian.PutUint16(req[2:], 4)
	binary.LittleEndian.PutUint32(req[8:], rom.ChipDetectMagicReg)
	port.Write(rom.AppendSLIP(nil, req))
	got = read([]byte{0x83, 0x1D, 0xF0, 0x00}, time.Second)
	if !bytes.Contains(got, []byte{0x01, rom.OpReadReg, 4, 0, 0x83, 0x1D, 0xF0, 0x00}) {
		t.Fatalf("READ_REG magic reply: % x", got)
	}
	// A pseudo-terminal has no modem lines: setting them says what to do.
	port.Close()
	sl, err := openSerial(tty)
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	if err := sl.SetSignals(false, true); err == nil || !strings.Contains(err.Error(), "hold BOOT") {
		t.Errorf("SetSignals on a pseudo-terminal: %v, want an error saying to hold BOOT", err)
	}
}
