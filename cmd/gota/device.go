package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/otadata"
	"github.com/gota-dev/gota/core/partition"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
)

func init() {
	register(&command{
		name: "device create",
		usage: "FLASH --app IMAGE [--partitions CSV|BIN] [--flash-size 4MB] [--chip esp32] [--offset 0x8000]\n" +
			"                       write a virtual ESP32's flash file, ready to boot IMAGE\n" +
			"                       FLASH --blank [--flash-size 4MB]: an erased flash (install it through the ROM)",
		run: func(args []string) error { return deviceCreate(os.Stdout, os.Stderr, args) },
	})
	register(&command{
		name: "device inspect",
		usage: "[--json] [--offset 0x8000] [--chip esp32] [--chip-rev 300] [--no-rollback] FLASH\n" +
			"                       show a flash file's partitions, otadata, apps and what the bootloader boots next",
		run: func(args []string) error { return deviceInspect(os.Stdout, os.Stderr, args) },
	})
}

// parseFlashSize accepts "4MB", "4M", "4MiB", "4194304" or "0x400000".
func parseFlashSize(s string) (int, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	for _, suf := range []string{"MIB", "MB", "M"} {
		if strings.HasSuffix(u, suf) {
			n, err := strconv.Atoi(strings.TrimSuffix(u, suf))
			if err != nil {
				return 0, fmt.Errorf("flash size %q: %w", s, err)
			}
			if !flash.ValidSize(n << 20) {
				return 0, fmt.Errorf("flash size %q: want 2MB, 4MB, 8MB or 16MB", s)
			}
			return n << 20, nil
		}
	}
	n, err := strconv.ParseInt(u, 0, 64)
	if err != nil || !flash.ValidSize(int(n)) {
		return 0, fmt.Errorf("flash size %q: want 2MB, 4MB, 8MB or 16MB", s)
	}
	return int(n), nil
}

func deviceCreate(stdout, stderr io.Writer, args []string) error {
	fs := newFlagSet("device create", stderr, "device create FLASH --app IMAGE [--partitions CSV|BIN] [--flash-size 4MB] [--chip esp32] [--offset 0x8000]")
	app := fs.String("app", "", "app image to boot (goes to the factory partition, else ota_0)")
	parts := fs.String("partitions", "", "partition table, CSV or binary (default: nvs, otadata, two 1.5 MiB OTA slots, phy)")
	size := fs.String("flash-size", "4MB", "flash size: 2MB, 4MB, 8MB or 16MB")
	chipName := fs.String("chip", "esp32", "chip the image must be built for")
	blank := fs.Bool("blank", false, "make an erased flash (all 0xFF), as a new chip or `esptool erase_flash` leaves it")
	off := partitionOffsetFlag(partition.DefaultTableOffset)
	fs.Var(&off, "offset", "partition table offset")
	files, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *blank {
		return createBlank(stdout, files[0], *app, *parts, *size)
	}
	if *app == "" {
		fs.Usage()
		return exitError{2}
	}
	opt := device.CreateOptions{TableOffset: uint32(off)}
	if opt.FlashSize, err = parseFlashSize(*size); err != nil {
		return err
	}
	if opt.Chip, err = espimage.ParseChip(*chipName); err != nil {
		return err
	}
	if opt.App, err = os.ReadFile(*app); err != nil {
		return err
	}
	if *parts != "" {
		// The virtual device runs NodeMCU built with ESP-IDF v5.1.3, so
		// its table follows v5.1.3's gen_esp32part.py.
		if opt.Table, _, err = loadPartitionTable(*parts, uint32(off), partition.IDFv513, false); err != nil {
			return err
		}
	}
	if err := device.Create(files[0], opt); err != nil {
		return fmt.Errorf("%s: %w", *app, err)
	}
	tb := opt.Table
	if tb == nil {
		tb = device.DefaultTable()
	}
	target, _ := device.InitialApp(tb)
	img, _ := espimage.Parse(opt.App)
	fmt.Fprintf(stdout, "created %s: %d MiB %s flash, partition table at 0x%x (%d partitions)\n",
		files[0], opt.FlashSize>>20, opt.Chip, uint32(off), len(tb.Partitions))
	fmt.Fprintf(stdout, "app %s %s (%d bytes) in %s at 0x%x; otadata blank\n",
		img.App.ProjectName, img.App.Version, img.Length, target.Name, target.Offset)
	return nil
}

// inspectJSON is `gota device inspect --json`.
type inspectJSON struct {
	File        string          `json:"file"`
	FlashSize   int             `json:"flash_size"`
	TableOffset uint32          `json:"table_offset"`
	TableMD5    bool            `json:"table_md5"`
	Partitions  []partitionJSON `json:"partitions"`
	Otadata     *otadataInfo    `json:"otadata"` // null without an otadata partition
	Apps        []appInfo       `json:"apps"`
	Boot        bootInfo        `json:"boot"`
}

type otadataInfo struct {
	Offset  uint32             `json:"offset"`
	Entries []otadataEntryJSON `json:"entries"`
	Active  *int               `json:"active"`
}

type appInfo struct {
	Name          string `json:"name"`
	Subtype       string `json:"subtype"`
	Offset        uint32 `json:"offset"`
	Size          uint32 `json:"size"`
	State         string `json:"state"` // NodeMCU's name, "" for no otadata entry
	Project       string `json:"project,omitempty"`
	Version       string `json:"version,omitempty"`
	IDFVersion    string `json:"idf_version,omitempty"`
	Date          string `json:"date,omitempty"`
	Time          string `json:"time,omitempty"`
	SecureVersion uint32 `json:"secure_version,omitempty"`
	ImageLen      int    `json:"image_len"`
	SHA256        string `json:"sha256,omitempty"`
	Valid         bool   `json:"valid"`
	Error         string `json:"error,omitempty"` // why the image does not verify
}

type bootWriteJSON struct {
	Sector int    `json:"sector"`
	Seq    uint32 `json:"seq"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

type bootAttemptJSON struct {
	Partition string `json:"partition"`
	Error     string `json:"error,omitempty"`
}

type bootInfo struct {
	Partition string            `json:"partition"` // "" when nothing is bootable
	Offset    uint32            `json:"offset,omitempty"`
	Selected  int               `json:"selected_index"` // slot from otadata (-1 factory) before fall-backs
	Writes    []bootWriteJSON   `json:"otadata_writes"`
	Attempts  []bootAttemptJSON `json:"attempts"`
	Log       []string          `json:"log"`
	Reset     string            `json:"reset,omitempty"` // why the bootloader resets before trying any app
}

func deviceInspect(stdout, stderr io.Writer, args []string) error {
	fs := newFlagSet("device inspect", stderr, "device inspect [--json] [--offset 0x8000] [--chip esp32] [--chip-rev 300] [--no-rollback] FLASH")
	asJSON := fs.Bool("json", false, "print a JSON object")
	chipName := fs.String("chip", "esp32", "chip the bootloader runs on")
	chipRev := fs.Uint("chip-rev", device.DefaultChipRev, "chip revision, major*100+minor")
	noRollback := fs.Bool("no-rollback", false, "bootloader built without CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE")
	off := partitionOffsetFlag(partition.DefaultTableOffset)
	fs.Var(&off, "offset", "partition table offset")
	files, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	chip, err := espimage.ParseChip(*chipName)
	if err != nil {
		return err
	}
	// Read-only: the boot plan is computed, never applied.
	content, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	if !flash.ValidSize(len(content)) {
		return fmt.Errorf("%s is %d bytes: a flash file is 2, 4, 8 or 16 MiB", files[0], len(content))
	}
	r := bytes.NewReader(content)
	tb, err := device.ReadTable(r, uint32(off), device.BootFlashSize(r, len(content)))
	if err != nil {
		return fmt.Errorf("%s: %w", files[0], err)
	}
	cfg := device.BootConfig{Chip: chip, ChipRev: uint16(*chipRev), NoRollback: *noRollback}
	rep := inspectJSON{File: files[0], FlashSize: len(content), TableOffset: uint32(off), TableMD5: tb.HasMD5}
	for _, p := range tb.Partitions {
		rep.Partitions = append(rep.Partitions, partitionJSON{
			Name: p.Name, Type: p.TypeName(), Subtype: p.SubtypeName(), TypeID: uint8(p.Type), SubtypeID: p.Subtype,
			Offset: p.Offset, Size: p.Size, Flags: p.FlagNames(), FlagBits: p.Flags,
		})
	}
	var od otadata.Data
	haveOD := false
	if p := tb.OTAData(); p != nil {
		if od, err = device.ReadOtadata(r, *p); err != nil {
			return fmt.Errorf("%s: %w", files[0], err)
		}
		haveOD = true
		n := len(tb.OTASlots())
		info := &otadataInfo{Offset: p.Offset}
		for i, e := range od.Entries {
			slot := -1
			if n > 0 {
				slot = otadata.Slot(e.Seq, n)
			}
			info.Entries = append(info.Entries, otadataEntryJSON{
				Sector: i, Seq: e.Seq, State: e.State.String(), StateValue: uint32(e.State), CRC: e.CRC,
				CRCExpected: otadata.CRC(e.Seq), CRCOK: e.CRCOK(), Valid: e.Valid(), Slot: slot, Why: whyInvalid(e),
			})
		}
		if a := od.Active(); a >= 0 {
			info.Active = &a
		}
		rep.Otadata = info
	}
	nOTA := len(tb.OTASlots())
	for _, p := range tb.Partitions {
		if p.Type != partition.TypeApp {
			continue
		}
		a := appInfo{Name: p.Name, Subtype: p.SubtypeName(), Offset: p.Offset, Size: p.Size}
		if haveOD && p.IsOTA() {
			if st, _, ok := od.StateOf(p.OTAIndex(), nOTA); ok {
				a.State = st.String()
			}
		}
		if d := device.ReadAppDesc(r, p); d != nil {
			a.Project, a.Version, a.IDFVersion, a.Date, a.Time, a.SecureVersion = d.ProjectName, d.Version, d.IDFVer, d.Date, d.Time, d.SecureVersion
		}
		img, err := device.VerifyPartition(r, p, cfg, false)
		if err != nil {
			a.Error = err.Error()
			if img == nil && allFF(content[p.Offset:min(int(p.Offset)+espimage.HeaderSize, len(content))]) {
				a.Error = "empty (erased)"
			}
		} else {
			a.Valid, a.ImageLen = true, img.Length
			if img.HashAppended {
				a.SHA256 = hex.EncodeToString(img.Digest[:])
			}
		}
		rep.Apps = append(rep.Apps, a)
	}
	pl, err := device.PlanBoot(r, tb, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", files[0], err)
	}
	rep.Boot.Selected = pl.StartIndex
	if pl.Reset != nil {
		rep.Boot.Reset = pl.Reset.Error()
	}
	if pl.Boot != nil {
		rep.Boot.Partition, rep.Boot.Offset = pl.Boot.Name, pl.Boot.Offset
	}
	for _, w := range pl.Writes {
		rep.Boot.Writes = append(rep.Boot.Writes, bootWriteJSON{w.Sector, w.Entry.Seq, w.Entry.State.String(), w.Reason})
	}
	for _, at := range pl.Attempts {
		aj := bootAttemptJSON{Partition: at.Partition.Name}
		if at.Err != nil {
			aj.Error = at.Err.Error()
		}
		rep.Boot.Attempts = append(rep.Boot.Attempts, aj)
	}
	for _, l := range pl.Log {
		rep.Boot.Log = append(rep.Boot.Log, fmt.Sprintf("%c %s: %s", l.Level, l.Tag, l.Text))
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printInspect(stdout, &rep)
	}
	if pl.Boot == nil {
		return exitError{1}
	}
	return nil
}

func allFF(b []byte) bool {
	for _, c := range b {
		if c != 0xFF {
			return false
		}
	}
	return len(b) > 0
}

func printInspect(w io.Writer, rep *inspectJSON) {
	md5 := "no MD5 record"
	if rep.TableMD5 {
		md5 = "MD5 ok"
	}
	fmt.Fprintf(w, "%s: %d MiB flash, partition table at 0x%x (%s)\n\n", rep.File, rep.FlashSize>>20, rep.TableOffset, md5)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tName\tType\tSubtype\tOffset\tSize")
	for i, p := range rep.Partitions {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t0x%x\t0x%x (%dK)\n", i, p.Name, p.Type, p.Subtype, p.Offset, p.Size, p.Size/1024)
	}
	tw.Flush()

	if rep.Otadata == nil {
		fmt.Fprintln(w, "\notadata: none (the bootloader starts from the factory app)")
	} else {
		fmt.Fprintf(w, "\notadata at 0x%x:\n", rep.Otadata.Offset)
		for _, e := range rep.Otadata.Entries {
			if e.Seq == otadata.BlankSeq && e.CRC == 0xFFFFFFFF && e.StateValue == uint32(otadata.StateUndefined) {
				fmt.Fprintf(w, "  sector %d: blank\n", e.Sector)
				continue
			}
			crc := "crc ok"
			if !e.CRCOK {
				crc = fmt.Sprintf("crc BAD (0x%08x, want 0x%08x)", e.CRC, e.CRCExpected)
			}
			mark := ""
			if rep.Otadata.Active != nil && *rep.Otadata.Active == e.Sector {
				mark = "  <- active"
			} else if e.Why != "" {
				mark = "  (does not count: " + e.Why + ")"
			}
			fmt.Fprintf(w, "  sector %d: seq %d (slot %d), state %s, %s%s\n", e.Sector, e.Seq, e.Slot, e.State, crc, mark)
		}
	}

	fmt.Fprintln(w, "\napps:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, a := range rep.Apps {
		state := a.State
		if state == "" {
			state = "-"
		}
		what := "empty"
		if a.Project != "" {
			what = fmt.Sprintf("%s %s (%s, %s %s)", a.Project, a.Version, a.IDFVersion, a.Date, a.Time)
		}
		img := a.Error
		if a.Valid {
			img = fmt.Sprintf("%d bytes", a.ImageLen)
			if a.SHA256 != "" {
				img += ", sha256 " + a.SHA256
			}
		} else if a.Error != "empty (erased)" {
			img = "INVALID: " + a.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t0x%x\tstate %s\t%s\t%s\n", a.Name, a.Subtype, a.Offset, state, what, img)
	}
	tw.Flush()

	fmt.Fprintln(w)
	for _, wr := range rep.Boot.Writes {
		fmt.Fprintf(w, "on boot the bootloader writes otadata sector %d: seq %d, state %s (%s)\n", wr.Sector, wr.Seq, wr.State, wr.Reason)
	}
	for _, at := range rep.Boot.Attempts {
		if at.Error != "" {
			fmt.Fprintf(w, "on boot %s fails to load: %s\n", at.Partition, at.Error)
		}
	}
	if rep.Boot.Reset != "" {
		fmt.Fprintf(w, "on boot the bootloader resets before trying any app: %s\n", rep.Boot.Reset)
	}
	if rep.Boot.Partition == "" {
		fmt.Fprintln(w, "next boot: NOTHING bootable (the chip resets in a loop)")
	} else {
		fmt.Fprintf(w, "next boot: %s at 0x%x\n", rep.Boot.Partition, rep.Boot.Offset)
	}
}

// createBlank writes an erased flash file.
func createBlank(stdout io.Writer, path, app, parts, size string) error {
	if app != "" || parts != "" {
		return fmt.Errorf("--blank makes an erased flash: it takes no --app or --partitions")
	}
	n, err := parseFlashSize(size)
	if err != nil {
		return err
	}
	f, err := flash.Create(path, n)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s: %d MiB erased flash; the chip boot-loops until something is installed through its ROM (gota device run --boot download, or reset it into download mode)\n", path, n>>20)
	return nil
}
