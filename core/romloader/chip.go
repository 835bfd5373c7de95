package romloader

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/gota-dev/gota/core/espimage"
)

// chipDetectMagicReg holds a value that differs per chip family
// (esptool loader.py CHIP_DETECT_MAGIC_REG_ADDR).
const chipDetectMagicReg = 0x40001000

// chipDef holds the per-chip facts of esptool's targets/*.py (v4.8.1).
type chipDef struct {
	chip  espimage.Chip
	name  string   // "ESP32-S3"
	magic []uint32 // CHIP_DETECT_MAGIC_VALUE
	// SPI0 user-command registers used to read the flash ID.
	spiBase                   uint32
	usr, usr1, usr2, mosiDlen uint32
	misoDlen, w0              uint32
	macReg                    uint32 // two words, low then high (S2 and later)
	block1                    uint32 // eFuse BLOCK1 read address (S2 and later)
	block2                    uint32 // eFuse BLOCK2 read address (S3)
	encryptedBegin            bool   // ROM FLASH_BEGIN takes a 5th word (SUPPORTS_ENCRYPTED_FLASH)
}

var chips = []*chipDef{
	{chip: espimage.ChipESP32, name: "ESP32", magic: []uint32{0x00F01D83},
		spiBase: 0x3FF42000, usr: 0x1C, usr1: 0x20, usr2: 0x24, mosiDlen: 0x28, misoDlen: 0x2C, w0: 0x80},
	{chip: espimage.ChipESP32S2, name: "ESP32-S2", magic: []uint32{0x000007C6},
		spiBase: 0x3F402000, usr: 0x18, usr1: 0x1C, usr2: 0x20, mosiDlen: 0x24, misoDlen: 0x28, w0: 0x58,
		macReg: 0x3F41A044, block1: 0x3F41A044, block2: 0x3F41A05C, encryptedBegin: true},
	{chip: espimage.ChipESP32S3, name: "ESP32-S3", magic: []uint32{0x9},
		spiBase: 0x60002000, usr: 0x18, usr1: 0x1C, usr2: 0x20, mosiDlen: 0x24, misoDlen: 0x28, w0: 0x58,
		macReg: 0x60007044, block1: 0x60007044, block2: 0x6000705C, encryptedBegin: true},
	{chip: espimage.ChipESP32C3, name: "ESP32-C3", magic: []uint32{0x6921506F, 0x1B31506F, 0x4881606F, 0x4361606F},
		spiBase: 0x60002000, usr: 0x18, usr1: 0x1C, usr2: 0x20, mosiDlen: 0x24, misoDlen: 0x28, w0: 0x58,
		macReg: 0x60008844, block1: 0x60008844, encryptedBegin: true},
}

// ESP32 eFuse and date registers (targets/esp32.py).
const (
	esp32EfuseBase  = 0x3FF5A000
	esp32APBCtlDate = 0x3FF6607C
)

// ChipInfo is what Detect found.
type ChipInfo struct {
	Chip      espimage.Chip
	Name      string  // "ESP32-S3"
	Rev       uint16  // major*100+minor
	MAC       [6]byte // base MAC from eFuse
	FlashID   uint32  // JEDEC ID (manufacturer, type, capacity), 0 if unread
	FlashSize int     // bytes, from the JEDEC capacity byte; 0 if unknown
	Magic     uint32
	def       *chipDef
}

// MACString formats the MAC as aa:bb:cc:dd:ee:ff.
func (i *ChipInfo) MACString() string {
	m := i.MAC
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// RevString formats the revision as v3.0.
func (i *ChipInfo) RevString() string { return espimage.RevString(i.Rev) }

// ReadReg reads a 32-bit register or memory word.
func (c *Client) ReadReg(ctx context.Context, addr uint32) (uint32, error) {
	var b [4]byte
	le.PutUint32(b[:], addr)
	r, err := c.commandRetry(ctx, opReadReg, b[:], 0, defaultTimeout)
	if err != nil {
		return 0, fmt.Errorf("read register 0x%08x: %w", addr, err)
	}
	return r.value, nil
}

// WriteReg writes a 32-bit register (mask all ones, no delay).
func (c *Client) WriteReg(ctx context.Context, addr, value uint32) error {
	b := make([]byte, 16)
	le.PutUint32(b[0:], addr)
	le.PutUint32(b[4:], value)
	le.PutUint32(b[8:], 0xFFFFFFFF)
	if _, err := c.commandRetry(ctx, opWriteReg, b, 0, defaultTimeout); err != nil {
		return fmt.Errorf("write register 0x%08x: %w", addr, err)
	}
	return nil
}

// Detect identifies the chip by its magic register, then reads its
// revision and MAC from eFuse, attaches the SPI flash and reads its ID.
func (c *Client) Detect(ctx context.Context) (*ChipInfo, error) {
	magic, err := c.ReadReg(ctx, chipDetectMagicReg)
	if err != nil {
		return nil, err
	}
	var def *chipDef
	for _, d := range chips {
		for _, m := range d.magic {
			if m == magic {
				def = d
			}
		}
	}
	if def == nil {
		return nil, fmt.Errorf("unknown chip: magic value 0x%08x at 0x%08x is none of ESP32, ESP32-S2, ESP32-S3, ESP32-C3", magic, uint32(chipDetectMagicReg))
	}
	info := &ChipInfo{Chip: def.chip, Name: def.name, Magic: magic, def: def}
	if def.chip == espimage.ChipESP32 {
		err = c.esp32Efuse(ctx, info)
	} else {
		err = c.efuse(ctx, info)
	}
	if err != nil {
		return nil, err
	}
	if err := c.attach(ctx); err != nil {
		return nil, err
	}
	if info.FlashID, err = c.flashID(ctx, def); err != nil {
		return nil, err
	}
	info.FlashSize = flashSizeOf(info.FlashID)
	c.info = info
	return info, nil
}

// esp32Efuse reads the ESP32's MAC (words 1 and 2 of BLOCK0, after a CRC
// byte) and revision (targets/esp32.py get_major/minor_chip_version).
func (c *Client) esp32Efuse(ctx context.Context, info *ChipInfo) error {
	w := make([]uint32, 6)
	for _, i := range []int{1, 2, 3, 5} {
		v, err := c.ReadReg(ctx, esp32EfuseBase+uint32(4*i))
		if err != nil {
			return err
		}
		w[i] = v
	}
	date, err := c.ReadReg(ctx, esp32APBCtlDate)
	if err != nil {
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint32(b[0:], w[2])
	binary.BigEndian.PutUint32(b[4:], w[1])
	copy(info.MAC[:], b[2:8])
	bits := (date>>31&1)<<2 | (w[5]>>20&1)<<1 | w[3]>>15&1
	major := map[uint32]uint16{0: 0, 1: 1, 3: 2, 7: 3}[bits]
	minor := uint16(w[5] >> 24 & 3)
	info.Rev = major*100 + minor
	return nil
}

// efuse reads the MAC and revision of S2, S3 and C3 from eFuse BLOCK1.
func (c *Client) efuse(ctx context.Context, info *ChipInfo) error {
	d := info.def
	read := func(addr uint32) (uint32, error) { return c.ReadReg(ctx, addr) }
	mac0, err := read(d.macReg)
	if err != nil {
		return err
	}
	mac1, err := read(d.macReg + 4)
	if err != nil {
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint32(b[0:], mac1)
	binary.BigEndian.PutUint32(b[4:], mac0)
	copy(info.MAC[:], b[2:8])
	w3, err := read(d.block1 + 12)
	if err != nil {
		return err
	}
	w4, err := read(d.block1 + 16)
	if err != nil {
		return err
	}
	w5, err := read(d.block1 + 20)
	if err != nil {
		return err
	}
	var major, minor uint32
	switch d.chip {
	case espimage.ChipESP32S2:
		major = w3 >> 18 & 3
		minor = (w3>>20&1)<<3 | w4>>4&7
	default: // S3, C3
		major = w5 >> 24 & 3
		minor = (w5>>23&1)<<3 | w3>>18&7
		if d.chip == espimage.ChipESP32S3 && minor&7 == 0 {
			// is_eco0: v0.0 chips used the major field otherwise when
			// the block version is 1.1.
			b2w4, err := read(d.block2 + 16)
			if err != nil {
				return err
			}
			if b2w4&3 == 1 && w3>>24&7 == 1 {
				major, minor = 0, 0
			}
		}
	}
	info.Rev = uint16(major*100 + minor)
	return nil
}

// Attach enables the SPI flash pins (SPI_ATTACH 0; the ROM takes an
// extra "is legacy" word, esptool flash_spi_attach). Detect does it; a
// host that starts a stub afterwards does it again, as esptool does.
func (c *Client) Attach(ctx context.Context) error { return c.attach(ctx) }

func (c *Client) attach(ctx context.Context) error {
	arg := make([]byte, 4, 8)
	if !c.stub {
		arg = append(arg, 0, 0, 0, 0)
	}
	if _, err := c.commandRetry(ctx, opSPIAttach, arg, 0, defaultTimeout); err != nil {
		return fmt.Errorf("attach SPI flash: %w", err)
	}
	return nil
}

// flashID runs the JEDEC RDID command (0x9F) through SPI0's user-command
// registers, as esptool run_spiflash_command does, and returns 24 bits.
func (c *Client) flashID(ctx context.Context, d *chipDef) (uint32, error) {
	const (
		usrCommand = 1 << 31
		usrMISO    = 1 << 28
		cmdUSR     = 1 << 18
		rdid       = 0x9F
	)
	base := d.spiBase
	oldUsr, err := c.ReadReg(ctx, base+d.usr)
	if err != nil {
		return 0, err
	}
	oldUsr2, err := c.ReadReg(ctx, base+d.usr2)
	if err != nil {
		return 0, err
	}
	writes := [][2]uint32{
		{base + d.misoDlen, 24 - 1},
		{base + d.usr, usrCommand | usrMISO},
		{base + d.usr2, 7<<28 | rdid},
		{base + d.w0, 0},
		{base, cmdUSR},
	}
	for _, w := range writes {
		if err := c.WriteReg(ctx, w[0], w[1]); err != nil {
			return 0, err
		}
	}
	done := false
	for i := 0; i < 10 && !done; i++ {
		v, err := c.ReadReg(ctx, base)
		if err != nil {
			return 0, err
		}
		done = v&cmdUSR == 0
	}
	if !done {
		return 0, fmt.Errorf("read flash ID: SPI command did not complete")
	}
	id, err := c.ReadReg(ctx, base+d.w0)
	if err != nil {
		return 0, err
	}
	if err := c.WriteReg(ctx, base+d.usr, oldUsr); err != nil {
		return 0, err
	}
	if err := c.WriteReg(ctx, base+d.usr2, oldUsr2); err != nil {
		return 0, err
	}
	return id & 0xFFFFFF, nil
}

// flashSizeOf decodes the JEDEC capacity byte (bits 16-23 of the ID) as
// esptool's DETECTED_FLASH_SIZES does: 0x12..0x1C mean 2^n bytes, some
// vendors use 0x32..0x3A for the same sizes, and 0x20..0x22 for 64, 128
// and 256 MB.
func flashSizeOf(id uint32) int {
	c := id >> 16 & 0xFF
	switch {
	case c >= 0x12 && c <= 0x1C:
		return 1 << c
	case c >= 0x32 && c <= 0x3A:
		return 1 << (c - 0x20)
	case c >= 0x20 && c <= 0x22:
		return 64 << 20 << (c - 0x20)
	}
	return 0
}

// SetFlashParams tells the loader the flash geometry (SPI_SET_PARAMS:
// id, total size, 64 KiB block, 4 KiB sector, 256-byte page, status mask).
func (c *Client) SetFlashParams(ctx context.Context, size int) error {
	b := make([]byte, 24)
	for i, v := range []uint32{0, uint32(size), 64 << 10, 4 << 10, 256, 0xFFFF} {
		le.PutUint32(b[4*i:], v)
	}
	if _, err := c.commandRetry(ctx, opSPISetParams, b, 0, defaultTimeout); err != nil {
		return fmt.Errorf("set flash parameters: %w", err)
	}
	return nil
}
