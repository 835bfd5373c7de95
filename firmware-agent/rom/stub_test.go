package rom

import (
	"bytes"
	"compress/zlib"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand"
	"testing"
	"time"

	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
)

// testStub is a made-up stub (random segments) registered as known, so
// the tests exercise recognition without shipping a real stub image.
type testStub struct {
	stub       Stub
	text, data []byte
}

func newTestStub(chip *Chip) testStub {
	r := rand.New(rand.NewSource(7))
	text, data := make([]byte, 6000), make([]byte, 200)
	r.Read(text)
	r.Read(data)
	digest := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	return testStub{
		stub: Stub{Name: "test stub", Chip: chip, Entry: 0x400A9000,
			Text: Segment{0x400A8000, digest(text)}, Data: Segment{0x3FFDE000, digest(data)}},
		text: text, data: data,
	}
}

// upload sends segments with MEM_BEGIN/MEM_DATA in 0x1800-byte blocks,
// as esptool and esptool-js do, and MEM_END with the entry.
func (b *bench) upload(segs map[uint32][]byte, order []uint32, entry uint32) {
	b.t.Helper()
	const blk = 0x1800
	for _, addr := range order {
		seg := segs[addr]
		n := (len(seg) + blk - 1) / blk
		b.cmd(OpMemBegin, words(uint32(len(seg)), uint32(n), blk, addr), 0)
		for i := 0; i < n; i++ {
			d := seg[i*blk : min((i+1)*blk, len(seg))]
			if _, failed, code := status(b.cmd(OpMemData, dataPacket(i, d), Checksum(d)), 4); failed != 0 {
				b.t.Fatalf("MEM_DATA %d: error 0x%02x", i, code)
			}
		}
	}
	b.cmd(OpMemEnd, words(0, entry), 0)
}

func TestStubRecognition(t *testing.T) {
	ts := newTestStub(ESP32)
	tampered := append([]byte(nil), ts.text...)
	tampered[100] ^= 1
	cases := []struct {
		name  string
		chip  *Chip
		text  []byte
		entry uint32
		known bool
	}{
		{"known stub", ESP32, ts.text, ts.stub.Entry, true},
		{"one bit changed", ESP32, tampered, ts.stub.Entry, false},
		{"other entry", ESP32, ts.text, ts.stub.Entry + 4, false},
		{"other chip", ESP32S3, ts.text, ts.stub.Entry, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBench(t, Config{Chip: c.chip, Stubs: []Stub{ts.stub}}, link.Config{Baud: 921600})
			b.upload(map[uint32][]byte{ts.stub.Text.Addr: c.text, ts.stub.Data.Addr: ts.data},
				[]uint32{ts.stub.Text.Addr, ts.stub.Data.Addr}, c.entry)
			p, err := b.frame(300 * time.Millisecond)
			if c.known {
				if err != nil || string(p) != "OHAI" {
					t.Fatalf("after MEM_END: %q, %v; want the OHAI greeting", p, err)
				}
				if b.l.Stub() == nil {
					t.Fatal("Stub() is nil after OHAI")
				}
				return
			}
			if err != errTimeout {
				t.Fatalf("unknown program answered %q, %v", p, err)
			}

			// The chip is deaf now, even to SYNC.
			b.send(OpSync, syncData(), 0)
			if p, err := b.frame(300 * time.Millisecond); err != errTimeout {
				t.Fatalf("a hung chip answered SYNC: %q %v", p, err)
			}
		})
	}
}

func TestKnownStubs(t *testing.T) {
	seen := map[*Chip]int{}
	for _, s := range KnownStubs {
		for _, seg := range []Segment{s.Text, s.Data} {
			if b, err := hex.DecodeString(seg.SHA256); err != nil || len(b) != 32 {
				t.Errorf("%s %s: digest %q is not a SHA-256", s.Name, s.Chip, seg.SHA256)
			}
		}
		if s.Chip == nil || s.Entry < s.Text.Addr {
			t.Errorf("%s: chip %v entry 0x%x text 0x%x", s.Name, s.Chip, s.Entry, s.Text.Addr)
		}
		seen[s.Chip]++
	}
	for _, c := range Chips {
		if seen[c] < 2 {
			t.Errorf("%s: %d known stubs, want the esptool-js and the esptool one", c, seen[c])
		}
	}
}

// stubBench returns a bench whose chip runs the test stub.
func stubBench(t *testing.T, fl *flash.Flash, lc link.Config) *bench {
	ts := newTestStub(ESP32)
	b := newBench(t, Config{Flash: fl, Stubs: []Stub{ts.stub}}, lc)
	b.upload(map[uint32][]byte{ts.stub.Text.Addr: ts.text, ts.stub.Data.Addr: ts.data},
		[]uint32{ts.stub.Text.Addr, ts.stub.Data.Addr}, ts.stub.Entry)
	if p, err := b.frame(time.Second); err != nil || string(p) != "OHAI" {
		t.Fatalf("no OHAI: %q %v", p, err)
	}
	return b
}

// TestStubCommands: once the stub runs, replies carry 2 status bytes, SYNC
// is answered once with value 0, MD5 comes raw, and the stub's own
// commands work.
func TestStubCommands(t *testing.T) {
	b := stubBench(t, nil, link.Config{})
	b.send(OpSync, syncData(), 0)
	r, err := b.reply(time.Second)
	if err != nil || r.val != 0 || !bytes.Equal(r.data, []byte{0, 0}) {
		t.Fatalf("stub SYNC reply %+v %v, want value 0 and 2 status bytes", r, err)
	}
	if _, err := b.reply(300 * time.Millisecond); err != errTimeout {
		t.Fatal("the stub answered SYNC twice")
	}
	if r := b.cmd(OpReadReg, words(ChipDetectMagicReg), 0); r.val != ESP32.Magic || len(r.data) != 2 {
		t.Errorf("stub READ_REG: %+v", r)
	}
	if _, failed, code := status(b.cmd(0x42, nil, 0), 2); failed != 1 || code != ErrStubNotImplemented {
		t.Errorf("unknown command: %d 0x%02x, want 1 0xFF", failed, code)
	}
	// ERASE_REGION, then MD5 of the erased region.
	b.fl.Program(0x30000, make([]byte, 0x2000))
	if _, failed, code := status(b.cmd(OpEraseRegion, words(0x30000, 0x2000), 0), 2); failed != 0 {
		t.Fatalf("ERASE_REGION: 0x%02x", code)
	}
	if _, failed, code := status(b.cmd(OpEraseRegion, words(0x30001, 0x2000), 0), 2); failed != 1 || code != ErrStubBadDataLen {
		t.Errorf("unaligned ERASE_REGION: %d 0x%02x", failed, code)
	}
	sum, failed, _ := status(b.cmd(OpSPIFlashMD5, words(0x30000, 0x2000, 0, 0), 0), 2)
	want := md5.Sum(bytes.Repeat([]byte{0xFF}, 0x2000))
	if failed != 0 || !bytes.Equal(sum, want[:]) {
		t.Errorf("stub MD5 % x, want raw % x", sum, want)
	}
}

// TestStubWrite writes compressed data through the stub: it erases just
// in time (only what the image covers) and the result reads back with
// READ_FLASH under its acknowledgement protocol.
func TestStubWrite(t *testing.T) {
	fl := flash.NewMemory(4 << 20)
	fl.Program(0x1A000, []byte{0}) // beyond the image: must survive
	b := stubBench(t, fl, link.Config{Baud: 921600})
	img := make([]byte, 0x9000)
	rand.New(rand.NewSource(5)).Read(img)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(img)
	zw.Close()
	comp := z.Bytes()
	const bs = 0x4000
	blocks := (len(comp) + bs - 1) / bs
	b.cmd(OpFlashDeflBegin, words(uint32(len(img)), uint32(blocks), bs, 0x10000, 0), 0)
	for i := 0; i < blocks; i++ {
		d := comp[i*bs : min((i+1)*bs, len(comp))]
		if _, failed, code := status(b.cmd(OpFlashDeflData, dataPacket(i, d), Checksum(d)), 2); failed != 0 {
			t.Fatalf("block %d: 0x%02x", i, code)
		}
	}
	sum, _, _ := status(b.cmd(OpSPIFlashMD5, words(0x10000, uint32(len(img)), 0, 0), 0), 2)
	if want := md5.Sum(img); !bytes.Equal(sum, want[:]) {
		t.Fatalf("MD5 after write % x, want % x", sum, want)
	}
	if _, failed, code := status(b.cmd(OpFlashDeflEnd, words(1), 0), 2); failed != 0 {
		t.Fatalf("FLASH_DEFL_END: 0x%02x", code)
	}
	var keep [1]byte
	fl.ReadAt(keep[:], 0x1A000)
	if keep[0] != 0 {
		t.Error("the stub erased past the image")
	}

	// READ_FLASH, 0x1000-byte packets, 4 in flight.
	if _, failed, _ := status(b.cmd(OpReadFlash, words(0x10000, uint32(len(img)), 0x1000, 4), 0), 2); failed != 0 {
		t.Fatal("READ_FLASH refused")
	}
	var got []byte
	for len(got) < len(img) {
		p, err := b.frame(2 * time.Second)
		if err != nil {
			t.Fatalf("READ_FLASH after %d bytes: %v", len(got), err)
		}
		got = append(got, p...)
		ack := make([]byte, 4)
		binary.LittleEndian.PutUint32(ack, uint32(len(got)))
		b.line.Host().Write(AppendSLIP(nil, ack))
	}
	p, err := b.frame(2 * time.Second)
	want := md5.Sum(img)
	if !bytes.Equal(got, img) || err != nil || !bytes.Equal(p, want[:]) {
		t.Fatalf("READ_FLASH data equal %v, digest % x (%v)", bytes.Equal(got, img), p, err)
	}

	b.send(OpRunUserCode, nil, 0)
	select {
	case err := <-b.done:
		if ex, ok := err.(*Exit); !ok || ex.Reset {
			t.Errorf("RUN_USER_CODE: Serve returned %v", err)
		}
		b.done <- err
	case <-time.After(2 * time.Second):
		t.Error("RUN_USER_CODE: the stub stays")
	}
}

// TestStubAnswersFirst: the stub replies to FLASH_DEFL_DATA before it has
// written the block (pipelining), the ROM after.
func TestStubAnswersFirst(t *testing.T) {
	slow := func() *flash.Flash {
		fl := flash.NewMemory(4 << 20)
		fl.SetTiming(flash.Timing{SectorErase: 30 * time.Millisecond, BlockErase: 100 * time.Millisecond, PageProgram: time.Millisecond})
		return fl
	}
	blk := make([]byte, 0x4000)
	rand.New(rand.NewSource(9)).Read(blk)
	run := func(b *bench, status int) time.Duration {
		b.cmd(OpFlashBegin, words(0x4000, 1, 0x4000, 0x10000), 0)
		start := time.Now()
		b.cmd(OpFlashData, dataPacket(0, blk), Checksum(blk))
		return time.Since(start)
	}
	rom := run(newBench(t, Config{Flash: slow()}, link.Config{Baud: 2000000}), 4)
	stub := run(stubBench(t, slow(), link.Config{Baud: 2000000}), 2)
	// Both include the 82 ms the block takes at 2 Mbaud; the ROM's also
	// the 64 pages at 1 ms it programs before answering.
	if rom-stub < 50*time.Millisecond {
		t.Errorf("FLASH_DATA replies: ROM after %v, stub after %v; want the ROM after its writes and the stub before", rom, stub)
	}
}
