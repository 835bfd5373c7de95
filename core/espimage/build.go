package espimage

import (
	"crypto/sha256"
	"fmt"
)

// Build writes a valid image from h and segs: computes the checksum,
// padding and (when h.HashAppended) the SHA-256. SegmentCount in h is
// ignored and set from len(segs). When app is non-nil it is encoded into
// the first 256 bytes of segs[0].Data (which must be at least that long).
//
// Segment Offset fields are ignored (Build lays segments out in order)
// and segs is not modified. Build does not check flash-mapped alignment:
// the caller chooses load addresses, and Verify reports a bad choice.
func Build(h Header, segs []Segment, app *AppDesc) ([]byte, error) {
	if len(segs) > MaxSegments {
		return nil, fmt.Errorf("%d segments, maximum %d: %w", len(segs), MaxSegments, ErrSegments)
	}
	size := HeaderSize
	for i, s := range segs {
		if len(s.Data)%4 != 0 {
			return nil, fmt.Errorf("segment %d: length %d is not a multiple of 4: %w", i, len(s.Data), ErrSegments)
		}
		if len(s.Data) >= MaxSegmentLen {
			return nil, fmt.Errorf("segment %d: length 0x%x is not below the 16 MiB limit: %w", i, len(s.Data), ErrSegments)
		}
		size += SegmentHeaderSize + len(s.Data)
	}
	if app != nil && (len(segs) == 0 || len(segs[0].Data) < AppDescSize) {
		return nil, fmt.Errorf("app descriptor needs segment 0 to hold at least %d bytes: %w", AppDescSize, ErrSegments)
	}
	csOff := checksumOffset(size)
	total := csOff + 1
	if h.HashAppended {
		total += DigestSize
	}

	b := make([]byte, total)
	h.SegmentCount = uint8(len(segs))
	encodeHeader(b, &h)
	off := HeaderSize
	sum := byte(ChecksumSeed)
	for i, s := range segs {
		le.PutUint32(b[off:], s.LoadAddr)
		le.PutUint32(b[off+4:], uint32(len(s.Data)))
		off += SegmentHeaderSize
		copy(b[off:], s.Data)
		if i == 0 && app != nil {
			if err := encodeAppDesc(b[off:off+AppDescSize], app); err != nil {
				return nil, err
			}
		}
		for _, c := range b[off : off+len(s.Data)] {
			sum ^= c
		}
		off += len(s.Data)
	}
	b[csOff] = sum
	if h.HashAppended {
		d := sha256.Sum256(b[:csOff+1])
		copy(b[csOff+1:], d[:])
	}
	return b, nil
}

func encodeHeader(b []byte, h *Header) {
	b[0] = Magic
	b[1] = h.SegmentCount
	b[2] = h.SPIMode
	b[3] = h.FlashSize<<4 | h.SPISpeed&0x0F
	le.PutUint32(b[4:], h.Entry)
	b[8] = h.WPPin
	copy(b[9:12], h.SPIPinDrv[:])
	le.PutUint16(b[12:], uint16(h.Chip))
	b[14] = h.MinChipRev
	le.PutUint16(b[15:], h.MinChipRevFull)
	le.PutUint16(b[17:], h.MaxChipRevFull)
	b[23] = 0
	if h.HashAppended {
		b[23] = 1
	}
}

// encodeAppDesc writes a into the 256-byte descriptor d. Fields whose
// current content already decodes to the wanted value are left alone, so
// that re-encoding a parsed descriptor reproduces it byte for byte (bytes
// after a string's NUL, reserved fields).
func encodeAppDesc(d []byte, a *AppDesc) error {
	le.PutUint32(d, AppDescMagic)
	le.PutUint32(d[adSecureVersion:], a.SecureVersion)
	for _, f := range appDescFields {
		field := d[f.off : f.off+f.len]
		v := *f.get(a)
		if cstring(field) == v {
			continue
		}
		// ESP-IDF keeps a terminating NUL, so a field holds len-1 bytes.
		if len(v) > f.len-1 {
			return fmt.Errorf("app descriptor %s %q is %d bytes, the field holds at most %d", f.name, v, len(v), f.len-1)
		}
		clear(field)
		copy(field, v)
	}
	copy(d[adELFSHA256:adELFSHA256+32], a.ELFSHA256[:])
	return nil
}

// SetVersion returns a copy of the app image b with the descriptor's
// version string replaced, checksum and digest recomputed.
//
// Bytes after the image (a partition's erased tail, a signature block) are
// copied unchanged; a secure-boot signature no longer matches afterwards.
func SetVersion(b []byte, version string) ([]byte, error) {
	img, err := Parse(b)
	if err != nil {
		return nil, err
	}
	if img.App == nil {
		return nil, fmt.Errorf("offset 0x%x: no app descriptor (magic 0x%08X): %w", AppDescOffset, uint32(AppDescMagic), ErrNotApp)
	}
	out := append([]byte(nil), b...)
	d := out[AppDescOffset : AppDescOffset+AppDescSize]
	app := *img.App
	app.Version = version
	if err := encodeAppDesc(d, &app); err != nil {
		return nil, err
	}
	// Recompute from scratch rather than patching, so that an image that
	// came in with a bad checksum leaves with a correct one.
	sum := byte(ChecksumSeed)
	for _, s := range img.Segments {
		for _, c := range out[s.Offset : s.Offset+len(s.Data)] {
			sum ^= c
		}
	}
	out[img.ChecksumOffset] = sum
	if img.HashAppended {
		dg := sha256.Sum256(out[:img.ChecksumOffset+1])
		copy(out[img.ChecksumOffset+1:], dg[:])
	}
	return out, nil
}
