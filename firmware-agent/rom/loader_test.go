package rom

import (
	"bytes"
	"compress/zlib"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"math/rand"
	"testing"
	"time"

	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
)

func TestSync(t *testing.T) {
	b := newBench(t, Config{}, link.Config{})
	b.send(OpSync, syncData(), 0)
	for i := 0; i < 8; i++ {
		r, err := b.reply(2 * time.Second)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if r.op != OpSync || r.val != 0x20120707 || !bytes.Equal(r.data, []byte{0, 0, 0, 0}) {
			t.Fatalf("reply %d = %+v, want 010804000707122000000000", i, r)
		}
	}
	if _, err := b.reply(300 * time.Millisecond); err != errTimeout {
		t.Fatalf("a ninth SYNC reply: %v", err)
	}
	// A SYNC without the pattern gets nothing.
	b.send(OpSync, []byte{1, 2, 3}, 0)
	if _, err := b.reply(300 * time.Millisecond); err != errTimeout {
		t.Fatalf("bad SYNC answered: %v", err)
	}
}

// TestReadReg reads what esptool and esptool-js read to identify a chip:
// the magic word, the MAC and revision eFuses, the UART divider.
func TestReadReg(t *testing.T) {
	mac := [6]byte{0x24, 0x6F, 0x28, 0xAA, 0xBB, 0xCC}
	cases := []struct {
		chip *Chip
		rev  uint16
		reg  uint32
		want uint32
		mask uint32
	}{
		{ESP32, 300, ChipDetectMagicReg, 0x00F01D83, ^uint32(0)},
		{ESP32S2, 100, ChipDetectMagicReg, 0x000007C6, ^uint32(0)},
		{ESP32S3, 2, ChipDetectMagicReg, 0x9, ^uint32(0)},
		{ESP32C3, 4, ChipDetectMagicReg, 0x1B31506F, ^uint32(0)},
		// ESP32: MAC words 1 and 2, revision bits (word3 bit 15, word5 bit 20, APB date bit 31).
		{ESP32, 300, 0x3FF5A004, 0x28AABBCC, ^uint32(0)},
		{ESP32, 300, 0x3FF5A008, 0x246F, 0xFFFF},
		{ESP32, 300, 0x3FF5A00C, 1<<15 | 1<<9, 1<<15 | 7<<9},
		{ESP32, 100, 0x3FF5A014, 0, 1 << 20},
		{ESP32, 300, 0x3FF5A014, 1 << 20, 1 << 20},
		{ESP32, 300, 0x3FF6607C, 1 << 31, 1 << 31},
		{ESP32, 200, 0x3FF6607C, 0, 1 << 31},
		// 40 MHz / 115200 baud: esptool reads a 40 MHz crystal back.
		{ESP32, 300, 0x3FF40014, 347, 0xFFFFF},
		// ESP32-S3 v0.2: BLOCK1 word 3 bits 18..20 = 2, word 5 bits 24..25 = 0.
		{ESP32S3, 2, 0x60007044, 0x28AABBCC, ^uint32(0)},
		{ESP32S3, 2, 0x60007044 + 12, 2 << 18, 7 << 18},
		{ESP32C3, 104, 0x60008844 + 20, 1 << 24, 3<<24 | 1<<23},
		{ESP32S2, 100, 0x3F41A044 + 12, 1 << 18, 3 << 18},
		{ESP32S2, 100, 0x3F41A044 + 4, 0x246F, 0xFFFF},
		// Unmapped memory reads 0.
		{ESP32, 300, 0x3FFB0000, 0, ^uint32(0)},
	}
	for _, c := range cases {
		b := newBench(t, Config{Chip: c.chip, Rev: c.rev, MAC: mac}, link.Config{})
		r := b.cmd(OpReadReg, words(c.reg), 0)
		if _, failed, _ := status(r, 4); failed != 0 || len(r.data) != 4 {
			t.Errorf("%s READ_REG 0x%08x: reply data % x, want 4 status bytes of success", c.chip, c.reg, r.data)
		}
		if r.val&c.mask != c.want {
			t.Errorf("%s rev %d READ_REG 0x%08x = 0x%08x (mask 0x%x), want 0x%08x", c.chip, c.rev, c.reg, r.val, c.mask, c.want)
		}
	}
}

// TestFlashID runs RDID through the SPI user-command registers as
// esptool's run_spiflash_command does.
func TestFlashID(t *testing.T) {
	for _, c := range []struct {
		chip *Chip
		size int
		want uint32
	}{
		{ESP32, 4 << 20, 0x1640EF},
		{ESP32S3, 8 << 20, 0x1740EF},
		{ESP32C3, 2 << 20, 0x1540EF},
	} {
		b := newBench(t, Config{Chip: c.chip, Flash: flash.NewMemory(c.size)}, link.Config{})
		base := c.chip.SPIBase
		wr := func(addr, v uint32) {
			if _, failed, code := status(b.cmd(OpWriteReg, words(addr, v, 0xFFFFFFFF, 0), 0), 4); failed != 0 {
				t.Fatalf("WRITE_REG 0x%x: error 0x%02x", addr, code)
			}
		}
		wr(base+c.chip.SPIMISODLen, 23)
		wr(base+c.chip.SPIUsr, 1<<31|1<<28)
		wr(base+c.chip.SPIUsr2, 7<<28|0x9F)
		wr(base+c.chip.SPIW0, 0)
		wr(base, spiCmdUsr)
		if v := b.cmd(OpReadReg, words(base), 0).val; v&spiCmdUsr != 0 {
			t.Errorf("%s: SPI_CMD_USR still busy", c.chip)
		}
		if v := b.cmd(OpReadReg, words(base+c.chip.SPIW0), 0).val & 0xFFFFFF; v != c.want {
			t.Errorf("%s %d MiB: flash id 0x%06x, want 0x%06x", c.chip, c.size>>20, v, c.want)
		}
	}
}

func TestSecurityInfo(t *testing.T) {
	cases := []struct {
		chip   *Chip
		n      int // payload length; 0 = unsupported
		chipID uint32
	}{
		{ESP32, 0, 0},
		{ESP32S2, 12, 0},
		{ESP32S3, 20, 9},
		{ESP32C3, 20, 5},
	}
	for _, c := range cases {
		b := newBench(t, Config{Chip: c.chip}, link.Config{})
		if c.n == 0 {
			expectUnsupported(t, b, OpGetSecInfo)
			continue
		}
		payload, failed, code := status(b.cmd(OpGetSecInfo, nil, 0), 4)
		if failed != 0 || len(payload) != c.n {
			t.Fatalf("%s: GET_SECURITY_INFO %d bytes status %d error 0x%02x, want %d bytes", c.chip, len(payload), failed, code, c.n)
		}
		if c.n == 20 && binary.LittleEndian.Uint32(payload[12:]) != c.chipID {
			t.Errorf("%s: chip id %d, want %d", c.chip, binary.LittleEndian.Uint32(payload[12:]), c.chipID)
		}
	}
}

// TestROMErrors: the ROM's error codes for bad requests.
func TestROMErrors(t *testing.T) {
	block := bytes.Repeat([]byte{0xA5}, 1024)
	cases := []struct {
		name string
		run  func(b *bench) reply
		code byte
	}{
		{"READ_REG without address", func(b *bench) reply { return b.cmd(OpReadReg, nil, 0) }, ErrROMInvalidMsg},
		{"FLASH_DATA before FLASH_BEGIN", func(b *bench) reply {
			return b.cmd(OpFlashData, dataPacket(0, block), Checksum(block))
		}, ErrROMResult},
		{"FLASH_DATA bad checksum", func(b *bench) reply {
			b.cmd(OpFlashBegin, words(1024, 1, 1024, 0x10000), 0)
			return b.cmd(OpFlashData, dataPacket(0, block), Checksum(block)^1)
		}, ErrROMChecksum},
		{"FLASH_DATA size field wrong", func(b *bench) reply {
			b.cmd(OpFlashBegin, words(1024, 1, 1024, 0x10000), 0)
			p := dataPacket(0, block)
			binary.LittleEndian.PutUint32(p, 1000)
			return b.cmd(OpFlashData, p, Checksum(block))
		}, ErrROMInvalidMsg},
		{"ESP32 ROM FLASH_BEGIN with a fifth word", func(b *bench) reply { return b.cmd(OpFlashBegin, words(1024, 1, 1024, 0x10000, 0), 0) }, ErrROMInvalidMsg},
		{"FLASH_BEGIN unaligned", func(b *bench) reply { return b.cmd(OpFlashBegin, words(1024, 1, 1024, 0x10010), 0) }, ErrROMInvalidParam},
		{"FLASH_BEGIN past the chip", func(b *bench) reply { return b.cmd(OpFlashBegin, words(0x2000, 2, 0x1000, 0x3FF000), 0) }, ErrROMInvalidParam},
		{"write over unerased data", func(b *bench) reply {
			b.cmd(OpFlashBegin, words(0, 1, 1024, 0x10000), 0) // erases nothing
			return b.cmd(OpFlashData, dataPacket(0, block), Checksum(block))
		}, ErrROMFlashWrite},
		{"corrupt compressed data", func(b *bench) reply {
			b.cmd(OpFlashDeflBegin, words(0x1000, 1, 1024, 0x10000), 0)
			junk := bytes.Repeat([]byte{0xFF}, 64)
			return b.cmd(OpFlashDeflData, dataPacket(0, junk), Checksum(junk))
		}, ErrROMDeflate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBench(t, Config{}, link.Config{})
			fl := b.fl
			if c.name == "write over unerased data" {
				fl.Program(0x10000, make([]byte, 1024)) // zeros: cannot become 0xA5
			}
			_, failed, code := status(c.run(b), 4)
			if failed != 1 || code != c.code {
				t.Errorf("status %d error 0x%02x, want 1 0x%02x", failed, code, c.code)
			}
		})
	}
}

// TestROMFlashWrite writes plain and compressed data through the ROM and
// checks the flash, the MD5 reply (hex text) and that FLASH_BEGIN erased
// the whole region before answering.
func TestROMFlashWrite(t *testing.T) {
	img := make([]byte, 10000)
	rand.New(rand.NewSource(1)).Read(img)
	for _, defl := range []bool{false, true} {
		b := newBench(t, Config{}, link.Config{})
		b.fl.Program(0x20000, make([]byte, 0x3000)) // old content, to be erased
		const off, bs = 0x20000, 0x400
		var payload []byte = img
		begin, data := byte(OpFlashBegin), byte(OpFlashData)
		eraseSize := uint32(len(img))
		if defl {
			var z bytes.Buffer
			w := zlib.NewWriter(&z)
			w.Write(img)
			w.Close()
			payload = z.Bytes()
			begin, data = OpFlashDeflBegin, OpFlashDeflData
			eraseSize = (uint32(len(img)) + bs - 1) / bs * bs
		}
		blocks := (len(payload) + bs - 1) / bs
		if _, failed, code := status(b.cmd(begin, words(eraseSize, uint32(blocks), bs, off), 0), 4); failed != 0 {
			t.Fatalf("defl=%v: begin error 0x%02x", defl, code)
		}
		erased := make([]byte, 0x3000)
		b.fl.ReadAt(erased, off)
		if !bytes.Equal(erased, bytes.Repeat([]byte{0xFF}, 0x3000)) {
			t.Fatalf("defl=%v: region not erased when FLASH_BEGIN answered", defl)
		}
		for i := 0; i < blocks; i++ {
			chunk := payload[i*bs : min((i+1)*bs, len(payload))]
			if !defl && len(chunk) < bs {
				chunk = append(append([]byte(nil), chunk...), bytes.Repeat([]byte{0xFF}, bs-len(chunk))...)
			}
			if _, failed, code := status(b.cmd(data, dataPacket(i, chunk), Checksum(chunk)), 4); failed != 0 {
				t.Fatalf("defl=%v: block %d error 0x%02x", defl, i, code)
			}
		}
		got := make([]byte, len(img))
		b.fl.ReadAt(got, off)
		if !bytes.Equal(got, img) {
			t.Fatalf("defl=%v: flash differs from the image", defl)
		}
		md5r, failed, _ := status(b.cmd(OpSPIFlashMD5, words(off, uint32(len(img)), 0, 0), 0), 4)
		sum := md5.Sum(img)
		if failed != 0 || string(md5r) != hex.EncodeToString(sum[:]) {
			t.Fatalf("defl=%v: MD5 reply %q, want %x", defl, md5r, sum)
		}
	}
}

// TestROMTiming: the ROM answers FLASH_BEGIN after the erase and each
// FLASH_DATA after its program, at the flash's speed.
func TestROMTiming(t *testing.T) {
	fl := flash.NewMemory(4 << 20)
	fl.SetTiming(flash.Timing{SectorErase: 20 * time.Millisecond, BlockErase: 60 * time.Millisecond, PageProgram: time.Millisecond})
	b := newBench(t, Config{Flash: fl}, link.Config{Baud: 921600})
	start := time.Now()
	b.cmd(OpFlashBegin, words(0x11000, 1, 0x400, 0x10000), 0) // one block + one sector
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("FLASH_BEGIN of 68 KiB answered after %v, before its erases (60+20 ms)", d)
	}
	blk := bytes.Repeat([]byte{1}, 0x400)
	start = time.Now()
	b.cmd(OpFlashData, dataPacket(0, blk), Checksum(blk))
	if d := time.Since(start); d < 4*time.Millisecond {
		t.Errorf("FLASH_DATA of 4 pages answered after %v, before programming them", d)
	}
}

func TestChangeBaud(t *testing.T) {
	// ESP32-S2 and later ROMs take the fifth FLASH_BEGIN word.
	s3 := newBench(t, Config{Chip: ESP32S3}, link.Config{})
	if _, failed, code := status(s3.cmd(OpFlashBegin, words(1024, 1, 1024, 0x10000, 0), 0), 4); failed != 0 {
		t.Errorf("ESP32-S3 FLASH_BEGIN with 5 words: error 0x%02x", code)
	}
	b := newBench(t, Config{}, link.Config{})
	b.cmd(OpChangeBaudrate, words(921600, 0), 0)
	// The chip switches once its reply has left the wire.
	for end := time.Now().Add(time.Second); b.line.Device().Baud() != 921600 && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	if got := b.line.Device().Baud(); got != 921600 {
		t.Fatalf("device rate %d after CHANGE_BAUDRATE, want 921600", got)
	}
	b.line.Host().SetBaudNow(921600)
	if v := b.cmd(OpReadReg, words(ChipDetectMagicReg), 0).val; v != ESP32.Magic {
		t.Fatalf("after the change: magic 0x%x", v)
	}
	if v := b.cmd(OpReadReg, words(ESP32.UARTClkDivReg), 0).val; v != 40_000_000/921600 {
		t.Errorf("UART divider %d at 921600, want %d", v, 40_000_000/921600)
	}
}

// TestChecksumNoise: line noise corrupts FLASH_DATA; the ROM reports a
// checksum error (or drops a frame it cannot parse) and a retry succeeds.
func TestChecksumNoise(t *testing.T) {
	b := newBench(t, Config{}, link.Config{FlipRate: 2e-4, Seed: 3})
	b.cmd(OpFlashBegin, words(0x8000, 32, 0x400, 0x10000), 0)
	img := make([]byte, 0x8000)
	rand.New(rand.NewSource(2)).Read(img)
	retries := 0
	for i := 0; i < 32; i++ {
		blk := img[i*0x400 : (i+1)*0x400]
		for try := 0; ; try++ {
			if try == 10 {
				t.Fatalf("block %d: 10 tries failed", i)
			}
			b.send(OpFlashData, dataPacket(i, blk), Checksum(blk))
			r, err := b.reply(400 * time.Millisecond)
			if err == nil && r.op == OpFlashData {
				if _, failed, _ := status(r, 4); failed == 0 {
					break
				}
			}
			retries++
		}
	}
	got := make([]byte, len(img))
	b.fl.ReadAt(got, 0x10000)
	if !bytes.Equal(got, img) {
		t.Fatal("flash differs after retried blocks")
	}
	if retries == 0 || b.line.Stats().Flipped == 0 {
		t.Fatalf("noise did not hit (retries %d, flipped %d): the test proves nothing", retries, b.line.Stats().Flipped)
	}
}

func TestFlashEndExits(t *testing.T) {
	for _, c := range []struct {
		flag  uint32
		reset bool
	}{{0, true}, {1, false}} {
		b := newBench(t, Config{}, link.Config{})
		b.cmd(OpFlashBegin, words(0, 0, 0x400, 0), 0)
		b.cmd(OpFlashEnd, words(c.flag), 0)
		select {
		case err := <-b.done:
			ex, ok := err.(*Exit)
			if !ok || ex.Reset != c.reset {
				t.Errorf("FLASH_END %d: Serve returned %v, want Exit{Reset: %v}", c.flag, err, c.reset)
			}
			b.done <- err // for the cleanup
		case <-time.After(2 * time.Second):
			t.Errorf("FLASH_END %d: the ROM stays in the loader", c.flag)
		}
	}
}

// expectUnsupported sends op and checks the ROM's "unsupported" answer:
// 8 replies, status 1, error 0x05, under another opcode.
func expectUnsupported(t *testing.T, b *bench, op byte) {
	t.Helper()
	b.send(op, nil, 0)
	for i := 0; i < unsupportedRepeat; i++ {
		r, err := b.reply(time.Second)
		if err != nil {
			t.Fatalf("op 0x%02x: reply %d: %v", op, i, err)
		}
		if _, failed, code := status(r, 4); r.op == op || failed != 1 || code != ErrROMInvalidMsg {
			t.Fatalf("op 0x%02x: reply %d under op 0x%02x, status %d error 0x%02x; want another op, 1, 0x05", op, i, r.op, failed, code)
		}
	}
	if _, err := b.reply(200 * time.Millisecond); err != errTimeout {
		t.Fatalf("op 0x%02x: a ninth reply (%v)", op, err)
	}
}

func TestUnsupported(t *testing.T) {
	for _, c := range []struct {
		chip *Chip
		op   byte
	}{
		{ESP32, 0x42},
		{ESP32, OpEraseFlash}, // stub only
		{ESP32, OpReadFlash},
		{ESP32, OpGetSecInfo},
		{ESP32S3, OpRunUserCode},
	} {
		b := newBench(t, Config{Chip: c.chip}, link.Config{Baud: 921600})
		b.cmd(OpReadReg, words(ChipDetectMagicReg), 0)
		expectUnsupported(t, b, c.op)
		// The ROM still answers what it knows.
		if v := b.cmd(OpReadReg, words(ChipDetectMagicReg), 0).val; v != c.chip.Magic {
			t.Errorf("%s after op 0x%02x: magic 0x%x", c.chip, c.op, v)
		}
	}
}
