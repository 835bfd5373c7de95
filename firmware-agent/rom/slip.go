package rom

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// SLIP framing (RFC 1055) as the ROM loader uses it: every packet starts
// and ends with 0xC0; inside, 0xC0 is sent as 0xDB 0xDC and 0xDB as
// 0xDB 0xDD (esptool docs/en/advanced-topics/serial-protocol.rst, "Low
// Level Protocol").
const (
	slipEnd    = 0xC0
	slipEsc    = 0xDB
	slipEscEnd = 0xDC
	slipEscEsc = 0xDD
)

// ErrSLIP reports a malformed SLIP escape inside a frame.
var ErrSLIP = errors.New("rom: bad SLIP escape")

// AppendSLIP appends p framed and escaped to dst.
func AppendSLIP(dst, p []byte) []byte {
	dst = append(dst, slipEnd)
	for _, c := range p {
		switch c {
		case slipEnd:
			dst = append(dst, slipEsc, slipEscEnd)
		case slipEsc:
			dst = append(dst, slipEsc, slipEscEsc)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, slipEnd)
}

// SLIPReader reads SLIP frames from a byte stream. Bytes outside frames
// (boot messages, line noise) are skipped, as esptool's slip_reader does.
type SLIPReader struct {
	r *bufio.Reader
}

// NewSLIPReader returns a reader of the frames in r.
func NewSLIPReader(r io.Reader) *SLIPReader {
	return &SLIPReader{r: bufio.NewReaderSize(r, 256)}
}

// maxFrame bounds a decoded frame: an 8-byte header and at most 65535
// bytes of data (the 16-bit size field), with slack for escapes gone wrong.
const maxFrame = 8 + 0xFFFF + 16

// ReadFrame returns the next non-empty frame. A frame with a bad escape
// yields ErrSLIP (wrapped, naming the byte); the reader then resumes at
// the next frame. A frame longer than any packet is cut off and reported.
func (s *SLIPReader) ReadFrame() ([]byte, error) {
	// Skip to the start of a frame.
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return nil, err
		}
		if c == slipEnd {
			break
		}
	}
	var buf []byte
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return nil, err
		}
		switch c {
		case slipEnd:
			if len(buf) == 0 {
				continue // back-to-back delimiters: the end of one frame, the start of the next
			}
			return buf, nil
		case slipEsc:
			e, err := s.r.ReadByte()
			if err != nil {
				return nil, err
			}
			switch e {
			case slipEscEnd:
				buf = append(buf, slipEnd)
			case slipEscEsc:
				buf = append(buf, slipEsc)
			default:
				if e == slipEnd {
					s.r.UnreadByte() // it starts the next frame
				}
				return nil, fmt.Errorf("%w: 0xDB followed by 0x%02X at frame byte %d", ErrSLIP, e, len(buf))
			}
		default:
			buf = append(buf, c)
		}
		if len(buf) > maxFrame {
			return nil, fmt.Errorf("%w: frame longer than %d bytes", ErrSLIP, maxFrame)
		}
	}
}
