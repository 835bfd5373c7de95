package rom

import (
	"bytes"
	"testing"
)

func FuzzSLIP(f *testing.F) {
	f.Add([]byte{0xC0, 0xDB, 1, 2})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) == 0 {
			return
		}
		got, err := NewSLIPReader(bytes.NewReader(AppendSLIP(nil, p))).ReadFrame()
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("round trip of % x: % x, %v", p, got, err)
		}
	})
}

// FuzzSLIPReader feeds arbitrary line bytes: the reader must not panic
// and every frame it returns must be non-empty and bounded.
func FuzzSLIPReader(f *testing.F) {
	f.Add([]byte{0xC0, 0xDB, 0xC0, 0x00, 0xC0})
	f.Add([]byte("rst:0x1 (POWERON_RESET)\r\n\xc0\x00\x08\xc0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewSLIPReader(bytes.NewReader(b))
		for {
			p, err := r.ReadFrame()
			if err != nil && !isSLIPErr(err) {
				return
			}
			if err == nil && (len(p) == 0 || len(p) > maxFrame) {
				t.Fatalf("frame of %d bytes", len(p))
			}
			if err == nil {
				parseCommand(p)
			}
		}
	})
}

func isSLIPErr(err error) bool {
	return err != nil && bytes.Contains([]byte(err.Error()), []byte("SLIP"))
}

func TestSLIP(t *testing.T) {
	cases := []struct {
		in     []byte
		frames [][]byte
	}{
		{AppendSLIP(nil, []byte{1, 0xC0, 0xDB, 2}), [][]byte{{1, 0xC0, 0xDB, 2}}},
		{[]byte("boot noise\xc0\x01\x02\xc0\xc0\x03\xc0"), [][]byte{{1, 2}, {3}}},
		{[]byte{0xC0, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0}, [][]byte{{0xC0, 0xDB}}},
	}
	for _, c := range cases {
		r := NewSLIPReader(bytes.NewReader(c.in))
		for i, want := range c.frames {
			got, err := r.ReadFrame()
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("% x frame %d: % x %v, want % x", c.in, i, got, err, want)
			}
		}
	}
	// A bad escape is reported, and the next frame still decodes.
	r := NewSLIPReader(bytes.NewReader([]byte{0xC0, 1, 0xDB, 0x00, 2, 0xC0, 0xC0, 9, 0xC0}))
	if _, err := r.ReadFrame(); !isSLIPErr(err) {
		t.Errorf("bad escape: %v", err)
	}
	for {
		p, err := r.ReadFrame()
		if isSLIPErr(err) {
			continue
		}
		if err != nil || !bytes.Equal(p, []byte{9}) {
			t.Errorf("after a bad escape: % x %v", p, err)
		}
		break
	}
}
