// Package partition reads and writes ESP-IDF partition tables, in the
// binary form the bootloader reads and the CSV form gen_esp32part.py takes.
//
// The rules, the output formats and the error texts follow ESP-IDF's
// components/partition_table/gen_esp32part.py. Its rules changed between
// releases (v5.1.3 to v5.5); IDFVersion lists which rule each release
// brought, and the ...For functions take the release (default: the newest
// known). Where the script would crash, silently truncate or lose data
// this package refuses with an error instead; see the package tests and
// ParseCSV for the list. DecodeAsBootloader reads a binary table the way
// the second-stage bootloader does, which differs from the script.
package partition

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Layout constants.
const (
	DefaultTableOffset = 0x8000
	MaxTableSize       = 0xC00
	EntrySize          = 32
	Magic              = 0x50AA
)

// Further layout constants of gen_esp32part.py.
const (
	// TableSectorSize is the flash sector the table occupies; partitions
	// start at tableOffset + TableSectorSize at the earliest.
	TableSectorSize = 0x1000
	// MaxNameLen is the label field's size; a 16-byte label has no NUL.
	MaxNameLen = 16
	// OTADataSize is the only size gen_esp32part.py accepts for data/ota.
	OTADataSize = 0x2000
	// MD5Magic is the first two bytes of the MD5 record (EB EB, little-endian).
	MD5Magic = 0xEBEB
)

// Type is the partition type byte.
type Type uint8

// Partition types.
const (
	TypeApp  Type = 0x00
	TypeData Type = 0x01
)

// Subtypes.
const (
	SubtypeFactory  uint8 = 0x00
	SubtypeOTA0     uint8 = 0x10 // ota_0 .. ota_15 = 0x10..0x1F
	SubtypeTest     uint8 = 0x20
	SubtypeOTAData  uint8 = 0x00 // data/ota
	SubtypePHY      uint8 = 0x01
	SubtypeNVS      uint8 = 0x02
	SubtypeCoredump uint8 = 0x03
	SubtypeNVSKeys  uint8 = 0x04
	SubtypeEFuse    uint8 = 0x05
	SubtypeUndef    uint8 = 0x06
	SubtypeESPHTTPD uint8 = 0x80
	SubtypeFAT      uint8 = 0x81
	SubtypeSPIFFS   uint8 = 0x82
	SubtypeLittleFS uint8 = 0x83
)

// Flags.
const (
	FlagEncrypted uint32 = 1 << 0
	FlagReadonly  uint32 = 1 << 1
)

// Partition is one table record.
type Partition struct {
	Name    string
	Type    Type
	Subtype uint8
	Offset  uint32
	Size    uint32
	Flags   uint32
}

// IsOTA reports whether p is an app partition ota_0..ota_15.
func (p Partition) IsOTA() bool { return p.OTAIndex() >= 0 }

// OTAIndex returns n for ota_n, or -1.
func (p Partition) OTAIndex() int {
	if p.Type == TypeApp && p.Subtype >= SubtypeOTA0 && p.Subtype < SubtypeOTA0+16 {
		return int(p.Subtype - SubtypeOTA0)
	}
	return -1
}

// End returns the offset just past p, as a 64-bit value so that it cannot wrap.
func (p Partition) End() uint64 { return uint64(p.Offset) + uint64(p.Size) }

// TypeName returns the type as gen_esp32part.py (IDFNewest) writes it:
// "app", "data", or the decimal number.
func (p Partition) TypeName() string { return p.TypeNameFor(IDFNewest) }

// TypeNameFor is TypeName for the script of release v.
func (p Partition) TypeNameFor(v IDFVersion) string {
	return lookupKeyword(int64(p.Type), typeNamesFor(v.orNewest()))
}

// SubtypeName returns the subtype as gen_esp32part.py (IDFNewest) writes
// it: the name known for the type ("ota_0", "nvs", ...) or the decimal
// number.
func (p Partition) SubtypeName() string { return p.SubtypeNameFor(IDFNewest) }

// SubtypeNameFor is SubtypeName for the script of release v.
func (p Partition) SubtypeNameFor(v IDFVersion) string {
	return lookupKeyword(int64(p.Subtype), subtypeNamesFor(p.Type, v.orNewest()))
}

// FlagNames returns the known flags set in p, in gen_esp32part.py's order
// (IDFNewest).
func (p Partition) FlagNames() []string { return p.FlagNamesFor(IDFNewest) }

// FlagNamesFor is FlagNames for the script of release v: v5.1.3 knows
// only "encrypted".
func (p Partition) FlagNamesFor(v IDFVersion) []string {
	var names []string
	for _, f := range flagNamesFor(v.orNewest()) {
		if p.Flags&f.bit != 0 {
			names = append(names, f.name)
		}
	}
	return names
}

// Table is an ordered list of partitions.
type Table struct {
	Partitions []Partition
	HasMD5     bool // set by Decode when an MD5 record was present
}

// Sentinel errors; the errors returned wrap one of these where a caller
// may want to tell the cases apart. Their messages follow gen_esp32part.py.
var (
	ErrSyntax     = errors.New("invalid CSV field")
	ErrMagic      = errors.New("invalid magic bytes")
	ErrMD5        = errors.New("MD5 checksums don't match")
	ErrLength     = errors.New("bad table length")
	ErrAlign      = errors.New("misaligned partition")
	ErrOverlap    = errors.New("partitions overlap")
	ErrBelowTable = errors.New("partition below the end of the partition table")
	ErrDuplicate  = errors.New("duplicate partition name")
	ErrOTAData    = errors.New("bad otadata partition")
	ErrName       = errors.New("bad partition name")
	ErrRange      = errors.New("value out of range")
	ErrFlags      = errors.New("bad flags")
)

// ruleError carries gen_esp32part.py's message text and the rule broken.
type ruleError struct {
	rule error
	msg  string
}

func (e *ruleError) Error() string { return e.msg }
func (e *ruleError) Unwrap() error { return e.rule }

func errorf(rule error, format string, args ...any) error {
	return &ruleError{rule: rule, msg: fmt.Sprintf(format, args...)}
}

// Detect reports whether b looks like a binary table (starts AA 50 or EB EB)
// rather than CSV text.
func Detect(b []byte) (binary bool) {
	return len(b) >= 2 && (b[0] == 0xAA && b[1] == 0x50 || b[0] == 0xEB && b[1] == 0xEB)
}

// Decode parses a binary table. It accepts a table without MD5 record
// and/or terminator that ends at len(b) (esptool's partitions_singleapp.bin),
// and rejects a wrong MD5 naming both digests.
//
// Like gen_esp32part.py it stops at the first record of 32 0xFF bytes,
// checks an MD5 record against the records before it, and keeps records
// after the MD5 record. Unlike it, Decode reads at most MaxTableSize bytes
// (what the bootloader reads), refuses a second MD5 record (the bootloader
// does too) and a label that is not UTF-8 (where the script crashes), and
// keeps unknown flag bits (the script warns and drops them).
func Decode(b []byte) (*Table, error) {
	t := &Table{}
	sum := md5.New()
	for o := 0; o < len(b); o += EntrySize {
		i := o / EntrySize
		if o >= MaxTableSize {
			return nil, errorf(ErrLength, "Partition table is missing an end-of-table marker within the first 0x%x bytes", MaxTableSize)
		}
		if len(b)-o < EntrySize {
			return nil, errorf(ErrLength, "Partition table length must be a multiple of 32 bytes (record %d at byte 0x%x has %d bytes)", i, o, len(b)-o)
		}
		rec := b[o : o+EntrySize]
		if isBlank(rec) {
			return t, nil // end marker
		}
		if rec[0] == 0xEB && rec[1] == 0xEB {
			want := sum.Sum(nil)
			if !bytes.Equal(rec[16:], want) {
				return nil, errorf(ErrMD5, "record %d at byte 0x%x: MD5 checksums don't match! (computed: 0x%s, parsed: 0x%s)",
					i, o, hex.EncodeToString(want), hex.EncodeToString(rec[16:]))
			}
			if t.HasMD5 {
				return nil, errorf(ErrMD5, "record %d at byte 0x%x: only one MD5 record is allowed", i, o)
			}
			t.HasMD5 = true
			continue
		}
		sum.Write(rec)
		p, err := decodeEntry(rec)
		if err != nil {
			return nil, fmt.Errorf("record %d at byte 0x%x: %w", i, o, err)
		}
		t.Partitions = append(t.Partitions, p)
	}
	// No terminator: the table simply ends with the input.
	return t, nil
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != 0xFF {
			return false
		}
	}
	return true
}

func decodeEntry(b []byte) (Partition, error) {
	if b[0] != 0xAA || b[1] != 0x50 {
		return Partition{}, errorf(ErrMagic, "Invalid magic bytes (%02x %02x, want aa 50) for partition definition", b[0], b[1])
	}
	label := b[12:28]
	if n := bytes.IndexByte(label, 0); n >= 0 {
		label = label[:n]
	}
	if !utf8.Valid(label) {
		return Partition{}, errorf(ErrName, "label %q is not valid UTF-8", label)
	}
	return Partition{
		Name:    string(label),
		Type:    Type(b[2]),
		Subtype: b[3],
		Offset:  binary.LittleEndian.Uint32(b[4:8]),
		Size:    binary.LittleEndian.Uint32(b[8:12]),
		Flags:   binary.LittleEndian.Uint32(b[28:32]),
	}, nil
}

// Encode writes the binary table as gen_esp32part.py does (with MD5 record,
// padded with 0xFF to MaxTableSize). It refuses a label longer than 16
// bytes, which the script would silently truncate.
func (t *Table) Encode() ([]byte, error) {
	out := make([]byte, 0, MaxTableSize)
	for i, p := range t.Partitions {
		if len(p.Name) > MaxNameLen {
			return nil, fmt.Errorf("partition %d: %w", i, nameTooLong(p))
		}
		var rec [EntrySize]byte
		binary.LittleEndian.PutUint16(rec[0:2], Magic)
		rec[2] = byte(p.Type)
		rec[3] = p.Subtype
		binary.LittleEndian.PutUint32(rec[4:8], p.Offset)
		binary.LittleEndian.PutUint32(rec[8:12], p.Size)
		copy(rec[12:28], p.Name)
		binary.LittleEndian.PutUint32(rec[28:32], p.Flags)
		out = append(out, rec[:]...)
	}
	sum := md5.Sum(out)
	out = append(out, 0xEB, 0xEB)
	out = append(out, bytes.Repeat([]byte{0xFF}, 14)...)
	out = append(out, sum[:]...)
	if len(out) >= MaxTableSize {
		return nil, errorf(ErrLength, "Binary partition table length (%d) longer than max", len(out))
	}
	for len(out) < MaxTableSize {
		out = append(out, 0xFF)
	}
	return out, nil
}

func nameTooLong(p Partition) error {
	return errorf(ErrName, "Partition %s invalid: name is %d bytes, longer than %d", p.Name, len(p.Name), MaxNameLen)
}

// Find returns the partition with the given label, or nil.
func (t *Table) Find(name string) *Partition {
	for i := range t.Partitions {
		if t.Partitions[i].Name == name {
			return &t.Partitions[i]
		}
	}
	return nil
}

// OTASlots returns the app partitions ota_0..ota_15 in subtype order.
//
// Like get_ota_partition_count in esp_ota_ops.c the slots counted are
// ota_0, ota_1, ... up to the first missing one: the device numbers boot
// slots (seq-1) mod len(OTASlots()), so a gap ends the list. Where a
// subtype occurs twice the first in table order counts, as
// esp_partition_find_first does.
func (t *Table) OTASlots() []Partition {
	var slots []Partition
	for n := 0; n < 16; n++ {
		p := t.findType(TypeApp, SubtypeOTA0+uint8(n))
		if p == nil {
			break
		}
		slots = append(slots, *p)
	}
	return slots
}

// Factory returns the factory app partition, or nil.
func (t *Table) Factory() *Partition { return t.findType(TypeApp, SubtypeFactory) }

// OTAData returns the data/ota partition, or nil.
func (t *Table) OTAData() *Partition { return t.findType(TypeData, SubtypeOTAData) }

func (t *Table) findType(typ Type, sub uint8) *Partition {
	for i := range t.Partitions {
		if p := &t.Partitions[i]; p.Type == typ && p.Subtype == sub {
			return p
		}
	}
	return nil
}
