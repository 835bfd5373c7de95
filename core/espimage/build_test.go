package espimage

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gota-dev/gota/internal/shareddata"
)

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
