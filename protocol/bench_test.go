package protocol

import (
	"bytes"
	"compress/flate"
	"math/rand/v2"

	"github.com/gota-dev/gota/internal/shareddata"
	"testing"
	"time"
)

// benchStream is 64 DATA frames of 4 KiB with a log line between each.
func benchStream() []byte {
	r := rand.New(rand.NewPCG(5, 6))
	var s []byte
	for i := range 64 {
		p := make([]byte, 4096)
		for j := range p {
			p[j] = byte(r.IntN(256))
		}
		s = append(s, "I (1234) app: some log line\n"...)
		s = AppendFrame(s, Frame{Type: TypeData, Seq: uint8(i), Payload: p})
	}
	return s
}

// BenchmarkDecoder reports decoding throughput and its cost relative to
// the CRC-32 of the same bytes (the part no decoder can skip).
func BenchmarkDecoder(b *testing.B) {
	s := benchStream()
	b.SetBytes(int64(len(s)))
	n := 0
	d := NewDecoder(4096, func(Frame) { n++ }, func([]byte) {})
	start := time.Now()
	for b.Loop() {
		for p := s; len(p) > 0; {
			k := min(len(p), 512) // UART-sized reads
			d.Write(p[:k])
			p = p[k:]
		}
	}
	dec := time.Since(start)
	start = time.Now()
	for range b.N {
		CRC32(s)
	}
	crc := time.Since(start)
	if n != 64*b.N {
		b.Fatalf("%d frames, want %d", n, 64*b.N)
	}
	b.ReportMetric(float64(dec)/float64(crc), "x-crc32")
}

// BenchmarkDeflateDict compresses a real firmware image in 8 KiB frames
// with the preceding 32 KiB as dictionary (SPEC.md 6.4) and reports the
// size against the same frames compressed independently (the baseline)
// and against one DEFLATE stream of the whole image (the ideal).
func BenchmarkDeflateDict(b *testing.B) {
	img := shareddata.File(b, "esp32-ledcontroller-v1.1.bin")
	var dict, indep int
	for b.Loop() {
		dict, indep = 0, 0
		for off := 0; off < len(img); off += 8192 {
			end := min(off+8192, len(img))
			dict += len(Deflate(img[:off], img[off:end]))
			indep += len(Deflate(nil, img[off:end]))
		}
	}
	var whole bytes.Buffer
	w, _ := flate.NewWriter(&whole, flate.DefaultCompression)
	w.Write(img)
	w.Close()
	b.SetBytes(int64(len(img)))
	b.ReportMetric(float64(dict)/float64(len(img)), "dict-ratio")
	b.ReportMetric(float64(indep)/float64(len(img)), "independent-ratio")
	b.ReportMetric(float64(whole.Len())/float64(len(img)), "stream-ratio")
}
