package device

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/partition"
)

// ErrLoadAddress means the bootloader refused to copy a segment to the
// address in its header (verify_load_addresses).
var ErrLoadAddress = espimage.ErrLoadAddress

// ImageError is a refusal by esp_image_format.c. Its text is the line
// ESP-IDF logs for it, e.g. "Checksum failed. Calculated 0x1c read 0x1d";
// Err is the espimage (or device) sentinel, for errors.Is.
type ImageError struct {
	Msg string
	Err error
}

func (e *ImageError) Error() string { return e.Msg }
func (e *ImageError) Unwrap() error { return e.Err }

// loadMode is esp_image_load_mode_t as the two callers use it.
type loadMode int

const (
	// modeBoot is bootloader_load_image: ESP_IMAGE_LOAD in a
	// BOOTLOADER_BUILD, which loads RAM segments and checks their
	// addresses.
	modeBoot loadMode = iota
	// modeVerify is esp_image_verify(ESP_IMAGE_VERIFY) from the app
	// (esp_ota_end, esp_ota_set_boot_partition): nothing is loaded.
	modeVerify
	// modeVerifySilent is ESP_IMAGE_VERIFY_SILENT (rollback checks).
	modeVerifySilent
)

// logFunc receives the lines esp_image_format.c logs.
type logFunc func(level byte, tag, text string)

const sixteenMB = 16 << 20

// imageLoader walks an image in flash the way image_load does.
type imageLoader struct {
	r      io.ReaderAt
	part   partition.Partition
	cfg    BootConfig
	mode   loadMode
	logf   logFunc
	work   func(imageWork) // what was read and hashed; may be nil
	silent bool
}

// loadImage is esp_image_format.c's image_load (v5.1.3): header, then each
// segment (its header checks, the "segment N: ..." line, and at boot
// verify_load_addresses), then the checksum, the appended SHA-256's place
// and the partition size, then the SHA-256 itself. It logs as ESP-IDF does
// and stops at the first failure, so the segment lines before a failure
// are printed. It returns the parsed image when it passes.
func loadImage(r io.ReaderAt, p partition.Partition, cfg BootConfig, mode loadMode, logf logFunc) (*espimage.Image, error) {
	return newImageLoader(r, p, cfg, mode, logf).load()
}

func newImageLoader(r io.ReaderAt, p partition.Partition, cfg BootConfig, mode loadMode, logf logFunc) *imageLoader {
	if logf == nil {
		logf = func(byte, string, string) {}
	}
	return &imageLoader{r: r, part: p, cfg: cfg, mode: mode, logf: logf, silent: mode == modeVerifySilent}
}

// withWork makes the loader report each segment (header and data) to f
// once it has processed it, and the end of the image, for the boot-time
// model.
func (l *imageLoader) withWork(f func(imageWork)) *imageLoader {
	l.work = f
	return l
}

func (l *imageLoader) did(w imageWork) {
	if l.work != nil {
		l.work(w)
	}
}

// fail logs msg (unless silent, as FAIL_LOAD does) and returns it.
func (l *imageLoader) fail(kind error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if !l.silent {
		l.logf('E', "esp_image", msg)
	}
	return &ImageError{Msg: msg, Err: kind}
}

func (l *imageLoader) read(off uint32, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := l.r.ReadAt(b, int64(l.part.Offset)+int64(off)); err != nil {
		return nil, fmt.Errorf("read flash at 0x%x: %w", l.part.Offset+off, err)
	}
	return b, nil
}

func (l *imageLoader) load() (*espimage.Image, error) {
	if l.part.Size > sixteenMB {
		return nil, l.fail(espimage.ErrTooBig, "partition size 0x%x invalid, larger than 16MB", l.part.Size)
	}
	// process_image_header, verify_image_header.
	hdr, err := l.read(0, espimage.HeaderSize)
	if err != nil {
		return nil, err
	}
	if hdr[0] != espimage.Magic {
		return nil, l.fail(espimage.ErrMagic, "image at 0x%x has invalid magic byte (nothing flashed here?)", l.part.Offset)
	}
	if err := l.checkChip(hdr); err != nil {
		return nil, err
	}
	count := int(hdr[1])
	if count > espimage.MaxSegments {
		return nil, l.fail(espimage.ErrSegments, "image at 0x%x segment count %d exceeds max %d", l.part.Offset, count, espimage.MaxSegments)
	}
	// process_segments.
	sum := byte(espimage.ChecksumSeed)
	next := uint32(espimage.HeaderSize)
	for i := 0; i < count; i++ {
		n, s, err := l.segment(i, next)
		if err != nil {
			return nil, err
		}
		sum ^= s
		next += espimage.SegmentHeaderSize + n
	}
	// process_checksum: the checksum byte ends the next 16-byte block.
	csOff := (next+16)/16*16 - 1
	cs, err := l.read(csOff, 1)
	if err != nil {
		return nil, err
	}
	if cs[0] != sum {
		return nil, l.fail(espimage.ErrChecksum, "Checksum failed. Calculated 0x%x read 0x%x", sum, cs[0])
	}
	// process_appended_hash_and_sig (no secure boot: no signature block).
	length := csOff + 1
	hashAppended := hdr[23] != 0
	if hashAppended {
		length += espimage.DigestSize
	}
	if length > l.part.Size {
		return nil, l.fail(espimage.ErrTooBig, "Image length %d doesn't fit in partition length %d", length, l.part.Size)
	}
	b, err := l.read(0, int(length))
	if err != nil {
		return nil, err
	}
	img, err := espimage.Parse(b)
	if err != nil {
		// The walk above accepted what Parse refuses: a bug, not an image.
		return nil, fmt.Errorf("image at 0x%x: %w", l.part.Offset, err)
	}
	l.did(imageWork{ends: 1})
	// verify_simple_hash. The bootloader never hashes an image at the
	// bootloader offset (verify_sha in image_load); apps are not there.
	if hashAppended && l.part.Offset != 0x1000 && !img.DigestOK {
		// Logged whether or not silent: verify_simple_hash uses ESP_LOGE.
		msg := "Image hash failed - image is corrupt"
		l.logf('E', "esp_image", msg)
		return nil, &ImageError{Msg: msg, Err: espimage.ErrDigest}
	}
	return img, nil
}

// checkChip is bootloader_common_check_chip_validity (v5.1.3,
// bootloader_common_loader.c) for ESP_IMAGE_APPLICATION, which
// verify_image_header asks for every image. It logs under "boot_comm"
// even when the verify is silent.
func (l *imageLoader) checkChip(hdr []byte) error {
	chip := espimage.Chip(binary.LittleEndian.Uint16(hdr[12:]))
	fail := func(kind error, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		l.logf('E', "boot_comm", msg)
		return &ImageError{Msg: msg, Err: kind}
	}
	if chip != l.cfg.Chip {
		return fail(espimage.ErrChip, "mismatch chip ID, expected %d, found %d", uint16(l.cfg.Chip), uint16(chip))
	}
	rev := uint32(l.cfg.ChipRev)
	minRev := uint32(binary.LittleEndian.Uint16(hdr[15:]))
	if minRev > rev {
		return fail(espimage.ErrChipRev, "Image requires chip rev >= v%d.%d, but chip is v%d.%d",
			minRev/100, minRev%100, rev/100, rev%100)
	}
	// IS_MAX_REV_SET: neither 0 nor 0xFFFF.
	if maxRev := uint32(binary.LittleEndian.Uint16(hdr[17:])); maxRev != 0 && maxRev != 0xFFFF && rev > maxRev {
		return fail(espimage.ErrChipRev, "Image requires chip rev <= v%d.%d, but chip is v%d.%d",
			maxRev/100, maxRev%100, rev/100, rev%100)
	}
	return nil
}

// shouldLoad is should_load (esp_image_format.c) on a reset that is not
// a deep-sleep wake-up: RTC memory is loaded too.
func shouldLoad(chip espimage.Chip, addr uint32) bool {
	return chip.MappedRegion(addr) == "" && addr >= 0x10000000
}

// segment is process_segment for segment i, whose header is at image
// offset off. It returns the data length and the XOR of the data bytes.
func (l *imageLoader) segment(i int, off uint32) (uint32, byte, error) {
	sh, err := l.read(off, espimage.SegmentHeaderSize)
	if err != nil {
		if !l.silent {
			l.logf('E', "esp_image", fmt.Sprintf("bootloader_flash_read failed at 0x%08x", l.part.Offset+off))
		}
		return 0, 0, err
	}
	load := binary.LittleEndian.Uint32(sh)
	n := binary.LittleEndian.Uint32(sh[4:])
	dataAddr := l.part.Offset + off + espimage.SegmentHeaderSize
	// verify_segment_header.
	if n&3 != 0 || n >= sixteenMB {
		return 0, 0, l.fail(espimage.ErrSegments, "invalid segment length 0x%x", n)
	}
	mapped := l.cfg.Chip.MappedRegion(load) != ""
	if mapped && dataAddr%espimage.MMUPageSize != load%espimage.MMUPageSize {
		return 0, 0, l.fail(espimage.ErrAlignment, "Segment %d load address 0x%08x, doesn't match data 0x%08x", i, load, dataAddr)
	}
	doLoad := l.mode == modeBoot && shouldLoad(l.cfg.Chip, load)
	if !l.silent {
		kind := ""
		switch {
		case doLoad:
			kind = "load"
		case mapped:
			kind = "map"
		}
		l.logf('I', "esp_image", fmt.Sprintf("segment %d: paddr=%08x vaddr=%08x size=%05xh (%6d) %s",
			i, dataAddr, load, n, n, kind))
	}
	// The memory map modelled is ESP32's; other chips are not checked.
	if doLoad && n > 0 {
		if why := l.cfg.Chip.LoadRefusal(load, n); why != "" {
			msg := fmt.Sprintf("Segment %d 0x%08x-0x%08x invalid: %s", i, load, int64(load)+int64(n), why)
			l.logf('E', "esp_image", msg)
			return 0, 0, &ImageError{Msg: msg, Err: ErrLoadAddress}
		}
	}
	// Read in chunks: a garbage header may announce up to 16 MiB.
	var sum byte
	for done := uint32(0); done < n; {
		k := min(n-done, 0x10000)
		data, err := l.read(off+espimage.SegmentHeaderSize+done, int(k))
		if err != nil {
			if !l.silent {
				l.logf('E', "esp_image", fmt.Sprintf("bootloader_mmap(0x%x, 0x%x) failed", dataAddr+done, k))
			}
			return 0, 0, err
		}
		for _, c := range data {
			sum ^= c
		}
		done += k
	}
	w := imageWork{loaded: espimage.SegmentHeaderSize + int(n)}
	if !doLoad {
		w = imageWork{mapped: w.loaded}
	}
	l.did(w)
	return n, sum, nil
}
