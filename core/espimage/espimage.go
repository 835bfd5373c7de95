// Package espimage reads, verifies and writes ESP32 application and
// bootloader images in the format ESP-IDF's esp_image_format.c expects.
//
// An image is a 24-byte header, up to 16 segments (8-byte header plus
// data each), a one-byte XOR checksum at the end of a 16-byte-aligned
// block, an optional appended SHA-256 and, on secure-boot builds, a
// signature block. App images carry an esp_app_desc_t at offset 0x20.
package espimage

import (
	"errors"
	"fmt"
	"strings"
)

// Magic is the first byte of every image.
const Magic = 0xE9

// Sizes of the fixed parts of an image.
const (
	HeaderSize        = 24
	SegmentHeaderSize = 8
	AppDescOffset     = 0x20 // image offset of the app descriptor (segment 0 data)
	AppDescSize       = 256
	AppDescMagic      = 0xABCD5432
	MaxSegments       = 16
	DigestSize        = 32
)

// MaxSegmentLen is the exclusive upper bound on a segment's data length
// (esp_image_format.c refuses 16 MiB and more).
const MaxSegmentLen = 16 << 20

// ChecksumSeed is the initial value of the XOR checksum.
const ChecksumSeed = 0xEF

// Chip is the chip ID stored at header offset 12.
type Chip uint16

// Known chip IDs.
const (
	ChipESP32    Chip = 0x0000
	ChipESP32S2  Chip = 0x0002
	ChipESP32C3  Chip = 0x0005
	ChipESP32S3  Chip = 0x0009
	ChipESP32C2  Chip = 0x000C
	ChipESP32C6  Chip = 0x000D
	ChipESP32H2  Chip = 0x0010
	ChipESP32P4  Chip = 0x0012
	ChipESP32C61 Chip = 0x0014
	ChipESP32C5  Chip = 0x0017
)

var chipNames = map[Chip]string{
	ChipESP32:    "esp32",
	ChipESP32S2:  "esp32s2",
	ChipESP32C3:  "esp32c3",
	ChipESP32S3:  "esp32s3",
	ChipESP32C2:  "esp32c2",
	ChipESP32C6:  "esp32c6",
	ChipESP32H2:  "esp32h2",
	ChipESP32P4:  "esp32p4",
	ChipESP32C61: "esp32c61",
	ChipESP32C5:  "esp32c5",
}

// String returns the name esptool uses ("esp32", "esp32s3", ...), or
// "unknown(0xNNNN)".
func (c Chip) String() string {
	if n, ok := chipNames[c]; ok {
		return n
	}
	return fmt.Sprintf("unknown(0x%04x)", uint16(c))
}

// Known reports whether c is one of the chip IDs above.
func (c Chip) Known() bool {
	_, ok := chipNames[c]
	return ok
}

// ParseChip maps a name such as "esp32c3" to its Chip. Case, dashes and
// underscores are ignored, so "ESP32-C3" works too.
func ParseChip(name string) (Chip, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.NewReplacer("-", "", "_", "").Replace(n)
	for c, s := range chipNames {
		if s == n {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown chip name %q (want one of esp32, esp32s2, esp32c3, esp32s3, esp32c2, esp32c6, esp32h2, esp32p4, esp32c61, esp32c5)", name)
}

// Header is the 24-byte image header.
type Header struct {
	SegmentCount   uint8
	SPIMode        uint8 // 0 QIO .. 5 SLOW_READ
	SPISpeed       uint8 // low nibble of byte 3
	FlashSize      uint8 // high nibble of byte 3 (0=1MB .. 7=128MB)
	Entry          uint32
	WPPin          uint8
	SPIPinDrv      [3]uint8
	Chip           Chip
	MinChipRev     uint8  // legacy
	MinChipRevFull uint16 // major*100+minor
	MaxChipRevFull uint16 // 0 or 0xFFFF = no limit
	HashAppended   bool
}

// SPIModeName returns the flash mode name esptool prints ("DIO", ...).
func (h *Header) SPIModeName() string {
	names := [...]string{"QIO", "QOUT", "DIO", "DOUT", "FAST_READ", "SLOW_READ"}
	if int(h.SPIMode) < len(names) {
		return names[h.SPIMode]
	}
	return fmt.Sprintf("unknown(%d)", h.SPIMode)
}

// SPISpeedName returns the flash clock for the ESP32 encoding of the
// speed nibble ("40MHz", ...). Later chips reuse some codes for other
// clocks; this is the meaning the reference documents.
func (h *Header) SPISpeedName() string {
	switch h.SPISpeed {
	case 0:
		return "40MHz"
	case 1:
		return "26MHz"
	case 2:
		return "20MHz"
	case 0xF:
		return "80MHz"
	}
	return fmt.Sprintf("unknown(%d)", h.SPISpeed)
}

// FlashSizeBytes returns the flash size the header declares, or 0 for an
// unknown code.
func (h *Header) FlashSizeBytes() int {
	if h.FlashSize > 7 {
		return 0
	}
	return 1 << 20 << h.FlashSize
}

// FlashSizeName returns the flash size as esptool writes it ("4MB").
func (h *Header) FlashSizeName() string {
	if n := h.FlashSizeBytes(); n > 0 {
		return fmt.Sprintf("%dMB", n>>20)
	}
	return fmt.Sprintf("unknown(%d)", h.FlashSize)
}

// Segment is one loadable segment.
type Segment struct {
	LoadAddr uint32
	Offset   int    // offset of Data within the image
	Data     []byte // aliases the parsed buffer
}

// AppDesc is esp_app_desc_t, found at image offset 0x20 in app images.
type AppDesc struct {
	SecureVersion uint32
	Version       string
	ProjectName   string
	Time          string
	Date          string
	IDFVer        string
	ELFSHA256     [32]byte
}

// BootloaderDescMagic is the first byte of esp_bootloader_desc_t, which
// ESP-IDF v5.2 and later put at offset 0x20 of a bootloader image.
const BootloaderDescMagic = 0x50

// BootloaderDescSize is the size of esp_bootloader_desc_t.
const BootloaderDescSize = 80

// BootloaderDesc is esp_bootloader_desc_t (ESP-IDF v5.2+ bootloaders).
type BootloaderDesc struct {
	Version  uint32 // CONFIG_BOOTLOADER_PROJECT_VER
	IDFVer   string
	DateTime string
}

// SignatureKind says which secure-boot signature block follows an image.
type SignatureKind int

// Secure-boot signature kinds.
const (
	SignatureNone SignatureKind = iota
	SignatureV1                 // 4-byte version 0 + 64-byte ECDSA signature (padded to 80 by esptool)
	SignatureV2                 // 4 KiB sector of signature blocks, first byte 0xE7
)

func (k SignatureKind) String() string {
	switch k {
	case SignatureNone:
		return "none"
	case SignatureV1:
		return "secure-boot-v1"
	case SignatureV2:
		return "secure-boot-v2"
	}
	return fmt.Sprintf("SignatureKind(%d)", int(k))
}

// Image is a parsed image. Parse fills every field it can even when
// the checksum or digest does not match; Verify reports those.
type Image struct {
	Header
	Segments     []Segment
	Checksum     byte // stored checksum byte
	ChecksumOK   bool
	Digest       [DigestSize]byte // stored appended SHA-256 (HashAppended only)
	DigestOK     bool
	Length       int      // image length: through checksum, padding and digest
	App          *AppDesc // nil when there is no app descriptor
	Bootloader   bool     // no app descriptor (bootloader image)
	SignatureLen int      // bytes after Length (secure-boot signature block), 0 if none

	// ComputedChecksum is the checksum of the segment data.
	ComputedChecksum byte
	// ComputedDigest is the SHA-256 of bytes [0, checksum byte] (computed
	// only when HashAppended).
	ComputedDigest [DigestSize]byte
	// ChecksumOffset is the image offset of the checksum byte.
	ChecksumOffset int
	// BootloaderDesc is set for bootloader images that carry one (v5.2+).
	BootloaderDesc *BootloaderDesc
	// Signature is the kind of secure-boot signature found after Length;
	// SignatureLen counts its bytes (and any padding before it).
	Signature SignatureKind
}

// Errors that callers tell apart with errors.Is.
var (
	ErrMagic     = errors.New("bad magic byte")
	ErrTruncated = errors.New("image truncated")
	ErrSegments  = errors.New("bad segment")
	ErrChecksum  = errors.New("checksum mismatch")
	ErrDigest    = errors.New("SHA-256 digest mismatch")
	ErrChip      = errors.New("wrong chip")
	ErrChipRev   = errors.New("chip revision out of range")
	ErrTooBig    = errors.New("image larger than partition")
	ErrAlignment = errors.New("flash-mapped segment misaligned")
	ErrNotApp    = errors.New("not an app image")
	// ErrLoadAddress: the bootloader refuses to copy a segment to the
	// address in its header (verify_load_addresses).
	ErrLoadAddress = errors.New("segment load address refused by the bootloader")
)
