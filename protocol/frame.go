// Package protocol is the Gota wire protocol between a host (CLI, browser)
// and the OTA agent on an ESP32 console: frames that share the line with
// plain log text, checked by CRC-8 (header) and CRC-32 (whole frame), and
// the messages carried in them. SPEC.md in this directory is the normative
// description; this package is its Go implementation.
package protocol

import (
	"encoding/binary"
	"hash/crc32"
)

// Version is the protocol version this package speaks.
const Version = 1

// Framing constants (SPEC.md, "Frame").
const (
	SOF        = 0x01 // start of frame; never part of log text
	HeaderSize = 7    // SOF, type, flags, seq, len (2), hcrc
	CRCSize    = 4    // CRC-32 trailer
	Overhead   = HeaderSize + CRCSize

	// BaseMaxPayload is the payload size every implementation must accept
	// before and after the handshake.
	BaseMaxPayload = 256
	// LimitMaxPayload is the largest payload the length field can express.
	LimitMaxPayload = 0xFFFF
)

// Frame is one decoded frame.
type Frame struct {
	Type    Type
	Flags   uint8
	Seq     uint8
	Payload []byte
}

// CRC8 is CRC-8 with polynomial 0x07, initial value 0, no reflection and
// no final XOR (CRC-8/SMBUS); CRC8([]byte("123456789")) == 0xF4. It
// guards the header so a noise byte that looks like SOF is rejected after
// 7 bytes instead of swallowing the line for a bogus length.
func CRC8(p []byte) uint8 {
	var c uint8
	for _, b := range p {
		c = crc8Table[c^b]
	}
	return c
}

var crc8Table = func() (t [256]uint8) {
	for i := range t {
		c := uint8(i)
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x07
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC32 is CRC-32/IEEE as zlib computes it (reflected polynomial
// 0xEDB88320, init and final XOR 0xFFFFFFFF); CRC32("123456789") ==
// 0xCBF43926.
func CRC32(p []byte) uint32 { return crc32.ChecksumIEEE(p) }

// AppendFrame appends the encoding of f to dst. It panics when the payload
// is longer than LimitMaxPayload, which is a programming error.
func AppendFrame(dst []byte, f Frame) []byte {
	if len(f.Payload) > LimitMaxPayload {
		panic("protocol: payload too long")
	}
	start := len(dst)
	dst = append(dst, SOF, byte(f.Type), f.Flags, f.Seq, 0, 0, 0)
	binary.LittleEndian.PutUint16(dst[start+4:], uint16(len(f.Payload)))
	dst[start+6] = CRC8(dst[start+1 : start+6])
	dst = append(dst, f.Payload...)
	return binary.LittleEndian.AppendUint32(dst, CRC32(dst[start+1:]))
}

// Encode returns the encoding of f.
func (f Frame) Encode() []byte {
	return AppendFrame(make([]byte, 0, Overhead+len(f.Payload)), f)
}
