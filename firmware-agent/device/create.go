package device

import (
	"fmt"
	"os"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/partition"
	"github.com/gota-dev/gota/firmware-agent/flash"
)

// CreateOptions for Create.
type CreateOptions struct {
	FlashSize   int              // bytes; default 4 MiB
	Table       *partition.Table // nil = default two-OTA table
	TableOffset uint32
	App         []byte // image written to ota_0 (or factory when present)
	Chip        espimage.Chip
	ChipRev     uint16 // checked against the app's revision range; default 300
}

// DefaultTable returns the default partition table: nvs, otadata, phy,
// and two OTA slots large enough for the shared test images. It follows
// Arduino-ESP32's layout (nvs at 0x9000, otadata at 0xe000, app0 at
// 0x10000) with 1.5 MiB slots, and fits a 4 MiB flash.
func DefaultTable() *partition.Table {
	return &partition.Table{Partitions: []partition.Partition{
		{Name: "nvs", Type: partition.TypeData, Subtype: partition.SubtypeNVS, Offset: 0x9000, Size: 0x5000},
		{Name: "otadata", Type: partition.TypeData, Subtype: partition.SubtypeOTAData, Offset: 0xE000, Size: 0x2000},
		{Name: "app0", Type: partition.TypeApp, Subtype: partition.SubtypeOTA0, Offset: 0x10000, Size: 0x180000},
		{Name: "app1", Type: partition.TypeApp, Subtype: partition.SubtypeOTA0 + 1, Offset: 0x190000, Size: 0x180000},
		{Name: "phy_init", Type: partition.TypeData, Subtype: partition.SubtypePHY, Offset: 0x310000, Size: 0x1000},
	}}
}

// InitialApp returns the partition Create writes the app to: the factory
// app if the table has one, else the first OTA slot.
func InitialApp(t *partition.Table) (*partition.Partition, error) {
	if f := t.Factory(); f != nil {
		return f, nil
	}
	if s := t.OTASlots(); len(s) > 0 {
		return t.Find(s[0].Name), nil
	}
	return nil, fmt.Errorf("partition table has neither a factory nor an OTA app partition")
}

// Create writes a new flash file ready to boot: a stand-in second-stage
// bootloader (StandInBootloader), the partition table at the table
// offset, blank otadata and the app in its first app partition.
// An existing file is replaced; the file appears whole or not at all.
func Create(path string, opt CreateOptions) error {
	img, err := Build(opt)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, img, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Build returns the content of a flash ready to boot, as Create writes it.
func Build(opt CreateOptions) ([]byte, error) {
	size := opt.FlashSize
	if size == 0 {
		size = 4 << 20
	}
	if !flash.ValidSize(size) {
		return nil, fmt.Errorf("flash size %d bytes: want 2, 4, 8 or 16 MiB", size)
	}
	t := opt.Table
	if t == nil {
		t = DefaultTable()
	}
	off := opt.TableOffset
	if off == 0 {
		off = partition.DefaultTableOffset
	}
	if off%flash.SectorSize != 0 || int(off)+partition.MaxTableSize > size {
		return nil, fmt.Errorf("partition table offset 0x%x: must be a multiple of 0x1000 inside the flash", off)
	}
	// The table a v5.1.3 build would have: gen_esp32part.py v5.1.3's rules.
	if err := t.VerifyFor(off, partition.IDFv513); err != nil {
		return nil, fmt.Errorf("partition table: %w", err)
	}
	for _, p := range t.Partitions {
		if p.End() > uint64(size) {
			return nil, fmt.Errorf("partition %q (0x%x..0x%x) does not fit a %d MiB flash", p.Name, p.Offset, p.End(), size>>20)
		}
	}
	tb, err := t.Encode()
	if err != nil {
		return nil, fmt.Errorf("partition table: %w", err)
	}
	target, err := InitialApp(t)
	if err != nil {
		return nil, err
	}
	if len(opt.App) == 0 {
		return nil, fmt.Errorf("no app image given")
	}
	if len(opt.App) > int(target.Size) {
		return nil, fmt.Errorf("app image is %d bytes, partition %q holds %d: %w", len(opt.App), target.Name, target.Size, espimage.ErrTooBig)
	}
	rev := opt.ChipRev
	if rev == 0 {
		rev = DefaultChipRev
	}
	parsed, err := espimage.Parse(opt.App)
	if err == nil {
		err = parsed.Verify(espimage.VerifyOptions{
			Chip: opt.Chip, CheckChip: true, ChipRev: rev,
			PartitionOffset: target.Offset, PartitionSize: int(target.Size), RequireApp: true, LoadAddresses: true,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("app image for partition %q: %w", target.Name, err)
	}
	b := make([]byte, size)
	for i := range b {
		b[i] = 0xFF
	}
	copy(b[off:], tb)
	copy(b[target.Offset:], opt.App)
	boot, err := StandInBootloader(opt.Chip)
	if err != nil {
		return nil, err
	}
	if bo := BootloaderOffset(opt.Chip); int(bo)+len(boot) <= int(off) {
		copy(b[bo:], boot)
	}
	return b, nil
}
