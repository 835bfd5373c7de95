package rom

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gota-dev/gota/firmware-agent/flash"
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

// memPort is a Port over fixed input, discarding output.
type memPort struct {
	r    *bytes.Reader
	baud int
}

func (p *memPort) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *memPort) Write(b []byte) (int, error) { return len(b), nil }
func (p *memPort) SetBaud(b int) error         { p.baud = b; return nil }
func (p *memPort) Baud() int                   { return p.baud }

// FuzzLoader sends arbitrary command packets to the ROM loader (and, via
// a registered test stub, the stub): nothing may panic, whatever the
// sizes, sequence numbers and offsets say.
func FuzzLoader(f *testing.F) {
	pkt := func(op byte, data []byte, chk uint32) []byte {
		p := []byte{0, op, byte(len(data)), byte(len(data) >> 8), byte(chk), byte(chk >> 8), byte(chk >> 16), byte(chk >> 24)}
		return append(p, data...)
	}
	blk := bytes.Repeat([]byte{1}, 64)
	f.Add(pkt(OpFlashBegin, words(64, 1, 64, 0x10000), 0), pkt(OpFlashData, dataPacket(0, blk), Checksum(blk)))
	f.Add(pkt(OpFlashDeflBegin, words(0x1000, 1, 64, 0), 0), pkt(OpFlashDeflData, dataPacket(0, []byte{0x78, 0x9c, 1, 2}), 0))
	f.Add(pkt(OpMemBegin, words(16, 1, 16, 0x40080000), 0), pkt(OpMemEnd, words(0, 0x40080000), 0))
	f.Add(pkt(OpReadFlash, words(0, 16, 16, 1), 0), pkt(OpSPIFlashMD5, words(0xFFFFFFF0, 0x100, 0, 0), 0))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ts := newTestStub(ESP32)
		for _, chip := range []*Chip{ESP32, ESP32S3} {
			var in []byte
			for _, p := range [][]byte{a, b, a} {
				in = AppendSLIP(in, p)
			}
			l := New(Config{Chip: chip, Flash: flash.NewMemory(1 << 20), Stubs: []Stub{ts.stub}})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			l.Serve(ctx, &memPort{r: bytes.NewReader(in), baud: 115200})
			l.Close()
			cancel()
		}
	})
}
