package rom

import "encoding/binary"

// Command opcodes (serial-protocol.rst, "Commands").
const (
	OpFlashBegin     = 0x02
	OpFlashData      = 0x03
	OpFlashEnd       = 0x04
	OpMemBegin       = 0x05
	OpMemEnd         = 0x06
	OpMemData        = 0x07
	OpSync           = 0x08
	OpWriteReg       = 0x09
	OpReadReg        = 0x0A
	OpSPISetParams   = 0x0B
	OpSPIAttach      = 0x0D
	OpChangeBaudrate = 0x0F
	OpFlashDeflBegin = 0x10
	OpFlashDeflData  = 0x11
	OpFlashDeflEnd   = 0x12
	OpSPIFlashMD5    = 0x13
	OpGetSecInfo     = 0x14
	// Flasher stub only.
	OpEraseFlash  = 0xD0
	OpEraseRegion = 0xD1
	OpReadFlash   = 0xD2
	OpRunUserCode = 0xD3
)

// ROM loader error codes (serial-protocol.rst, "ROM Loader Errors").
const (
	ErrROMUndefined     = 0x00
	ErrROMInvalidParam  = 0x01
	ErrROMNoMem         = 0x02
	ErrROMSend          = 0x03
	ErrROMRecv          = 0x04
	ErrROMInvalidMsg    = 0x05 // also the reply to a command the ROM does not know
	ErrROMResult        = 0x06
	ErrROMChecksum      = 0x07
	ErrROMFlashWrite    = 0x08
	ErrROMFlashRead     = 0x09
	ErrROMFlashReadLen  = 0x0A
	ErrROMDeflate       = 0x0B
	ErrROMDeflateAdler  = 0x0C
	ErrROMDeflateParam  = 0x0D
	ErrROMInvalidRAMSz  = 0x0E
	ErrROMInvalidRAMAdr = 0x0F
)

// Flasher stub error codes (esptool flasher_stub/include/stub_flasher.h,
// linked from serial-protocol.rst "Stub Loader Status & Error").
const (
	ErrStubBadDataLen      = 0xC0
	ErrStubBadDataChecksum = 0xC1
	ErrStubBadBlocksize    = 0xC2
	ErrStubInvalidCommand  = 0xC3
	ErrStubFailedSPIOp     = 0xC4
	ErrStubFailedSPIUnlock = 0xC5
	ErrStubNotInFlashMode  = 0xC6
	ErrStubInflate         = 0xC7
	ErrStubNotEnoughData   = 0xC8
	ErrStubTooMuchData     = 0xC9
	ErrStubNotImplemented  = 0xFF
)

// checksumSeed starts the XOR checksum of _DATA payloads
// (serial-protocol.rst, "Checksum").
const checksumSeed = 0xEF

// Checksum is the ROM's 8-bit XOR checksum of data.
func Checksum(data []byte) uint32 {
	c := byte(checksumSeed)
	for _, b := range data {
		c ^= b
	}
	return uint32(c)
}

// syncValue is the value field of the ROM's SYNC replies (a real chip
// answers 010804000707122000000000, esptool docs "Tracing"); later replies
// keep it until a READ_REG changes it (ESP32-C6 ROM trace, esptool issue
// 1160 appendix). The stub answers 0, which is how esptool tells them apart.
const syncValue = 0x20120707

// command is a decoded request packet.
type command struct {
	op   byte
	chk  uint32
	data []byte
}

// parseCommand decodes a request: direction 0, opcode, 16-bit size that
// must match the data, 32-bit checksum.
func parseCommand(p []byte) (command, bool) {
	if len(p) < 8 || p[0] != 0 {
		return command{}, false
	}
	size := int(binary.LittleEndian.Uint16(p[2:]))
	cmd := command{op: p[1], chk: binary.LittleEndian.Uint32(p[4:]), data: p[8:]}
	if size != len(cmd.data) {
		cmd.data = nil
		return cmd, true // answered with ErrROMInvalidMsg
	}
	return cmd, true
}

func (c command) word(i int) (uint32, bool) {
	if len(c.data) < 4*(i+1) {
		return 0, false
	}
	return binary.LittleEndian.Uint32(c.data[4*i:]), true
}

// words returns the first n words, or ok false when the data is shorter.
func (c command) words(n int) ([]uint32, bool) {
	if len(c.data) < 4*n {
		return nil, false
	}
	w := make([]uint32, n)
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(c.data[4*i:])
	}
	return w, true
}

// response builds a reply packet.
func response(op byte, val uint32, data []byte) []byte {
	p := make([]byte, 8, 8+len(data))
	p[0] = 1
	p[1] = op
	binary.LittleEndian.PutUint16(p[2:], uint16(len(data)))
	binary.LittleEndian.PutUint32(p[4:], val)
	return append(p, data...)
}
