// Package espimage reads, verifies and writes ESP32 application and
// bootloader images in the format ESP-IDF's esp_image_format.c expects.
//
// API CONTRACT (stub; bodies filled in by the issue-2 work). Other packages
// may rely on every exported name and signature below.
package espimage

import "errors"

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

// String returns the name esptool uses ("esp32", "esp32s3", ...), or
// "unknown(0xNNNN)".
func (c Chip) String() string { panic("TODO") }

// ParseChip maps a name such as "esp32c3" to its Chip.
func ParseChip(name string) (Chip, error) { panic("TODO") }

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
)

// Parse decodes an image from b (b may extend past the image, e.g. a
// whole partition read from flash). Errors wrap the sentinels above and
// name the field/byte/offset at fault. It never allocates in proportion to
// a length field beyond len(b).
func Parse(b []byte) (*Image, error) { panic("TODO") }

// VerifyOptions says what the device knows when it verifies.
type VerifyOptions struct {
	Chip            Chip
	CheckChip       bool   // compare Header.Chip with Chip
	ChipRev         uint16 // major*100+minor; compared when CheckChip
	PartitionOffset uint32 // flash offset the image sits at (alignment check)
	PartitionSize   int    // 0 = no size limit
	RequireApp      bool   // fail with ErrNotApp when there is no app descriptor
}

// Verify checks what esp_image_verify checks: checksum, digest, segment
// count and lengths, flash-mapped alignment, chip and revision, size.
func (img *Image) Verify(opt VerifyOptions) error { panic("TODO") }

// Build writes a valid image from h and segs: computes the checksum,
// padding and (when h.HashAppended) the SHA-256. SegmentCount in h is
// ignored and set from len(segs). When app is non-nil it is encoded into
// the first 256 bytes of segs[0].Data (which must be at least that long).
func Build(h Header, segs []Segment, app *AppDesc) ([]byte, error) { panic("TODO") }

// SetVersion returns a copy of the app image b with the descriptor's
// version string replaced, checksum and digest recomputed.
func SetVersion(b []byte, version string) ([]byte, error) { panic("TODO") }
