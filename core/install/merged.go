package install

import (
	"fmt"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/partition"
)

// bootloaderOffsets are where the ROMs load the second-stage bootloader
// from (esptool targets/*.py BOOTLOADER_FLASH_OFFSET: 0x1000 on ESP32 and
// S2, 0x0 on S3, C3, C6, H2, C2, 0x2000 on P4 and C5).
var bootloaderOffsets = map[espimage.Chip]uint32{
	espimage.ChipESP32:   0x1000,
	espimage.ChipESP32S2: 0x1000,
	espimage.ChipESP32S3: 0x0,
	espimage.ChipESP32C3: 0x0,
	espimage.ChipESP32C2: 0x0,
	espimage.ChipESP32C6: 0x0,
	espimage.ChipESP32H2: 0x0,
	espimage.ChipESP32P4: 0x2000,
	espimage.ChipESP32C5: 0x2000,
}

// BootloaderOffset returns where chip's ROM reads the bootloader, and
// false for a chip this package does not know.
func BootloaderOffset(c espimage.Chip) (uint32, bool) {
	o, ok := bootloaderOffsets[c]
	return o, ok
}

// maxTableScan bounds the search for a partition table in a merged
// image; ESP-IDF's CONFIG_PARTITION_TABLE_OFFSET is 0x8000 by default and
// moved up only for large bootloaders.
const maxTableScan = 0x40000

// IsMerged reports whether b looks like a merged image: a bootloader at
// 0x0, 0x1000 or 0x2000 followed by a partition table.
func IsMerged(b []byte) bool {
	_, err := SplitMerged("", b)
	return err == nil
}

// SplitMerged recognises a merged image (bootloader, partition table and
// partitions at their flash offsets, as esptool merge_bin and ESPHome's
// .factory.bin lay them out, starting at flash offset 0) and returns a
// plan that writes it whole, with its parts named. Bytes outside the
// bootloader, the table and the partitions become "unlisted" data parts.
func SplitMerged(name string, b []byte) (*Plan, error) {
	boot, ok := findBootloader(b)
	if !ok {
		return nil, fmt.Errorf("%w: no bootloader image at 0x0, 0x1000 or 0x2000", ErrNotMerged)
	}
	_, table, ok := findTable(b, boot.End())
	if !ok {
		return nil, fmt.Errorf("%w: bootloader at 0x%x but no partition table after it (searched sectors up to 0x%x)",
			ErrNotMerged, boot.Offset, maxTableScan)
	}
	boot.Name = "bootloader"
	parts := []Part{boot, table}
	for _, e := range table.Table.Partitions {
		if uint64(e.Offset) >= uint64(len(b)) {
			continue
		}
		end := min(e.End(), uint64(len(b)))
		data := b[e.Offset:end]
		if len(trimFF(data)) == 0 {
			continue
		}
		pt := Classify(e.Name, e.Offset, data)
		if pt.Kind == KindPartitionTable { // a data partition that happens to start AA 50
			pt = Part{Name: e.Name, Offset: e.Offset, Data: data}
		}
		if pt.Image != nil && pt.Err == nil && e.Type == partition.TypeApp {
			pt.Data = data[:min(len(data), pt.Image.Length+pt.Image.SignatureLen)]
		} else {
			pt.Data = trimFF(data) // erased flash reads 0xFF: show only what is set
		}
		parts = append(parts, pt)
	}
	parts = append(parts, unlisted(b, parts)...)
	p := FromParts("merged image", parts)
	// Written whole, trailing 0xFF included: the ROM erases only what a
	// write covers, so a trimmed tail would keep old bytes there.
	p.Writes = []Region{{Offset: 0, Data: b}}
	return p, nil
}

func findBootloader(b []byte) (Part, bool) {
	for _, off := range []uint32{0x0, 0x1000, 0x2000} {
		if uint64(off) >= uint64(len(b)) || b[off] != espimage.Magic {
			continue
		}
		pt := Classify("bootloader", off, b[off:])
		if pt.Kind != KindBootloader || pt.Err != nil {
			continue
		}
		pt.Data = b[off : int(off)+pt.Image.Length]
		return pt, true
	}
	return Part{}, false
}

func findTable(b []byte, after uint64) (uint32, Part, bool) {
	start := (after + SectorSize - 1) / SectorSize * SectorSize
	for off := start; off < maxTableScan && off < uint64(len(b)); off += SectorSize {
		data := b[off:min(off+partition.MaxTableSize, uint64(len(b)))]
		if !partition.Detect(data) {
			continue
		}
		pt := Classify("partition table", uint32(off), data)
		if pt.Table == nil || len(pt.Table.Partitions) == 0 {
			continue
		}
		pt.Data = trimFF(data)
		return uint32(off), pt, true
	}
	return 0, Part{}, false
}

// unlisted returns the sectors of b that hold something other than 0xFF
// and lie in no part, grouped into runs.
func unlisted(b []byte, parts []Part) []Part {
	covered := func(off uint64) bool {
		for _, p := range parts {
			lo := uint64(p.Offset) / SectorSize * SectorSize
			if off >= lo && off < p.End() {
				return true
			}
		}
		return false
	}
	var out []Part
	for off := uint64(0); off < uint64(len(b)); off += SectorSize {
		end := min(off+SectorSize, uint64(len(b)))
		if covered(off) || len(trimFF(b[off:end])) == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].End() == off {
			out[n-1].Data = b[out[n-1].Offset:end]
			continue
		}
		out = append(out, Part{Name: "unlisted", Offset: uint32(off), Data: b[off:end]})
	}
	for i := range out {
		out[i].Data = trimFF(out[i].Data)
	}
	return out
}
