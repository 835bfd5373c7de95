package espimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

var le = binary.LittleEndian

// Parse decodes an image from b (b may extend past the image, e.g. a
// whole partition read from flash). Errors wrap the sentinels above and
// name the field/byte/offset at fault. It never allocates in proportion to
// a length field beyond len(b).
//
// Parse refuses what makes the image unreadable: a bad magic byte, more
// than MaxSegments segments, a segment of 16 MiB or more, and data that
// ends before the image does. A wrong checksum or digest is not an error
// here: ChecksumOK and DigestOK say so and Verify reports it.
func Parse(b []byte) (*Image, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("empty input: %w", ErrTruncated)
	}
	if b[0] != Magic {
		return nil, fmt.Errorf("header byte 0 (magic): got 0x%02X, want 0x%02X: %w", b[0], Magic, ErrMagic)
	}
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("header: need %d bytes, have %d: %w", HeaderSize, len(b), ErrTruncated)
	}
	img := &Image{Header: decodeHeader(b)}
	if img.SegmentCount > MaxSegments {
		return nil, fmt.Errorf("header byte 1: segment count %d exceeds the maximum %d: %w", img.SegmentCount, MaxSegments, ErrSegments)
	}

	// Segment count is at most 16, so this allocation is bounded.
	img.Segments = make([]Segment, 0, img.SegmentCount)
	off := HeaderSize
	sum := byte(ChecksumSeed)
	for i := 0; i < int(img.SegmentCount); i++ {
		if len(b)-off < SegmentHeaderSize {
			return nil, fmt.Errorf("segment %d: header at offset 0x%x: need %d bytes, have %d: %w",
				i, off, SegmentHeaderSize, len(b)-off, ErrTruncated)
		}
		load := le.Uint32(b[off:])
		n := le.Uint32(b[off+4:])
		dataOff := off + SegmentHeaderSize
		if n >= MaxSegmentLen {
			return nil, fmt.Errorf("segment %d: header at offset 0x%x: data length 0x%x is not below the 16 MiB limit: %w",
				i, off, n, ErrSegments)
		}
		if uint64(n) > uint64(len(b)-dataOff) {
			return nil, fmt.Errorf("segment %d: data at offset 0x%x, length 0x%x, runs past the end of the input (0x%x bytes): %w, %w",
				i, dataOff, n, len(b), ErrSegments, ErrTruncated)
		}
		data := b[dataOff : dataOff+int(n) : dataOff+int(n)]
		for _, c := range data {
			sum ^= c
		}
		img.Segments = append(img.Segments, Segment{LoadAddr: load, Offset: dataOff, Data: data})
		off = dataOff + int(n)
	}

	img.ChecksumOffset = checksumOffset(off)
	if img.ChecksumOffset >= len(b) {
		return nil, fmt.Errorf("checksum byte at offset 0x%x is past the end of the input (0x%x bytes): %w",
			img.ChecksumOffset, len(b), ErrTruncated)
	}
	img.Checksum = b[img.ChecksumOffset]
	img.ComputedChecksum = sum
	img.ChecksumOK = sum == img.Checksum
	img.Length = img.ChecksumOffset + 1

	if img.HashAppended {
		if len(b)-img.Length < DigestSize {
			return nil, fmt.Errorf("appended SHA-256 at offset 0x%x: need %d bytes, have %d: %w",
				img.Length, DigestSize, len(b)-img.Length, ErrTruncated)
		}
		copy(img.Digest[:], b[img.Length:])
		img.ComputedDigest = sha256.Sum256(b[:img.Length])
		img.DigestOK = img.ComputedDigest == img.Digest
		img.Length += DigestSize
	}

	img.App = decodeAppDesc(img)
	img.Bootloader = img.App == nil
	if img.Bootloader {
		img.BootloaderDesc = decodeBootloaderDesc(img)
	}
	img.Signature, img.SignatureLen = findSignature(b, img.Length)
	return img, nil
}

// checksumOffset returns where the checksum byte sits when the last
// segment's data ends at end: the last byte of the 16-byte block that
// follows end, so there is always room for it.
func checksumOffset(end int) int { return (end+16)/16*16 - 1 }

func decodeHeader(b []byte) Header {
	return Header{
		SegmentCount:   b[1],
		SPIMode:        b[2],
		SPISpeed:       b[3] & 0x0F,
		FlashSize:      b[3] >> 4,
		Entry:          le.Uint32(b[4:]),
		WPPin:          b[8],
		SPIPinDrv:      [3]uint8{b[9], b[10], b[11]},
		Chip:           Chip(le.Uint16(b[12:])),
		MinChipRev:     b[14],
		MinChipRevFull: le.Uint16(b[15:]),
		MaxChipRevFull: le.Uint16(b[17:]),
		// esp_image_format.c (v5.1.3) tests the hash_appended byte for
		// truth (process_image_header, process_appended_hash_and_sig:
		// "if (data->image.hash_appended)"), so any non-zero value means a
		// SHA-256 follows, not only the 1 esptool writes.
		HashAppended: b[23] != 0,
	}
}

// cstring returns the bytes of a fixed-size C string field up to the
// first NUL (all of it when there is none, as strncpy leaves it).
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// App descriptor field offsets (esp_app_desc_t).
const (
	adSecureVersion = 4
	adVersion       = 16
	adProjectName   = 48
	adTime          = 80
	adDate          = 96
	adIDFVer        = 112
	adELFSHA256     = 144
)

var appDescFields = []struct {
	name     string
	off, len int
	get      func(*AppDesc) *string
}{
	{"version", adVersion, 32, func(a *AppDesc) *string { return &a.Version }},
	{"project_name", adProjectName, 32, func(a *AppDesc) *string { return &a.ProjectName }},
	{"time", adTime, 16, func(a *AppDesc) *string { return &a.Time }},
	{"date", adDate, 16, func(a *AppDesc) *string { return &a.Date }},
	{"idf_ver", adIDFVer, 32, func(a *AppDesc) *string { return &a.IDFVer }},
}

func decodeAppDesc(img *Image) *AppDesc {
	if len(img.Segments) == 0 {
		return nil
	}
	d := img.Segments[0].Data
	if len(d) < AppDescSize || le.Uint32(d) != AppDescMagic {
		return nil
	}
	a := &AppDesc{SecureVersion: le.Uint32(d[adSecureVersion:])}
	for _, f := range appDescFields {
		*f.get(a) = cstring(d[f.off : f.off+f.len])
	}
	copy(a.ELFSHA256[:], d[adELFSHA256:])
	return a
}

func decodeBootloaderDesc(img *Image) *BootloaderDesc {
	if len(img.Segments) == 0 {
		return nil
	}
	d := img.Segments[0].Data
	if len(d) < BootloaderDescSize || d[0] != BootloaderDescMagic {
		return nil
	}
	return &BootloaderDesc{
		Version:  le.Uint32(d[4:]),
		IDFVer:   cstring(d[8:40]),
		DateTime: cstring(d[40:64]),
	}
}

// Secure-boot signature layouts.
const (
	sigV1Len       = 68 // 4-byte version (0) + 64-byte ECDSA signature
	sigV1PaddedLen = 80 // what esptool appends
	sigV2Magic     = 0xE7
	sigV2SectorLen = 4096
)

// findSignature looks for a secure-boot signature block after the image
// ending at end. b may be a whole flash partition, where erased flash
// (0xFF) follows the image; that is not a signature.
func findSignature(b []byte, end int) (SignatureKind, int) {
	rest := b[end:]
	// v2: the signature sector starts at the next 4 KiB boundary (espsecure
	// pads the image up to it), or right away when already aligned.
	sigOff := (end + sigV2SectorLen - 1) / sigV2SectorLen * sigV2SectorLen
	if sigOff+sigV2SectorLen <= len(b) && b[sigOff] == sigV2Magic && (b[sigOff+1] == 0x02 || b[sigOff+1] == 0x03) {
		return SignatureV2, sigOff + sigV2SectorLen - end
	}
	// v1: version word 0, then 64 signature bytes that are neither erased
	// flash nor zero fill.
	if len(rest) >= sigV1Len && le.Uint32(rest) == 0 {
		sig := rest[4:sigV1Len]
		if !allBytes(sig, 0xFF) && !allBytes(sig, 0x00) {
			if len(rest) >= sigV1PaddedLen && !allBytes(rest[sigV1Len:sigV1PaddedLen], 0xFF) {
				return SignatureV1, sigV1PaddedLen
			}
			return SignatureV1, sigV1Len
		}
	}
	return SignatureNone, 0
}

func allBytes(b []byte, v byte) bool {
	for _, c := range b {
		if c != v {
			return false
		}
	}
	return true
}
