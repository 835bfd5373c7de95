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
func Deflate(image, plain []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriterDict(&b, flate.DefaultCompression, dict(image))
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
