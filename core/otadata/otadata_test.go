package otadata

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestCRCVectors(t *testing.T) {
	for _, tc := range []struct{ seq, crc uint32 }{
		{1, 0x4743989a},
		{2, 0x55f63774},
		{3, 0xed4a5011},
		{4, 0x709d68a8},
		{5, 0xc8210fcd},
		{0xFFFFFFFF, 0x2144df1c},
	} {
		if got := CRC(tc.seq); got != tc.crc {
			t.Errorf("CRC(%#x) = %#08x, want %#08x", tc.seq, got, tc.crc)
		}
	}
}

func TestEntryBytes(t *testing.T) {
	want := "01000000" + strings.Repeat("ff", 20) + "00000000" + "9a984347"
	e := NewEntry(1, StateNew)
	if got := hex.EncodeToString(e.Bytes()); got != want {
		t.Fatalf("NewEntry(1, NEW).Bytes() = %s\nwant %s", got, want)
	}
	raw, _ := hex.DecodeString(want)
	p, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if p != e {
		t.Fatalf("Parse = %+v, want %+v", p, e)
	}
	if !p.Valid() || !p.CRCOK() {
		t.Fatalf("entry should be valid")
	}
	if _, err := Parse(raw[:31]); !errors.Is(err, ErrShort) {
		t.Fatalf("Parse(31 bytes) err = %v, want ErrShort", err)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{
		StateNew: "new", StatePendingVerify: "testing", StateValid: "valid",
		StateInvalid: "invalid", StateAborted: "aborted", StateUndefined: "undefined",
		State(7): "state(0x7)",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", uint32(s), got, want)
		}
	}
}

// blank is what an erased sector reads as.
func blank() Entry {
	e, _ := Parse(bytes.Repeat([]byte{0xFF}, EntrySize))
	return e
}

func badCRC(seq uint32, st State) Entry {
	e := NewEntry(seq, st)
	e.CRC ^= 1
	return e
}

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Entry
		want bool
	}{
		{"new", NewEntry(1, StateNew), true},
		{"pending", NewEntry(1, StatePendingVerify), true},
		{"valid", NewEntry(1, StateValid), true},
		{"undefined", NewEntry(1, StateUndefined), true},
		{"invalid", NewEntry(1, StateInvalid), false},
		{"aborted", NewEntry(1, StateAborted), false},
		{"blank", blank(), false},
		{"seq FFFFFFFF with right CRC", NewEntry(0xFFFFFFFF, StateValid), false},
		{"bad crc", badCRC(1, StateValid), false},
		{"seq 0", NewEntry(0, StateValid), true},
	} {
		if got := tc.e.Valid(); got != tc.want {
			t.Errorf("%s: Valid() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestActive(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b Entry
		want int
	}{
		{"both blank", blank(), blank(), -1},
		{"sector 0 only", NewEntry(1, StateNew), blank(), 0},
		{"sector 1 only", blank(), NewEntry(2, StateNew), 1},
		{"higher in 1", NewEntry(1, StateValid), NewEntry(2, StateNew), 1},
		{"higher in 0", NewEntry(3, StateValid), NewEntry(2, StateValid), 0},
		{"tie goes to sector 0", NewEntry(3, StateValid), NewEntry(3, StateNew), 0},
		{"higher has bad crc", NewEntry(1, StateValid), badCRC(2, StateNew), 0},
		{"higher invalid", NewEntry(1, StateValid), NewEntry(2, StateInvalid), 0},
		{"higher aborted", NewEntry(1, StateValid), NewEntry(2, StateAborted), 0},
		{"both invalid", NewEntry(1, StateInvalid), NewEntry(2, StateAborted), -1},
		// No wrap-around handling: 0xFFFFFFFE > 1 as uint32.
		{"wrap: old top seq wins", NewEntry(0xFFFFFFFE, StateValid), NewEntry(1, StateNew), 0},
		{"wrap: FFFFFFFF never counts", NewEntry(1, StateValid), NewEntry(0xFFFFFFFF, StateNew), 0},
	} {
		d := Data{Entries: [2]Entry{tc.a, tc.b}}
		if got := d.Active(); got != tc.want {
			t.Errorf("%s: Active() = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestSlot(t *testing.T) {
	for _, tc := range []struct {
		seq  uint32
		n    int
		want int
	}{
		{1, 2, 0}, {2, 2, 1}, {3, 2, 0}, {5, 8, 4}, {8, 8, 7},
		{0, 2, 1}, {0, 3, 0}, // (0-1) wraps to 0xFFFFFFFF, unsigned modulo
		{0xFFFFFFFF, 2, 0}, {0xFFFFFFFE, 2, 1},
		{7, 1, 0}, {1, 0, -1},
	} {
		if got := Slot(tc.seq, tc.n); got != tc.want {
			t.Errorf("Slot(%#x, %d) = %d, want %d", tc.seq, tc.n, got, tc.want)
		}
	}
}

func TestNextSeq(t *testing.T) {
	for _, tc := range []struct {
		name    string
		d       Data
		slot, n int
		want    uint32
		wantErr bool
	}{
		{"none active", Data{[2]Entry{blank(), blank()}}, 1, 2, 2, false},
		{"none active slot 0", Data{[2]Entry{blank(), blank()}}, 0, 2, 1, false},
		{"active 1 -> ota_1", Data{[2]Entry{NewEntry(1, StateValid), blank()}}, 1, 2, 2, false},
		{"active 2 -> ota_0", Data{[2]Entry{NewEntry(1, StateValid), NewEntry(2, StateValid)}}, 0, 2, 3, false},
		{"active 2 -> ota_1 again", Data{[2]Entry{NewEntry(1, StateValid), NewEntry(2, StateValid)}}, 1, 2, 2, false},
		{"esp_ota_ops comment 4,5 of 8 -> ota_7", Data{[2]Entry{NewEntry(4, StateValid), NewEntry(5, StateValid)}}, 7, 8, 8, false},
		{"bad crc ignored", Data{[2]Entry{NewEntry(1, StateValid), badCRC(9, StateValid)}}, 1, 2, 2, false},
		{"slot out of range", Data{}, 2, 2, 0, true},
		// Near the top of uint32 (see NextSeq's doc).
		{"top: FFFFFFFD -> ota_1", Data{[2]Entry{NewEntry(0xFFFFFFFD, StateValid), blank()}}, 1, 2, 0xFFFFFFFE, false},
		{"top: FFFFFFFE -> ota_0 gives blank seq", Data{[2]Entry{NewEntry(0xFFFFFFFE, StateValid), blank()}}, 0, 2, 0xFFFFFFFF, true},
		{"top: n=4 device loops forever", Data{[2]Entry{NewEntry(0xFFFFFFFE, StateValid), blank()}}, 0, 4, 0xFFFFFFFF, true},
		{"top: n=3 wraps once, blank seq", Data{[2]Entry{NewEntry(0xFFFFFFFE, StateValid), blank()}}, 0, 3, 0xFFFFFFFF, true},
		{"top: n=3 same slot", Data{[2]Entry{NewEntry(0xFFFFFFFE, StateValid), blank()}}, 1, 3, 0xFFFFFFFE, false},
		{"seq 0 active, slot n-1 gives 0", Data{[2]Entry{NewEntry(0, StateValid), blank()}}, 2, 3, 0, true},
	} {
		if got := tc.d.NextSeq(tc.slot, tc.n); got != tc.want {
			t.Errorf("%s: NextSeq(%d, %d) = %#x, want %#x", tc.name, tc.slot, tc.n, got, tc.want)
		}
		got, err := tc.d.NextSeqErr(tc.slot, tc.n)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: NextSeqErr err = %v, want error %v", tc.name, err, tc.wantErr)
		}
		if err == nil && got != tc.want {
			t.Errorf("%s: NextSeqErr = %#x, want %#x", tc.name, got, tc.want)
		}
	}
}

// deviceNextSeq runs esp_rewrite_ota_data's loop literally, starting i
// just below the answer so that it finishes quickly; only for actives far
// from the top, where the loop cannot wrap.
func deviceNextSeq(active uint32, slot, n int) uint32 {
	nn := uint32(n)
	base := (uint32(slot) + 1) % nn
	i := uint32(0)
	if active/nn > 2 {
		i = active/nn - 2
	}
	for active > base+i*nn {
		i++
	}
	return base + i*nn
}

func TestNextSeqMatchesDeviceLoop(t *testing.T) {
	seqs := []uint32{0, 1, 2, 3, 15, 16, 17, 1000, 0x7FFFFFFF, 0xFFFFFF00}
	for _, seq := range seqs {
		for n := 1; n <= 16; n++ {
			for slot := 0; slot < n; slot++ {
				d := Data{[2]Entry{NewEntry(seq, StateValid), blank()}}
				want := deviceNextSeq(seq, slot, n)
				if got := d.NextSeq(slot, n); got != want {
					t.Fatalf("active %#x n %d slot %d: NextSeq = %#x, device %#x", seq, n, slot, got, want)
				}
				if seq > 0 && (Slot(want, n) != slot || want < seq || want-seq >= uint32(n)) {
					t.Fatalf("active %#x n %d slot %d: %#x is not the smallest seq >= active for slot", seq, n, slot, want)
				}
			}
		}
	}
}

func TestStateOf(t *testing.T) {
	d := Data{[2]Entry{NewEntry(3, StateValid), NewEntry(2, StateInvalid)}}
	for _, tc := range []struct {
		name       string
		d          Data
		slot, n    int
		wantState  State
		wantSector int
		wantOK     bool
	}{
		{"valid slot 0", d, 0, 2, StateValid, 0, true},
		{"invalid still reported", d, 1, 2, StateInvalid, 1, true},
		{"blank", Data{[2]Entry{blank(), blank()}}, 0, 2, 0, -1, false},
		{"bad crc skipped", Data{[2]Entry{badCRC(1, StateNew), NewEntry(3, StatePendingVerify)}}, 0, 2, StatePendingVerify, 1, true},
		{"first sector wins", Data{[2]Entry{NewEntry(1, StateAborted), NewEntry(3, StateValid)}}, 0, 2, StateAborted, 0, true},
		{"no match", Data{[2]Entry{NewEntry(1, StateValid), blank()}}, 1, 2, 0, -1, false},
	} {
		st, sec, ok := tc.d.StateOf(tc.slot, tc.n)
		if st != tc.wantState || sec != tc.wantSector || ok != tc.wantOK {
			t.Errorf("%s: StateOf(%d, %d) = %v, %d, %v; want %v, %d, %v", tc.name, tc.slot, tc.n,
				st, sec, ok, tc.wantState, tc.wantSector, tc.wantOK)
		}
	}
}

func TestDecode(t *testing.T) {
	want := Data{[2]Entry{NewEntry(1, StateValid), NewEntry(2, StatePendingVerify)}}
	b := want.Bytes()
	if len(b) != PartitionSize || b[32] != 0xFF || b[SectorSize-1] != 0xFF {
		t.Fatalf("Bytes layout wrong")
	}
	if !bytes.Equal(b[SectorSize:SectorSize+32], want.Entries[1].Bytes()) {
		t.Fatalf("sector 1 entry not at 0x1000")
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("Decode = %+v, want %+v", got, want)
	}
	if got.Active() != 1 {
		t.Fatalf("Active = %d, want 1", got.Active())
	}
	if _, err := Decode(b[:PartitionSize-1]); !errors.Is(err, ErrShort) || !strings.Contains(err.Error(), "0x1fff") {
		t.Fatalf("short Decode err = %v", err)
	}
	if _, err := Decode(append(b, 0)); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("long Decode err = %v", err)
	}
}

func FuzzOtadataDecode(f *testing.F) {
	f.Add(Data{[2]Entry{NewEntry(1, StateValid), NewEntry(2, StateNew)}}.Bytes())
	f.Add(bytes.Repeat([]byte{0xFF}, PartitionSize))
	f.Add(make([]byte, PartitionSize))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Decode(b)
		if err != nil {
			return
		}
		a := d.Active()
		if a < -1 || a > 1 || (a >= 0 && !d.Entries[a].Valid()) {
			t.Fatalf("Active = %d for %+v", a, d)
		}
		for n := 1; n <= 16; n++ {
			for slot := 0; slot < n; slot++ {
				seq, err := d.NextSeqErr(slot, n)
				if err == nil && Slot(seq, n) != slot {
					t.Fatalf("NextSeqErr(%d,%d) = %#x selects slot %d", slot, n, seq, Slot(seq, n))
				}
				d.StateOf(slot, n)
			}
		}
		again, err := Decode(d.Bytes())
		if err != nil || again != d {
			t.Fatalf("re-decode mismatch: %v", err)
		}
	})
}
