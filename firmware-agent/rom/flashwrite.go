package rom

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gota-dev/gota/firmware-agent/flash"
)

// flashWrite is a FLASH_BEGIN or FLASH_DEFL_BEGIN in progress.
type flashWrite struct {
	defl      bool
	offset    uint32 // flash address of the first byte
	size      uint32 // ROM: bytes erased at begin; stub: bytes to write
	blocks    uint32 // _DATA packets announced
	blockSize uint32
	nextSeq   uint32
	pos       uint32 // next address the decompressed stream writes to
	erasedTo  uint32 // stub: end of what its just-in-time erase cleared
	z         *inflater
}

// flashBegin starts a write. The ROM erases the whole region now and
// answers when done ("The ROM loaders erase the to-be-written region in
// response to the FLASH_BEGIN command", serial-protocol.rst "Writing
// Data"), so the host's FLASH_BEGIN timeout grows with the size
// (esptool ERASE_REGION_TIMEOUT_PER_MB); the stub erases as it writes.
func (l *Loader) flashBegin(c command) error {
	w, ok := c.words(4)
	if !ok || l.stub == nil && l.cfg.Chip == ESP32 && len(c.data) != 16 {
		// The ESP32 ROM takes exactly four words; the fifth (encrypted
		// write) exists from the ESP32-S2 ROM on (esptool loader.py
		// flash_begin: "ESP32 and ESP8266 ROMs do not support extended
		// parameter format"; tinygo espflasher reports error 0x05 for it).
		return l.reply(c.op, nil, l.errCode(ErrROMInvalidMsg, ErrStubBadDataLen))
	}
	l.abandonWrite()
	fw := &flashWrite{defl: c.op == OpFlashDeflBegin, size: w[0], blocks: w[1], blockSize: w[2], offset: w[3]}
	fw.pos, fw.erasedTo = fw.offset, fw.offset
	fl := l.cfg.Flash
	if fl == nil {
		return l.reply(c.op, nil, l.errCode(ErrROMFlashWrite, ErrStubFailedSPIOp))
	}
	if fw.offset%flash.SectorSize != 0 || int64(fw.offset)+int64(fw.size) > int64(fl.Size()) {
		return l.reply(c.op, nil, l.errCode(ErrROMInvalidParam, ErrStubBadDataLen))
	}
	if l.stub == nil && fw.size > 0 {
		n := (fw.size + flash.SectorSize - 1) / flash.SectorSize * flash.SectorSize
		if int64(fw.offset)+int64(n) > int64(fl.Size()) {
			n = uint32(fl.Size()) - fw.offset
		}
		if err := fl.EraseRange(fw.offset, n); err != nil {
			return l.reply(c.op, nil, ErrROMFlashWrite)
		}
	}
	if fw.defl {
		fw.z = newInflater(func(p []byte) error { return l.program(fw, p) })
	}
	l.fw = fw
	return l.reply(c.op, nil, 0)
}

// program writes p at fw.pos: the stub first erases what is not erased
// yet (64 KiB blocks where a whole one lies ahead, else 4 KiB sectors);
// the ROM reads each write back and fails with "flash write error" when it
// differs (serial-protocol.rst, error 0x08), as it does over data it did
// not erase.
func (l *Loader) program(fw *flashWrite, p []byte) error {
	fl := l.cfg.Flash
	if l.stub != nil {
		if rem := int64(fw.offset) + int64(fw.size) - int64(fw.pos); int64(len(p)) > rem {
			if rem <= 0 {
				return errTooMuch
			}
			p = p[:rem]
		}
		end := fw.pos + uint32(len(p))
		regionEnd := (fw.offset + fw.size + flash.SectorSize - 1) / flash.SectorSize * flash.SectorSize
		for fw.erasedTo < end {
			var err error
			if fw.erasedTo%flash.BlockSize == 0 && regionEnd-fw.erasedTo >= flash.BlockSize {
				err = fl.EraseBlock(fw.erasedTo)
				fw.erasedTo += flash.BlockSize
			} else {
				err = fl.EraseSector(fw.erasedTo)
				fw.erasedTo += flash.SectorSize
			}
			if err != nil {
				return &writeError{err}
			}
		}
	}
	if int64(fw.pos)+int64(len(p)) > int64(fl.Size()) {
		return &writeError{fmt.Errorf("write of %d bytes at 0x%x runs past the flash", len(p), fw.pos)}
	}
	if err := fl.Program(fw.pos, p); err != nil {
		return &writeError{err}
	}
	if l.stub == nil {
		back := make([]byte, len(p))
		if _, err := fl.ReadAt(back, int64(fw.pos)); err != nil {
			return &writeError{err}
		}
		for i := range back {
			if back[i] != p[i] {
				return &writeError{errVerify}
			}
		}
	}
	fw.pos += uint32(len(p))
	return nil
}

var (
	errTooMuch = errors.New("rom: more data than FLASH_BEGIN announced")
	errVerify  = errors.New("rom: flash reads back different data")
)

// writeError is a failure of the flash itself, as opposed to bad data.
type writeError struct{ err error }

func (e *writeError) Error() string { return "rom: flash write: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// writeErrCode maps a write or decompression failure to the reply code.
func (l *Loader) writeErrCode(err error) byte {
	var we *writeError
	isWrite := errors.As(err, &we)
	switch {
	case l.stub == nil && isWrite:
		return ErrROMFlashWrite
	case l.stub == nil:
		return ErrROMDeflate
	case err == errTooMuch:
		return ErrStubTooMuchData
	case isWrite:
		return ErrStubFailedSPIOp
	}
	return ErrStubInflate
}

// flashData takes one _DATA packet: 16-byte header (size, sequence, 0,
// 0) and the data, checked against the XOR checksum in the command
// header. The ROM writes the block before it answers; the stub answers
// first and writes while the host sends the next block (its pipelining),
// reporting a write failure on a later reply.
func (l *Loader) flashData(c command) error {
	fw := l.fw
	if fw == nil || fw.defl != (c.op == OpFlashDeflData) {
		return l.reply(c.op, nil, l.errCode(ErrROMResult, ErrStubNotInFlashMode))
	}
	h, ok := c.words(4)
	if !ok || uint32(len(c.data)-16) != h[0] {
		return l.reply(c.op, nil, l.errCode(ErrROMInvalidMsg, ErrStubBadDataLen))
	}
	data := c.data[16:]
	if Checksum(data) != c.chk&0xFF {
		return l.reply(c.op, nil, l.errCode(ErrROMChecksum, ErrStubBadDataChecksum))
	}
	seq := h[1]
	if fw.defl && seq+1 == fw.nextSeq {
		// A retry of a block already taken (its reply was lost): taking
		// it again would corrupt the stream.
		return l.reply(c.op, nil, l.stubErr)
	}
	if fw.defl && seq != fw.nextSeq {
		return l.reply(c.op, nil, l.errCode(ErrROMInvalidMsg, ErrStubBadDataLen))
	}
	if l.stub != nil && l.stubErr == 0 && !fw.defl && int64(seq)*int64(fw.blockSize) >= int64(fw.size) && fw.size > 0 {
		return l.reply(c.op, nil, ErrStubTooMuchData)
	}
	write := func() byte {
		fw.nextSeq = seq + 1
		if fw.defl {
			after, err := fw.z.feed(data)
			switch {
			case after:
				return l.errCode(ErrROMDeflate, ErrStubTooMuchData)
			case err != nil:
				return l.writeErrCode(err)
			}
			return 0
		}
		fw.pos = fw.offset + seq*fw.blockSize
		if err := l.program(fw, data); err != nil {
			return l.writeErrCode(err)
		}
		return 0
	}
	if l.stub == nil {
		return l.reply(c.op, nil, write())
	}
	if err := l.reply(c.op, nil, l.stubErr); err != nil {
		return err
	}
	if l.stubErr == 0 {
		l.stubErr = write()
	}
	return nil
}

// finishWrites reports a pending stub write error (and clears it).
func (l *Loader) finishWrites() byte {
	code := l.stubErr
	l.stubErr = 0
	return code
}

// flashEnd ends a write. Its word is 0 to reboot and 1 to run the user
// code; the ROM leaves the loader either way (esptool skips FLASH_END to
// the ROM for that reason), the stub reboots on 0 and otherwise stays.
func (l *Loader) flashEnd(c command) error {
	flag, ok := c.word(0)
	code := l.finishWrites()
	if fw := l.fw; fw != nil && fw.defl && code == 0 && l.stub != nil {
		if done, _, _ := fw.z.finished(); !done && fw.size > 0 {
			code = ErrStubNotEnoughData
		}
	}
	if l.stub != nil && l.fw == nil && code == 0 {
		code = ErrStubNotInFlashMode
	}
	l.abandonWrite()
	if err := l.reply(c.op, nil, code); err != nil {
		return err
	}
	if !ok {
		return nil
	}
	switch {
	case flag == 0:
		return &Exit{Reset: true, Reason: fmt.Sprintf("%s 0 (reboot)", opName(c.op))}
	case l.stub == nil:
		return &Exit{Reason: fmt.Sprintf("%s %d (run user code)", opName(c.op), flag)}
	}
	return nil
}

func (l *Loader) abandonWrite() {
	if l.fw != nil && l.fw.z != nil {
		l.fw.z.close()
	}
	l.fw = nil
}

func opName(op byte) string {
	switch op {
	case OpFlashEnd:
		return "FLASH_END"
	case OpFlashDeflEnd:
		return "FLASH_DEFL_END"
	}
	return fmt.Sprintf("command 0x%02x", op)
}

// erase runs the stub's ERASE_FLASH (whole chip) and ERASE_REGION
// (offset and size, both multiples of the 4 KiB sector).
func (l *Loader) erase(c command) error {
	fl := l.cfg.Flash
	if fl == nil {
		return l.reply(c.op, nil, ErrStubFailedSPIOp)
	}
	off, n := uint32(0), uint32(fl.Size())
	if c.op == OpEraseRegion {
		w, ok := c.words(2)
		if !ok || w[0]%flash.SectorSize != 0 || w[1]%flash.SectorSize != 0 || int64(w[0])+int64(w[1]) > int64(fl.Size()) {
			return l.reply(c.op, nil, ErrStubBadDataLen)
		}
		off, n = w[0], w[1]
	}
	if err := fl.EraseRange(off, n); err != nil {
		return l.reply(c.op, nil, ErrStubFailedSPIOp)
	}
	return l.reply(c.op, nil, 0)
}

// readFlashAck decodes the host's acknowledgement: the total bytes it has
// received, as a raw 4-byte SLIP packet.
func readFlashAck(p []byte) (uint32, bool) {
	if len(p) != 4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(p), true
}
