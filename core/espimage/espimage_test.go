package espimage

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gota-dev/gota/internal/shareddata"
)

func TestChipString(t *testing.T) {
	tests := []struct {
		chip Chip
		want string
	}{
		{ChipESP32, "esp32"},
		{ChipESP32S2, "esp32s2"},
		{ChipESP32C3, "esp32c3"},
		{ChipESP32S3, "esp32s3"},
		{ChipESP32C2, "esp32c2"},
		{ChipESP32C6, "esp32c6"},
		{ChipESP32H2, "esp32h2"},
		{ChipESP32P4, "esp32p4"},
		{ChipESP32C61, "esp32c61"},
		{ChipESP32C5, "esp32c5"},
		{Chip(0x0001), "unknown(0x0001)"},
		{Chip(0xABCD), "unknown(0xabcd)"},
	}
	for _, tt := range tests {
		if got := tt.chip.String(); got != tt.want {
			t.Errorf("Chip(0x%04x).String() = %q, want %q", uint16(tt.chip), got, tt.want)
		}
		if !strings.HasPrefix(tt.want, "unknown") {
			c, err := ParseChip(tt.want)
			if err != nil || c != tt.chip {
				t.Errorf("ParseChip(%q) = %v, %v; want %v", tt.want, c, err, tt.chip)
			}
		}
	}
}

func TestParseChip(t *testing.T) {
	tests := []struct {
		in      string
		want    Chip
		wantErr bool
	}{
		{"esp32", ChipESP32, false},
		{"ESP32-C3", ChipESP32C3, false},
		{" esp32_s3 ", ChipESP32S3, false},
		{"esp8266", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseChip(tt.in)
		if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("ParseChip(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), tt.in) {
			t.Errorf("ParseChip(%q) error %q does not name the input", tt.in, err)
		}
	}
}

// oracle is one line of the shared expected.jsonl.
type oracle struct {
	File           string `json:"file"`
	Chip           string `json:"chip"`
	ChipID         uint16 `json:"chip_id"`
	Segments       int    `json:"segments"`
	Entry          uint32 `json:"entry"`
	HashAppended   bool   `json:"hash_appended"`
	ChecksumOK     bool   `json:"checksum_ok"`
	SHA256OK       *bool  `json:"sha256_ok"`
	ImageSize      int    `json:"image_size"`
	MinChipRevFull uint16 `json:"min_chip_rev_full"`
	MaxChipRevFull uint16 `json:"max_chip_rev_full"`
	Valid          bool   `json:"valid"`
	Error          string `json:"error"`
	App            *struct {
		ProjectName   string `json:"project_name"`
		Version       string `json:"version"`
		IDFVer        string `json:"idf_ver"`
		Date          string `json:"date"`
		Time          string `json:"time"`
		SecureVersion uint32 `json:"secure_version"`
	} `json:"app"`
}

func readOracle(t *testing.T) []oracle {
	t.Helper()
	f, err := os.Open(filepath.Join(shareddata.Dir(t), "expected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []oracle
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var o oracle
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("expected.jsonl: %v", err)
		}
		rows = append(rows, o)
	}
	if len(rows) == 0 {
		t.Fatal("expected.jsonl is empty")
	}
	return rows
}

// TestRealFiles checks Parse and Verify against the independent reader's
// findings in expected.jsonl, field by field.
func TestRealFiles(t *testing.T) {
	for _, o := range readOracle(t) {
		t.Run(o.File, func(t *testing.T) {
			b := shareddata.File(t, o.File)
			img, err := Parse(b)
			if o.Error != "" {
				if err == nil {
					t.Fatalf("Parse succeeded, want an error mentioning %q", o.Error)
				}
				if !errors.Is(err, ErrMagic) || !strings.Contains(err.Error(), o.Error) {
					t.Fatalf("Parse error %q: want ErrMagic mentioning %q", err, o.Error)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			check := func(field string, got, want any) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %v, want %v", field, got, want)
				}
			}
			check("chip", img.Chip.String(), o.Chip)
			check("chip_id", uint16(img.Chip), o.ChipID)
			check("segments", int(img.SegmentCount), o.Segments)
			check("len(Segments)", len(img.Segments), o.Segments)
			check("entry", img.Entry, o.Entry)
			check("hash_appended", img.HashAppended, o.HashAppended)
			check("checksum_ok", img.ChecksumOK, o.ChecksumOK)
			if o.SHA256OK != nil {
				check("sha256_ok", img.DigestOK, *o.SHA256OK)
			}
			check("image_size", img.Length, o.ImageSize)
			check("min_chip_rev_full", img.MinChipRevFull, o.MinChipRevFull)
			check("max_chip_rev_full", img.MaxChipRevFull, o.MaxChipRevFull)
			check("valid", img.Verify(VerifyOptions{}) == nil, o.Valid)
			if (img.App != nil) != (o.App != nil) {
				t.Fatalf("app descriptor present = %v, want %v", img.App != nil, o.App != nil)
			}
			check("bootloader", img.Bootloader, o.App == nil)
			if o.App != nil {
				check("app.project_name", img.App.ProjectName, o.App.ProjectName)
				check("app.version", img.App.Version, o.App.Version)
				check("app.idf_ver", img.App.IDFVer, o.App.IDFVer)
				check("app.date", img.App.Date, o.App.Date)
				check("app.time", img.App.Time, o.App.Time)
				check("app.secure_version", img.App.SecureVersion, o.App.SecureVersion)
			}
			check("Length+SignatureLen <= len(b)", img.Length+img.SignatureLen <= len(b), true)
		})
	}
}

func TestSignatureAndDescriptors(t *testing.T) {
	led := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")

	// A v2 signature sector at the next 4 KiB boundary, image padded to it.
	v2 := append([]byte(nil), led...)
	for len(v2)%4096 != 0 {
		v2 = append(v2, 0xFF)
	}
	sector := bytes.Repeat([]byte{0xFF}, 4096)
	sector[0], sector[1] = 0xE7, 0x02
	v2 = append(v2, sector...)

	// A whole partition read from flash: image followed by erased flash.
	partition := append(append([]byte(nil), led...), bytes.Repeat([]byte{0xFF}, 0x10000)...)

	tests := []struct {
		name     string
		b        []byte
		kind     SignatureKind
		sigLen   int
		length   int
		bootDesc bool
	}{
		{"sbv1 from esptool", shareddata.File(t, "esp32-hello-world-signed-sbv1.bin"), SignatureV1, 80, 196528, false},
		{"sbv1 unpadded", shareddata.File(t, "esp32-hello-world-signed-sbv1.bin")[:196528+68], SignatureV1, 68, 196528, false},
		{"sbv2 synthetic", v2, SignatureV2, len(v2) - len(led), len(led), false},
		{"erased flash after image", partition, SignatureNone, 0, len(led), false},
		{"no trailer", led, SignatureNone, 0, len(led), false},
		{"bootloader v5.2", shareddata.File(t, "bootloader-esp32-v5.2.bin"), SignatureNone, 0, 26768, true},
		{"bootloader c3 (no descriptor)", shareddata.File(t, "bootloader-esp32c3.bin"), SignatureNone, 0, 17744, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Parse(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if img.Signature != tt.kind || img.SignatureLen != tt.sigLen || img.Length != tt.length {
				t.Errorf("signature %v len %d, image length %d; want %v len %d, image length %d",
					img.Signature, img.SignatureLen, img.Length, tt.kind, tt.sigLen, tt.length)
			}
			if (img.BootloaderDesc != nil) != tt.bootDesc {
				t.Errorf("BootloaderDesc = %+v, want present %v", img.BootloaderDesc, tt.bootDesc)
			}
			if err := img.Verify(VerifyOptions{}); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}

	img, err := Parse(shareddata.File(t, "bootloader-esp32-v5.2.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if d := img.BootloaderDesc; d.Version != 1 || d.IDFVer != "v5.2-dev-254-g1950b15" || d.DateTime != "Apr 25 2023 00:13:32" {
		t.Errorf("bootloader descriptor = %+v", d)
	}
}

// mutation returns a modified copy of a real image.
type mutation func(b []byte) []byte

func setU32(off int, v uint32) mutation {
	return func(b []byte) []byte { le.PutUint32(b[off:], v); return b }
}

func truncate(n int) mutation { return func(b []byte) []byte { return b[:n] } }

func xorByte(off int, v byte) mutation {
	return func(b []byte) []byte { b[off] ^= v; return b }
}

func chain(ms ...mutation) mutation {
	return func(b []byte) []byte {
		for _, m := range ms {
			b = m(b)
		}
		return b
	}
}

// Layout of esp32-ledcontroller-v1.1.bin (segment headers sit 8 bytes
// before the data offsets): data at 0x20, 0x126d4, 0x162f4, 0x20020,
// 0x47984; checksum at 0x4d5ef; digest 0x4d5f0..0x4d610.
const (
	ledSeg1Hdr   = 0x126d4 - 8
	ledSeg3Hdr   = 0x20020 - 8
	ledSeg4Hdr   = 0x47984 - 8
	ledSeg4Len   = 0x5c64
	ledChecksum  = 0x4d5ef
	ledDigest    = 0x4d5f0
	ledImageSize = 316944
)

func TestCorrupted(t *testing.T) {
	led := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	if img, err := Parse(led); err != nil || img.ChecksumOffset != ledChecksum || img.Length != ledImageSize ||
		img.Segments[4].Offset != ledSeg4Hdr+8 || len(img.Segments[4].Data) != ledSeg4Len {
		t.Fatalf("esp32-ledcontroller-v1.1.bin layout is not what this test assumes: %+v, %v", img, err)
	}
	files := map[string][]byte{
		"led":     led,
		"blink":   shareddata.File(t, "esp32s2-blink.bin"),
		"minrev":  shareddata.File(t, "esp32c3-header-min-rev.bin"),
		"boot52":  shareddata.File(t, "bootloader-esp32-v5.2.bin"),
		"signed":  shareddata.File(t, "esp32-hello-world-signed-sbv1.bin"),
		"bootard": shareddata.File(t, "bootloader-esp32-arduino.bin"),
	}
	tests := []struct {
		name    string
		file    string
		mutate  mutation
		opt     VerifyOptions
		wantErr error    // nil: must verify
		want    []string // substrings of the error message
	}{
		{"flipped bit in segment 3 data", "led", xorByte(0x20020+1000, 0x10), VerifyOptions{}, ErrChecksum,
			[]string{"checksum byte at offset 0x4d5ef", "stored 0x", "computed 0x"}},
		{"flipped stored checksum", "led", xorByte(ledChecksum, 0x01), VerifyOptions{}, ErrChecksum, []string{"0x4d5ef"}},
		{"two compensating flips pass the checksum, not the digest", "led",
			chain(xorByte(0x20020+1000, 0x10), xorByte(0x20020+2000, 0x10)), VerifyOptions{}, ErrDigest,
			[]string{"SHA-256 at offset 0x4d5f0", "stored", "computed"}},
		{"wrong digest", "led", xorByte(ledDigest+31, 0x80), VerifyOptions{}, ErrDigest, []string{"0x4d5f0"}},
		{"flipped header byte is caught by the digest", "led", xorByte(4, 0x01), VerifyOptions{}, ErrDigest, nil},
		{"empty", "led", truncate(0), VerifyOptions{}, ErrTruncated, []string{"empty"}},
		{"truncated header", "led", truncate(10), VerifyOptions{}, ErrTruncated, []string{"header", "need 24 bytes, have 10"}},
		{"truncated segment header", "led", truncate(28), VerifyOptions{}, ErrTruncated, []string{"segment 0", "header at offset 0x18"}},
		{"truncated in segment 1", "led", truncate(ledSeg1Hdr + 100), VerifyOptions{}, ErrTruncated, []string{"segment 1", "runs past the end"}},
		{"truncated before checksum", "led", truncate(ledChecksum), VerifyOptions{}, ErrTruncated, []string{"checksum byte at offset 0x4d5ef"}},
		{"truncated in digest", "led", truncate(ledDigest + 10), VerifyOptions{}, ErrTruncated, []string{"SHA-256 at offset 0x4d5f0", "need 32 bytes, have 10"}},
		{"bad magic", "led", xorByte(0, 0xFF), VerifyOptions{}, ErrMagic, []string{"magic", "got 0x16, want 0xE9"}},
		{"17 segments", "led", xorByte(1, 5^17), VerifyOptions{}, ErrSegments, []string{"header byte 1", "segment count 17", "maximum 16"}},
		{"255 segments", "led", xorByte(1, 5^255), VerifyOptions{}, ErrSegments, []string{"segment count 255"}},
		{"segment length not a multiple of 4", "led", setU32(ledSeg4Hdr+4, ledSeg4Len-2), VerifyOptions{}, ErrSegments,
			[]string{"segment 4", "offset 0x47984", "not a multiple of 4"}},
		{"segment length past the end", "led", setU32(ledSeg3Hdr+4, 0x00FFFFF0), VerifyOptions{}, ErrTruncated,
			[]string{"segment 3", "offset 0x20020", "length 0xfffff0", "runs past the end"}},
		{"segment length 16 MiB", "led", setU32(ledSeg3Hdr+4, 0x01000000), VerifyOptions{}, ErrSegments,
			[]string{"segment 3", "length 0x1000000", "16 MiB"}},
		{"partition misaligned for flash mapping", "led", nil, VerifyOptions{PartitionOffset: 0x11000}, ErrAlignment,
			[]string{"segment 0", "DROM", "0x3f400020", "0x00011020"}},
		{"partition aligned", "led", nil, VerifyOptions{PartitionOffset: 0x150000}, nil, nil},
		{"wrong chip", "blink", nil, VerifyOptions{CheckChip: true, Chip: ChipESP32}, ErrChip,
			[]string{"esp32s2", "chip ID 0x0002", "device is esp32"}},
		{"right chip", "blink", nil, VerifyOptions{CheckChip: true, Chip: ChipESP32S2}, nil, nil},
		{"revision below minimum", "minrev", nil, VerifyOptions{CheckChip: true, Chip: ChipESP32C3, ChipRev: 104}, ErrChipRev,
			[]string{"v1.4", "minimum v2.55", "min_chip_rev_full 255"}},
		{"revision at minimum", "minrev", nil, VerifyOptions{CheckChip: true, Chip: ChipESP32C3, ChipRev: 255}, nil, nil},
		{"revision above maximum", "boot52", nil, VerifyOptions{CheckChip: true, Chip: ChipESP32, ChipRev: 400}, ErrChipRev,
			[]string{"v4.0", "maximum v3.99", "max_chip_rev_full 399"}},
		{"revision at maximum", "boot52", nil, VerifyOptions{CheckChip: true, Chip: ChipESP32, ChipRev: 399}, nil, nil},
		{"max 0 means no limit", "signed", nil, VerifyOptions{CheckChip: true, Chip: ChipESP32, ChipRev: 301}, nil, nil},
		{"max 0xFFFF means no limit", "led", nil, VerifyOptions{CheckChip: true, Chip: ChipESP32, ChipRev: 9999}, nil, nil},
		{"chip not checked without CheckChip", "blink", nil, VerifyOptions{Chip: ChipESP32, ChipRev: 9999}, nil, nil},
		{"too big for partition", "led", nil, VerifyOptions{PartitionSize: ledImageSize - 1}, ErrTooBig,
			[]string{"316944 bytes", "partition holds 316943"}},
		{"exactly partition size", "led", nil, VerifyOptions{PartitionSize: ledImageSize}, nil, nil},
		{"signature counts against partition size", "signed", nil, VerifyOptions{PartitionSize: 196528 + 79}, ErrTooBig,
			[]string{"196608 bytes"}},
		{"bootloader is not an app", "bootard", nil, VerifyOptions{RequireApp: true}, ErrNotApp,
			[]string{"offset 0x20", "bootloader descriptor"}},
		{"app is an app", "led", nil, VerifyOptions{RequireApp: true}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append([]byte(nil), files[tt.file]...)
			if tt.mutate != nil {
				b = tt.mutate(b)
			}
			img, err := Parse(b)
			if err == nil {
				err = img.Verify(tt.opt)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v; want %v", err, tt.wantErr)
			}
			t.Log(err)
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// synthetic returns a small valid ESP32 app: a DROM segment holding the
// app descriptor, a DRAM segment and an IROM segment at a 64 KiB-aligned
// flash position.
func synthetic(t testing.TB) (Header, []Segment, *AppDesc) {
	h := Header{
		SPIMode: 2, SPISpeed: 0xF, FlashSize: 2, Entry: 0x40080404, WPPin: 0xEE,
		Chip: ChipESP32, MaxChipRevFull: 0xFFFF, HashAppended: true,
	}
	drom := make([]byte, 512)
	for i := AppDescSize; i < len(drom); i++ {
		drom[i] = byte(i)
	}
	dram := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	// Header 24 + (8+512) + (8+8) = 560; the IROM segment header follows,
	// so its data starts at 568, which maps to load address 0x400D0238.
	irom := bytes.Repeat([]byte{0xA5, 0x5A, 0x00, 0xFF}, 64)
	segs := []Segment{
		{LoadAddr: 0x3F400020, Data: drom},
		{LoadAddr: 0x3FFB0000, Data: dram},
		{LoadAddr: 0x400D0000 + 568, Data: irom},
	}
	app := &AppDesc{
		SecureVersion: 3, Version: "1.2.3", ProjectName: "synthetic", Time: "12:00:00",
		Date: "Jan  1 2026", IDFVer: "v5.1.3", ELFSHA256: [32]byte{1, 2, 3},
	}
	return h, segs, app
}

func TestBuild(t *testing.T) {
	h, segs, app := synthetic(t)
	b, err := Build(h, segs, app)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Verify(VerifyOptions{CheckChip: true, Chip: ChipESP32, PartitionSize: len(b), RequireApp: true}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if *img.App != *app {
		t.Errorf("app descriptor = %+v, want %+v", *img.App, *app)
	}
	if img.Length != len(b) || img.SegmentCount != 3 || img.Entry != h.Entry || img.FlashSizeName() != "4MB" ||
		img.SPIModeName() != "DIO" || img.SPISpeedName() != "80MHz" || !img.HashAppended {
		t.Errorf("header/length mismatch: %+v", img.Header)
	}
	for i, s := range img.Segments {
		if s.LoadAddr != segs[i].LoadAddr || (i > 0 && !bytes.Equal(s.Data, segs[i].Data)) {
			t.Errorf("segment %d: got %08x %d bytes", i, s.LoadAddr, len(s.Data))
		}
	}
	if segs[0].Data[0] != 0 {
		t.Error("Build modified the caller's segment 0 data")
	}

	// Misaligned IROM segment: shift its load address by 4.
	bad := append([]Segment(nil), segs...)
	bad[2].LoadAddr += 4
	bb, err := Build(h, bad, app)
	if err != nil {
		t.Fatal(err)
	}
	img, err = Parse(bb)
	if err != nil {
		t.Fatal(err)
	}
	err = img.Verify(VerifyOptions{})
	if !errors.Is(err, ErrAlignment) || !strings.Contains(err.Error(), "segment 2") || !strings.Contains(err.Error(), "IROM") {
		t.Errorf("misaligned IROM segment: got %v, want ErrAlignment naming segment 2 IROM", err)
	}
	// The same layout for a chip without an ESP32 IROM window is fine.
	h2 := h
	h2.Chip = ChipESP32C3
	if bb, err = Build(h2, bad, nil); err != nil {
		t.Fatal(err)
	}
	if img, err = Parse(bb); err != nil || img.Verify(VerifyOptions{}) != nil || img.App != nil {
		t.Errorf("C3 image with ESP32 addresses: %v", err)
	}

	// Without an appended hash.
	h.HashAppended = false
	nb, err := Build(h, segs, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(nb) != len(b)-DigestSize {
		t.Errorf("no-hash image is %d bytes, want %d", len(nb), len(b)-DigestSize)
	}
	if img, err = Parse(nb); err != nil || img.Verify(VerifyOptions{}) != nil {
		t.Errorf("no-hash image: %v", err)
	}
}

func TestBuildErrors(t *testing.T) {
	h, segs, app := synthetic(t)
	tests := []struct {
		name    string
		segs    []Segment
		app     *AppDesc
		wantErr error
		want    string
	}{
		{"17 segments", make([]Segment, 17), nil, ErrSegments, "17 segments"},
		{"odd length", []Segment{{Data: make([]byte, 6)}}, nil, ErrSegments, "segment 0: length 6"},
		{"app descriptor does not fit", []Segment{{Data: make([]byte, 252)}}, app, ErrSegments, "at least 256 bytes"},
		{"version too long", segs, &AppDesc{Version: strings.Repeat("v", 32)}, nil, "version"},
		{"project name too long", segs, &AppDesc{ProjectName: strings.Repeat("p", 40)}, nil, "project_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(h, tt.segs, tt.app)
			if err == nil {
				t.Fatal("Build succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestBuildRoundTrip re-encodes every real image from its parsed form and
// expects the very same bytes.
func TestBuildRoundTrip(t *testing.T) {
	for _, o := range readOracle(t) {
		if o.Error != "" {
			continue
		}
		t.Run(o.File, func(t *testing.T) {
			b := shareddata.File(t, o.File)
			img, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Build(img.Header, img.Segments, img.App)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, b[:img.Length]) {
				t.Errorf("Build output differs from the original (%d vs %d bytes)", len(out), img.Length)
			}
		})
	}
}

func TestSetVersion(t *testing.T) {
	orig := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	before, err := Parse(orig)
	if err != nil {
		t.Fatal(err)
	}
	out, err := SetVersion(orig, "v1.1-gota-test")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(orig) {
		t.Fatalf("length %d, want %d", len(out), len(orig))
	}
	after, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := after.Verify(VerifyOptions{CheckChip: true, Chip: ChipESP32, RequireApp: true}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if after.App.Version != "v1.1-gota-test" {
		t.Errorf("version %q", after.App.Version)
	}
	want := *before.App
	want.Version = after.App.Version
	if *after.App != want {
		t.Errorf("other descriptor fields changed: %+v", after.App)
	}
	if after.Digest == before.Digest {
		t.Error("digest unchanged")
	}
	if orig[AppDescOffset+adVersion] != '3' {
		t.Error("SetVersion modified its input")
	}
	// Only the version field, the checksum and the digest may differ.
	for i := range out {
		inVersion := i >= AppDescOffset+adVersion && i < AppDescOffset+adVersion+32
		if out[i] != orig[i] && !inVersion && i != ledChecksum && (i < ledDigest || i >= ledDigest+DigestSize) {
			t.Fatalf("byte 0x%x changed outside version, checksum and digest", i)
		}
	}

	// A whole partition: the tail is kept.
	part := append(append([]byte(nil), orig...), 0xFF, 0xFF, 0xFF, 0xFF)
	if out, err = SetVersion(part, "2"); err != nil || len(out) != len(part) || out[len(out)-1] != 0xFF {
		t.Errorf("SetVersion on a partition: %v", err)
	}

	if _, err := SetVersion(shareddata.File(t, "bootloader-esp32-arduino.bin"), "x"); !errors.Is(err, ErrNotApp) {
		t.Errorf("SetVersion on a bootloader: %v, want ErrNotApp", err)
	}
	if _, err := SetVersion(orig, strings.Repeat("x", 32)); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("SetVersion with a 32-byte version: %v, want an error naming the version", err)
	}
	if _, err := SetVersion(orig[:100], "x"); !errors.Is(err, ErrTruncated) {
		t.Errorf("SetVersion on a truncated image: %v, want ErrTruncated", err)
	}
}

// seedFiles returns the shared real images if present, without skipping
// (the fuzz target still runs on synthetic seeds when they are missing).
func seedFiles() [][]byte {
	dir := os.Getenv("GOTA_TESTDATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "testdata", "esp32")
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.bin"))
	var out [][]byte
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil {
			out = append(out, b)
		}
	}
	return out
}

func FuzzParse(f *testing.F) {
	for _, b := range seedFiles() {
		f.Add(b)
	}
	h, segs, app := synthetic(f)
	b, err := Build(h, segs, app)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:HeaderSize+SegmentHeaderSize])
	h.HashAppended = false
	if b, err = Build(h, segs[1:2], nil); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{Magic})
	f.Add([]byte{Magic, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{Magic, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x00})

	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := Parse(b)
		if err != nil {
			if img != nil {
				t.Fatal("Parse returned an image with an error")
			}
			return
		}
		if img.Length > len(b) || img.Length+img.SignatureLen > len(b) || len(img.Segments) != int(img.SegmentCount) {
			t.Fatalf("lengths out of range: Length %d SignatureLen %d len %d", img.Length, img.SignatureLen, len(b))
		}
		for i, s := range img.Segments {
			if s.Offset+len(s.Data) > img.ChecksumOffset {
				t.Fatalf("segment %d ends past the checksum", i)
			}
		}
		_ = img.Verify(VerifyOptions{CheckChip: true, ChipRev: 100, PartitionOffset: 0x10000, PartitionSize: 0x100000, RequireApp: true})
		if img.App != nil {
			out, err := SetVersion(b, "fuzz")
			if err != nil {
				t.Fatalf("SetVersion on a parsed app: %v", err)
			}
			again, err := Parse(out)
			if err != nil || !again.ChecksumOK || (again.HashAppended && !again.DigestOK) || again.App.Version != "fuzz" {
				t.Fatalf("SetVersion output does not check out: %v", err)
			}
		}
		aligned := true
		for _, s := range img.Segments {
			aligned = aligned && len(s.Data)%4 == 0
		}
		if aligned {
			out, err := Build(img.Header, img.Segments, img.App)
			if err != nil {
				t.Fatalf("Build from a parsed image: %v", err)
			}
			again, err := Parse(out)
			if err != nil || !again.ChecksumOK || (again.HashAppended && !again.DigestOK) {
				t.Fatalf("Build output does not parse cleanly: %v", err)
			}
		}
	})
}

func TestMappedRegion(t *testing.T) {
	tests := []struct {
		chip Chip
		addr uint32
		want string
	}{
		{ChipESP32, 0x3F400000, "DROM"},
		{ChipESP32, 0x3F7FFFFF, "DROM"},
		{ChipESP32, 0x3F800000, ""},
		{ChipESP32, 0x400CFFFF, ""},
		{ChipESP32, 0x400D0000, "IROM"},
		{ChipESP32, 0x403FFFFF, "IROM"},
		{ChipESP32, 0x40400000, ""},
		{ChipESP32, 0x40080000, ""}, // IRAM is copied, not mapped
		{ChipESP32S2, 0x3F000020, "DROM"},
		{ChipESP32S2, 0x40080020, "IROM"},
		{ChipESP32S2, 0x3FFB0000, ""},
		{ChipESP32C3, 0x3C000020, "DROM"},
		{ChipESP32C3, 0x42000020, "IROM"},
		{ChipESP32C3, 0x42800000, ""},
		{ChipESP32C3, 0x3FC80000, ""},
		{ChipESP32S3, 0x3DFFFFFF, "DROM"},
		{ChipESP32S3, 0x43FFFFFF, "IROM"},
		{ChipESP32C2, 0x3C400000, ""},
		{ChipESP32C2, 0x42000000, "IROM"},
		{ChipESP32C6, 0x42000020, "DROM"}, // one shared window
		{ChipESP32H2, 0x42FFFFFF, "DROM"},
		{ChipESP32P4, 0x40000000, ""}, // map not known: never checked
		{Chip(0x7777), 0x400D0000, ""},
	}
	for _, tt := range tests {
		if got := tt.chip.MappedRegion(tt.addr); got != tt.want {
			t.Errorf("%v.MappedRegion(0x%08x) = %q, want %q", tt.chip, tt.addr, got, tt.want)
		}
	}
}

func TestHeaderNames(t *testing.T) {
	tests := []struct {
		h                 Header
		mode, speed, size string
		sizeBytes         int
	}{
		{Header{SPIMode: 0, SPISpeed: 0, FlashSize: 0}, "QIO", "40MHz", "1MB", 1 << 20},
		{Header{SPIMode: 3, SPISpeed: 1, FlashSize: 4}, "DOUT", "26MHz", "16MB", 16 << 20},
		{Header{SPIMode: 5, SPISpeed: 2, FlashSize: 7}, "SLOW_READ", "20MHz", "128MB", 128 << 20},
		{Header{SPIMode: 9, SPISpeed: 7, FlashSize: 9}, "unknown(9)", "unknown(7)", "unknown(9)", 0},
	}
	for _, tt := range tests {
		if m, s, z, n := tt.h.SPIModeName(), tt.h.SPISpeedName(), tt.h.FlashSizeName(), tt.h.FlashSizeBytes(); m != tt.mode || s != tt.speed || z != tt.size || n != tt.sizeBytes {
			t.Errorf("%+v: got %s %s %s %d, want %s %s %s %d", tt.h, m, s, z, n, tt.mode, tt.speed, tt.size, tt.sizeBytes)
		}
	}
	if got := RevString(301); got != "v3.1" {
		t.Errorf("RevString(301) = %q", got)
	}
}

// Example: build a minimal image, then read it back and verify it the way
// a device would.
func ExampleBuild() {
	h := Header{SPIMode: 2, FlashSize: 2, Entry: 0x40080000, Chip: ChipESP32C3, HashAppended: true}
	b, err := Build(h, []Segment{{LoadAddr: 0x3FC80000, Data: []byte{1, 2, 3, 4}}}, nil)
	if err != nil {
		panic(err)
	}
	img, err := Parse(b)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(b), img.Chip, img.SPIModeName(), img.FlashSizeName(), img.ChecksumOK, img.DigestOK)
	fmt.Println(img.Verify(VerifyOptions{CheckChip: true, Chip: ChipESP32}))
	// Output:
	// 80 esp32c3 DIO 4MB true true
	// header bytes 12-13: image is for esp32c3 (chip ID 0x0005), device is esp32 (chip ID 0x0000): wrong chip
}

// TestHashAppendedNonZero follows esp_image_format.c (v5.1.3,
// process_appended_hash_and_sig): "if (data->image.hash_appended)" treats
// any non-zero byte 23 as "SHA-256 appended", not only the 1 esptool writes.
func TestHashAppendedNonZero(t *testing.T) {
	h, segs, app := synthetic(t)
	b, err := Build(h, segs, app)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []byte{1, 2, 0x80, 0xFF} {
		c := append([]byte(nil), b...)
		c[23] = v
		end := len(c) - DigestSize
		sum := sha256.Sum256(c[:end])
		copy(c[end:], sum[:])
		img, err := Parse(c)
		if err != nil {
			t.Fatalf("byte 23 = 0x%02x: %v", v, err)
		}
		if !img.HashAppended || !img.DigestOK || img.Length != len(c) {
			t.Errorf("byte 23 = 0x%02x: HashAppended=%v DigestOK=%v Length=%d, want true true %d",
				v, img.HashAppended, img.DigestOK, img.Length, len(c))
		}
	}
	c := append([]byte(nil), b...)
	c[23] = 0
	img, err := Parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if img.HashAppended || img.Length != len(c)-DigestSize {
		t.Errorf("byte 23 = 0: HashAppended=%v Length=%d, want false %d", img.HashAppended, img.Length, len(c)-DigestSize)
	}
}
