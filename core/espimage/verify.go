package espimage

import (
	"fmt"
)

// VerifyOptions says what the device knows when it verifies.
type VerifyOptions struct {
	Chip            Chip
	CheckChip       bool   // compare Header.Chip with Chip
	ChipRev         uint16 // major*100+minor; compared when CheckChip
	PartitionOffset uint32 // flash offset the image sits at (alignment check)
	PartitionSize   int    // 0 = no size limit
	RequireApp      bool   // fail with ErrNotApp when there is no app descriptor
	// LoadAddresses also applies the check the second-stage bootloader
	// makes before it copies a segment to RAM (Chip.LoadRefusal), which
	// esp_image_verify in an app does not: an image that fails it is
	// written and verified by esp_ota_end, then refused at boot.
	LoadAddresses bool
}

// MMUPageSize is the flash cache page size: a flash-mapped segment's
// flash offset and load address must agree modulo it.
const MMUPageSize = 0x10000

// addrRange is a half-open address interval [lo, hi).
type addrRange struct{ lo, hi uint32 }

// flashMapped lists, per chip, the DROM and IROM windows of soc.h
// (SOC_DROM_LOW/HIGH, SOC_IROM_LOW/HIGH). Segments loaded there are read
// through the flash cache rather than copied to RAM.
//
// ESP32-C6 and -H2 map instructions and data through one window whose
// size depends on CONFIG_MMU_PAGE_SIZE; the widest (64 KiB pages) is used.
// P4, C5 and C61 are not listed, so their segments are not checked.
var flashMapped = map[Chip][2]addrRange{
	ChipESP32:   {{0x3F400000, 0x3F800000}, {0x400D0000, 0x40400000}},
	ChipESP32S2: {{0x3F000000, 0x3FF80000}, {0x40080000, 0x40800000}},
	ChipESP32C3: {{0x3C000000, 0x3C800000}, {0x42000000, 0x42800000}},
	ChipESP32S3: {{0x3C000000, 0x3E000000}, {0x42000000, 0x44000000}},
	ChipESP32C2: {{0x3C000000, 0x3C400000}, {0x42000000, 0x42400000}},
	ChipESP32C6: {{0x42000000, 0x43000000}, {0x42000000, 0x43000000}},
	ChipESP32H2: {{0x42000000, 0x43000000}, {0x42000000, 0x43000000}},
}

// MappedRegion returns "DROM" or "IROM" when addr lies in one of chip
// c's flash-mapped windows, and "" otherwise (or for a chip whose map
// this package does not know).
func (c Chip) MappedRegion(addr uint32) string {
	r, ok := flashMapped[c]
	if !ok {
		return ""
	}
	switch {
	case addr >= r[0].lo && addr < r[0].hi:
		return "DROM"
	case addr >= r[1].lo && addr < r[1].hi:
		return "IROM"
	}
	return ""
}

// RevString formats a major*100+minor chip revision as "v3.1".
func RevString(rev uint16) string { return fmt.Sprintf("v%d.%d", rev/100, rev%100) }

// Verify checks what esp_image_verify checks: checksum, digest, segment
// count and lengths, flash-mapped alignment, chip and revision, size.
// It stops at the first problem, in the order the bootloader meets them.
//
// The maximum chip revision is checked for every image, as for an app
// (ESP-IDF skips it for bootloaders); a maximum of 0 or 0xFFFF means no
// limit. The size limit counts a secure-boot signature block, which must
// fit in the partition too. Signatures themselves are not verified.
func (img *Image) Verify(opt VerifyOptions) error {
	if opt.CheckChip {
		if img.Chip != opt.Chip {
			return fmt.Errorf("header bytes 12-13: image is for %s (chip ID 0x%04x), device is %s (chip ID 0x%04x): %w",
				img.Chip, uint16(img.Chip), opt.Chip, uint16(opt.Chip), ErrChip)
		}
		if opt.ChipRev < img.MinChipRevFull {
			return fmt.Errorf("header bytes 15-16: chip revision %s is below the image's minimum %s (min_chip_rev_full %d): %w",
				RevString(opt.ChipRev), RevString(img.MinChipRevFull), img.MinChipRevFull, ErrChipRev)
		}
		if hi := img.MaxChipRevFull; hi != 0 && hi != 0xFFFF && opt.ChipRev > hi {
			return fmt.Errorf("header bytes 17-18: chip revision %s is above the image's maximum %s (max_chip_rev_full %d): %w",
				RevString(opt.ChipRev), RevString(hi), hi, ErrChipRev)
		}
	}
	if img.SegmentCount > MaxSegments || len(img.Segments) != int(img.SegmentCount) {
		return fmt.Errorf("header byte 1: segment count %d (%d segments read), maximum %d: %w",
			img.SegmentCount, len(img.Segments), MaxSegments, ErrSegments)
	}
	// A refusal for want of an app descriptor says more than one about a
	// bootloader's load addresses.
	checkLoad := opt.LoadAddresses && !(opt.RequireApp && img.App == nil)
	for i, s := range img.Segments {
		n := len(s.Data)
		if n%4 != 0 {
			return fmt.Errorf("segment %d: data at offset 0x%x: length %d (0x%x) is not a multiple of 4: %w",
				i, s.Offset, n, n, ErrSegments)
		}
		if n >= MaxSegmentLen {
			return fmt.Errorf("segment %d: data at offset 0x%x: length 0x%x is not below the 16 MiB limit: %w",
				i, s.Offset, n, ErrSegments)
		}
		if checkLoad {
			if why := img.Chip.LoadRefusal(s.LoadAddr, uint32(n)); why != "" {
				return fmt.Errorf("segment %d: the bootloader refuses to load 0x%08x-0x%08x: %s: %w",
					i, s.LoadAddr, uint64(s.LoadAddr)+uint64(n), why, ErrLoadAddress)
			}
		}
		if region := img.Chip.MappedRegion(s.LoadAddr); region != "" {
			flashOff := opt.PartitionOffset + uint32(s.Offset)
			if flashOff%MMUPageSize != s.LoadAddr%MMUPageSize {
				return fmt.Errorf("segment %d: %s load address 0x%08x and flash offset 0x%08x differ modulo 0x%x (0x%x vs 0x%x): %w",
					i, region, s.LoadAddr, flashOff, MMUPageSize, s.LoadAddr%MMUPageSize, flashOff%MMUPageSize, ErrAlignment)
			}
		}
	}
	if !img.ChecksumOK {
		return fmt.Errorf("checksum byte at offset 0x%x: stored 0x%02x, computed 0x%02x: %w",
			img.ChecksumOffset, img.Checksum, img.ComputedChecksum, ErrChecksum)
	}
	if opt.PartitionSize > 0 {
		if total := img.Length + img.SignatureLen; total > opt.PartitionSize {
			what := "image"
			if img.SignatureLen > 0 {
				what = fmt.Sprintf("image with its %d-byte %s signature", img.SignatureLen, img.Signature)
			}
			return fmt.Errorf("%s is %d bytes (0x%x), partition holds %d (0x%x): %w",
				what, total, total, opt.PartitionSize, opt.PartitionSize, ErrTooBig)
		}
	}
	if img.HashAppended && !img.DigestOK {
		return fmt.Errorf("appended SHA-256 at offset 0x%x: stored %x, computed %x: %w",
			img.ChecksumOffset+1, img.Digest, img.ComputedDigest, ErrDigest)
	}
	if opt.RequireApp && img.App == nil {
		what := "no app descriptor"
		if img.BootloaderDesc != nil {
			what = "a bootloader descriptor (magic byte 0x50)"
		}
		return fmt.Errorf("offset 0x%x: want app descriptor magic 0x%08X, found %s: %w",
			AppDescOffset, uint32(AppDescMagic), what, ErrNotApp)
	}
	return nil
}
