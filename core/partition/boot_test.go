package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func bootTable(t *testing.T, parts ...Partition) []byte {
	t.Helper()
	b, err := (&Table{Partitions: parts}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rec(name string, typ Type, sub uint8, off, size uint32) []byte {
	var r [EntrySize]byte
	binary.LittleEndian.PutUint16(r[:], Magic)
	r[2], r[3] = byte(typ), sub
	binary.LittleEndian.PutUint32(r[4:], off)
	binary.LittleEndian.PutUint32(r[8:], size)
	copy(r[12:28], name)
	return r[:]
}

// TestDecodeAsBootloader checks esp_partition_table_verify (ESP-IDF
// v5.1.3, flash_partitions.c): entries past the flash size in the
// bootloader header are refused, the table ends at the first record with
// magic 0xFFFF and type/subtype 0xFF, and a table with no such record in
// 0xC00 bytes is refused. The messages are those it logs.
func TestDecodeAsBootloader(t *testing.T) {
	nvs := Partition{Name: "nvs", Type: TypeData, Subtype: SubtypeNVS, Offset: 0x9000, Size: 0x6000}
	app := Partition{Name: "factory", Type: TypeApp, Offset: 0x10000, Size: 0x100000}
	big := Partition{Name: "big", Type: TypeApp, Offset: 0x110000, Size: 0x200000}
	pad := func(b []byte) []byte {
		return append(b, bytes.Repeat([]byte{0xFF}, MaxTableSize-len(b))...)
	}
	// A terminator whose label and offset bytes are not erased.
	oddEnd := pad(append(append(rec("nvs", TypeData, SubtypeNVS, 0x9000, 0x6000), 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4),
		bytes.Repeat([]byte{0}, 28)...))
	full := make([]byte, 0, MaxTableSize)
	for len(full) < MaxTableSize {
		full = append(full, rec("p", TypeData, 0x40, 0x9000, 0x1000)...)
	}
	twoMD5 := bootTable(t, nvs)
	copy(twoMD5[64:96], twoMD5[32:64])
	badMD5 := bootTable(t, nvs)
	badMD5[63] ^= 1
	badMagic := pad(append(rec("nvs", TypeData, SubtypeNVS, 0x9000, 0x6000), bytes.Repeat([]byte{0x12}, 32)...))
	// Magic 0xFFFF ends the table only with type and subtype 0xFF too.
	ffffApp := pad(append(rec("nvs", TypeData, SubtypeNVS, 0x9000, 0x6000), append([]byte{0xFF, 0xFF, 0x00, 0x00}, bytes.Repeat([]byte{0xFF}, 28)...)...))
	cases := []struct {
		name     string
		b        []byte
		chipSize uint32
		n        int
		rule     error
		msg      string
	}{
		{"fits 4MB", bootTable(t, nvs, app, big), 4 << 20, 3, nil, ""},
		{"past 2MB", bootTable(t, nvs, app, big), 2 << 20, 0, ErrRange,
			"partition 2 invalid - offset 0x110000 size 0x200000 exceeds flash chip size 0x200000"},
		{"offset past flash", pad(rec("x", TypeData, 0x40, 0x500000, 0)), 4 << 20, 0, ErrRange,
			"partition 0 invalid - offset 0x500000 size 0x0 exceeds flash chip size 0x400000"},
		{"terminator is magic 0xFFFF with type and subtype 0xFF", oddEnd, 4 << 20, 1, nil, ""},
		{"no terminator in 0xC00 bytes", full, 4 << 20, 0, ErrLength, "partition table has no terminating entry, not valid"},
		{"two MD5 records", twoMD5, 4 << 20, 0, ErrMD5, "Only one MD5 checksum is allowed"},
		{"wrong MD5", badMD5, 4 << 20, 0, ErrMD5, "Incorrect MD5 checksum"},
		{"bad magic", badMagic, 4 << 20, 0, ErrMagic, "partition 1 invalid magic number 0x1212"},
		{"magic 0xFFFF with type 0", ffffApp, 4 << 20, 0, ErrMagic, "partition 1 invalid magic number 0xffff"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb, err := DecodeAsBootloader(c.b, c.chipSize)
			if c.rule == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(tb.Partitions) != c.n {
					t.Errorf("%d partitions, want %d", len(tb.Partitions), c.n)
				}
				return
			}
			if !errors.Is(err, c.rule) || err.Error() != c.msg {
				t.Errorf("error %q (%v), want %q wrapping %v", err, err, c.msg, c.rule)
			}
		})
	}
	// gen_esp32part.py's reading (Decode) does not take the odd terminator.
	if _, err := Decode(oddEnd); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Errorf("Decode of a table ended by a non-blank 0xFFFF record: %v, want a magic error", err)
	}
}

// FuzzDecodeAsBootloader: no panic, and every partition returned passes
// esp_partition_table_verify's bound (in uint32 arithmetic, as in C).
func FuzzDecodeAsBootloader(f *testing.F) {
	b, err := (&Table{Partitions: []Partition{{Name: "nvs", Type: TypeData, Subtype: SubtypeNVS, Offset: 0x9000, Size: 0x6000}}}).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, uint32(4<<20))
	f.Add(b[:64], uint32(0x10000))
	f.Fuzz(func(t *testing.T, b []byte, chip uint32) {
		tb, err := DecodeAsBootloader(b, chip)
		if err != nil {
			return
		}
		if len(tb.Partitions) > MaxEntries {
			t.Fatalf("%d partitions", len(tb.Partitions))
		}
		for _, p := range tb.Partitions {
			if p.Offset > chip || p.Offset+p.Size > chip {
				t.Fatalf("partition %+v passes a %#x-byte chip", p, chip)
			}
		}
	})
}
