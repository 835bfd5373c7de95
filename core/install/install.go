// Package install plans a first install or a recovery through the ESP
// ROM serial bootloader: it recognises merged images (esptool merge_bin,
// ESPHome .factory.bin), ESP Web Tools manifests and explicit FILE@OFFSET
// parts, says what lies at each offset, and checks a plan against the
// chip before anything is written.
//
// It does no I/O: callers read files (or fetch manifest parts) and hand
// the bytes in.
package install

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/partition"
)

// SectorSize is the flash erase unit; the ROM loader erases whole sectors
// from the start offset on (esptool refuses offsets that are not
// multiples of it).
const SectorSize = 0x1000

// Kind says what a part holds.
type Kind int

// Kinds of part.
const (
	KindData           Kind = iota // anything else (NVS, SPIFFS, unknown bytes)
	KindBootloader                 // an image without app descriptor
	KindPartitionTable             // a binary partition table
	KindApp                        // an app image (has esp_app_desc_t)
	KindOTAData                    // the otadata partition's contents
)

func (k Kind) String() string {
	switch k {
	case KindBootloader:
		return "bootloader"
	case KindPartitionTable:
		return "partition table"
	case KindApp:
		return "app"
	case KindOTAData:
		return "otadata"
	}
	return "data"
}

// Part is a run of bytes destined for one flash offset.
type Part struct {
	Name   string // file name, or what it is inside a merged image
	Offset uint32
	Data   []byte
	Kind   Kind
	Label  string           // partition the part lies in, when a table says so
	Image  *espimage.Image  // bootloader and app parts
	Table  *partition.Table // partition table parts
	// Err is why a part that looks like a table or an image did not
	// decode; Check reports it.
	Err error
}

// End is the first offset after the part.
func (p *Part) End() uint64 { return uint64(p.Offset) + uint64(len(p.Data)) }

// Describe says in a few words what the part is.
func (p *Part) Describe() string {
	switch {
	case p.Err != nil:
		return fmt.Sprintf("%s (INVALID: %v)", p.Kind, p.Err)
	case p.Kind == KindApp && p.Image != nil && p.Image.App != nil:
		a := p.Image.App
		return fmt.Sprintf("app %s %s (%s, %d bytes)", a.ProjectName, a.Version, p.Image.Chip, p.Image.Length)
	case p.Kind == KindBootloader && p.Image != nil:
		return fmt.Sprintf("bootloader (%s, %d bytes)", p.Image.Chip, p.Image.Length)
	case p.Kind == KindPartitionTable && p.Table != nil:
		return fmt.Sprintf("partition table (%d entries)", len(p.Table.Partitions))
	}
	return fmt.Sprintf("%s, %d bytes", p.Kind, len(p.Data))
}

// Region is one write: data at a flash offset.
type Region struct {
	Offset uint32
	Data   []byte
}

// Plan is what an install writes and what it found in its input.
type Plan struct {
	// Source says where the plan came from: "merged image",
	// "manifest", "parts".
	Source string
	// Parts are the recognised pieces, by offset.
	Parts []Part
	// Writes are the regions written, by offset. A merged image is one
	// region (as esptool writes it); explicit parts are one each.
	Writes []Region
}

// Chip returns the chip the plan's images are built for, and false when
// it holds no image.
func (p *Plan) Chip() (espimage.Chip, bool) {
	for _, pt := range p.Parts {
		if pt.Image != nil {
			return pt.Image.Chip, true
		}
	}
	return 0, false
}

// Table returns the plan's partition table part, or nil.
func (p *Plan) Table() *Part {
	for i := range p.Parts {
		if p.Parts[i].Kind == KindPartitionTable && p.Parts[i].Table != nil {
			return &p.Parts[i]
		}
	}
	return nil
}

// App returns the plan's first app part, or nil.
func (p *Plan) App() *Part {
	for i := range p.Parts {
		if p.Parts[i].Kind == KindApp && p.Parts[i].Err == nil {
			return &p.Parts[i]
		}
	}
	return nil
}

// Size is the number of bytes written.
func (p *Plan) Size() int {
	n := 0
	for _, w := range p.Writes {
		n += len(w.Data)
	}
	return n
}

// Classify decides what data at offset holds: a partition table, a
// bootloader or an app image, or plain data.
func Classify(name string, offset uint32, data []byte) Part {
	p := Part{Name: name, Offset: offset, Data: data}
	switch {
	case partition.Detect(data):
		p.Kind = KindPartitionTable
		t, err := partition.Decode(trimTable(data))
		if err != nil {
			p.Err = err
			break
		}
		p.Table = t
	case len(data) > 0 && data[0] == espimage.Magic:
		img, err := espimage.Parse(data)
		if err != nil {
			p.Kind = KindApp
			p.Err = err
			break
		}
		p.Image = img
		p.Kind = KindApp
		if img.App == nil {
			p.Kind = KindBootloader
		}
	}
	return p
}

// trimTable returns at most the bytes the bootloader reads of a table.
func trimTable(b []byte) []byte {
	if len(b) > partition.MaxTableSize {
		return b[:partition.MaxTableSize]
	}
	return b
}

// FromParts makes a plan that writes each part where it says.
func FromParts(source string, parts []Part) *Plan {
	p := &Plan{Source: source, Parts: append([]Part(nil), parts...)}
	sort.SliceStable(p.Parts, func(i, j int) bool { return p.Parts[i].Offset < p.Parts[j].Offset })
	for _, pt := range p.Parts {
		p.Writes = append(p.Writes, Region{Offset: pt.Offset, Data: pt.Data})
	}
	labelParts(p.Parts)
	return p
}

// labelParts names the partition each part lies in, from the plan's table.
func labelParts(parts []Part) {
	var t *partition.Table
	for _, pt := range parts {
		if pt.Table != nil {
			t = pt.Table
		}
	}
	if t == nil {
		return
	}
	for i := range parts {
		for _, e := range t.Partitions {
			if parts[i].Offset >= e.Offset && uint64(parts[i].Offset) < e.End() {
				parts[i].Label = e.Name
				if parts[i].Kind == KindData && e.Type == partition.TypeData && e.Subtype == partition.SubtypeOTAData {
					parts[i].Kind = KindOTAData
				}
			}
		}
	}
}

// ParsePartSpec splits "FILE@OFFSET" (offset decimal or 0x hex).
func ParsePartSpec(s string) (file string, offset uint32, err error) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return "", 0, fmt.Errorf("part %q: want FILE@OFFSET, e.g. bootloader.bin@0x1000", s)
	}
	file, off := s[:i], s[i+1:]
	if file == "" {
		return "", 0, fmt.Errorf("part %q: no file name before @", s)
	}
	n, err := ParseOffset(off)
	if err != nil {
		return "", 0, fmt.Errorf("part %q: %w", s, err)
	}
	return file, n, nil
}

// ParseOffset reads a flash offset: decimal, or hex with 0x.
func ParseOffset(s string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 0, 32)
	if err != nil {
		return 0, fmt.Errorf("offset %q is not a number below 4 GiB (decimal or 0x hex)", s)
	}
	return uint32(n), nil
}

// trimFF drops trailing 0xFF bytes, which erased flash holds anyway (for
// showing what a region holds, never for what gets written).
func trimFF(b []byte) []byte {
	return bytes.TrimRight(b, "\xff")
}

// Errors that Check's problems wrap, for callers that tell them apart.
var (
	ErrWrongChip        = errors.New("image for another chip")
	ErrBootloaderOffset = errors.New("bootloader at the wrong offset")
	ErrBadTable         = errors.New("invalid partition table")
	ErrBadImage         = errors.New("invalid image")
	ErrAppPlacement     = errors.New("app not at the start of an app partition")
	ErrAppTooBig        = errors.New("app larger than its partition")
	ErrFlashSize        = errors.New("part beyond the end of flash")
	ErrOverlap          = errors.New("parts overlap")
	ErrAlign            = errors.New("offset not sector-aligned")
	ErrEmpty            = errors.New("nothing to write")
	ErrNotMerged        = errors.New("not a merged image")
	ErrNoBuild          = errors.New("no build for this chip")
)
