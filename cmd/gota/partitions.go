package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/gota-dev/gota/core/partition"
)

func init() {
	register(&command{
		name:  "partitions show",
		usage: "[--json] [--offset 0x8000] [--idf-version v5.5] FILE   show a partition table (CSV or binary)",
		run:   func(args []string) error { return partitionsShow(os.Stdout, os.Stderr, args) },
	})
	register(&command{
		name:  "partitions convert",
		usage: "[--offset 0x8000] [--no-verify] [--idf-version v5.5] INPUT OUTPUT   CSV to binary or binary to CSV, as gen_esp32part.py (OUTPUT - is stdout)",
		run:   func(args []string) error { return partitionsConvert(os.Stdout, os.Stderr, args) },
	})
}

// partitionOffsetFlag is gen_esp32part.py's --offset: where the table sits.
type partitionOffsetFlag uint32

func (f *partitionOffsetFlag) String() string { return fmt.Sprintf("0x%x", uint32(*f)) }
func (f *partitionOffsetFlag) Set(s string) error {
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return fmt.Errorf("table offset %q: %w", s, err)
	}
	if v%0x1000 != 0 {
		return fmt.Errorf("table offset 0x%x is not a multiple of 0x1000", v)
	}
	*f = partitionOffsetFlag(v)
	return nil
}

// idfVersionFlag is --idf-version: whose gen_esp32part.py rules apply
// (partition.IDFVersion lists where releases differ).
type idfVersionFlag partition.IDFVersion

func (f *idfVersionFlag) String() string { return partition.IDFVersion(*f).String() }
func (f *idfVersionFlag) Set(s string) error {
	v, err := partition.ParseIDFVersion(s)
	if err != nil {
		return err
	}
	*f = idfVersionFlag(v)
	return nil
}

func addIDFVersionFlag(fs *flag.FlagSet) *idfVersionFlag {
	v := idfVersionFlag(partition.IDFNewest)
	fs.Var(&v, "idf-version", fmt.Sprintf("ESP-IDF release whose gen_esp32part.py rules apply, %s to %s", partition.IDFv513, partition.IDFNewest))
	return &v
}

// loadPartitionTable reads a table file as binary or CSV, telling them apart by the
// first bytes the way gen_esp32part.py does. CSV input is verified with the
// rules of release v while parsing unless noVerify; binary input is
// returned as decoded (callers verify).
func loadPartitionTable(name string, tableOffset uint32, v partition.IDFVersion, noVerify bool) (tb *partition.Table, binary bool, err error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, false, err
	}
	if partition.Detect(b) {
		tb, err = partition.Decode(b)
		if err != nil {
			return nil, true, fmt.Errorf("%s: %w", name, err)
		}
		return tb, true, nil
	}
	parse := partition.ParseCSVFor
	if noVerify {
		parse = partition.ParseCSVUnverifiedFor
	}
	tb, err = parse(b, tableOffset, v)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", name, err)
	}
	return tb, false, nil
}

// partitionJSON is one row of `partitions show --json`.
type partitionJSON struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Subtype   string   `json:"subtype"`
	TypeID    uint8    `json:"type_id"`
	SubtypeID uint8    `json:"subtype_id"`
	Offset    uint32   `json:"offset"`
	Size      uint32   `json:"size"`
	Flags     []string `json:"flags"`
	FlagBits  uint32   `json:"flag_bits"`
}

type partitionTableJSON struct {
	File       string          `json:"file"`
	Format     string          `json:"format"`        // "binary" or "csv"
	MD5        *bool           `json:"md5,omitempty"` // binary input only: MD5 record present (and correct)
	Partitions []partitionJSON `json:"partitions"`
	Valid      bool            `json:"valid"`
	Error      string          `json:"error,omitempty"`
}

// partitionsShow prints a table's partitions. It exits 1 when the table
// does not pass gen_esp32part.py's checks (the partitions are still shown
// when the file could be decoded).
func partitionsShow(stdout, stderr io.Writer, args []string) error {
	fs := newFlagSet("partitions show", stderr, "partitions show [--json] [--offset 0x8000] [--idf-version v5.5] FILE")
	asJSON := fs.Bool("json", false, "print a JSON object")
	offset := partitionOffsetFlag(partition.DefaultTableOffset)
	fs.Var(&offset, "offset", "flash offset of the partition table")
	idf := addIDFVersionFlag(fs)
	files, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	v := partition.IDFVersion(*idf)
	tb, binary, err := loadPartitionTable(files[0], uint32(offset), v, false)
	if err != nil {
		return err
	}
	verr := tb.VerifyFor(uint32(offset), v)

	if *asJSON {
		out := partitionTableJSON{File: files[0], Format: "csv", Partitions: []partitionJSON{}, Valid: verr == nil}
		if binary {
			out.Format = "binary"
			out.MD5 = &tb.HasMD5
		}
		if verr != nil {
			out.Error = verr.Error()
		}
		for _, p := range tb.Partitions {
			flags := p.FlagNamesFor(v)
			if flags == nil {
				flags = []string{}
			}
			out.Partitions = append(out.Partitions, partitionJSON{
				Name: p.Name, Type: p.TypeNameFor(v), Subtype: p.SubtypeNameFor(v),
				TypeID: uint8(p.Type), SubtypeID: p.Subtype,
				Offset: p.Offset, Size: p.Size, Flags: flags, FlagBits: p.Flags,
			})
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "Name\tType\tSubType\tOffset\tSize\t\tFlags")
		for _, p := range tb.Partitions {
			flags := strings.Join(p.FlagNamesFor(v), ":")
			known := partition.FlagEncrypted
			if v.AtLeast(partition.IDFv52) {
				known |= partition.FlagReadonly // the flag v5.2 added
			}
			if unknown := p.Flags &^ known; unknown != 0 {
				flags = strings.TrimPrefix(flags+fmt.Sprintf(":0x%x", unknown), ":")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t0x%x\t0x%x\t%s\t%s\n", p.Name, p.TypeNameFor(v), p.SubtypeNameFor(v),
				p.Offset, p.Size, partition.FormatSize(p.Size), flags)
		}
		tw.Flush()
		switch {
		case !binary:
			fmt.Fprintln(stdout, "format: CSV")
		case tb.HasMD5:
			fmt.Fprintln(stdout, "format: binary, MD5 record present and correct")
		default:
			fmt.Fprintln(stdout, "format: binary, no MD5 record")
		}
	}
	if verr != nil {
		fmt.Fprintf(stderr, "gota partitions show: %s: %v\n", files[0], verr)
		return exitError{1}
	}
	return nil
}

// partitionsConvert turns CSV into a binary table or a binary table into
// CSV, refusing what gen_esp32part.py refuses. OUTPUT "-" is stdout.
func partitionsConvert(stdout, stderr io.Writer, args []string) error {
	fs := newFlagSet("partitions convert", stderr, "partitions convert [--offset 0x8000] [--no-verify] [--idf-version v5.5] INPUT OUTPUT")
	offset := partitionOffsetFlag(partition.DefaultTableOffset)
	fs.Var(&offset, "offset", "flash offset of the partition table")
	noVerify := fs.Bool("no-verify", false, "skip gen_esp32part.py's table checks (alignment, overlaps, names, otadata)")
	idf := addIDFVersionFlag(fs)
	files, err := parseArgs(fs, args, 2, 2)
	if err != nil {
		return err
	}
	v := partition.IDFVersion(*idf)
	in, out := files[0], files[1]
	tb, binary, err := loadPartitionTable(in, uint32(offset), v, *noVerify)
	if err != nil {
		return err
	}
	var data []byte
	if binary {
		if err := tb.VerifyFor(uint32(offset), v); err != nil && !*noVerify {
			return fmt.Errorf("%s: %w", in, err)
		}
		data = tb.CSVFor(v)
	} else {
		if data, err = tb.Encode(); err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
	}
	if out == "-" {
		_, err = stdout.Write(data)
		return err
	}
	return writePartitionFile(out, data)
}

// writePartitionFile writes via a temporary file in the same directory so a
// failed write never leaves a truncated table behind.
func writePartitionFile(name string, data []byte) error {
	dir, base := ".", name
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		dir, base = name[:i+1], name[i+1:]
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
