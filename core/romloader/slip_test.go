package romloader

import (
	"bytes"
	"compress/zlib"
	"testing"
)

func TestSLIPRoundTrip(t *testing.T) {
	tests := [][]byte{
		{0x01, 0x02},
		{0xC0},
		{0xDB},
		{0xC0, 0xDB, 0xDC, 0xDD, 0xC0},
		bytes.Repeat([]byte{0xDB, 0xC0}, 100),
	}
	var wire []byte
	for _, p := range tests {
		wire = appendSLIP(wire, p)
	}
	wire = append([]byte("rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT)\nwaiting for download\n"), wire...)
	// Feed one byte at a time: frames must not depend on read boundaries.
	var d slipDecoder
	var got [][]byte
	for i := range wire {
		got = append(got, d.feed(wire[i:i+1])...)
	}
	if len(got) != len(tests) {
		t.Fatalf("%d frames, want %d", len(got), len(tests))
	}
	for i := range tests {
		if !bytes.Equal(got[i], tests[i]) {
			t.Errorf("frame %d: % x, want % x", i, got[i], tests[i])
		}
	}
	if txt := string(d.takeText()); txt != "rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT)\nwaiting for download\n" {
		t.Errorf("text %q", txt)
	}
}

func TestSLIPBadEscape(t *testing.T) {
	var d slipDecoder
	got := d.feed([]byte{0xC0, 0x01, 0xDB, 0x00, 0x02, 0xC0, 0xC0, 0x03, 0xC0})
	if len(got) != 1 || !bytes.Equal(got[0], []byte{0x03}) || d.bad != 1 {
		t.Errorf("frames %x, bad %d; want only the good frame 03 and one bad", got, d.bad)
	}
}

func TestChecksum(t *testing.T) {
	if got := checksum(nil); got != 0xEF {
		t.Errorf("checksum(nil) = 0x%x, want 0xEF", got)
	}
	if got := checksum([]byte{0xEF}); got != 0 {
		t.Errorf("checksum(EF) = 0x%x", got)
	}
	if got := checksum([]byte{1, 2, 4}); got != 0xEF^7 {
		t.Errorf("checksum(1,2,4) = 0x%x", got)
	}
}

func TestFlashSizeOf(t *testing.T) {
	tests := map[uint32]int{
		0x16405E: 4 << 20, // GigaDevice 4 MB (C8 40 16, read little-endian)
		0x1840EF: 16 << 20,
		0x12FFFF: 256 << 10,
		0x3920C2: 32 << 20,
		0x2040EF: 64 << 20,
		0xFFFFFF: 0,
		0x000000: 0,
	}
	for id, want := range tests {
		if got := flashSizeOf(id); got != want {
			t.Errorf("flashSizeOf(0x%06x) = %d, want %d", id, got, want)
		}
	}
}

func FuzzSLIP(f *testing.F) {
	f.Add([]byte{0xC0, 0x01, 0xDB, 0xDC, 0xC0})
	f.Add([]byte("boot:0x13\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d slipDecoder
		for _, fr := range d.feed(b) {
			if len(fr) == 0 || len(fr) > maxFrame {
				t.Fatalf("frame of %d bytes", len(fr))
			}
			var d2 slipDecoder
			again := d2.feed(appendSLIP(nil, fr))
			if len(again) != 1 || !bytes.Equal(again[0], fr) {
				t.Fatal("re-encoded frame does not decode to itself")
			}
		}
	})
}

func TestBlockOutputs(t *testing.T) {
	// Half incompressible, half zeros: the blocks holding the zeros
	// inflate to far more than the others.
	data := make([]byte, 200_000)
	x := uint32(1)
	for i := 0; i < 100_000; i++ {
		x = x*1664525 + 1013904223
		data[i] = byte(x >> 24)
	}
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	zw.Write(data)
	zw.Close()
	out := blockOutputs(z.Bytes(), romBlockSize)
	total := 0
	for _, n := range out {
		total += n
	}
	if total != len(data) {
		t.Fatalf("blocks inflate to %d bytes in all, want %d", total, len(data))
	}
	if first, last := out[0], out[len(out)-1]; first > 2*romBlockSize || last < 20*romBlockSize {
		t.Errorf("first block inflates to %d, last to %d: want about 1 KiB and far more", first, last)
	}
}
