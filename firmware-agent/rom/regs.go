package rom

// regs is the part of the chip's address space a host can reach with
// READ_REG and WRITE_REG: eFuses and the chip-detect word (read-only,
// fixed at construction), the UART divider (follows the rate), the flash
// SPI controller (runs user commands) and plain memory for the rest
// (reads 0 until written).
type regs struct {
	chip    *Chip
	fixed   map[uint32]uint32
	mem     map[uint32]uint32
	flashID uint32 // JEDEC id as RDID leaves it in SPI_W0: manufacturer | type<<8 | capacity<<16
	baud    func() int
}

// JEDEC ids: manufacturer 0xEF (Winbond), memory type 0x40, capacity
// log2(size) (0x16 = 4 MiB). esptool's flash_id prints these bytes and
// detect_flash_size maps the capacity byte to a size (DETECTED_FLASH_SIZES).
func jedecID(size int) uint32 {
	capacity := uint32(0)
	for s := size; s > 1; s >>= 1 {
		capacity++
	}
	return 0xEF | 0x40<<8 | capacity<<16
}

func newRegs(c *Chip, rev uint16, mac [6]byte, flashSize int, baud func() int) *regs {
	r := &regs{chip: c, fixed: c.efuse(rev, mac), mem: map[uint32]uint32{}, baud: baud}
	r.fixed[ChipDetectMagicReg] = c.Magic
	if flashSize > 0 {
		r.flashID = jedecID(flashSize)
	} else {
		r.flashID = 0xFFFFFF // no flash answers: MISO floats high
	}
	return r
}

// SPI user-command bits (ESP32 TRM, SPI_CMD_REG SPI_USR is bit 18).
const spiCmdUsr = 1 << 18

func (r *regs) read(addr uint32) uint32 {
	if v, ok := r.fixed[addr]; ok {
		return v
	}
	if addr == r.chip.UARTClkDivReg {
		// The ROM programmed the divider for the current rate from the
		// 40 MHz clock; esptool computes the crystal back from it.
		return uint32(r.chip.XtalMHz*1_000_000/r.baud()) & 0xFFFFF
	}
	return r.mem[addr]
}

// write applies WRITE_REG's masked write. Starting a user command on the
// flash SPI controller runs it at once: RDID (0x9F) leaves the JEDEC id in
// W0; any other command reads all ones. The busy bit clears immediately.
func (r *regs) write(addr, value, mask uint32) {
	if _, ok := r.fixed[addr]; ok {
		return // eFuse read registers and ROM ignore writes
	}
	v := r.mem[addr]&^mask | value&mask
	base := r.chip.SPIBase
	if addr == base && v&spiCmdUsr != 0 {
		cmd := r.mem[base+r.chip.SPIUsr2] & 0xFF
		w0 := uint32(0xFFFFFFFF)
		if cmd == 0x9F {
			w0 = r.flashID
		}
		r.mem[base+r.chip.SPIW0] = w0
		v &^= spiCmdUsr
	}
	r.mem[addr] = v
}
