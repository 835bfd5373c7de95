package updater

import (
	"encoding/hex"
	"fmt"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/protocol"
)

// deltaBase returns base if DELTA frames can use it: the agent offers
// DELTA and base is the running build (its appended digest is the one the
// device reports). A base that cannot be used is explained in warning.
func deltaBase(info *DeviceInfo, caps Caps, base []byte) (usable []byte, warning string) {
	if base == nil || !caps.Delta {
		return nil, ""
	}
	img, err := espimage.Parse(base)
	if err != nil || !img.HashAppended {
		return nil, "base image is not an app image with an appended SHA-256; sending without delta"
	}
	running := info.Find(info.Running)
	digest := hex.EncodeToString(img.Digest[:])
	if running == nil || running.SHA256 != digest {
		return nil, fmt.Sprintf("base image (sha256 %s…) is not the running build; sending without delta", digest[:16])
	}
	return base[:img.Length], ""
}

// dataFrame builds the DATA frame starting at off: uncompressed, or with
// DEFLATE when that shrinks it, carrying as many image bytes as fit in a
// payload of t.chunk (SPEC.md 6.4); with a base (the running build, 6.7)
// each try is also compressed against it and the smaller stream is sent.
// t.plainChunk is the adaptive guess of how many image bytes compress
// into one frame.
func (t *sender) dataFrame(off int) outFrame {
	image, limit, window := t.image, t.chunk, t.window
	plain := func(n int) outFrame {
		d := protocol.Data{Offset: uint32(off), Bytes: image[off : off+n]}
		return outFrame{b: protocol.Frame{Type: protocol.TypeData, Payload: d.Encode()}.Encode(), n: n}
	}
	left := len(image) - off
	if !t.compress {
		return plain(min(limit, left))
	}
	if t.base != nil {
		// Past DeltaReach a frame's bytes have no base bytes left at
		// their own offset in the dictionary.
		window = min(window, protocol.DeltaReach)
	}
	try := min(t.plainChunk, left, window)
	for {
		comp, flags := deflateFrame(image, t.base, off, try)
		if len(comp) <= limit && len(comp) < try {
			if len(comp) < limit*3/4 && try < window {
				t.plainChunk = min(try+try/4, window)
			}
			if flags&protocol.FlagDelta != 0 {
				t.link.countDelta()
			}
			d := protocol.Data{Offset: uint32(off), Bytes: comp}
			return outFrame{b: protocol.Frame{Type: protocol.TypeData, Flags: flags, Payload: d.Encode()}.Encode(), n: try}
		}
		if len(comp) >= try || try <= limit {
			return plain(min(limit, left)) // does not compress
		}
		try = max(int(float64(try)*float64(limit)/float64(len(comp))*0.9), limit)
		t.plainChunk = try
	}
}

// deflateFrame compresses image[off:off+n] against the image bytes before
// it and, given a base, against the base around off, and returns the
// smaller stream with its DATA flags.
func deflateFrame(image, base []byte, off, n int) ([]byte, uint8) {
	comp, flags := protocol.Deflate(image[:off], image[off:off+n]), protocol.FlagDeflate
	if base != nil {
		start, end := protocol.DeltaRange(off, len(base))
		if delta := protocol.DeflateDict(base[start:end], image[off:off+n]); len(delta) < len(comp) {
			comp, flags = delta, protocol.FlagDeflate|protocol.FlagDelta
		}
	}
	return comp, flags
}
