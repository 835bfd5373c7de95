package partition

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gota-dev/gota/internal/shareddata"
)

// arduinoOTA is what partitions-arduino-ota.bin holds.
var arduinoOTA = []Partition{
	{"nvs", TypeData, SubtypeNVS, 0x9000, 0x5000, 0},
	{"otadata", TypeData, SubtypeOTAData, 0xe000, 0x2000, 0},
	{"app0", TypeApp, SubtypeOTA0, 0x10000, 0x140000, 0},
	{"app1", TypeApp, SubtypeOTA0 + 1, 0x150000, 0x140000, 0},
	{"spiffs", TypeData, SubtypeSPIFFS, 0x290000, 0x150000, 0},
	{"version", TypeData, SubtypeNVSKeys, 0x3e0000, 0x8000, 0},
	{"coredump", TypeData, SubtypeCoredump, 0x3f0000, 0x10000, 0},
}

func TestDecodeArduinoOTA(t *testing.T) {
	raw := shareddata.File(t, "partitions-arduino-ota.bin")
	tb, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !tb.HasMD5 {
		t.Error("HasMD5 = false, want true")
	}
	if fmt.Sprint(tb.Partitions) != fmt.Sprint(arduinoOTA) {
		t.Fatalf("Partitions =\n%v\nwant\n%v", tb.Partitions, arduinoOTA)
	}
	enc, err := tb.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, raw) {
		t.Fatalf("Encode differs from the original table")
	}
	// binary -> CSV -> binary, as gen_esp32part.py would do it twice.
	wantCSV := `# ESP-IDF Partition Table
# Name, Type, SubType, Offset, Size, Flags
nvs,data,nvs,0x9000,20K,
otadata,data,ota,0xe000,8K,
app0,app,ota_0,0x10000,1280K,
app1,app,ota_1,0x150000,1280K,
spiffs,data,spiffs,0x290000,1344K,
version,data,nvs_keys,0x3e0000,32K,
coredump,data,coredump,0x3f0000,64K,
`
	if got := string(tb.CSV()); got != wantCSV {
		t.Fatalf("CSV =\n%s\nwant\n%s", got, wantCSV)
	}
	again, err := ParseCSV(tb.CSV(), DefaultTableOffset)
	if err != nil {
		t.Fatal(err)
	}
	enc2, err := again.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc2, raw) {
		t.Fatalf("binary -> CSV -> binary differs")
	}
	if err := tb.Verify(DefaultTableOffset); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	if p := tb.Find("app1"); p == nil || p.Offset != 0x150000 || p.OTAIndex() != 1 || !p.IsOTA() {
		t.Errorf("Find(app1) = %+v", p)
	}
	if p := tb.Find("missing"); p != nil {
		t.Errorf("Find(missing) = %+v", p)
	}
	slots := tb.OTASlots()
	if len(slots) != 2 || slots[0].Name != "app0" || slots[1].Name != "app1" {
		t.Errorf("OTASlots = %v", slots)
	}
	if p := tb.Factory(); p != nil {
		t.Errorf("Factory = %+v, want nil", p)
	}
	if p := tb.OTAData(); p == nil || p.Name != "otadata" {
		t.Errorf("OTAData = %+v", p)
	}
}

func TestDecodeSingleAppNoMD5(t *testing.T) {
	raw := shareddata.File(t, "partitions-singleapp-nomd5.bin")
	tb, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []Partition{
		{"factory", TypeApp, SubtypeFactory, 0x10000, 0x100000, 0},
		{"rfdata", TypeData, SubtypePHY, 0x110000, 0x40000, 0},
		{"wifidata", TypeData, SubtypeNVS, 0x150000, 0x40000, 0},
	}
	if tb.HasMD5 || fmt.Sprint(tb.Partitions) != fmt.Sprint(want) {
		t.Fatalf("Decode = %v (md5 %v), want %v without MD5", tb.Partitions, tb.HasMD5, want)
	}
	if p := tb.Factory(); p == nil || p.Name != "factory" {
		t.Errorf("Factory = %+v", p)
	}
	if tb.OTAData() != nil || len(tb.OTASlots()) != 0 {
		t.Errorf("unexpected otadata or OTA slots")
	}
	if err := tb.Verify(DefaultTableOffset); err != nil {
		t.Fatal(err)
	}
	enc, err := tb.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc[:len(raw)], raw) || len(enc) != MaxTableSize {
		t.Fatalf("Encode does not start with the original records")
	}
	back, err := Decode(enc)
	if err != nil || !back.HasMD5 || fmt.Sprint(back.Partitions) != fmt.Sprint(want) {
		t.Fatalf("re-decode = %v, %v", back, err)
	}
}

// twoOTA is ESP-IDF's partitions_two_ota.csv with the offsets left empty,
// as the reference's worked example has it.
const twoOTA = `# Name,   Type, SubType, Offset,   Size, Flags
# Note: if you have increased the bootloader size, make sure to update the offsets to avoid overlap
nvs,      data, nvs,     ,        0x4000,
otadata,  data, ota,     ,        0x2000,
phy_init, data, phy,     ,        0x1000,
factory,  app,  factory, ,        1M,
ota_0,    app,  ota_0,   ,        1M,
ota_1,    app,  ota_1,   ,        1M,
`

// twoOTAFixed is the same table as a later ESP-IDF ships it, offsets given.
const twoOTAFixed = `# Name,   Type, SubType, Offset,   Size, Flags
# Note: if you change the phy_init or app partition offset, make sure to change the offset in Kconfig.projbuild
nvs,      data, nvs,     0x9000,  0x4000
otadata,  data, ota,     0xd000,  0x2000
phy_init, data, phy,     0xf000,  0x1000
factory,  app,  factory, 0x10000,  1M
ota_0,    app,  ota_0,   ,         1M
ota_1,    app,  ota_1,   ,         1M
`

func TestWorkedExample(t *testing.T) {
	for name, csv := range map[string]string{"empty offsets": twoOTA, "given offsets": twoOTAFixed} {
		tb, err := ParseCSV([]byte(csv), DefaultTableOffset)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var offsets []string
		for _, p := range tb.Partitions {
			offsets = append(offsets, fmt.Sprintf("%s@%#x", p.Name, p.Offset))
		}
		want := "nvs@0x9000 otadata@0xd000 phy_init@0xf000 factory@0x10000 ota_0@0x110000 ota_1@0x210000"
		if got := strings.Join(offsets, " "); got != want {
			t.Errorf("%s: offsets %s, want %s", name, got, want)
		}
		b, err := tb.Encode()
		if err != nil {
			t.Fatal(err)
		}
		n := len(tb.Partitions) * EntrySize
		if got := hex.EncodeToString(b[n+16 : n+32]); got != "bf25822c0fa6d8641bd930251e06b4c4" {
			t.Errorf("%s: MD5 %s, want bf25822c0fa6d8641bd930251e06b4c4", name, got)
		}
		if sum := md5.Sum(b[:n]); !bytes.Equal(sum[:], b[n+16:n+32]) || b[n] != 0xEB || b[n+1] != 0xEB ||
			!bytes.Equal(b[n+2:n+16], bytes.Repeat([]byte{0xFF}, 14)) {
			t.Errorf("%s: MD5 record malformed: % x", name, b[n:n+32])
		}
		if len(b) != MaxTableSize || !bytes.Equal(b[n+32:], bytes.Repeat([]byte{0xFF}, MaxTableSize-n-32)) {
			t.Errorf("%s: not padded with 0xFF to 0xC00", name)
		}
	}
}

// TestParseCSV checks the rules every release from v5.3 has (v5.3's
// script: readonly, littlefs, 4 KiB app sizes, no NVS minimum). The rules
// that differ between releases are in TestCSVRulesByVersion.
func TestParseCSV(t *testing.T) {
	const hdr = "# Name, Type, SubType, Offset, Size, Flags\n"
	for _, tc := range []struct {
		name   string
		csv    string
		offset uint32 // table offset; 0 means DefaultTableOffset
		want   string // partitions as "name type sub off size flags;..." or "" when an error is wanted
		err    error  // sentinel the error must wrap
		msg    string // text the error must contain
	}{
		{name: "numbers", csv: "a,data,nvs,0x9000,0x1000\nb,data,nvs,40960,4K\nc,data,nvs,0o130000,0b1000000000000\nd,data,nvs,0xC000,1k\ne,app,factory,0x10000,1M\n",
			want: "a 1 2 0x9000 0x1000 0;b 1 2 0xa000 0x1000 0;c 1 2 0xb000 0x1000 0;d 1 2 0xc000 0x400 0;e 0 0 0x10000 0x100000 0"},
		{name: "python int forms", csv: "a,data,nvs,0x_9000,4_096\nb,data,nvs,,1 K\nc,data,nvs,,1kk\n",
			want: "a 1 2 0x9000 0x1000 0;b 1 2 0xa000 0x400 0;c 1 2 0xb000 0x100000 0"},
		{name: "names and numbers for type and subtype", csv: "a,1,2,0x9000,4K\nb,APP,OTA_3,0x10000,64K\nc,0x40,0x17,0x20000,4K\nd,data,0x99,,4K\n",
			want: "a 1 2 0x9000 0x1000 0;b 0 19 0x10000 0x10000 0;c 64 23 0x20000 0x1000 0;d 1 153 0x21000 0x1000 0"},
		{name: "trailing fields omitted, empty data subtype is undefined", csv: "a,data,,,4K\n",
			want: "a 1 6 0x9000 0x1000 0"},
		{name: "extra fields ignored, blank lines and comments skipped", csv: "\n   \n# c\n  # c2\na,data,nvs,,4K,,x,y\n",
			want: "a 1 2 0x9000 0x1000 0"},
		{name: "flags", csv: "a,data,nvs,,4K,encrypted\nb,data,nvs,,4K,readonly:encrypted\nc,data,nvs,,4K,:\n",
			want: "a 1 2 0x9000 0x1000 1;b 1 2 0xa000 0x1000 3;c 1 2 0xb000 0x1000 0"},
		{name: "auto offsets align app to 64K, data to 4K", csv: "a,data,nvs,,0x800\nb,data,nvs,,4K\nc,app,factory,,4K\nd,data,nvs,,4K\n",
			want: "a 1 2 0x9000 0x800 0;b 1 2 0xa000 0x1000 0;c 0 0 0x10000 0x1000 0;d 1 2 0x11000 0x1000 0"},
		{name: "custom type aligns like data", csv: "a,data,nvs,,0x800\nb,0x40,0,,4K\n",
			want: "a 1 2 0x9000 0x800 0;b 64 0 0xa000 0x1000 0"},
		{name: "table offset moves the start", csv: "a,data,nvs,,4K\n", offset: 0x10000,
			want: "a 1 2 0x11000 0x1000 0"},
		{name: "negative size is the end address", csv: "a,data,nvs,0x9000,-0xb000\n",
			want: "a 1 2 0x9000 0x2000 0"},
		{name: "CRLF and BOM", csv: "\uFEFF# x\r\na,data,nvs,,4K\r\n",
			want: "a 1 2 0x9000 0x1000 0"},
		{name: "16-byte name", csv: "abcdefghijklmnop,data,nvs,,4K\n",
			want: "abcdefghijklmnop 1 2 0x9000 0x1000 0"},

		{name: "empty type", csv: hdr + "a,,nvs,,4K\n", err: ErrSyntax, msg: "Error at line 2: Field 'type' can't be left empty."},
		{name: "unknown type", csv: hdr + "a,dat,nvs,,4K\n", err: ErrSyntax, msg: "Error at line 2: Value 'dat' is not valid. Known keywords: app, data"},
		{name: "unknown data subtype", csv: hdr + "a,data,nv,,4K\n", err: ErrSyntax,
			msg: "Error at line 2: Value 'nv' is not valid. Known keywords: ota, phy, nvs, coredump, nvs_keys, efuse, undefined, esphttpd, fat, spiffs, littlefs"},
		{name: "unknown app subtype", csv: hdr + "a,app,ota_16,,64K\n", err: ErrSyntax, msg: "Known keywords: factory, test, ota_0, ota_1,"},
		{name: "custom type takes no subtype names", csv: hdr + "a,0x40,nvs,,4K\n", err: ErrSyntax, msg: "Error at line 2: Invalid field value nvs"},
		{name: "empty app subtype", csv: hdr + "a,app,,,64K\n", err: ErrSyntax, msg: "Error at line 2: App partition cannot have an empty subtype"},
		{name: "bad offset", csv: hdr + "a,data,nvs,0x9000z,4K\n", err: ErrSyntax, msg: "Error at line 2: Invalid field value 0x9000z"},
		{name: "leading zero", csv: hdr + "a,data,nvs,09000,4K\n", err: ErrSyntax, msg: "Invalid field value 09000"},
		{name: "empty size", csv: hdr + "a,data,nvs,0x9000\n", err: ErrSyntax, msg: "Error at line 2: Size field can't be empty"},
		{name: "unknown flag", csv: hdr + "a,data,nvs,,4K,encrypted: readonly\n", err: ErrFlags, msg: "Error at line 2: CSV flag column contains unknown flag ' readonly'"},
		{name: "unset variable", csv: hdr + "$PART,data,nvs,,4K\n", err: ErrSyntax, msg: "Error at line 2: unknown variable 'PART'"},
		{name: "first below table end", csv: hdr + "a,data,nvs,0x8000,4K\n", err: ErrOverlap,
			msg: "CSV Error at line 2: Partitions overlap. Partition sets offset 0x8000. But partition table occupies the whole sector 0x8000. Use a free offset 0x9000 or higher."},
		{name: "overlap with previous", csv: hdr + "a,data,nvs,0x9000,8K\nb,data,nvs,0xa000,4K\n", err: ErrOverlap,
			msg: "CSV Error at line 3: Partitions overlap. Partition sets offset 0xa000. Previous partition ends 0xb000"},
		{name: "app offset misaligned", csv: hdr + "a,app,factory,0x18000,64K\n", err: ErrAlign,
			msg: "Error at line 2: Partition a invalid: Offset 0x18000 is not aligned to 0x10000"},
		{name: "data offset misaligned", csv: hdr + "a,data,nvs,0x9800,4K\n", err: ErrAlign,
			msg: "Error at line 2: Partition a invalid: Offset 0x9800 is not aligned to 0x1000"},
		{name: "app size misaligned", csv: hdr + "a,app,factory,,0x1800\n", err: ErrAlign,
			msg: "Error at line 2: Partition a invalid: Size 0x1800 is not aligned to 0x1000"},
		{name: "data size need not align", csv: hdr + "a,data,nvs,,0x1800\n", want: "a 1 2 0x9000 0x1800 0"},
		{name: "duplicate names", csv: hdr + "a,data,nvs,,4K\nb,data,nvs,,4K\na,data,phy,,4K\n", err: ErrDuplicate,
			msg: "Error at line 4: Partition names must be unique (\"a\" is also at line 2)"},
		{name: "two otadata", csv: hdr + "o1,data,ota,,8K\no2,data,ota,,8K\n", err: ErrOTAData,
			msg: "Error at line 3: Found multiple otadata partitions. Only one partition can be defined with type=\"data\"(1) and subtype=\"ota\"(0)."},
		{name: "otadata size", csv: hdr + "otadata,data,ota,,4K\n", err: ErrOTAData, msg: "Error at line 2: otadata partition must have size = 0x2000"},
		{name: "name too long", csv: hdr + "abcdefghijklmnopq,data,nvs,,4K\n", err: ErrName,
			msg: "Error at line 2: Partition abcdefghijklmnopq invalid: name is 17 bytes, longer than 16"},
		{name: "readonly otadata", csv: hdr + "otadata,data,ota,,8K,readonly\n", err: ErrFlags,
			msg: "'otadata' partition of type 1 and subtype 0 is always read-write and cannot be read-only"},
		{name: "type too big", csv: hdr + "a,256,0,,4K\n", err: ErrRange, msg: "Error at line 2: type 256 (0x100) does not fit in 0..0xff"},
		{name: "subtype too big", csv: hdr + "a,data,0x100,,4K\n", err: ErrRange, msg: "Error at line 2: subtype 256"},
		{name: "size too big", csv: hdr + "a,data,nvs,,4096M\n", err: ErrRange, msg: "Error at line 2: size 4294967296"},
		{name: "negative size past offset", csv: hdr + "a,data,nvs,0x9000,-0x1000\n", err: ErrRange, msg: "Error at line 2: size -"},
		{name: "huge number", csv: hdr + "a,data,nvs,,99999999999999999999\n", err: ErrRange, msg: "Error at line 2: Value '99999999999999999999' out of range"},
		{name: "not UTF-8", csv: "a,data,nvs,,4K\xff\n", err: ErrSyntax, msg: "not valid UTF-8"},
	} {
		off := tc.offset
		if off == 0 {
			off = DefaultTableOffset
		}
		tb, err := ParseCSVFor([]byte(tc.csv), off, IDFv53)
		if tc.want != "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if got := describe(tb); got != tc.want {
				t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error, got %s", tc.name, describe(tb))
			continue
		}
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %q (is %v: %v), want %q wrapping %v", tc.name, err, tc.err, errors.Is(err, tc.err), tc.msg, tc.err)
		}
	}
}

func describe(tb *Table) string {
	var s []string
	for _, p := range tb.Partitions {
		s = append(s, fmt.Sprintf("%s %d %d %#x %#x %d", p.Name, p.Type, p.Subtype, p.Offset, p.Size, p.Flags))
	}
	return strings.Join(s, ";")
}

func TestVerify(t *testing.T) {
	ok := func() []Partition {
		return []Partition{
			{"nvs", TypeData, SubtypeNVS, 0x9000, 0x4000, 0},
			{"otadata", TypeData, SubtypeOTAData, 0xd000, 0x2000, 0},
			{"ota_0", TypeApp, SubtypeOTA0, 0x10000, 0x100000, 0},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(p []Partition) []Partition
		err    error
		msg    string
	}{
		{"valid", func(p []Partition) []Partition { return p }, nil, ""},
		{"below table", func(p []Partition) []Partition { p[0].Offset = 0x8000; return p }, ErrBelowTable,
			"partition 0 (\"nvs\"): Partition offset 0x8000 is below 0x9000"},
		{"overlap out of order", func(p []Partition) []Partition {
			return append(p, Partition{"late", TypeData, SubtypeNVS, 0xa000, 0x1000, 0})
		}, ErrOverlap, "partition 3 (\"late\"): Partition at 0xa000 overlaps 0x9000-0xcfff (partition 0 (\"nvs\"))"},
		{"misaligned", func(p []Partition) []Partition { p[2].Offset = 0x11000; return p }, ErrAlign, "Offset 0x11000 is not aligned to 0x10000"},
		{"duplicate", func(p []Partition) []Partition { p[1].Name = "nvs"; return p }, ErrDuplicate, "Partition names must be unique"},
		{"otadata size", func(p []Partition) []Partition { p[1].Size = 0x3000; return p }, ErrOTAData, "otadata partition must have size = 0x2000"},
		{"long name", func(p []Partition) []Partition { p[0].Name = strings.Repeat("n", 17); return p }, ErrName, "longer than 16"},
	} {
		tb := &Table{Partitions: tc.change(ok())}
		err := tb.VerifyFor(DefaultTableOffset, IDFv53)
		if tc.err == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, tc.err) || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want %q wrapping %v", tc.name, err, tc.msg, tc.err)
		}
	}
}

func entry(name string, typ Type, sub uint8, off, size, flags uint32) []byte {
	b, _ := (&Table{Partitions: []Partition{{name, typ, sub, off, size, flags}}}).Encode()
	return b[:EntrySize]
}

func TestDecodeErrors(t *testing.T) {
	good := append(entry("nvs", TypeData, SubtypeNVS, 0x9000, 0x4000, 0), entry("app", TypeApp, SubtypeFactory, 0x10000, 0x10000, 0)...)
	sum := md5.Sum(good)
	md5rec := append(append([]byte{0xEB, 0xEB}, bytes.Repeat([]byte{0xFF}, 14)...), sum[:]...)
	ff := bytes.Repeat([]byte{0xFF}, EntrySize)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	badSum := cat(good, md5rec, ff)
	badSum[len(good)+20] ^= 0xFF
	wrongSum := append([]byte(nil), sum[:]...)
	wrongSum[4] ^= 0xFF

	badMagic := cat(good, ff)
	badMagic[EntrySize+1] = 0x51

	many := bytes.Repeat(entry("x", TypeData, SubtypeNVS, 0x9000, 0x1000, 0), MaxTableSize/EntrySize+1)

	for _, tc := range []struct {
		name string
		in   []byte
		err  error
		msg  string
	}{
		{"bad md5", badSum, ErrMD5, fmt.Sprintf("record 2 at byte 0x40: MD5 checksums don't match! (computed: 0x%s, parsed: 0x%s)",
			hex.EncodeToString(sum[:]), hex.EncodeToString(wrongSum))},
		{"bad magic", badMagic, ErrMagic, "record 1 at byte 0x20: Invalid magic bytes (aa 51, want aa 50)"},
		{"partial record", cat(good, []byte{0xAA, 0x50, 1}), ErrLength, "record 2 at byte 0x40 has 3 bytes"},
		{"second md5", cat(good, md5rec, md5rec, ff), ErrMD5, "record 3 at byte 0x60: only one MD5 record is allowed"},
		{"no end within 0xC00", many, ErrLength, "missing an end-of-table marker within the first 0xc00 bytes"},
		{"label not UTF-8", cat(entry("a\xffb", TypeData, 1, 0x9000, 0x1000, 0), ff), ErrName, "record 0 at byte 0x0: label"},
	} {
		_, err := Decode(tc.in)
		if err == nil || !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want %q wrapping %v", tc.name, err, tc.msg, tc.err)
		}
	}

	// Trailing bytes after the terminator are ignored, as the script does.
	if tb, err := Decode(cat(good, md5rec, ff, []byte{1, 2, 3})); err != nil || len(tb.Partitions) != 2 || !tb.HasMD5 {
		t.Errorf("terminated table with trailing bytes: %v, %v", tb, err)
	}
	// Empty input is an empty table.
	if tb, err := Decode(nil); err != nil || len(tb.Partitions) != 0 {
		t.Errorf("Decode(nil) = %v, %v", tb, err)
	}
}

func TestDecodeKeepsFlagsAndLongLabels(t *testing.T) {
	in := &Table{Partitions: []Partition{
		{"sixteen-byte-lbl", TypeData, SubtypeNVS, 0x9000, 0x1000, FlagEncrypted | FlagReadonly | 1<<7},
	}}
	b, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out.Partitions) != fmt.Sprint(in.Partitions) {
		t.Fatalf("round trip %v, want %v", out.Partitions, in.Partitions)
	}
	// CSV writes named flags only, as the script does.
	if got := string(out.CSV()); !strings.HasSuffix(got, "sixteen-byte-lbl,data,nvs,0x9000,4K,encrypted:readonly\n") {
		t.Fatalf("CSV = %q", got)
	}
}

func TestEncodeLimits(t *testing.T) {
	var ps []Partition
	for i := 0; i < 95; i++ {
		ps = append(ps, Partition{Name: fmt.Sprint(i), Type: TypeData, Subtype: SubtypeNVS, Offset: 0x9000 + uint32(i)*0x1000, Size: 0x1000})
	}
	if _, err := (&Table{Partitions: ps[:94]}).Encode(); err != nil {
		t.Fatalf("94 entries: %v", err)
	}
	_, err := (&Table{Partitions: ps}).Encode()
	if !errors.Is(err, ErrLength) || !strings.Contains(err.Error(), "Binary partition table length (3072) longer than max") {
		t.Fatalf("95 entries: %v", err)
	}
	_, err = (&Table{Partitions: []Partition{{Name: strings.Repeat("x", 17)}}}).Encode()
	if !errors.Is(err, ErrName) {
		t.Fatalf("long name: %v", err)
	}
}

func TestCSVFormat(t *testing.T) {
	tb := &Table{Partitions: []Partition{
		{"a", TypeApp, SubtypeTest, 0x10000, 0, 0},
		{"b", Type(0x40), 0x17, 0x20000, 0x1234, 0},
		{"c", TypeData, SubtypeLittleFS, 0x30000, 0x300000, FlagEncrypted},
		{"d", TypeData, 0x99, 0x40000, 0xc00, 0},
	}}
	want := "# ESP-IDF Partition Table\n# Name, Type, SubType, Offset, Size, Flags\n" +
		"a,app,test,0x10000,0M,\nb,64,23,0x20000,0x1234,\nc,data,littlefs,0x30000,3M,encrypted\nd,data,153,0x40000,3K,\n"
	if got := string(tb.CSV()); got != want {
		t.Fatalf("CSV =\n%s\nwant\n%s", got, want)
	}
}

func TestDetect(t *testing.T) {
	for in, want := range map[string]bool{
		"\xaa\x50rest": true, "\xeb\xebrest": true, "# csv": false, "nvs,data": false, "\xaa": false, "": false,
	} {
		if got := Detect([]byte(in)); got != want {
			t.Errorf("Detect(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestOTASlotsStopAtGap(t *testing.T) {
	tb := &Table{Partitions: []Partition{
		{"b", TypeApp, SubtypeOTA0 + 1, 0x20000, 0x10000, 0},
		{"a", TypeApp, SubtypeOTA0, 0x10000, 0x10000, 0},
		{"d", TypeApp, SubtypeOTA0 + 3, 0x40000, 0x10000, 0},
		{"f", TypeApp, SubtypeFactory, 0x50000, 0x10000, 0},
	}}
	slots := tb.OTASlots()
	if len(slots) != 2 || slots[0].Name != "a" || slots[1].Name != "b" {
		t.Fatalf("OTASlots = %v, want a, b (ota_3 is beyond the gap)", slots)
	}
	if f := tb.Factory(); f == nil || f.Name != "f" {
		t.Fatalf("Factory = %v", f)
	}
}

func FuzzDecode(f *testing.F) {
	seed, _ := ParseCSV([]byte(twoOTA), DefaultTableOffset)
	b, _ := seed.Encode()
	f.Add(b)
	f.Add(b[:96])
	f.Add([]byte{0xEB, 0xEB})
	f.Add(bytes.Repeat([]byte{0xFF}, 64))
	f.Fuzz(func(t *testing.T, in []byte) {
		tb, err := Decode(in)
		if err != nil {
			return
		}
		enc, err := tb.Encode()
		if err != nil {
			if len(tb.Partitions) < 95 {
				t.Fatalf("Encode of a decoded table: %v", err)
			}
			return
		}
		back, err := Decode(enc)
		if err != nil || fmt.Sprint(back.Partitions) != fmt.Sprint(tb.Partitions) {
			t.Fatalf("re-decode: %v\n%v\n%v", err, back, tb)
		}
		tb.Verify(DefaultTableOffset)
		ParseCSV(tb.CSV(), DefaultTableOffset)
	})
}

func FuzzParseCSV(f *testing.F) {
	f.Add([]byte(twoOTA), uint32(DefaultTableOffset), uint8(0))
	f.Add([]byte(twoOTAFixed), uint32(0x10000), uint8(1))
	f.Add([]byte("a,data,nvs,0x9000,-0xb000,encrypted:readonly\nb,0x40,0x3,,1kk\n"), uint32(DefaultTableOffset), uint8(0))
	f.Add([]byte("$X,app,,,\n"), uint32(0), uint8(5))
	f.Add([]byte("pt,partition_table,primary,,\nb,bootloader,ota,,4K\nt,app,tee_0,,64K\n"), uint32(DefaultTableOffset), uint8(4))
	versions := []IDFVersion{IDFNewest, IDFv513, IDFv514, IDFv52, IDFv53, IDFv54, IDFv55}
	f.Fuzz(func(t *testing.T, in []byte, tableOffset uint32, vi uint8) {
		v := versions[int(vi)%len(versions)]
		tb, err := ParseCSVFor(in, tableOffset, v)
		if err != nil {
			return
		}
		enc, err := tb.Encode()
		if err != nil {
			return // more entries than fit
		}
		for _, p := range tb.Partitions {
			if strings.HasPrefix(p.Name, "$") {
				return // indented "  $X,..." parses, but written back "$X" reads as a variable (as in the script)
			}
		}
		back, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(ParseCSV)): %v", err)
		}
		again, err := ParseCSVFor(back.CSVFor(v), tableOffset, v)
		if err != nil {
			t.Fatalf("ParseCSV(CSV) of a valid %s table: %v\n%s", v, err, back.CSVFor(v))
		}
		enc2, err := again.Encode()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("%s CSV round trip differs: %v\n%s", v, err, back.CSVFor(v))
		}
	})
}

// The cases below come from ESP-IDF's own host tests for gen_esp32part.py
// (components/partition_table/test_gen_esp32part_host/gen_esp32part_tests.py).

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
