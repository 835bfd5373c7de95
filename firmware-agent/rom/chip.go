package rom

import (
	"fmt"
	"strings"
)

// CHIP_DETECT_MAGIC_REG: esptool reads this ROM address to tell chips
// apart when GET_SECURITY_INFO is missing (esptool/loader.py
// CHIP_DETECT_MAGIC_REG_ADDR; the values are each target's
// CHIP_DETECT_MAGIC_VALUE in esptool/targets/*.py and esptool-js
// lib/targets/*.js).
const ChipDetectMagicReg = 0x40001000

// Chip describes what the ROM loader of one chip family shows a host.
// Addresses and bit positions follow esptool/targets/<chip>.py and
// esptool-js 0.7.0 lib/targets/<chip>.js, which read them.
type Chip struct {
	Name  string // "ESP32", "ESP32-S2", ...
	Magic uint32 // value at ChipDetectMagicReg
	// ChipID is the image chip id GET_SECURITY_INFO reports (esp_image
	// header chip_id); SecurityInfoLen is that reply's length: 0 where
	// the ROM lacks the command (ESP32), 12 on ESP32-S2 (no chip id),
	// 20 on later chips (serial-protocol.rst, GET_SECURITY_INFO).
	ChipID          uint32
	SecurityInfoLen int
	// BootloaderOffset is where the second-stage bootloader lives in flash.
	BootloaderOffset uint32
	// DefaultRev is the revision (major*100+minor) a Config without one
	// gets: a current production revision of the chip.
	DefaultRev uint16
	// UART0 clock divider register: esptool derives the crystal from
	// it and the rate (ESP32ROM.get_crystal_freq); XtalMHz is the crystal.
	UARTClkDivReg uint32
	XtalMHz       int
	// SPI0 (flash) controller registers esptool drives for user commands
	// such as RDID (ESPLoader.run_spiflash_command).
	SPIBase                         uint32
	SPIUsr, SPIUsr1, SPIUsr2, SPIW0 uint32 // offsets
	SPIMOSIDLen, SPIMISODLen        uint32 // offsets
	efuse                           func(rev uint16, mac [6]byte) map[uint32]uint32
	romBanner                       []string // lines the ROM prints before "rst:"
}

// Chips the emulator knows.
var (
	ESP32 = &Chip{
		Name: "ESP32", Magic: 0x00F01D83, ChipID: 0, SecurityInfoLen: 0,
		BootloaderOffset: 0x1000, DefaultRev: 300, UARTClkDivReg: 0x3FF40014, XtalMHz: 40,
		SPIBase: 0x3FF42000, SPIUsr: 0x1C, SPIUsr1: 0x20, SPIUsr2: 0x24, SPIW0: 0x80,
		SPIMOSIDLen: 0x28, SPIMISODLen: 0x2C,
		efuse:     esp32Efuse,
		romBanner: []string{"ets Jul 29 2019 12:21:46", ""},
	}
	ESP32S2 = &Chip{
		Name: "ESP32-S2", Magic: 0x000007C6, ChipID: 2, SecurityInfoLen: 12,
		BootloaderOffset: 0x1000, DefaultRev: 100, UARTClkDivReg: 0x3F400014, XtalMHz: 40,
		SPIBase: 0x3F402000, SPIUsr: 0x18, SPIUsr1: 0x1C, SPIUsr2: 0x20, SPIW0: 0x58,
		SPIMOSIDLen: 0x24, SPIMISODLen: 0x28,
		efuse:     s2Efuse,
		romBanner: []string{"ESP-ROM:esp32s2-rc4-20191025", "Build:Oct 25 2019"},
	}
	ESP32S3 = &Chip{
		Name: "ESP32-S3", Magic: 0x00000009, ChipID: 9, SecurityInfoLen: 20,
		BootloaderOffset: 0x0, DefaultRev: 2, UARTClkDivReg: 0x60000014, XtalMHz: 40,
		SPIBase: 0x60002000, SPIUsr: 0x18, SPIUsr1: 0x1C, SPIUsr2: 0x20, SPIW0: 0x58,
		SPIMOSIDLen: 0x24, SPIMISODLen: 0x28,
		efuse:     func(rev uint16, mac [6]byte) map[uint32]uint32 { return c3s3Efuse(0x60007000, rev, mac) },
		romBanner: []string{"ESP-ROM:esp32s3-20210327", "Build:Mar 27 2021"},
	}
	ESP32C3 = &Chip{
		Name: "ESP32-C3", Magic: 0x1B31506F, ChipID: 5, SecurityInfoLen: 20,
		BootloaderOffset: 0x0, DefaultRev: 4, UARTClkDivReg: 0x3FF40014, XtalMHz: 40,
		SPIBase: 0x60002000, SPIUsr: 0x18, SPIUsr1: 0x1C, SPIUsr2: 0x20, SPIW0: 0x58,
		SPIMOSIDLen: 0x24, SPIMISODLen: 0x28,
		efuse:     func(rev uint16, mac [6]byte) map[uint32]uint32 { return c3s3Efuse(0x60008800, rev, mac) },
		romBanner: []string{"ESP-ROM:esp32c3-api1-20210207", "Build:Feb  7 2021"},
	}
)

// Chips lists the chips in the order ChipByName documents them.
var Chips = []*Chip{ESP32, ESP32S2, ESP32S3, ESP32C3}

// ChipByName finds a chip by name ("esp32", "esp32s3", "ESP32-S3", ...).
func ChipByName(name string) (*Chip, error) {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "")) }
	for _, c := range Chips {
		if norm(c.Name) == norm(name) {
			return c, nil
		}
	}
	var names []string
	for _, c := range Chips {
		names = append(names, norm(c.Name))
	}
	return nil, fmt.Errorf("chip %q: want one of %s", name, strings.Join(names, ", "))
}

func (c *Chip) String() string { return c.Name }

// statusLen is the length of the ROM loader's status trailer: 4 bytes on
// every ESP32-family ROM, of which only the first two are used
// (serial-protocol.rst, "Status Bytes"; a real ESP32 answers READ_REG with
// 010a0400 831df000 00000000, esptool issue #613).
func (c *Chip) statusLen() int { return 4 }

// macWords packs a MAC the way the eFuse block stores it: the low word
// holds bytes 2..5, the next word bytes 0..1 in its low half (esptool
// ESP32ROM.read_mac / ESP32S3ROM.read_mac).
func macWords(mac [6]byte) (lo, hi uint32) {
	lo = uint32(mac[2])<<24 | uint32(mac[3])<<16 | uint32(mac[4])<<8 | uint32(mac[5])
	hi = uint32(mac[0])<<8 | uint32(mac[1])
	return lo, hi
}

// esp32Efuse models ESP32 eFuse BLOCK0 (EFUSE_RD_REG_BASE 0x3FF5A000):
// word 1/2 the MAC, word 3 package (bits 9..11: 1 = ESP32-D0WD) and
// CHIP_VER_REV1 (bit 15), word 5 CHIP_VER_REV2 (bit 20), and the
// APB_CTRL_DATE register bit 31 (0x3FF6607C), from which esptool reads
// revisions 0..3 (ESP32ROM.get_major_chip_version); minor in word 5 bits
// 24..25.
func esp32Efuse(rev uint16, mac [6]byte) map[uint32]uint32 {
	const base = 0x3FF5A000
	major, minor := rev/100, rev%100
	lo, hi := macWords(mac)
	w3 := uint32(1) << 9 // package ESP32-D0WD
	var w5, apb uint32
	if major >= 1 {
		w3 |= 1 << 15
	}
	if major >= 2 {
		w5 |= 1 << 20
	}
	if major >= 3 {
		apb |= 1 << 31
	}
	w5 |= uint32(minor&3) << 24
	return map[uint32]uint32{
		base + 4: lo, base + 8: hi | uint32(crc8MAC(mac))<<16,
		base + 12: w3, base + 20: w5,
		0x3FF6607C: apb,
	}
}

// s2Efuse models ESP32-S2 BLOCK1 (EFUSE_BASE 0x3F41A000 + 0x44): MAC in
// words 0/1, major revision word 3 bits 18..19, minor word 3 bit 20 (high)
// and word 4 bits 4..6 (ESP32S2ROM.get_{major,minor}_chip_version).
func s2Efuse(rev uint16, mac [6]byte) map[uint32]uint32 {
	const blk1 = 0x3F41A000 + 0x44
	major, minor := uint32(rev/100), uint32(rev%100)
	lo, hi := macWords(mac)
	return map[uint32]uint32{
		blk1: lo, blk1 + 4: hi,
		blk1 + 12: (major&3)<<18 | (minor>>3&1)<<20,
		blk1 + 16: (minor & 7) << 4,
	}
}

// c3s3Efuse models ESP32-C3/S3 BLOCK1 (EFUSE_BASE + 0x44): MAC in words
// 0/1, minor revision word 3 bits 18..20 (low) and word 5 bit 23 (high),
// major word 5 bits 24..25 (ESP32C3ROM / ESP32S3ROM).
func c3s3Efuse(efuseBase uint32, rev uint16, mac [6]byte) map[uint32]uint32 {
	blk1 := efuseBase + 0x44
	major, minor := uint32(rev/100), uint32(rev%100)
	lo, hi := macWords(mac)
	return map[uint32]uint32{
		blk1: lo, blk1 + 4: hi,
		blk1 + 12: (minor & 7) << 18,
		blk1 + 20: (minor>>3&1)<<23 | (major&3)<<24,
	}
}

// crc8MAC is the CRC-8 the ESP32 keeps next to its factory MAC
// (polynomial 0x07 reflected, as espefuse checks it).
func crc8MAC(mac [6]byte) byte {
	var crc byte
	for _, b := range mac {
		crc ^= b
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x8C
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
