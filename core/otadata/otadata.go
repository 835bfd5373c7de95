// Package otadata reads and writes the ESP-IDF otadata partition: two
// 4 KiB sectors, each with one esp_ota_select_entry_t.
//
// The selection rules mirror ESP-IDF v5.1.3 (bootloader_common.c and
// esp_ota_ops.c), including its plain uint32 arithmetic on ota_seq: there
// is no wrap-around handling, so seq 0xFFFFFFFE beats seq 1, and seq
// 0xFFFFFFFF never counts (it is what an erased sector reads as).
package otadata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Sizes of the partition and its parts.
const (
	SectorSize    = 0x1000
	PartitionSize = 0x2000
	EntrySize     = 32
)

// BlankSeq is the ota_seq of an erased sector; an entry with it never counts.
const BlankSeq = 0xFFFFFFFF

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
func (s State) String() string {
	switch s {
	case StateNew:
		return "new"
	case StatePendingVerify:
		return "testing"
	case StateValid:
		return "valid"
	case StateInvalid:
		return "invalid"
	case StateAborted:
		return "aborted"
	case StateUndefined:
		return "undefined"
	}
	return fmt.Sprintf("state(0x%x)", uint32(s))
}

// Entry is one esp_ota_select_entry_t.
type Entry struct {
	Seq   uint32
	Label [20]byte // seq_label, unused (0xFF)
	State State
	CRC   uint32
}

// CRC returns crc32_le(0xFFFFFFFF, le32(seq), 4) as the ROM computes it.
//
// The ROM's crc32_le inverts the seed on entry and the result on exit, as
// crc32.Update does; starting from 0xFFFFFFFF rather than 0 (what
// crc32.ChecksumIEEE uses) is what makes the values differ from the
// textbook CRC-32 of the same four bytes.
func CRC(seq uint32) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], seq)
	return crc32.Update(0xFFFFFFFF, crc32.IEEETable, b[:])
}

// NewEntry returns an entry with the label blank and CRC filled in.
func NewEntry(seq uint32, st State) Entry {
	e := Entry{Seq: seq, State: st, CRC: CRC(seq)}
	for i := range e.Label {
		e.Label[i] = 0xFF
	}
	return e
}

// ErrShort is returned when there are fewer bytes than an entry or a
// partition needs.
var ErrShort = errors.New("otadata: input too short")

// Parse decodes a 32-byte entry (len(b) >= EntrySize).
func Parse(b []byte) (Entry, error) {
	if len(b) < EntrySize {
		return Entry{}, fmt.Errorf("%w: entry needs %d bytes, got %d", ErrShort, EntrySize, len(b))
	}
	var e Entry
	e.Seq = binary.LittleEndian.Uint32(b[0:4])
	copy(e.Label[:], b[4:24])
	e.State = State(binary.LittleEndian.Uint32(b[24:28]))
	e.CRC = binary.LittleEndian.Uint32(b[28:32])
	return e, nil
}

// Bytes encodes e as 32 bytes.
func (e Entry) Bytes() []byte {
	b := make([]byte, EntrySize)
	binary.LittleEndian.PutUint32(b[0:4], e.Seq)
	copy(b[4:24], e.Label[:])
	binary.LittleEndian.PutUint32(b[24:28], uint32(e.State))
	binary.LittleEndian.PutUint32(b[28:32], e.CRC)
	return b
}

// Valid reports whether e counts: seq != 0xFFFFFFFF, state not INVALID or
// ABORTED, and CRC matches.
func (e Entry) Valid() bool {
	if e.Seq == BlankSeq || e.State == StateInvalid || e.State == StateAborted {
		return false
	}
	return e.CRCOK()
}

// CRCOK reports whether the stored CRC matches the seq.
func (e Entry) CRCOK() bool { return e.CRC == CRC(e.Seq) }

// Data is the whole partition's two entries.
type Data struct{ Entries [2]Entry }

// Decode reads both sectors from an 8 KiB dump. Only the first 32 bytes
// of each sector matter to ESP-IDF; the rest is ignored here too.
func Decode(b []byte) (Data, error) {
	if len(b) != PartitionSize {
		if len(b) < PartitionSize {
			return Data{}, fmt.Errorf("%w: otadata partition is 0x%x bytes, got 0x%x", ErrShort, PartitionSize, len(b))
		}
		return Data{}, fmt.Errorf("otadata: partition is 0x%x bytes, got 0x%x (too long)", PartitionSize, len(b))
	}
	var d Data
	for i := range d.Entries {
		e, err := Parse(b[i*SectorSize:])
		if err != nil {
			return Data{}, fmt.Errorf("sector %d: %w", i, err)
		}
		d.Entries[i] = e
	}
	return d, nil
}

// Bytes encodes d as an 8 KiB partition image: each sector erased (0xFF)
// with its entry at the start, as esp_ota_ops leaves it.
func (d Data) Bytes() []byte {
	b := make([]byte, PartitionSize)
	for i := range b {
		b[i] = 0xFF
	}
	for i, e := range d.Entries {
		copy(b[i*SectorSize:], e.Bytes())
	}
	return b
}

// Active returns the index (0 or 1) of the active entry: the valid one
// with the higher seq, ties to sector 0; -1 when none is valid.
//
// Like bootloader_common_select_otadata, seqs compare as plain uint32:
// after a wrap-around the lower (newer) seq loses.
func (d Data) Active() int {
	v0, v1 := d.Entries[0].Valid(), d.Entries[1].Valid()
	switch {
	case v0 && v1:
		if d.Entries[1].Seq > d.Entries[0].Seq {
			return 1
		}
		return 0
	case v0:
		return 0
	case v1:
		return 1
	}
	return -1
}

// Slot maps a seq to an OTA slot index: (seq-1) mod n.
//
// The subtraction wraps as uint32 and the modulo is unsigned, as in the
// bootloader, so seq 0 maps to 0xFFFFFFFF mod n (1 for n=2, 0 for n=3).
// Slot returns -1 when n < 1.
func Slot(seq uint32, n int) int {
	if n < 1 {
		return -1
	}
	return int((seq - 1) % uint32(n))
}

// NextSeq returns the seq that makes slot the boot slot: the smallest value
// >= the active seq with (seq-1) mod n == slot, or slot+1 when none is active.
//
// It reproduces esp_rewrite_ota_data's loop exactly, uint32 overflow
// included. Near the top of the range that loop misbehaves: the value can
// come out as 0xFFFFFFFF (an entry that never counts, so the switch
// silently does not happen), and for some n and slots no candidate fits
// before 2^32 so the device loops forever. NextSeq returns 0xFFFFFFFF in
// the latter case too; NextSeqErr reports both as ErrSeqExhausted.
// NextSeq returns 0 when n < 1 or slot is out of range.
func (d Data) NextSeq(slot, n int) uint32 {
	seq, _ := d.nextSeq(slot, n)
	return seq
}

// ErrSeqExhausted means the otadata seq has reached the top of its range:
// the next boot selection cannot be written as a valid entry.
var ErrSeqExhausted = errors.New("otadata: ota_seq exhausted")

// NextSeqErr is NextSeq with an error when the result would not select
// slot (see NextSeq; also active seq 0 with slot n-1, where the device
// writes seq 0 and (0-1) mod n wraps as uint32), or when slot or n are out
// of range.
func (d Data) NextSeqErr(slot, n int) (uint32, error) {
	if n < 1 || n > 16 || slot < 0 || slot >= n {
		return 0, fmt.Errorf("otadata: slot %d out of range for %d OTA partitions", slot, n)
	}
	seq, ok := d.nextSeq(slot, n)
	// The device would write seq as is; say so when it cannot take effect.
	if !ok || seq == BlankSeq || Slot(seq, n) != slot {
		return seq, fmt.Errorf("%w: active seq 0x%x, no seq below 0x%x selects slot %d of %d",
			ErrSeqExhausted, d.Entries[d.Active()].Seq, uint32(BlankSeq), slot, n)
	}
	return seq, nil
}

// nextSeq follows esp_rewrite_ota_data. ok is false when the device's
// loop would never end.
func (d Data) nextSeq(slot, n int) (seq uint32, ok bool) {
	if n < 1 || slot < 0 || slot >= n {
		return 0, false
	}
	a := d.Active()
	if a < 0 {
		return uint32(slot) + 1, true
	}
	active := d.Entries[a].Seq
	nn := uint32(n)
	// Device: i = 0; while (seq > base + i*n) i++; in uint32. The
	// candidates v = base + i*n (mod 2^32) rise by n per step and wrap;
	// walk them one lap at a time instead of one step at a time. After a
	// wrap v < n, so the laps repeat within n+1 of them.
	v := (uint32(slot) + 1) % nn
	for lap := 0; lap <= n+1; lap++ {
		if v >= active {
			return v, true
		}
		// Largest candidate in this lap (no wrap).
		top := v + (BlankSeq-v)/nn*nn
		if top >= active {
			// Smallest candidate >= active within the lap.
			k := (uint64(active-v) + uint64(nn) - 1) / uint64(nn)
			return v + uint32(k)*nn, true
		}
		v = top + nn // wraps past 2^32
	}
	return BlankSeq, false
}

// StateOf returns the state for slot per esp_ota_get_state_partition:
// the first sector (0 then 1) whose slot matches and whose CRC is right.
// ok is false when no sector matches.
//
// Like ESP-IDF it does not look at validity beyond the CRC: an INVALID or
// ABORTED entry still reports its state.
func (d Data) StateOf(slot, n int) (st State, sector int, ok bool) {
	if n < 1 {
		return 0, -1, false
	}
	for i, e := range d.Entries {
		if Slot(e.Seq, n) == slot && e.CRCOK() {
			return e.State, i, true
		}
	}
	return 0, -1, false
}
