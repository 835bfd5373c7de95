package rom

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/gota-dev/gota/firmware-agent/flash"
)

// Port is the chip's UART as the loader uses it. *link.End implements it.
type Port interface {
	io.Reader
	io.Writer
	// SetBaud waits until written bytes have left, then switches rate.
	SetBaud(baud int) error
	Baud() int
}

// Config describes the chip a Loader emulates.
type Config struct {
	Chip  *Chip        // default ESP32
	Flash *flash.Flash // the SPI flash; nil = no flash attached
	Rev   uint16       // major*100+minor; default Chip.DefaultRev
	MAC   [6]byte      // factory MAC; zero = DefaultMAC
	// Stubs are the flasher stubs the chip recognises; nil = KnownStubs.
	Stubs []Stub
	// OnStub, when set, is called when a recognised stub starts, before
	// it greets the host (e.g. to give the UART the stub's buffers).
	OnStub func(*Stub)
}

// DefaultMAC is the MAC a Config without one gets (Espressif's OUI).
var DefaultMAC = [6]byte{0x24, 0x0A, 0xC4, 0x12, 0x34, 0x56}

// Exit is returned by Serve when the host makes the chip leave download
// mode. Reset says whether the chip resets (FLASH_END 0, stub reboot) or
// jumps straight into the flash boot (FLASH_END 1, RUN_USER_CODE); either
// way the flash bootloader runs next.
type Exit struct {
	Reset  bool
	Reason string // e.g. "FLASH_END 0"
}

func (e *Exit) Error() string { return "rom: leaves download mode: " + e.Reason }

// ErrHung is returned by Serve when the host started an uploaded program
// that is not a recognised flasher stub: the emulator cannot run it, so
// the chip stops answering until it is reset. Serve returns it at once;
// later calls read and drop everything until the port fails.
var ErrHung = errors.New("rom: running an unknown uploaded program; the chip stops answering until reset")

// Loader is the ROM serial loader of one chip, and the flasher stub once
// a host has started a recognised one.
type Loader struct {
	cfg  Config
	port Port
	out  []byte
	regs *regs
	val  uint32 // the value field of the next reply (the ROM leaves the last one)

	stub     *Stub // non-nil once a recognised stub runs
	hung     bool  // an unknown program runs: deaf until reset
	lastOp   byte  // the last command the ROM understood
	mem      memUpload
	fw       *flashWrite
	stubErr  byte // a stub write error not reported yet
	flashSz  int  // SPI_SET_PARAMS total size
	attached bool
}

// New returns the loader for cfg, in ROM mode.
func New(cfg Config) *Loader {
	if cfg.Chip == nil {
		cfg.Chip = ESP32
	}
	if cfg.Rev == 0 {
		cfg.Rev = cfg.Chip.DefaultRev
	}
	if cfg.MAC == ([6]byte{}) {
		cfg.MAC = DefaultMAC
	}
	if cfg.Stubs == nil {
		cfg.Stubs = KnownStubs
	}
	l := &Loader{cfg: cfg, lastOp: OpSync}
	size := 0
	if cfg.Flash != nil {
		size = cfg.Flash.Size()
	}
	l.regs = newRegs(cfg.Chip, cfg.Rev, cfg.MAC, size, func() int {
		if l.port == nil {
			return 115200
		}
		return l.port.Baud()
	})
	return l
}

// Close releases what a write in progress holds (its decompressor). The
// chip's reset ends a Loader this way.
func (l *Loader) Close() { l.abandonWrite() }

// Hung reports whether an unknown program was started (ErrHung).
func (l *Loader) Hung() bool { return l.hung }

// Stub returns the flasher stub running, or nil in the ROM loader.
func (l *Loader) Stub() *Stub { return l.stub }

// Serve answers commands on port until the host makes the chip leave the
// loader (*Exit), an unknown program is started (ErrHung, after the port
// fails), the port fails, or ctx ends. A Loader keeps its state (stub
// running, flash write in progress) across calls, as the chip does while
// the line is unplugged.
func (l *Loader) Serve(ctx context.Context, port Port) error {
	l.port = port
	if l.hung {
		_, err := io.Copy(io.Discard, port)
		if err == nil {
			err = io.EOF
		}
		return err
	}
	sr := NewSLIPReader(port)
	for ctx.Err() == nil {
		frame, err := sr.ReadFrame()
		if errors.Is(err, ErrSLIP) {
			continue // the ROM drops a frame it cannot decode
		}
		if err != nil {
			return err
		}
		cmd, ok := parseCommand(frame)
		if !ok {
			continue
		}
		if err := l.handle(ctx, cmd, sr); err != nil {
			if errors.Is(err, ErrHung) {
				l.hung = true
			}
			return err
		}
	}
	return ctx.Err()
}

// status appends the status trailer: the ROM's 4 bytes (status, error, 2
// reserved) or the stub's 2.
func (l *Loader) status(data []byte, code byte) []byte {
	failed := byte(0)
	if code != 0 {
		failed = 1
	}
	data = append(data, failed, code)
	if l.stub == nil {
		data = append(data, 0, 0)
	}
	return data
}

func (l *Loader) send(p []byte) error {
	l.out = AppendSLIP(l.out[:0], p)
	_, err := l.port.Write(l.out)
	return err
}

func (l *Loader) reply(op byte, data []byte, code byte) error {
	return l.send(response(op, l.val, l.status(data, code)))
}

// handle runs one command and answers it.
func (l *Loader) handle(ctx context.Context, c command, sr *SLIPReader) error {
	if c.data == nil && c.op != OpSync {
		// The size field disagrees with the packet.
		return l.reply(c.op, nil, l.errCode(ErrROMInvalidMsg, ErrStubBadDataLen))
	}
	if l.stub == nil && knownROMOp(c.op, l.cfg.Chip) {
		l.lastOp = c.op
	}
	switch c.op {
	case OpSync:
		return l.sync(c)
	case OpReadReg:
		addr, ok := c.word(0)
		if !ok {
			return l.reply(c.op, nil, l.errCode(ErrROMInvalidMsg, ErrStubBadDataLen))
		}
		l.val = l.regs.read(addr)
		err := l.reply(c.op, nil, 0)
		if l.stub != nil {
			l.val = 0
		}
		return err
	case OpWriteReg:
		return l.writeReg(c)
	case OpSPIAttach:
		l.attached = true
		return l.reply(c.op, nil, 0)
	case OpSPISetParams:
		w, ok := c.words(6)
		if !ok {
			return l.reply(c.op, nil, l.errCode(ErrROMInvalidMsg, ErrStubBadDataLen))
		}
		l.flashSz = int(w[1])
		return l.reply(c.op, nil, 0)
	case OpChangeBaudrate:
		return l.changeBaud(c)
	case OpGetSecInfo:
		if l.cfg.Chip.SecurityInfoLen == 0 && l.stub == nil {
			return l.unsupported() // not in the ESP32 ROM
		}
		return l.securityInfo(c)
	case OpMemBegin, OpMemData, OpMemEnd:
		return l.memCommand(c)
	case OpFlashBegin, OpFlashDeflBegin:
		return l.flashBegin(c)
	case OpFlashData, OpFlashDeflData:
		return l.flashData(c)
	case OpFlashEnd, OpFlashDeflEnd:
		return l.flashEnd(c)
	case OpSPIFlashMD5:
		return l.flashMD5(c)
	}
	if l.stub != nil {
		switch c.op {
		case OpEraseFlash, OpEraseRegion:
			return l.erase(c)
		case OpReadFlash:
			return l.readFlash(ctx, c, sr)
		case OpRunUserCode:
			return &Exit{Reason: "RUN_USER_CODE"}
		}
		return l.reply(c.op, nil, ErrStubNotImplemented)
	}
	return l.unsupported()
}

// unsupportedRepeat is how often the ROM sends its reply to a command it
// does not know (esptool loader.py: "Unsupported command response is sent
// 8 times and has 14 bytes length including delimiter 0xC0 bytes").
const unsupportedRepeat = 8

// unsupported answers a command the ROM does not know: status 1, error
// 0x05, repeated, under an opcode other than the request's, which is how
// esptool, esptool-js and tinygo's espflasher recognise it (they take a
// reply with another opcode and error 0x05 as "unsupported"). Which
// opcode a real ROM puts there is not documented; the emulator repeats
// the last command it understood.
func (l *Loader) unsupported() error {
	p := response(l.lastOp, l.val, l.status(nil, ErrROMInvalidMsg))
	for i := 0; i < unsupportedRepeat; i++ {
		if err := l.send(p); err != nil {
			return err
		}
	}
	return nil
}

// knownROMOp reports whether the ROM loader of chip has command op.
func knownROMOp(op byte, chip *Chip) bool {
	switch op {
	case OpFlashBegin, OpFlashData, OpFlashEnd, OpMemBegin, OpMemEnd, OpMemData, OpSync,
		OpWriteReg, OpReadReg, OpSPISetParams, OpSPIAttach, OpChangeBaudrate,
		OpFlashDeflBegin, OpFlashDeflData, OpFlashDeflEnd, OpSPIFlashMD5:
		return true
	case OpGetSecInfo:
		return chip.SecurityInfoLen > 0
	}
	return false
}

// errCode picks the ROM's or the stub's code for the same failure.
func (l *Loader) errCode(rom, stub byte) byte {
	if l.stub != nil {
		return stub
	}
	return rom
}

// sync answers SYNC: the ROM replies eight times (esptool's sync reads
// the first reply and 7 more), the stub once with value 0.
func (l *Loader) sync(c command) error {
	want := append([]byte{0x07, 0x07, 0x12, 0x20}, bytes.Repeat([]byte{0x55}, 32)...)
	if !bytes.Equal(c.data, want) {
		return nil // not a sync pattern: no reply
	}
	if l.stub != nil {
		l.val = 0
		return l.reply(c.op, nil, 0)
	}
	l.val = syncValue
	for i := 0; i < 8; i++ {
		if err := l.reply(c.op, nil, 0); err != nil {
			return err
		}
	}
	return nil
}

// writeReg applies WRITE_REG: one or more (address, value, mask, delay)
// quadruples (esptool-js appends a second one for a delay after).
func (l *Loader) writeReg(c command) error {
	if len(c.data) == 0 || len(c.data)%16 != 0 {
		return l.reply(c.op, nil, l.errCode(ErrROMInvalidMsg, ErrStubBadDataLen))
	}
	for i := 0; i+16 <= len(c.data); i += 16 {
		d := c.data[i:]
		addr := binary.LittleEndian.Uint32(d)
		val := binary.LittleEndian.Uint32(d[4:])
		mask := binary.LittleEndian.Uint32(d[8:])
		l.regs.write(addr, val, mask)
	}
	return l.reply(c.op, nil, 0)
}

// changeBaud answers at the old rate, then switches (CHANGE_BAUDRATE:
// new rate, and 0 from a host talking to the ROM or the old rate to the
// stub).
func (l *Loader) changeBaud(c command) error {
	baud, ok := c.word(0)
	if !ok || baud < 300 || baud > 10_000_000 {
		return l.reply(c.op, nil, l.errCode(ErrROMInvalidParam, ErrStubBadDataLen))
	}
	if err := l.reply(c.op, nil, 0); err != nil {
		return err
	}
	return l.port.SetBaud(int(baud))
}

// securityInfo answers GET_SECURITY_INFO on chips whose ROM has it: flags,
// flash_crypt_cnt, 7 key purposes, then (after ESP32-S2) chip id and API
// version. Nothing is enabled on the virtual chip.
func (l *Loader) securityInfo(c command) error {
	n := l.cfg.Chip.SecurityInfoLen
	if n == 0 {
		return l.reply(c.op, nil, l.errCode(ErrROMInvalidMsg, ErrStubInvalidCommand))
	}
	info := make([]byte, n)
	if n >= 20 {
		binary.LittleEndian.PutUint32(info[12:], l.cfg.Chip.ChipID)
	}
	return l.reply(c.op, info, 0)
}

// flashMD5 answers SPI_FLASH_MD5: the ROM sends the digest as 32
// lower-case hex characters, the stub as 16 raw bytes.
func (l *Loader) flashMD5(c command) error {
	w, ok := c.words(2)
	if !ok {
		return l.reply(c.op, nil, l.errCode(ErrROMInvalidMsg, ErrStubBadDataLen))
	}
	if err := l.finishWrites(); err != 0 {
		return l.reply(c.op, nil, err)
	}
	buf, code := l.readFlashBytes(w[0], w[1])
	if code != 0 {
		return l.reply(c.op, nil, code)
	}
	sum := md5.Sum(buf)
	if l.stub != nil {
		return l.reply(c.op, sum[:], 0)
	}
	return l.reply(c.op, []byte(hex.EncodeToString(sum[:])), 0)
}

func (l *Loader) readFlashBytes(addr, size uint32) ([]byte, byte) {
	fl := l.cfg.Flash
	if fl == nil || int64(addr)+int64(size) > int64(fl.Size()) {
		return nil, l.errCode(ErrROMFlashRead, ErrStubFailedSPIOp)
	}
	buf := make([]byte, size)
	if _, err := fl.ReadAt(buf, int64(addr)); err != nil {
		return nil, l.errCode(ErrROMFlashRead, ErrStubFailedSPIOp)
	}
	return buf, 0
}

func (l *Loader) String() string {
	mode := "ROM loader"
	if l.stub != nil {
		mode = "flasher stub " + l.stub.Name
	}
	return fmt.Sprintf("%s %s", l.cfg.Chip.Name, mode)
}
