package device

import (
	"errors"
	"fmt"
	"io"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/otadata"
	"github.com/gota-dev/gota/core/partition"
)

// Partition indices as bootloader_utility.c numbers them: OTA slots are
// 0..15, the factory and test apps have negative indices.
const (
	FactoryIndex = -1
	TestIndex    = -2
)

// BootConfig is what the second-stage bootloader knows about the chip it
// runs on and how it was configured.
type BootConfig struct {
	Chip       espimage.Chip
	ChipRev    uint16 // major*100+minor
	NoRollback bool   // CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE off
}

// OtadataWrite is one rewrite of an otadata sector: the bootloader erases
// the sector, then programs Entry at its start.
type OtadataWrite struct {
	Sector int
	Entry  otadata.Entry
	Reason string // e.g. "PENDING_VERIFY -> ABORTED"
}

// BootAttempt is one partition the bootloader tried to load.
type BootAttempt struct {
	Index     int // OTA slot, FactoryIndex or TestIndex
	Partition partition.Partition
	Err       error // why it did not load; nil when it did
}

// LogLine is one line of ESP-IDF log output without its timestamp.
type LogLine struct {
	Level byte // 'I', 'W' or 'E'
	Tag   string
	Text  string
	// work is what the bootloader does after logging this line, before
	// the next: a segment's bytes after its "segment N: ..." line. The
	// boot-time model charges it.
	work imageWork
	// writes is how many of BootPlan.Writes, in order, the bootloader
	// makes before it logs this line (set_actual_ota_seq writes, then
	// logs).
	writes int
}

// BootPlan is what the second-stage bootloader does on the next reset,
// computed without changing anything: which otadata sectors it rewrites,
// which partitions it tries, and which app it runs.
type BootPlan struct {
	HasOtadata bool
	Otadata    otadata.Data // as read, before the bootloader's own writes
	Writes     []OtadataWrite
	StartIndex int // slot selected from otadata, before fall-backs
	Attempts   []BootAttempt
	Boot       *partition.Partition // nil: nothing bootable (the chip resets forever)
	BootIndex  int
	Image      *espimage.Image // the image that runs
	Log        []LogLine
	// Reset is why the bootloader reset before trying any app (nil when
	// it tried them): the chip then resets in a loop.
	Reset error
}

// ErrOtadataTooSmall means the otadata partition is smaller than the two
// sectors read_otadata needs.
var ErrOtadataTooSmall = errors.New("otadata partition smaller than two sectors")

// bootState is bootloader_state_t: the partitions the bootloader cares
// about, OTA slots indexed by subtype & 0x0F.
type bootState struct {
	factory, test *partition.Partition
	ota           [16]*partition.Partition
	appCount      int
	otaInfo       *partition.Partition
}

func loadBootState(t *partition.Table) bootState {
	var bs bootState
	for i := range t.Partitions {
		p := &t.Partitions[i]
		switch {
		case p.Type == partition.TypeApp && p.Subtype == partition.SubtypeFactory:
			bs.factory = p
		case p.Type == partition.TypeApp && p.Subtype == partition.SubtypeTest:
			bs.test = p
		case p.Type == partition.TypeApp && p.Subtype&0xF0 == partition.SubtypeOTA0:
			bs.ota[p.Subtype&0x0F] = p
			bs.appCount++
		case p.Type == partition.TypeData && p.Subtype == partition.SubtypeOTAData:
			bs.otaInfo = p
		}
	}
	return bs
}

func (bs *bootState) indexToPartition(i int) *partition.Partition {
	switch {
	case i == FactoryIndex:
		return bs.factory
	case i == TestIndex:
		return bs.test
	case i >= 0 && i < 16 && i < bs.appCount:
		return bs.ota[i]
	}
	return nil
}

// selectInvalid is bootloader_common_ota_select_invalid: note that it
// does not look at the CRC.
func selectInvalid(e otadata.Entry) bool {
	return e.Seq == otadata.BlankSeq || e.State == otadata.StateInvalid || e.State == otadata.StateAborted
}

// ReadOtadata reads both otadata sectors from flash.
func ReadOtadata(r io.ReaderAt, p partition.Partition) (otadata.Data, error) {
	buf := make([]byte, otadata.PartitionSize)
	if _, err := r.ReadAt(buf, int64(p.Offset)); err != nil {
		return otadata.Data{}, fmt.Errorf("read otadata at 0x%x: %w", p.Offset, err)
	}
	return otadata.Decode(buf)
}

// VerifyPartition reads the image in p and checks it as esp_image_verify
// does for this chip; requireApp also demands an app descriptor.
func VerifyPartition(r io.ReaderAt, p partition.Partition, cfg BootConfig, requireApp bool) (*espimage.Image, error) {
	if p.Size > sixteenMB {
		// image_load refuses these too; and the buffer stays bounded.
		return nil, fmt.Errorf("partition %q: size 0x%x invalid, larger than 16MB: %w", p.Name, p.Size, espimage.ErrTooBig)
	}
	buf := make([]byte, p.Size)
	if _, err := r.ReadAt(buf, int64(p.Offset)); err != nil {
		return nil, fmt.Errorf("read partition %q at 0x%x: %w", p.Name, p.Offset, err)
	}
	img, err := espimage.Parse(buf)
	if err != nil {
		return nil, err
	}
	err = img.Verify(espimage.VerifyOptions{
		Chip:            cfg.Chip,
		CheckChip:       true,
		ChipRev:         cfg.ChipRev,
		PartitionOffset: p.Offset,
		PartitionSize:   int(p.Size),
		RequireApp:      requireApp,
	})
	if err != nil {
		return img, err
	}
	return img, nil
}

// PlanBoot computes what ESP-IDF v5.1.3's second-stage bootloader does
// with the flash r and partition table t (bootloader_utility.c:
// bootloader_utility_get_selected_boot_partition, then
// bootloader_utility_load_boot_image). It reads r and changes nothing.
func PlanBoot(r io.ReaderAt, t *partition.Table, cfg BootConfig) (*BootPlan, error) {
	bs := loadBootState(t)
	pl := &BootPlan{StartIndex: FactoryIndex, BootIndex: FactoryIndex}
	initialContents, err := pl.selectStart(r, &bs, cfg)
	if err != nil || pl.Reset != nil {
		return pl, err
	}
	logf := pl.logf

	try := func(index int) bool {
		p := bs.indexToPartition(index)
		if p == nil || p.Size == 0 {
			return false
		}
		// bootloader_load_image: ESP_IMAGE_LOAD, which logs each segment
		// as it goes and checks load addresses (esp_image_format.c).
		loadLog := func(level byte, tag, text string) {
			pl.Log = append(pl.Log, LogLine{Level: level, Tag: tag, Text: text})
		}
		work := func(w imageWork) {
			if len(pl.Log) > 0 {
				pl.Log[len(pl.Log)-1].work.add(w)
			}
		}
		img, err := newImageLoader(r, *p, cfg, modeBoot, loadLog).withWork(work).load()
		pl.Attempts = append(pl.Attempts, BootAttempt{Index: index, Partition: *p, Err: err})
		if err != nil {
			return false
		}
		logf('I', "boot", "Loaded app from partition at offset 0x%x", p.Offset)
		// set_actual_ota_seq: a blank otadata gets an entry for what booted.
		if index > FactoryIndex && initialContents {
			e := otadata.NewEntry(uint32(index)+1, otadata.StateValid)
			pl.Writes = append(pl.Writes, OtadataWrite{0, e, "initial otadata"})
			logf('I', "boot", "Set actual ota_seq=%d in otadata[0]", e.Seq)
			pl.Log[len(pl.Log)-1].writes = 1
		}
		pl.Boot, pl.BootIndex, pl.Image = p, index, img
		return true
	}
	notBootable := func(index int) {
		if p := bs.indexToPartition(index); p == nil || p.Size == 0 {
			return
		}
		switch index {
		case FactoryIndex:
			logf('E', "boot", "Factory app partition is not bootable")
		case TestIndex:
			logf('E', "boot", "Factory test app partition is not bootable")
		default:
			logf('E', "boot", "OTA app partition slot %d is not bootable", index)
		}
	}

	// Work backwards from the selected slot down to the factory app, then
	// forwards through the higher OTA slots, then the test app.
	for i := pl.StartIndex; i >= FactoryIndex; i-- {
		if try(i) {
			return pl, nil
		}
		notBootable(i)
	}
	for i := pl.StartIndex + 1; i < bs.appCount; i++ {
		if try(i) {
			return pl, nil
		}
		notBootable(i)
	}
	if try(TestIndex) {
		logf('W', "boot", "Falling back to test app as only bootable partition")
		return pl, nil
	}
	logf('E', "boot", "No bootable app partitions in the partition table")
	return pl, nil
}

// logf adds a line to the bootloader's log.
func (pl *BootPlan) logf(level byte, tag, format string, args ...any) {
	pl.Log = append(pl.Log, LogLine{Level: level, Tag: tag, Text: fmt.Sprintf(format, args...)})
}

// selectStart is bootloader_utility_get_selected_boot_partition: it reads
// otadata (aborting a trial that did not confirm itself, starting the
// trial of a new build) and sets pl.StartIndex, or pl.Reset when the
// bootloader resets instead. initialContents reports a blank otadata
// without a factory app, which the bootloader fills in for whatever
// boots.
func (pl *BootPlan) selectStart(r io.ReaderAt, bs *bootState, cfg BootConfig) (initialContents bool, err error) {
	if bs.otaInfo == nil {
		return false, nil
	}
	// bootloader_utility.c read_otadata (v5.1.3) fails on a partition
	// under two sectors; get_selected_boot_partition then returns
	// INVALID_INDEX and call_start_cpu0 calls bootloader_reset.
	if bs.otaInfo.Size < 2*otadata.SectorSize {
		pl.logf('E', "boot", "ota_info partition size %d is too small (minimum %d bytes)", bs.otaInfo.Size, 2*otadata.SectorSize)
		pl.Reset = fmt.Errorf("%w: %q is 0x%x bytes, the bootloader reads 0x%x",
			ErrOtadataTooSmall, bs.otaInfo.Name, bs.otaInfo.Size, 2*otadata.SectorSize)
		return false, nil
	}
	d, err := ReadOtadata(r, *bs.otaInfo)
	if err != nil {
		return false, err
	}
	pl.HasOtadata = true
	pl.Otadata = d
	if !cfg.NoRollback {
		// The app on trial did not confirm itself before this reset.
		for i := range d.Entries {
			if d.Entries[i].State == otadata.StatePendingVerify {
				d.Entries[i].State = otadata.StateAborted
				pl.Writes = append(pl.Writes, OtadataWrite{i, d.Entries[i], "PENDING_VERIFY -> ABORTED"})
			}
		}
	}
	e0, e1 := d.Entries[0], d.Entries[1]
	if selectInvalid(e0) && selectInvalid(e1) || bs.appCount == 0 {
		if bs.factory != nil {
			pl.logf('I', "boot", "Defaulting to factory image")
			pl.StartIndex = FactoryIndex
		} else {
			pl.logf('I', "boot", "No factory image, trying OTA 0")
			pl.StartIndex = 0
			blankOrBad := func(e otadata.Entry) bool { return e.Seq == otadata.BlankSeq || !e.CRCOK() }
			initialContents = blankOrBad(e0) && blankOrBad(e1)
		}
	} else if a := d.Active(); a >= 0 {
		pl.StartIndex = otadata.Slot(d.Entries[a].Seq, bs.appCount)
		if !cfg.NoRollback && d.Entries[a].State == otadata.StateNew {
			d.Entries[a].State = otadata.StatePendingVerify
			pl.Writes = append(pl.Writes, OtadataWrite{a, d.Entries[a], "NEW -> PENDING_VERIFY"})
		}
	} else if bs.factory != nil {
		pl.logf('E', "boot", "ota data partition invalid, falling back to factory")
	} else {
		pl.logf('E', "boot", "ota data partition invalid and no factory, will try all partitions")
	}
	return initialContents, nil
}

// ErrNoBootableApp means the bootloader found nothing it could run: a
// real chip resets and tries again forever.
var ErrNoBootableApp = errors.New("no bootable app partitions in the partition table")
