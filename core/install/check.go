package install

import (
	"errors"
	"fmt"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/partition"
)

// Target is what the ROM loader found on the port.
type Target struct {
	Chip      espimage.Chip
	ChipRev   uint16 // major*100+minor
	FlashSize int    // bytes; 0 when unknown (no flash-size check)
}

// Check returns every problem the plan has on target, joined, each
// naming the part, the offset and the limit; nil when it may be written.
func (p *Plan) Check(t Target) error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if len(p.Writes) == 0 || p.Size() == 0 {
		add(fmt.Errorf("the plan writes no bytes: %w", ErrEmpty))
	}
	bootOff, knownChip := BootloaderOffset(t.Chip)
	table := p.Table()
	for i := range p.Parts {
		pt := &p.Parts[i]
		if pt.Err != nil {
			what := ErrBadImage
			if pt.Kind == KindPartitionTable {
				what = ErrBadTable
			}
			add(fmt.Errorf("%s %s at 0x%x: %v: %w", pt.Kind, pt.Name, pt.Offset, pt.Err, what))
			continue
		}
		if pt.Image != nil && pt.Image.Chip != t.Chip {
			add(fmt.Errorf("%s at 0x%x is a %s for %s, the device is %s: %w",
				pt.Name, pt.Offset, pt.Kind, pt.Image.Chip, t.Chip, ErrWrongChip))
			continue
		}
		switch pt.Kind {
		case KindBootloader:
			if knownChip && pt.Offset != bootOff {
				add(fmt.Errorf("bootloader %s is at 0x%x, the %s ROM loads it from 0x%x: %w",
					pt.Name, pt.Offset, t.Chip, bootOff, ErrBootloaderOffset))
			}
			if err := pt.Image.Verify(espimage.VerifyOptions{Chip: t.Chip, CheckChip: true, ChipRev: t.ChipRev}); err != nil {
				add(fmt.Errorf("bootloader %s at 0x%x: %v: %w", pt.Name, pt.Offset, err, ErrBadImage))
			}
			// The bootloader tells the ROM's SPI flash driver the size in
			// its own header (update_flash_config in ESP-IDF's
			// bootloader_<chip>.c: esp_rom_spiflash_config_param), so a
			// larger one would address flash the chip does not have.
			if n := pt.Image.FlashSizeBytes(); t.FlashSize > 0 && n > t.FlashSize {
				add(fmt.Errorf("bootloader %s is built for %s flash (header byte 3), the chip has %s: %w",
					pt.Name, pt.Image.FlashSizeName(), partition.FormatSize(uint32(t.FlashSize)), ErrFlashSize))
			}
		case KindPartitionTable:
			if err := pt.Table.Verify(pt.Offset); err != nil {
				add(fmt.Errorf("partition table %s at 0x%x: %v: %w", pt.Name, pt.Offset, err, ErrBadTable))
			}
			add(tableFits(pt, t))
		case KindApp:
			add(checkApp(pt, table, t))
		}
		if knownChip && pt.Kind != KindBootloader && pt.Offset == bootOff && len(pt.Data) > 0 {
			add(fmt.Errorf("%s at 0x%x is a %s, but the %s ROM expects the bootloader there: %w",
				pt.Name, pt.Offset, pt.Kind, t.Chip, ErrBootloaderOffset))
		}
	}
	errs = append(errs, p.checkWrites(t)...)
	return errors.Join(errs...)
}

// checkApp checks that an app sits at the start of an app partition of
// the plan's table (when the plan has one) and fits it.
func checkApp(pt *Part, table *Part, t Target) error {
	opt := espimage.VerifyOptions{Chip: t.Chip, CheckChip: true, ChipRev: t.ChipRev, PartitionOffset: pt.Offset, RequireApp: true}
	var slot *partition.Partition
	if table != nil {
		for i, e := range table.Table.Partitions {
			if e.Offset == pt.Offset {
				slot = &table.Table.Partitions[i]
			}
		}
		if slot == nil || slot.Type != partition.TypeApp {
			return fmt.Errorf("app %s at 0x%x does not start an app partition of the table at 0x%x: %w",
				pt.Name, pt.Offset, table.Offset, ErrAppPlacement)
		}
		if need := pt.Image.Length + pt.Image.SignatureLen; need > int(slot.Size) {
			return fmt.Errorf("app %s is %d bytes (0x%x), partition %s at 0x%x holds %d (0x%x): %w",
				pt.Name, need, need, slot.Name, slot.Offset, slot.Size, slot.Size, ErrAppTooBig)
		}
		opt.PartitionSize = int(slot.Size)
	}
	if err := pt.Image.Verify(opt); err != nil {
		return fmt.Errorf("app %s at 0x%x: %v: %w", pt.Name, pt.Offset, err, ErrBadImage)
	}
	return nil
}

// checkWrites checks alignment, the flash size and overlaps.
func (p *Plan) checkWrites(t Target) []error {
	var errs []error
	for i, w := range p.Writes {
		end := uint64(w.Offset) + uint64(len(w.Data))
		if w.Offset%SectorSize != 0 {
			errs = append(errs, fmt.Errorf("%s at 0x%x: offset is not a multiple of 0x%x (the ROM erases whole sectors): %w",
				p.writeName(w), w.Offset, SectorSize, ErrAlign))
		}
		if t.FlashSize > 0 && end > uint64(t.FlashSize) {
			errs = append(errs, fmt.Errorf("%s at 0x%x ends at 0x%x, past the end of the %s flash (0x%x): %w",
				p.writeName(w), w.Offset, end, partition.FormatSize(uint32(t.FlashSize)), t.FlashSize, ErrFlashSize))
		}
		if i+1 < len(p.Writes) && end > uint64(p.Writes[i+1].Offset) {
			n := p.Writes[i+1]
			errs = append(errs, fmt.Errorf("%s at 0x%x-0x%x overlaps %s at 0x%x: %w",
				p.writeName(w), w.Offset, end, p.writeName(n), n.Offset, ErrOverlap))
		}
	}
	return errs
}

func (p *Plan) writeName(w Region) string {
	if p.Source == "merged image" {
		return "merged image"
	}
	for _, pt := range p.Parts {
		if pt.Offset == w.Offset && len(pt.Data) == len(w.Data) {
			return pt.Name
		}
	}
	return "part"
}

// tableFits checks that every partition of the table lies in the flash.
func tableFits(pt *Part, t Target) error {
	if t.FlashSize <= 0 {
		return nil
	}
	for _, e := range pt.Table.Partitions {
		if e.End() > uint64(t.FlashSize) {
			return fmt.Errorf("partition table %s: partition %s at 0x%x ends at 0x%x, past the end of the %s flash: %w",
				pt.Name, e.Name, e.Offset, e.End(), partition.FormatSize(uint32(t.FlashSize)), ErrFlashSize)
		}
	}
	return nil
}
