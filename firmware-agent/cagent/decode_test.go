package cagent_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/gota-dev/gota/firmware-agent/cagent"
	"github.com/gota-dev/gota/protocol"
)

// goFrames decodes b with the Go decoder (protocol.Decoder).
func goFrames(b []byte, max int) []protocol.Frame {
	var frames []protocol.Frame
	d := protocol.NewDecoder(max, func(f protocol.Frame) {
		f.Payload = append([]byte{}, f.Payload...)
		frames = append(frames, f)
	}, nil)
	d.Write(b)
	return frames
}

func sameFrames(a, b []protocol.Frame) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Flags != b[i].Flags || a[i].Seq != b[i].Seq || !bytes.Equal(a[i].Payload, b[i].Payload) {
			return false
		}
	}
	return true
}

func ping(seq uint8, payload string) []byte {
	return protocol.Frame{Type: protocol.TypePing, Seq: seq, Payload: []byte(payload)}.Encode()
}

// TestDecodeFrames holds the C decoder against the Go one on the cases
// of SPEC.md 3: text between frames, noise, a stray SOF, a dropped and a
// duplicated byte, a length over the limit, any chunking.
func TestDecodeFrames(t *testing.T) {
	f1, f2 := ping(1, "hi"), ping(2, "there")
	dropped := append(append([]byte{}, f1[:5]...), f1[6:]...)
	dup := append(append(append([]byte{}, f1[:5]...), f1[4]), f1[5:]...)
	big := protocol.Frame{Type: protocol.TypePing, Seq: 3, Payload: bytes.Repeat([]byte{7}, 300)}.Encode()
	tests := []struct {
		name string
		in   []byte
		want int
	}{
		{"spec example", []byte{0x01, 0x0c, 0x00, 0x05, 0x02, 0x00, 0x7c, 0x68, 0x69, 0x92, 0xa1, 0x21, 0xdc}, 1},
		{"text around", append(append([]byte("I (1) app: x\r\n"), f1...), append([]byte("more\n"), f2...)...), 2},
		{"stray SOF", append([]byte{0x01, 0x01, 0x33}, f1...), 1},
		{"dropped byte", append(dropped, f2...), 1},
		{"duplicated byte", append(dup, f2...), 1},
		{"over the limit", append(big, f2...), 1},
		{"frame inside a rejected one", append(append([]byte{0x01, 0x05, 0x00, 0x00, 0x20, 0x00}, 0), f1...), 1},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 3, 7, 1 << 20} {
			t.Run(fmt.Sprintf("%s/chunk=%d", tt.name, chunk), func(t *testing.T) {
				c := cagent.DecodeFrames(tt.in, 256, chunk)
				g := goFrames(tt.in, 256)
				if len(c) != tt.want || !sameFrames(c, g) {
					t.Errorf("C decoder %d frames %v, Go decoder %d frames %v, want %d", len(c), c, len(g), g, tt.want)
				}
			})
		}
	}
}

// FuzzDecodeFrames: whatever the bytes and however they are chunked, the
// C decoder finds exactly the frames the Go decoder finds.
func FuzzDecodeFrames(f *testing.F) {
	f.Add(ping(1, "hi"), uint8(1))
	f.Add(append([]byte("text\x01\x02"), ping(9, "x")...), uint8(5))
	f.Add(append(ping(1, "ab")[:8], ping(2, "cd")...), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		c := cagent.DecodeFrames(b, 256, int(chunk))
		g := goFrames(b, 256)
		if !sameFrames(c, g) {
			t.Fatalf("C decoder %v, Go decoder %v", c, g)
		}
	})
}
