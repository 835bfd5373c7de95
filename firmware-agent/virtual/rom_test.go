package virtual

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/rom"
	"github.com/gota-dev/gota/internal/shareddata"
)

// romHost is a minimal ROM-protocol host on a byte stream, for tests.
type romHost struct {
	t      *testing.T
	w      func([]byte) error
	frames chan []byte
	text   *syncBuf // bytes outside frames (the ROM's messages)
}

type syncBuf struct {
	ch chan byte
}

func newROMHost(t *testing.T, r interface{ Read([]byte) (int, error) }, w func([]byte) error) *romHost {
	h := &romHost{t: t, w: w, frames: make(chan []byte, 256), text: &syncBuf{ch: make(chan byte, 1<<16)}}
	go func() {
		buf := make([]byte, 4096)
		var frame []byte
		in := false
		for {
			n, err := r.Read(buf)
			for _, c := range buf[:n] {
				switch {
				case c == 0xC0 && in && len(frame) > 0:
					h.frames <- unslip(frame)
					frame, in = nil, false
				case c == 0xC0:
					in = true
				case in:
					frame = append(frame, c)
				default:
					select {
					case h.text.ch <- c:
					default:
					}
				}
			}
			if err != nil && strings.Contains(err.Error(), "closed") {
				return
			}
		}
	}()
	return h
}

func unslip(p []byte) []byte {
	p = bytes.ReplaceAll(p, []byte{0xDB, 0xDC}, []byte{0xC0})
	return bytes.ReplaceAll(p, []byte{0xDB, 0xDD}, []byte{0xDB})
}

// waitText waits until the chip has printed s.
func (h *romHost) waitText(s string, d time.Duration) string {
	h.t.Helper()
	var got []byte
	deadline := time.After(d)
	for !bytes.Contains(got, []byte(s)) {
		select {
		case c := <-h.text.ch:
			got = append(got, c)
		case <-deadline:
			h.t.Fatalf("waiting for %q; the chip printed %q", s, got)
		}
	}
	return string(got)
}

// cmd sends a command and returns the value and data of its reply.
func (h *romHost) cmd(op byte, data []byte, chk uint32, d time.Duration) (uint32, []byte, bool) {
	p := make([]byte, 8, 8+len(data))
	p[1] = op
	binary.LittleEndian.PutUint16(p[2:], uint16(len(data)))
	binary.LittleEndian.PutUint32(p[4:], chk)
	if err := h.w(rom.AppendSLIP(nil, append(p, data...))); err != nil {
		h.t.Fatalf("write: %v", err)
	}
	deadline := time.After(d)
	for {
		select {
		case f := <-h.frames:
			if len(f) >= 8 && f[0] == 1 && f[1] == op {
				return binary.LittleEndian.Uint32(f[4:]), f[8:], true
			}
		case <-deadline:
			return 0, nil, false
		}
	}
}

func (h *romHost) sync() bool {
	d := append([]byte{7, 7, 0x12, 0x20}, bytes.Repeat([]byte{0x55}, 32)...)
	for i := 0; i < 5; i++ {
		if _, _, ok := h.cmd(rom.OpSync, d, 0, 200*time.Millisecond); ok {
			time.Sleep(50 * time.Millisecond)
			for len(h.frames) > 0 {
				<-h.frames
			}
			return true
		}
	}
	return false
}

func le(ws ...uint32) []byte {
	b := make([]byte, 4*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

// writeDefl writes content at off with FLASH_DEFL_* as esptool does
// through the ROM, and checks the MD5.
func (h *romHost) writeDefl(off uint32, content []byte) {
	h.t.Helper()
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(content)
	zw.Close()
	comp := z.Bytes()
	const bs = 0x400
	blocks := (len(comp) + bs - 1) / bs
	erase := (uint32(len(content)) + bs - 1) / bs * bs
	if _, r, ok := h.cmd(rom.OpFlashDeflBegin, le(erase, uint32(blocks), bs, off), 0, 10*time.Second); !ok || r[0] != 0 {
		h.t.Fatalf("FLASH_DEFL_BEGIN at 0x%x: %v % x", off, ok, r)
	}
	for i := 0; i < blocks; i++ {
		d := comp[i*bs : min((i+1)*bs, len(comp))]
		pkt := append(le(uint32(len(d)), uint32(i), 0, 0), d...)
		if _, r, ok := h.cmd(rom.OpFlashDeflData, pkt, rom.Checksum(d), 5*time.Second); !ok || r[0] != 0 {
			h.t.Fatalf("block %d at 0x%x: %v % x", i, off, ok, r)
		}
	}
}

// TestBlankToAgent takes an erased flash from the ROM's download mode
// (BOOT held) to a running agent: the image goes in through the ROM
// protocol at 921600 baud, FLASH_END reboots, and a Gota session
// connects.
func TestBlankToAgent(t *testing.T) {
	app := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	content, err := device.Build(device.CreateOptions{App: app})
	if err != nil {
		t.Fatal(err)
	}
	fl := flash.NewMemory(4 << 20)
	d, err := New(fl, Config{BootButton: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	host := d.Host()
	h := newROMHost(t, host, func(b []byte) error { _, err := host.Write(b); return err })
	banner := h.waitText("waiting for download", 2*time.Second)
	if !strings.Contains(banner, "rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))") || d.State() != "download" {
		t.Fatalf("state %s, banner %q", d.State(), banner)
	}
	if !h.sync() {
		t.Fatal("no SYNC reply")
	}
	if v, _, ok := h.cmd(rom.OpReadReg, le(rom.ChipDetectMagicReg), 0, time.Second); !ok || v != rom.ESP32.Magic {
		t.Fatalf("chip magic 0x%x %v", v, ok)
	}
	h.cmd(rom.OpSPIAttach, le(0, 0), 0, time.Second)
	h.cmd(rom.OpChangeBaudrate, le(921600, 0), 0, time.Second)
	time.Sleep(20 * time.Millisecond)
	host.SetBaudNow(921600)
	// The parts a real install writes: bootloader, table, app.
	h.writeDefl(0x1000, content[0x1000:0x8000])
	h.writeDefl(0x8000, content[0x8000:0x9000])
	h.writeDefl(0x10000, content[0x10000:0x10000+len(app)])
	_, r, ok := h.cmd(rom.OpSPIFlashMD5, le(0x10000, uint32(len(app)), 0, 0), 0, 5*time.Second)
	if !ok || len(r) != 36 {
		t.Fatalf("MD5: %v % x", ok, r)
	}
	// Release BOOT, then FLASH_END 0: the chip reboots into the app.
	d.Board().HoldBoot(false)
	h.cmd(rom.OpFlashEnd, le(0), 0, time.Second)
	host.SetBaudNow(115200)
	deadline := time.Now().Add(5 * time.Second)
	for d.State() != "app" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if d.State() != "app" || d.Device() == nil || d.Device().Running() == nil {
		t.Fatalf("after FLASH_END: state %s", d.State())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := updater.Connect(ctx, host, updater.Options{})
	if err != nil {
		t.Fatalf("Connect after install: %v", err)
	}
	s.Close()
}

// TestResetSequences drives DTR/RTS on the line as esptool's reset
// strategies do and checks where the chip ends up.
func TestResetSequences(t *testing.T) {
	app := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	content, err := device.Build(device.CreateOptions{App: app})
	if err != nil {
		t.Fatal(err)
	}
	type sig struct {
		dtr, rts bool
		wait     time.Duration
	}
	classic := []sig{{false, true, 100 * time.Millisecond}, {true, false, 50 * time.Millisecond}, {false, false, 0}}
	hard := []sig{{false, true, 100 * time.Millisecond}, {false, false, 0}}
	// esptool's USBJTAGSerialReset, one line at a time.
	usbJTAG := []sig{{false, false, 100 * time.Millisecond}, {true, false, 100 * time.Millisecond},
		{true, true, 0}, {false, true, 100 * time.Millisecond}, {false, false, 0}}
	cases := []struct {
		name  string
		chip  string
		reset rom.Circuit
		flash []byte // nil: blank
		seq   []sig
		state string
		text  string
	}{
		{"classic reset into download", "", rom.AutoReset, content, classic, "download", "waiting for download"},
		{"hard reset into the app", "", rom.AutoReset, content, hard, "app", "boot:0x13 (SPI_FAST_FLASH_BOOT)"},
		{"blank flash boot loop", "", rom.AutoReset, nil, hard, "boot loop", "invalid header: 0xffffffff"},
		{"blank flash, classic reset", "", rom.AutoReset, nil, classic, "download", "waiting for download"},
		{"ESP32-S3 USB-JTAG reset", "esp32s3", rom.USBSerialJTAG, nil, usbJTAG, "download", "ESP-ROM:esp32s3-20210327"},
		{"ESP32-C3 USB-JTAG hard reset", "esp32c3", rom.USBSerialJTAG, nil, hard, "boot loop", "invalid header: 0xffffffff"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fl := flash.NewMemory(4 << 20)
			if c.flash != nil {
				fl = flash.FromBytes(c.flash)
			}
			d, err := New(fl, Config{Chip: c.chip, Reset: c.reset, Line: link.Config{Baud: 115200}})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			host := d.Host()
			h := newROMHost(t, host, func(b []byte) error { _, err := host.Write(b); return err })
			time.Sleep(50 * time.Millisecond)
			for len(h.text.ch) > 0 {
				<-h.text.ch
			}
			before := d.Device()
			for _, s := range c.seq {
				d.Line().SetSignals(link.Signals{DTR: s.dtr, RTS: s.rts})
				time.Sleep(s.wait)
			}
			waitFor(t, d, c.state)
			if c.state == "app" {
				// A new life: the device booted again.
				for end := time.Now().Add(3 * time.Second); d.Device() == before || d.Device() == nil; time.Sleep(5 * time.Millisecond) {
					if time.Now().After(end) {
						t.Fatal("the app did not boot again")
					}
				}
			}
			h.waitText(c.text, 3*time.Second)
			if c.state == "download" && !h.sync() {
				t.Fatal("no SYNC reply in download mode")
			}
			if c.chip == "esp32s3" {
				_, info, ok := h.cmd(rom.OpGetSecInfo, nil, 0, time.Second)
				if !ok || len(info) != 24 || binary.LittleEndian.Uint32(info[12:]) != 9 {
					t.Fatalf("GET_SECURITY_INFO: %v % x, want chip id 9", ok, info)
				}
			}
		})
	}
}

// TestWebSocketSignals: text messages on the WebSocket port set DTR/RTS;
// malformed ones close it with a reason.
func TestWebSocketSignals(t *testing.T) {
	cases := []struct {
		msg  string
		want link.Signals
		bad  bool
	}{
		{`{"dtr":false,"rts":true}`, link.Signals{RTS: true}, false},
		{`{"dtr":true}`, link.Signals{DTR: true, RTS: true}, false},
		{`{"rts":false}`, link.Signals{DTR: true}, false},
		{`{"dtr":1}`, link.Signals{}, true},
		{`{"break":true}`, link.Signals{}, true},
		{`hello`, link.Signals{}, true},
	}
	cur := link.Signals{}
	for _, c := range cases {
		got, err := ParseSignals([]byte(c.msg), cur)
		if (err != nil) != c.bad {
			t.Errorf("%s: err %v", c.msg, err)
			continue
		}
		if !c.bad {
			if got != c.want {
				t.Errorf("%s: %+v, want %+v", c.msg, got, c.want)
			}
			cur = got
		}
	}
	if s, err := ParseSignals(EncodeSignals(link.Signals{DTR: true}), link.Signals{RTS: true}); err != nil || s != (link.Signals{DTR: true}) {
		t.Errorf("EncodeSignals round trip: %+v %v", s, err)
	}
}

// TestUnknownProgramHangs: code that is not a published flasher stub,
// uploaded and started, leaves the chip deaf until a reset, after which
// the ROM answers again.
func TestUnknownProgramHangs(t *testing.T) {
	var log bytes.Buffer
	var logMu = make(chan struct{}, 1)
	logMu <- struct{}{}
	d, err := New(flash.NewMemory(4<<20), Config{BootButton: true, Log: LineLog(func(l string) {
		<-logMu
		log.WriteString(l + "\n")
		logMu <- struct{}{}
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	host := d.Host()
	h := newROMHost(t, host, func(b []byte) error { _, err := host.Write(b); return err })
	h.waitText("waiting for download", 2*time.Second)
	if !h.sync() {
		t.Fatal("no SYNC reply")
	}
	code := bytes.Repeat([]byte{0x36, 0x41, 0x00, 0x1D}, 256)
	h.cmd(rom.OpMemBegin, le(uint32(len(code)), 1, 0x1800, 0x40090000), 0, time.Second)
	h.cmd(rom.OpMemData, append(le(uint32(len(code)), 0, 0, 0), code...), rom.Checksum(code), time.Second)
	if _, _, ok := h.cmd(rom.OpMemEnd, le(0, 0x40090000), 0, time.Second); !ok {
		t.Fatal("MEM_END not answered")
	}
	waitFor(t, d, "hung")
	if h.sync() {
		t.Fatal("a chip running unknown code answered SYNC")
	}
	// EN pressed (the reset button); BOOT is still held.
	d.Board().Reset()
	waitFor(t, d, "download")
	if !h.sync() {
		t.Fatal("no SYNC reply after the reset")
	}
	<-logMu
	defer func() { logMu <- struct{}{} }()
	if n := strings.Count(log.String(), "waiting for download"); n != 2 {
		t.Errorf("Config.Log has %d download banners, want 2:\n%s", n, log.String())
	}
}

func waitFor(t *testing.T, d *Device, state string) {
	t.Helper()
	for end := time.Now().Add(3 * time.Second); d.State() != state; {
		if time.Now().After(end) {
			t.Fatalf("state %q, want %q", d.State(), state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestROMWriteSurvivesCut: the line is cut in the middle of a ROM write
// (the USB adapter unplugged and plugged in again, the chip powered on
// its own); the loader keeps its place and the host carries on.
func TestROMWriteSurvivesCut(t *testing.T) {
	d, err := New(flash.NewMemory(4<<20), Config{BootButton: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	host := d.Host()
	h := newROMHost(t, host, func(b []byte) error { _, err := host.Write(b); return err })
	h.waitText("waiting for download", 2*time.Second)
	if !h.sync() {
		t.Fatal("no SYNC reply")
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 0x100) // 4 KiB
	const bs = 0x400
	h.cmd(rom.OpFlashBegin, le(uint32(len(data)), 4, bs, 0x20000), 0, 5*time.Second)
	for i := 0; i < 4; i++ {
		if i == 2 {
			d.Line().Disconnect()
			time.Sleep(20 * time.Millisecond)
			d.Line().Reconnect()
		}
		blk := data[i*bs : (i+1)*bs]
		if _, r, ok := h.cmd(rom.OpFlashData, append(le(bs, uint32(i), 0, 0), blk...), rom.Checksum(blk), 2*time.Second); !ok || r[0] != 0 {
			t.Fatalf("block %d after the cut: %v % x", i, ok, r)
		}
	}
	got := make([]byte, len(data))
	d.Flash().ReadAt(got, 0x20000)
	if !bytes.Equal(got, data) || d.State() != "download" {
		t.Fatalf("after the cut: state %s, flash equal %v", d.State(), bytes.Equal(got, data))
	}
}

// TestNoTableBootLoop: a bootloader but an erased partition table: the
// second-stage bootloader fails and resets, again and again, until the
// host takes the chip into download mode.
func TestNoTableBootLoop(t *testing.T) {
	boot, err := device.StandInBootloader(0)
	if err != nil {
		t.Fatal(err)
	}
	fl := flash.NewMemory(4 << 20)
	fl.Program(0x1000, boot)
	d, err := New(fl, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	host := d.Host()
	h := newROMHost(t, host, func(b []byte) error { _, err := host.Write(b); return err })
	out := h.waitText("No bootable app partitions", 3*time.Second)
	out += h.waitText("No bootable app partitions", 3*time.Second)
	if d.State() != "boot loop" || strings.Count(out, "rst:0x1") < 2 {
		t.Fatalf("state %s; output %q: want the bootloader failing twice", d.State(), out)
	}
	for _, s := range []link.Signals{{RTS: true}, {DTR: true}, {}} {
		d.Line().SetSignals(s)
		time.Sleep(60 * time.Millisecond)
	}
	waitFor(t, d, "download")
}
