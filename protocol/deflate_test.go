package protocol

import (
	"bytes"
	"testing"
)

func TestDeltaRange(t *testing.T) {
	const r = DeltaReach
	tests := []struct {
		offset, runningLen int
		start, end         int
	}{
		{0, 100000, 0, r},
		{5000, 100000, 0, 5000 + r},
		{50000, 100000, 50000 - r, 50000 + r},
		{99000, 100000, 99000 - r, 100000},
		{100000 + r, 100000, 0, 0}, // past the running build: no dictionary
		{1000, 0, 0, 0},            // no running build
	}
	for _, tt := range tests {
		if start, end := DeltaRange(tt.offset, tt.runningLen); start != tt.start || end != tt.end {
			t.Errorf("DeltaRange(%d, %d) = %d, %d; want %d, %d", tt.offset, tt.runningLen, start, end, tt.start, tt.end)
		}
	}
	// A DELTA frame round-trips with the dictionary both sides build.
	base := bytes.Repeat([]byte("gota delta base "), 8192)
	next := append([]byte(nil), base...)
	copy(next[70000:], "changed")
	start, end := DeltaRange(65536, len(base))
	comp := DeflateDict(base[start:end], next[65536:65536+4096])
	got, err := Inflate(base[start:end], comp, 4096)
	if err != nil || !bytes.Equal(got, next[65536:65536+4096]) {
		t.Fatalf("round trip: %v", err)
	}
}
