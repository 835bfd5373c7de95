package cagent_test

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"math/rand"
	"testing"

	"github.com/gota-dev/gota/firmware-agent/cagent"
)

// history returns the ring's bytes before pos, oldest first: the preset
// dictionary the agent's streams are compressed against (SPEC.md).
func history(ring []byte, pos int) []byte {
	return append(append([]byte{}, ring[pos:]...), ring[:pos]...)
}

// goInflate is the reference: Go's compress/flate with the same history.
func goInflate(ring []byte, pos int, src []byte, max int) ([]byte, error) {
	r := flate.NewReaderDict(bytes.NewReader(src), history(ring, pos))
	out, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(out) > max {
		return nil, errors.New("over max")
	}
	return out, nil
}

func deflate(t testing.TB, data, dict []byte) []byte {
	var b bytes.Buffer
	w, err := flate.NewWriterDict(&b, flate.BestCompression, dict)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// bits writes DEFLATE's bit stream: fields LSB first, Huffman codes MSB
// first (RFC 1951 3.1.1).
type bits struct {
	b    []byte
	n    uint
	code bool
}

func (w *bits) put(v uint32, n uint) {
	for i := uint(0); i < n; i++ {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (w.n % 8)
		w.n++
	}
}

func (w *bits) huff(code uint32, n uint) {
	for i := n; i > 0; i-- {
		w.put(code>>(i-1)&1, 1)
	}
}

// farthest is a fixed-Huffman stream of one match of length 3 at distance
// 32768, the oldest byte of the history: in the ring, the byte at pos.
func farthest() []byte {
	var w bits
	w.put(1, 1)     // BFINAL
	w.put(1, 2)     // BTYPE 01: fixed Huffman
	w.huff(1, 7)    // length code 257: length 3
	w.huff(29, 5)   // distance code 29: 24577 + 13 extra bits
	w.put(8191, 13) // 32768
	w.huff(0, 7)    // end of block
	return w.b
}

// fixedLiteral is a final fixed-Huffman block of one literal c (< 144)
// without its end-of-block code.
func fixedLiteral(c byte) []byte {
	var w bits
	w.put(1, 1)
	w.put(1, 2)
	w.huff(0x30+uint32(c), 8)
	return w.b
}

func randomRing(seed int64) []byte {
	ring := make([]byte, cagent.RingSize)
	rand.New(rand.NewSource(seed)).Read(ring)
	return ring
}

func TestInflateRing(t *testing.T) {
	text := bytes.Repeat([]byte("gota writes the spare OTA partition. "), 3000) // 111000 bytes
	ring := randomRing(1)
	tests := []struct {
		name string
		pos  int
		src  []byte
		max  int
		want []byte // nil: refused
	}{
		{"text from 0", 0, deflate(t, text[:5000], nil), 1 << 20, text[:5000]},
		{"text wrapping the ring end", cagent.RingSize - 100, deflate(t, text[:5000], nil), 1 << 20, text[:5000]},
		{"three times the ring", 12345, deflate(t, text, nil), 1 << 20, text},
		{"from the history", 777, deflate(t, append(history(ring, 777)[100:20100:20100], 'x'), history(ring, 777)), 1 << 20,
			append(history(ring, 777)[100:20100:20100], 'x')},
		{"distance 32768", 4000, farthest(), 10, ring[4000:4003]},
		{"distance 32768 at the ring end", cagent.RingSize - 1, farthest(), 10, []byte{ring[cagent.RingSize-1], ring[0], ring[1]}},
		{"trailing bytes ignored", 0, append(deflate(t, text[:300], nil), 0xff, 0xff), 1 << 20, text[:300]},
		{"exactly max", 0, deflate(t, text[:5000], nil), 5000, text[:5000]},
		{"one over max", 0, deflate(t, text[:5000], nil), 4999, nil},
		// miniz 9.1.15 reads zeros past the input's end: 7 zero bits are
		// the fixed code's end of block, so the missing one is supplied.
		{"cut before the end of block", 0, fixedLiteral('a'), 1 << 20, []byte("a")},
		// ... but not a stored block's data: LEN 5, NLEN, 2 of 5 bytes.
		{"stored block cut short", 0, []byte{0x01, 0x05, 0x00, 0xfa, 0xff, 'a', 'b'}, 1 << 20, nil},
		// LEN 0xffff, and the zeros would make NLEN 0: still refused.
		{"stored header cut short", 0, []byte{0x01, 0xff, 0xff}, 1 << 20, nil},
		{"empty", 0, nil, 1 << 20, nil},
		{"reserved block type", 0, []byte{0x07}, 1 << 20, nil},
		{"stored length mismatch", 0, []byte{0x01, 0x05, 0x00, 0x00, 0x00, 'a', 'b', 'c', 'd', 'e'}, 1 << 20, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := append([]byte{}, ring...)
			n, err := cagent.InflateRing(r, tt.pos, tt.src, tt.max)
			if tt.want == nil {
				if !errors.Is(err, cagent.ErrInflate) {
					t.Fatalf("got %d bytes, err %v; want ErrInflate", n, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err %v", err)
			}
			if n != len(tt.want) {
				t.Fatalf("got %d bytes, want %d", n, len(tt.want))
			}
			checkRing(t, r, tt.pos, tt.want)
			if ref, err := goInflate(ring, tt.pos, padded(tt.src, tt.max), tt.max); err != nil || !bytes.Equal(ref, tt.want) {
				t.Errorf("compress/flate disagrees: %d bytes, err %v", len(ref), err)
			}
		})
	}
}

// checkRing checks that the ring holds the last RingSize bytes of want at
// their circular positions from pos on.
func checkRing(t *testing.T, ring []byte, pos int, want []byte) {
	t.Helper()
	start := max(0, len(want)-cagent.RingSize)
	for i := start; i < len(want); i++ {
		if got := ring[(pos+i)%cagent.RingSize]; got != want[i] {
			t.Fatalf("output byte %d at ring %d is %#x, want %#x", i, (pos+i)%cagent.RingSize, got, want[i])
		}
	}
}

func TestInflateRingBadPosition(t *testing.T) {
	if _, err := cagent.InflateRing(make([]byte, cagent.RingSize), cagent.RingSize, []byte{3, 0}, 10); err == nil {
		t.Fatal("position RingSize accepted")
	}
}

// padded is src followed by more zero bytes than inflating up to max
// bytes can read, as miniz 9.1.15 sees a stream without
// TINFL_FLAG_HAS_MORE_INPUT.
func padded(src []byte, max int) []byte {
	return append(append([]byte{}, src...), make([]byte, 2*max+1024)...)
}

// FuzzInflateRing holds the host tinfl (zlib behind the ROM's API)
// against compress/flate on any input: a stream flate inflates gives the
// same bytes, and one the host accepts is what flate makes of it padded
// with zeros (the ROM's tinfl reads zeros past the end).
func FuzzInflateRing(f *testing.F) {
	text := bytes.Repeat([]byte("0123456789abcdef"), 5000)
	f.Add(deflate(f, text, nil), uint16(0))
	f.Add(deflate(f, text[:100], nil), uint16(cagent.RingSize-7))
	f.Add(farthest(), uint16(9))
	f.Add([]byte{0x01, 0x03, 0x00, 0xfc, 0xff, 'a', 'b', 'c'}, uint16(1))
	f.Add([]byte{0x07}, uint16(0))
	f.Add(fixedLiteral('z'), uint16(3))
	f.Add([]byte{0x01, 0xff, 0xff}, uint16(0))
	f.Add(deflate(f, text, nil)[:100], uint16(5))
	f.Fuzz(func(t *testing.T, src []byte, pos16 uint16) {
		const max = 200000
		pos := int(pos16) % cagent.RingSize
		ring := randomRing(int64(pos16))
		want, werr := goInflate(ring, pos, src, max)
		r := append([]byte{}, ring...)
		n, err := cagent.InflateRing(r, pos, src, max)
		if err != nil {
			if werr == nil {
				t.Fatalf("host tinfl refused (%v) what compress/flate inflates to %d bytes", err, len(want))
			}
			return
		}
		if werr != nil {
			if want, werr = goInflate(ring, pos, padded(src, max), max); werr != nil {
				t.Fatalf("host tinfl: %d bytes; compress/flate, zero-padded: %v", n, werr)
			}
		}
		if n != len(want) {
			t.Fatalf("host tinfl %d bytes, compress/flate %d", n, len(want))
		}
		checkRing(t, r, pos, want)
	})
}
