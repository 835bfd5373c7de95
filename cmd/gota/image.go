package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gota-dev/gota/core/espimage"
)

func init() {
	register(&command{
		name:  "image info",
		usage: "[--json] FILE...   show and verify ESP32 app/bootloader images and merged images",
		run:   runImageInfo,
	})
}

func runImageInfo(args []string) error { return imageInfo(os.Stdout, os.Stderr, args) }

// imageInfo prints a summary of each image file and whether it verifies
// (without chip or partition checks: there is no device to compare with).
// The exit status is 0 only when every file is a valid image.
func imageInfo(stdout, stderr io.Writer, args []string) error {
	fs := newFlagSet("image info", stderr, "image info [--json] FILE...")
	asJSON := fs.Bool("json", false, "print one JSON object per file, one per line")
	files, err := parseArgs(fs, args, 1, -1)
	if err != nil {
		return err
	}

	allValid := true
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for _, name := range files {
		rec, img := inspectFile(name)
		allValid = allValid && rec.Valid
		if *asJSON {
			if err := enc.Encode(rec); err != nil {
				return err
			}
			continue
		}
		printImage(stdout, rec, img)
	}
	if !allValid {
		return exitError{1}
	}
	return nil
}

// imageRecord is the --json output for one file. Field names follow the
// shared expected.jsonl oracle.
type imageRecord struct {
	File string `json:"file"`
	*imageFields
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"`
	// Merged lists the parts of a merged image (bootloader, partition
	// table, apps at their flash offsets) instead of the image fields.
	Merged     []mergedPart `json:"merged,omitempty"`
	MergedChip string       `json:"merged_chip,omitempty"`
}

// imageFields is present when the file parsed as an image.
type imageFields struct {
	Chip           string           `json:"chip"`
	ChipID         uint16           `json:"chip_id"`
	Segments       int              `json:"segments"`
	Entry          uint32           `json:"entry"`
	FlashMode      string           `json:"flash_mode"`
	FlashSpeed     string           `json:"flash_speed"`
	FlashSize      string           `json:"flash_size"`
	HashAppended   bool             `json:"hash_appended"`
	Checksum       uint8            `json:"checksum"`
	ChecksumOK     bool             `json:"checksum_ok"`
	SHA256         string           `json:"sha256,omitempty"`
	SHA256OK       *bool            `json:"sha256_ok,omitempty"`
	ImageSize      int              `json:"image_size"`
	MinChipRevFull uint16           `json:"min_chip_rev_full"`
	MaxChipRevFull uint16           `json:"max_chip_rev_full"`
	Bootloader     bool             `json:"bootloader"`
	BootloaderDesc *bootloaderDesc  `json:"bootloader_desc,omitempty"`
	App            *appDesc         `json:"app,omitempty"`
	Signature      string           `json:"signature"`
	SignatureLen   int              `json:"signature_len"`
	SegmentTable   []segmentSummary `json:"segment_table"`
}

type appDesc struct {
	ProjectName   string `json:"project_name"`
	Version       string `json:"version"`
	IDFVer        string `json:"idf_ver"`
	Date          string `json:"date"`
	Time          string `json:"time"`
	SecureVersion uint32 `json:"secure_version"`
	ELFSHA256     string `json:"elf_sha256"`
}

type bootloaderDesc struct {
	Version  uint32 `json:"version"`
	IDFVer   string `json:"idf_ver"`
	DateTime string `json:"date_time"`
}

type segmentSummary struct {
	LoadAddr uint32 `json:"load_addr"`
	Offset   int    `json:"offset"`
	Length   int    `json:"length"`
	Region   string `json:"region,omitempty"` // DROM/IROM when flash-mapped
}

// inspectFile reads, parses and verifies one file. img is nil when the
// file could not be read or parsed.
func inspectFile(name string) (imageRecord, *espimage.Image) {
	rec := imageRecord{File: filepath.Base(name)}
	b, err := os.ReadFile(name)
	if err != nil {
		rec.Error = err.Error()
		return rec, nil
	}
	if _, ok := inspectMerged(&rec, b); ok {
		return rec, nil
	}
	img, err := espimage.Parse(b)
	if err != nil {
		rec.Error = fmt.Sprintf("not a valid ESP image: %v", err)
		return rec, nil
	}
	f := &imageFields{
		Chip:           img.Chip.String(),
		ChipID:         uint16(img.Chip),
		Segments:       int(img.SegmentCount),
		Entry:          img.Entry,
		FlashMode:      img.SPIModeName(),
		FlashSpeed:     img.SPISpeedName(),
		FlashSize:      img.FlashSizeName(),
		HashAppended:   img.HashAppended,
		Checksum:       img.Checksum,
		ChecksumOK:     img.ChecksumOK,
		ImageSize:      img.Length,
		MinChipRevFull: img.MinChipRevFull,
		MaxChipRevFull: img.MaxChipRevFull,
		Bootloader:     img.Bootloader,
		Signature:      img.Signature.String(),
		SignatureLen:   img.SignatureLen,
		SegmentTable:   make([]segmentSummary, 0, len(img.Segments)),
	}
	if img.HashAppended {
		ok := img.DigestOK
		f.SHA256OK = &ok
		f.SHA256 = hex.EncodeToString(img.Digest[:])
	}
	if a := img.App; a != nil {
		f.App = &appDesc{
			ProjectName: a.ProjectName, Version: a.Version, IDFVer: a.IDFVer,
			Date: a.Date, Time: a.Time, SecureVersion: a.SecureVersion,
			ELFSHA256: hex.EncodeToString(a.ELFSHA256[:]),
		}
	}
	if d := img.BootloaderDesc; d != nil {
		f.BootloaderDesc = &bootloaderDesc{Version: d.Version, IDFVer: d.IDFVer, DateTime: d.DateTime}
	}
	for _, s := range img.Segments {
		f.SegmentTable = append(f.SegmentTable, segmentSummary{
			LoadAddr: s.LoadAddr, Offset: s.Offset, Length: len(s.Data), Region: img.Chip.MappedRegion(s.LoadAddr),
		})
	}
	rec.imageFields = f
	// An app must also pass the bootloader's load-address check
	// (verify_load_addresses) or it is written and then never boots; a
	// bootloader image is loaded by the ROM, which makes no such check.
	if err := img.Verify(espimage.VerifyOptions{LoadAddresses: img.App != nil}); err != nil {
		rec.Error = err.Error()
	} else {
		rec.Valid = true
	}
	return rec, img
}

func printImage(w io.Writer, rec imageRecord, img *espimage.Image) {
	if rec.Merged != nil {
		printMerged(w, rec)
		return
	}
	if img == nil {
		fmt.Fprintf(w, "%s: INVALID: %s\n\n", rec.File, rec.Error)
		return
	}
	f := rec.imageFields
	kind := "app"
	if img.Bootloader {
		kind = "bootloader"
		if img.BootloaderDesc == nil {
			kind = "image without app descriptor (bootloader?)"
		}
	}
	fmt.Fprintf(w, "%s: %s %s, %d bytes\n", rec.File, f.Chip, kind, f.ImageSize)
	maxRev := "any"
	if r := img.MaxChipRevFull; r != 0 && r != 0xFFFF {
		maxRev = espimage.RevString(r)
	}
	fmt.Fprintf(w, "  chip        %s (ID 0x%04x), revision %s to %s\n", f.Chip, f.ChipID, espimage.RevString(img.MinChipRevFull), maxRev)
	fmt.Fprintf(w, "  flash       %s, %s, %s\n", f.FlashMode, f.FlashSpeed, f.FlashSize)
	fmt.Fprintf(w, "  entry       0x%08x\n", f.Entry)
	fmt.Fprintf(w, "  segments    %d\n", f.Segments)
	for i, s := range f.SegmentTable {
		fmt.Fprintf(w, "    %2d  load 0x%08x  offset 0x%06x  length 0x%06x (%d)  %s\n",
			i, s.LoadAddr, s.Offset, s.Length, s.Length, s.Region)
	}
	fmt.Fprintf(w, "  checksum    0x%02x at 0x%x (%s)\n", img.Checksum, img.ChecksumOffset, okWord(img.ChecksumOK, fmt.Sprintf("computed 0x%02x", img.ComputedChecksum)))
	if img.HashAppended {
		fmt.Fprintf(w, "  sha256      %s (%s)\n", f.SHA256, okWord(img.DigestOK, "computed "+hex.EncodeToString(img.ComputedDigest[:])))
	} else {
		fmt.Fprintf(w, "  sha256      not appended\n")
	}
	if a := f.App; a != nil {
		fmt.Fprintf(w, "  app         %s %s, built %s %s, IDF %s, secure version %d\n",
			a.ProjectName, a.Version, a.Date, a.Time, a.IDFVer, a.SecureVersion)
	} else if d := f.BootloaderDesc; d != nil {
		fmt.Fprintf(w, "  bootloader  version %d, IDF %s, built %s\n", d.Version, d.IDFVer, d.DateTime)
	} else {
		fmt.Fprintf(w, "  app         no app descriptor\n")
	}
	if img.Signature == espimage.SignatureNone {
		fmt.Fprintf(w, "  signature   none\n")
	} else {
		fmt.Fprintf(w, "  signature   %s, %d bytes after the image (not checked)\n", img.Signature, img.SignatureLen)
	}
	if rec.Valid {
		fmt.Fprintf(w, "  verdict     valid\n\n")
	} else {
		fmt.Fprintf(w, "  verdict     INVALID: %s\n\n", strings.TrimSpace(rec.Error))
	}
}

func okWord(ok bool, otherwise string) string {
	if ok {
		return "ok"
	}
	return "MISMATCH, " + otherwise
}
