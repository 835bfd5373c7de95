package partition

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func stripTrailingFFs(b []byte) []byte {
	ff := bytes.Repeat([]byte{0xFF}, 64)
	for bytes.HasSuffix(b, ff) {
		b = b[:len(b)-32]
	}
	return b
}

func TestIDFBinaryEntry(t *testing.T) {
	// test_binary_entry: encoded without verification (offset 0x100400
	// is not 4K-aligned, which verify would refuse).
	tb, err := ParseCSVUnverified([]byte("\nfirst, 0x30, 0xEE, 0x100400, 0x300000\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tb.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b = stripTrailingFFs(b)
	if len(b) != 96 || !bytes.Equal(b[2:4], []byte{0x30, 0xee}) ||
		hex.EncodeToString(b[48:64]) != "43033f334087575169839b4061b12726" {
		t.Fatalf("got % x", b)
	}
	if _, err := ParseCSV([]byte("first, 0x30, 0xEE, 0x100400, 0x300000\n"), 0); !errors.Is(err, ErrAlign) {
		t.Fatalf("verified parse: %v, want alignment error", err)
	}
}

func TestIDFLongerBinaryTable(t *testing.T) {
	var in []byte
	rec := func(typ, sub byte, off, size uint32, name string) {
		r := make([]byte, 32)
		r[0], r[1], r[2], r[3] = 0xAA, 0x50, typ, sub
		r[4], r[5], r[6], r[7] = byte(off), byte(off>>8), byte(off>>16), byte(off>>24)
		r[8], r[9], r[10], r[11] = byte(size), byte(size>>8), byte(size>>16), byte(size>>24)
		copy(r[12:], name)
		in = append(in, r...)
	}
	rec(0x00, 0x00, 0x10000, 0x100000, "factory")
	rec(0x01, 0x20, 0x110000, 0x200, "data") // bytes 00 02 00 00 (the comment there says 128KB)
	rec(0x10, 0x00, 0x150000, 0x1000, "second")
	md5rec, _ := hex.DecodeString("ebebffffffffffffffffffffffffffff" + "f9bd061b45686f86571a2cd52a1da65b")
	in = append(in, md5rec...)
	in = append(in, bytes.Repeat([]byte{0xFF}, 32)...)

	tb, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Verify(0); err != nil {
		t.Fatal(err)
	}
	if len(tb.Partitions) != 3 || tb.Partitions[2].Type != 0x10 || tb.Partitions[1].Name != "data" {
		t.Fatalf("decoded %v", tb.Partitions)
	}
	enc, _ := tb.Encode()
	if !bytes.Equal(stripTrailingFFs(enc), in) {
		t.Fatalf("round trip differs")
	}
	// test_basic_cmdline: binary -> CSV -> binary.
	again, err := ParseCSV(tb.CSV(), 0)
	if err != nil {
		t.Fatalf("%v\n%s", err, tb.CSV())
	}
	enc2, _ := again.Encode()
	if !bytes.Equal(stripTrailingFFs(enc2), in) {
		t.Fatalf("CSV round trip differs:\n%s", tb.CSV())
	}
}

func TestIDFCSVCases(t *testing.T) {
	for _, tc := range []struct{ name, csv, want string }{
		{"test_simple_partition", "\n# Name,Type,SubType,Offset,Size,Flags\nfactory,0,2,65536,1048576,\n",
			"factory 0 2 0x10000 0x100000 0"},
		{"test_unit_suffixes", "one_megabyte, app, factory, 64k, 1M\n", "one_megabyte 0 0 0x10000 0x100000 0"},
		{"test_default_offsets", "first, app, factory,, 1M\nsecond, data, 0x15,, 1M\nminidata, data, 0x40,, 32K\notherapp, app, factory,, 1M\n",
			"first 0 0 0x10000 0x100000 0;second 1 21 0x110000 0x100000 0;minidata 1 64 0x210000 0x8000 0;otherapp 0 0 0x220000 0x100000 0"},
		{"test_negative_size_to_offset", "first, app, factory, 0x10000, -2M\nsecond, data, 0x15,         ,  1M\n",
			"first 0 0 0x10000 0x1f0000 0;second 1 21 0x200000 0x100000 0"},
		{"test_type_subtype_names", "myapp, app, factory,, 0x100000\nmyota_0, app, ota_0,, 0x100000\nmyota_15, app, ota_15,, 0x100000\nmytest, app, test,, 0x100000\nmyota_status, data, ota,, 0x2000\n",
			"myapp 0 0 0x10000 0x100000 0;myota_0 0 16 0x110000 0x100000 0;myota_15 0 31 0x210000 0x100000 0;mytest 0 32 0x310000 0x100000 0;myota_status 1 0 0x410000 0x2000 0"},
	} {
		tb, err := ParseCSVUnverified([]byte(tc.csv), 0)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := describe(tb); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
		if err := tb.Verify(0); err != nil {
			t.Errorf("%s: Verify: %v", tc.name, err)
		}
	}
	for _, tc := range []struct{ name, csv, msg string }{
		{"test_require_type", "\n# Name,Type, SubType,Offset,Size\nihavenotype,\n", "type"},
		{"test_overlapping_offsets_fail", "\nfirst, app, factory, 0x100000, 2M\nsecond, app, ota_0,  0x200000, 1M\n", "overlap"},
		{"test_unique_name_fail", "\nfirst, app, factory, 0x100000, 1M\nfirst, app, ota_0,  0x200000, 1M\n", "Partition names must be unique"},
		{"test_bad_alignment", "\n# Name,Type, SubType,Offset,Size\napp,app, factory, 32K, 1M\n", "not aligned"},
	} {
		if _, err := ParseCSV([]byte(tc.csv), 0); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.msg)
		}
	}
}
