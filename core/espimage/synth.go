package espimage

import (
	"errors"
	"fmt"
	"math/rand"
)

// SynthOptions describe a synthetic app image.
type SynthOptions struct {
	Version     string // app descriptor version
	ProjectName string // app descriptor project name; "" means "gota-synth"
	// Size is the image length to aim at (the result is within a few
	// bytes of it); 0 means a small image of about 650 bytes (a
	// 512-byte DROM segment, a 64-byte DRAM segment).
	Size int
	// Seed 0 fills the segments with a short repeating pattern (DEFLATE
	// shrinks it to almost nothing); any other seed with random bytes
	// from it (incompressible). The same options give the same image.
	Seed int64
}

// Synth builds a valid ESP32 app image without firmware at hand, for
// tests, benchmarks and the demo device: a flash-mapped DROM segment that
// starts with the app descriptor (at image offset 0x20, so the image is
// valid in any 64 KiB-aligned slot), then the rest: a small DRAM segment,
// or for a given Size a flash-mapped IROM segment (the bootloader maps it
// rather than loads it, so its size is not bounded by RAM; it maps at an
// address congruent to its image offset modulo the 64 KiB MMU page). The
// digest is appended.
func Synth(o SynthOptions) ([]byte, error) {
	drom, dram := 512, 64
	if o.Size > 0 {
		const overhead = HeaderSize + 2*SegmentHeaderSize + 16 + DigestSize
		drom = 4 << 10
		dram = (o.Size - overhead - drom) &^ 3
		if dram < 4 {
			return nil, fmt.Errorf("synthetic image: size %d is below the minimum %d", o.Size, overhead+drom+4)
		}
	}
	d0, d1 := make([]byte, drom), make([]byte, dram)
	if o.Seed != 0 {
		rng := rand.New(rand.NewSource(o.Seed))
		rng.Read(d0)
		rng.Read(d1)
	} else {
		for i := range d0 {
			d0[i] = byte(i * 7)
		}
		for i := range d1 {
			d1[i] = byte(i * 13)
		}
	}
	name := o.ProjectName
	if name == "" {
		name = "gota-synth"
	}
	if o.Version == "" {
		return nil, errors.New("synthetic image: no version")
	}
	h := Header{
		SPIMode: 2, SPISpeed: 0xF, FlashSize: 2, Entry: 0x40080000, WPPin: 0xEE,
		Chip: ChipESP32, MaxChipRevFull: 0xFFFF, HashAppended: true,
	}
	segs := []Segment{
		{LoadAddr: 0x3F400020, Data: d0}, // flash-mapped: data at image offset 0x20
		{LoadAddr: 0x3FFB0000, Data: d1}, // DRAM
	}
	if o.Size > 0 {
		off := HeaderSize + 2*SegmentHeaderSize + len(d0)
		segs[1].LoadAddr = 0x400D0000 + uint32(off%0x10000) // IROM
	}
	app := &AppDesc{Version: o.Version, ProjectName: name, Time: "00:00:00", Date: "Jan  1 2026", IDFVer: "v5.1.3"}
	b, err := Build(h, segs, app)
	if err != nil {
		return nil, fmt.Errorf("synthetic image: %w", err)
	}
	return b, nil
}
