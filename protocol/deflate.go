package protocol

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
)

// DictSize is how much preceding image data serves as the DEFLATE preset
// dictionary of a compressed DATA frame.
const DictSize = 32 << 10

// Deflate compresses plain, the image bytes at offset len(image) of an
// image whose earlier bytes are image, as one complete raw DEFLATE stream
// (RFC 1951) with the last DictSize bytes of image as preset dictionary.
func Deflate(image, plain []byte) []byte { return DeflateDict(dict(image), plain) }

// DeltaReach is how far before and after a frame's offset the running
// build serves as dictionary of a DELTA frame (SPEC.md 6.7).
const DeltaReach = 16 << 10

// DeltaRange returns the image offsets [start, end) of the running build
// (runningLen bytes long) that form the dictionary of a DELTA frame at
// offset.
func DeltaRange(offset, runningLen int) (start, end int) {
	start, end = max(0, offset-DeltaReach), min(runningLen, offset+DeltaReach)
	if start >= end {
		return 0, 0
	}
	return start, end
}

// DeflateDict compresses plain as one complete raw DEFLATE stream with
// dict as preset dictionary (at most the last DictSize bytes count).
func DeflateDict(dict, plain []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriterDict(&b, flate.DefaultCompression, dict)
	w.Write(plain)
	w.Close()
	return b.Bytes()
}

// Inflate reverses Deflate: history is the image before the frame's offset
// (at least its last DictSize bytes), limit the most plain bytes accepted.
func Inflate(history, comp []byte, limit int) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(comp))
	r.(flate.Resetter).Reset(bytes.NewReader(comp), dict(history))
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("deflate data: %w", err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("deflate data expands past %d bytes", limit)
	}
	return out, nil
}

func dict(history []byte) []byte {
	if len(history) > DictSize {
		return history[len(history)-DictSize:]
	}
	return history
}
