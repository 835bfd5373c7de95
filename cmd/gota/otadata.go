package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/gota-dev/gota/core/otadata"
	"github.com/gota-dev/gota/core/partition"
)

func init() {
	register(&command{
		name:  "otadata show",
		usage: "[--json] [--slots N | --table FILE] FILE   show an 8 KiB otadata dump: entries, active entry, boot slot",
		run:   func(args []string) error { return otadataShow(os.Stdout, os.Stderr, args) },
	})
}

type otadataEntryJSON struct {
	Sector      int    `json:"sector"`
	Seq         uint32 `json:"seq"`
	State       string `json:"state"`
	StateValue  uint32 `json:"state_value"`
	CRC         uint32 `json:"crc"`
	CRCExpected uint32 `json:"crc_expected"`
	CRCOK       bool   `json:"crc_ok"`
	Valid       bool   `json:"valid"`
	Slot        int    `json:"slot"` // (seq-1) mod slots, as the bootloader computes it
	Why         string `json:"why,omitempty"`
}

type otadataJSON struct {
	File    string             `json:"file"`
	Slots   int                `json:"slots"`
	Entries []otadataEntryJSON `json:"entries"`
	Active  *int               `json:"active"` // sector index, null when none is valid
	Boot    string             `json:"boot"`   // what the bootloader would boot
	Slot    *int               `json:"slot"`   // OTA slot of the active entry
}

// whyInvalid says why an entry does not count, in the order ESP-IDF checks.
func whyInvalid(e otadata.Entry) string {
	switch {
	case e.Seq == otadata.BlankSeq:
		return "blank (seq 0xffffffff)"
	case e.State == otadata.StateInvalid || e.State == otadata.StateAborted:
		return "state " + e.State.String()
	case !e.CRCOK():
		return "CRC mismatch"
	}
	return ""
}

// otadataShow prints both otadata entries, which one is active and which
// OTA slot the bootloader would pick for it.
func otadataShow(stdout, stderr io.Writer, args []string) error {
	fs := newFlagSet("otadata show", stderr, "otadata show [--json] [--slots N | --table FILE] FILE")
	asJSON := fs.Bool("json", false, "print a JSON object")
	slots := fs.Int("slots", 2, "number of OTA app partitions (ota_0..ota_N-1)")
	tableFile := fs.String("table", "", "partition table (CSV or binary) to count the OTA slots from")
	files, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	n := *slots
	if *tableFile != "" {
		tb, _, err := loadPartitionTable(*tableFile, partition.DefaultTableOffset, partition.IDFNewest, false)
		if err != nil {
			return err
		}
		n = len(tb.OTASlots())
		if n == 0 {
			return fmt.Errorf("%s: no OTA app partitions (ota_0 missing)", *tableFile)
		}
	}
	if n < 1 || n > 16 {
		return fmt.Errorf("--slots %d: must be 1..16", n)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	d, err := otadata.Decode(b)
	if err != nil {
		return fmt.Errorf("%s: %w", files[0], err)
	}

	out := otadataJSON{File: files[0], Slots: n}
	for i, e := range d.Entries {
		out.Entries = append(out.Entries, otadataEntryJSON{
			Sector: i, Seq: e.Seq, State: e.State.String(), StateValue: uint32(e.State),
			CRC: e.CRC, CRCExpected: otadata.CRC(e.Seq), CRCOK: e.CRCOK(), Valid: e.Valid(),
			Slot: otadata.Slot(e.Seq, n), Why: whyInvalid(e),
		})
	}
	if a := d.Active(); a >= 0 {
		slot := otadata.Slot(d.Entries[a].Seq, n)
		out.Active, out.Slot = &a, &slot
		out.Boot = fmt.Sprintf("ota_%d", slot)
	} else {
		out.Boot = "factory if present, else ota_0 (no valid entry)"
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Sector\tSeq\tState\tCRC\tExpected\tValid")
	for _, e := range out.Entries {
		valid := "yes"
		if !e.Valid {
			valid = "no: " + e.Why
		}
		fmt.Fprintf(tw, "%d\t%d (0x%x)\t%s\t0x%08x\t0x%08x\t%s\n", e.Sector, e.Seq, e.Seq, e.State, e.CRC, e.CRCExpected, valid)
	}
	tw.Flush()
	if out.Active != nil {
		fmt.Fprintf(stdout, "active: sector %d, seq %d -> %s (slot %d of %d)\n", *out.Active, d.Entries[*out.Active].Seq, out.Boot, *out.Slot, n)
	} else {
		fmt.Fprintf(stdout, "active: none -> %s\n", out.Boot)
	}
	return nil
}
