// Package partition reads and writes ESP-IDF partition tables, in the
// binary form the bootloader reads and the CSV form gen_esp32part.py takes.
//
// API CONTRACT (stub; bodies filled in by the issue-2 work).
package partition

// Layout constants.
const (
	DefaultTableOffset = 0x8000
	MaxTableSize       = 0xC00
	EntrySize          = 32
	Magic              = 0x50AA
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
func (p Partition) IsOTA() bool { panic("TODO") }

// OTAIndex returns n for ota_n, or -1.
func (p Partition) OTAIndex() int { panic("TODO") }

// Table is an ordered list of partitions.
type Table struct {
	Partitions []Partition
	HasMD5     bool // set by Decode when an MD5 record was present
}

// Decode parses a binary table. It accepts a table without MD5 record
// and/or terminator that ends at len(b) (esptool's partitions_singleapp.bin),
// and rejects a wrong MD5 naming both digests.
func Decode(b []byte) (*Table, error) { panic("TODO") }

// Encode writes the binary table as gen_esp32part.py does (with MD5 record,
// padded with 0xFF to MaxTableSize).
func (t *Table) Encode() ([]byte, error) { panic("TODO") }

// ParseCSV parses CSV with gen_esp32part.py's rules; tableOffset is where
// the table sits (DefaultTableOffset normally). Errors name the line and rule.
func ParseCSV(csv []byte, tableOffset uint32) (*Table, error) { panic("TODO") }

// CSV writes the table as gen_esp32part.py writes it when converting a
// binary to CSV.
func (t *Table) CSV() []byte { panic("TODO") }

// Verify applies gen_esp32part.py's checks (alignment, overlaps, names,
// otadata size, below tableOffset+0x1000).
func (t *Table) Verify(tableOffset uint32) error { panic("TODO") }

// Find returns the partition with the given label, or nil.
func (t *Table) Find(name string) *Partition { panic("TODO") }

// OTASlots returns the app partitions ota_0..ota_15 in subtype order.
func (t *Table) OTASlots() []Partition { panic("TODO") }

// Factory returns the factory app partition, or nil.
func (t *Table) Factory() *Partition { panic("TODO") }

// OTAData returns the data/ota partition, or nil.
func (t *Table) OTAData() *Partition { panic("TODO") }

// Detect reports whether b looks like a binary table (starts AA 50 or EB EB)
// rather than CSV text.
func Detect(b []byte) (binary bool) { panic("TODO") }
