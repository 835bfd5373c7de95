// Package otadata reads and writes the ESP-IDF otadata partition: two
// 4 KiB sectors, each with one esp_ota_select_entry_t.
//
// API CONTRACT (stub; bodies filled in by the issue-2 work).
package otadata

// Sizes of the partition and its parts.
const (
	SectorSize    = 0x1000
	PartitionSize = 0x2000
	EntrySize     = 32
)

// State is esp_ota_img_states_t.
type State uint32

// OTA image states.
const (
	StateNew           State = 0
	StatePendingVerify State = 1
	StateValid         State = 2
	StateInvalid       State = 3
	StateAborted       State = 4
	StateUndefined     State = 0xFFFFFFFF
)

// String returns NodeMCU's name: "new", "testing", "valid", "invalid",
// "aborted", "undefined" (or "state(0xN)").
func (s State) String() string { panic("TODO") }

// Entry is one esp_ota_select_entry_t.
type Entry struct {
	Seq   uint32
	Label [20]byte // seq_label, unused (0xFF)
	State State
	CRC   uint32
}

// CRC returns crc32_le(0xFFFFFFFF, le32(seq), 4) as the ROM computes it.
func CRC(seq uint32) uint32 { panic("TODO") }

// NewEntry returns an entry with the label blank and CRC filled in.
func NewEntry(seq uint32, st State) Entry { panic("TODO") }

// Parse decodes a 32-byte entry (len(b) >= EntrySize).
func Parse(b []byte) (Entry, error) { panic("TODO") }

// Bytes encodes e as 32 bytes.
func (e Entry) Bytes() []byte { panic("TODO") }

// Valid reports whether e counts: seq != 0xFFFFFFFF, state not INVALID or
// ABORTED, and CRC matches.
func (e Entry) Valid() bool { panic("TODO") }

// CRCOK reports whether the stored CRC matches the seq.
func (e Entry) CRCOK() bool { panic("TODO") }

// Data is the whole partition's two entries.
type Data struct{ Entries [2]Entry }

// Decode reads both sectors from an 8 KiB dump.
func Decode(b []byte) (Data, error) { panic("TODO") }

// Active returns the index (0 or 1) of the active entry: the valid one
// with the higher seq, ties to sector 0; -1 when none is valid.
func (d Data) Active() int { panic("TODO") }

// Slot maps a seq to an OTA slot index: (seq-1) mod n.
func Slot(seq uint32, n int) int { panic("TODO") }

// NextSeq returns the seq that makes slot the boot slot: the smallest value
// >= the active seq with (seq-1) mod n == slot, or slot+1 when none is active.
func (d Data) NextSeq(slot, n int) uint32 { panic("TODO") }

// StateOf returns the state for slot per esp_ota_get_state_partition:
// the first sector (0 then 1) whose slot matches and whose CRC is right.
// ok is false when no sector matches.
func (d Data) StateOf(slot, n int) (st State, sector int, ok bool) { panic("TODO") }
