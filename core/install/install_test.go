package install

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/partition"
	"github.com/gota-dev/gota/internal/shareddata"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	return shareddata.File(t, name)
}

// merge lays parts out as esptool merge_bin does: 0xFF between them,
// starting at flash offset 0.
func merge(parts ...Region) []byte {
	var out []byte
	for _, p := range parts {
		for uint32(len(out)) < p.Offset {
			out = append(out, 0xFF)
		}
		out = append(out[:p.Offset], p.Data...)
	}
	return out
}

// otadataInit is what ESPHome's factory image carries at 0xe000
// (boot_app0.bin): two erased otadata sectors.
func esp32Merged(t testing.TB) ([]byte, []byte) {
	boot := readTestdata(t, "bootloader-esp32-arduino.bin")
	table := readTestdata(t, "partitions-arduino-ota.bin")
	app := readTestdata(t, "esp32-ledcontroller-v1.0.bin")
	return merge(Region{0x1000, boot}, Region{0x8000, table}, Region{0x10000, app}), app
}

func TestSplitMerged(t *testing.T) {
	b, app := esp32Merged(t)
	p, err := SplitMerged("factory.bin", b)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		off   uint32
		kind  Kind
		label string
	}{{0x1000, KindBootloader, ""}, {0x8000, KindPartitionTable, ""}, {0x10000, KindApp, "app0"}}
	if len(p.Parts) != len(want) {
		for _, pt := range p.Parts {
			t.Logf("0x%x %s", pt.Offset, pt.Describe())
		}
		t.Fatalf("%d parts, want %d", len(p.Parts), len(want))
	}
	for i, w := range want {
		pt := p.Parts[i]
		if pt.Offset != w.off || pt.Kind != w.kind || pt.Label != w.label || pt.Err != nil {
			t.Errorf("part %d: 0x%x %s label %q err %v; want 0x%x %s %q", i, pt.Offset, pt.Kind, pt.Label, pt.Err, w.off, w.kind, w.label)
		}
	}
	if a := p.App(); a == nil || !bytes.Equal(a.Data, app) {
		t.Errorf("app part is not the app image")
	}
	if len(p.Writes) != 1 || p.Writes[0].Offset != 0 || !bytes.Equal(p.Writes[0].Data, b) {
		t.Errorf("writes: want the whole merged image at 0")
	}
	if c, ok := p.Chip(); !ok || c != espimage.ChipESP32 {
		t.Errorf("Chip() = %v, %v", c, ok)
	}
	if err := p.Check(Target{Chip: espimage.ChipESP32, FlashSize: 4 << 20}); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestSplitMergedUnlisted(t *testing.T) {
	b, _ := esp32Merged(t)
	b = merge(Region{0, b}, Region{0x3f8000, []byte("stray")})
	p, err := SplitMerged("x", b)
	if err != nil {
		t.Fatal(err)
	}
	last := p.Parts[len(p.Parts)-1]
	if last.Label != "coredump" || !bytes.HasSuffix(last.Data, []byte("stray")) {
		t.Errorf("last part: %d bytes in %q, want stray bytes in coredump", len(last.Data), last.Label)
	}
	b = merge(Region{0, b[:0x150000]}, Region{0x401000, []byte("beyond")})
	p, err = SplitMerged("x", b)
	if err != nil {
		t.Fatal(err)
	}
	last = p.Parts[len(p.Parts)-1]
	if last.Name != "unlisted" || last.Offset != 0x401000 {
		t.Errorf("last part %s at 0x%x, want unlisted at 0x401000", last.Name, last.Offset)
	}
	err = p.Check(Target{Chip: espimage.ChipESP32, FlashSize: 4 << 20})
	if !errors.Is(err, ErrFlashSize) {
		t.Errorf("Check on 4 MB: %v, want ErrFlashSize", err)
	}
}

func TestNotMerged(t *testing.T) {
	app := readTestdata(t, "esp32-ledcontroller-v1.0.bin")
	boot := readTestdata(t, "bootloader-esp32-arduino.bin")
	for name, b := range map[string][]byte{
		"app":               app,
		"bootloader alone":  boot,
		"empty":             nil,
		"erased":            bytes.Repeat([]byte{0xFF}, 0x10000),
		"bootloader at 0x1": merge(Region{0x1, boot}, Region{0x8000, readTestdata(t, "partitions-arduino-ota.bin")}),
	} {
		if _, err := SplitMerged(name, b); !errors.Is(err, ErrNotMerged) {
			t.Errorf("%s: %v, want ErrNotMerged", name, err)
		}
		if IsMerged(b) {
			t.Errorf("%s: IsMerged", name)
		}
	}
}

// smallTable is a table whose factory app partition is 64 KiB.
func smallTable(t testing.TB) []byte {
	tb := &partition.Table{Partitions: []partition.Partition{
		{Name: "nvs", Type: partition.TypeData, Subtype: partition.SubtypeNVS, Offset: 0x9000, Size: 0x6000},
		{Name: "factory", Type: partition.TypeApp, Subtype: partition.SubtypeFactory, Offset: 0x10000, Size: 0x10000},
	}}
	b, err := tb.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheck(t *testing.T) {
	boot := readTestdata(t, "bootloader-esp32-arduino.bin")
	bootC3 := readTestdata(t, "bootloader-esp32c3.bin")
	table := readTestdata(t, "partitions-arduino-ota.bin")
	app := readTestdata(t, "esp32-ledcontroller-v1.0.bin")
	s2 := readTestdata(t, "esp32s2-blink.bin")
	badTable := bytes.Clone(table)
	badTable[0x70] ^= 1 // inside the MD5 record's digest
	esp32 := Target{Chip: espimage.ChipESP32, FlashSize: 4 << 20}
	parts := func(rs ...Region) *Plan {
		var ps []Part
		for _, r := range rs {
			ps = append(ps, Classify("f", r.Offset, r.Data))
		}
		return FromParts("parts", ps)
	}
	tests := []struct {
		name   string
		plan   *Plan
		target Target
		want   error  // nil: valid
		text   string // in the message
	}{
		{"valid parts", parts(Region{0x1000, boot}, Region{0x8000, table}, Region{0x10000, app}), esp32, nil, ""},
		{"app alone", parts(Region{0x10000, app}), esp32, nil, ""},
		{"c3 bootloader on esp32", parts(Region{0x1000, bootC3}), esp32, ErrWrongChip, "for esp32c3, the device is esp32"},
		{"s2 app on esp32", parts(Region{0x10000, s2}), esp32, ErrWrongChip, "esp32s2"},
		{"esp32 bootloader at 0x0", parts(Region{0x0, boot}), esp32, ErrBootloaderOffset, "loads it from 0x1000"},
		{"c3 bootloader at 0x1000", parts(Region{0x1000, bootC3}), Target{Chip: espimage.ChipESP32C3}, ErrBootloaderOffset, "from 0x0"},
		{"app where the bootloader goes", parts(Region{0x1000, app}), esp32, ErrBootloaderOffset, "expects the bootloader there"},
		{"bad table", parts(Region{0x8000, badTable}), esp32, ErrBadTable, "MD5"},
		{"app between partitions", parts(Region{0x8000, table}, Region{0x20000, app}), esp32, ErrAppPlacement, "0x20000"},
		{"app too big", parts(Region{0x8000, smallTable(t)}, Region{0x10000, app}), esp32, ErrAppTooBig, "partition factory"},
		{"past flash", parts(Region{0x10000, app}), Target{Chip: espimage.ChipESP32, FlashSize: 0x40000}, ErrFlashSize, "256K"},
		{"overlap", parts(Region{0x8000, table}, Region{0x8000, app[:16]}), esp32, ErrOverlap, "overlaps"},
		{"misaligned", parts(Region{0x10010, app}), esp32, ErrAlign, "0x10010"},
		{"empty", FromParts("parts", nil), esp32, ErrEmpty, ""},
		{"table past a 2 MB flash", parts(Region{0x8000, table}), Target{Chip: espimage.ChipESP32, FlashSize: 2 << 20}, ErrFlashSize, "partition app1 at 0x150000 ends at 0x290000, past the end of the 2M flash"},
		{"bootloader for a larger flash", parts(Region{0x1000, boot8MB(t, boot)}), esp32, ErrFlashSize, "built for 8MB flash"},
		{"corrupt app", parts(Region{0x10000, app[:1000]}), esp32, ErrBadImage, "app"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.plan.Check(tc.target)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check: %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("message %q lacks %q", err, tc.text)
			}
		})
	}
}

// boot8MB returns the bootloader with its header's flash size set to
// 8 MB (byte 3, high nibble 3), as esptool --flash_size 8MB writes it.
// The checksum covers segment data only; the appended SHA-256 is
// recomputed so the image stays valid.
func boot8MB(t *testing.T, boot []byte) []byte {
	b := bytes.Clone(boot)
	b[3] = b[3]&0x0F | 3<<4
	img, err := espimage.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if img.HashAppended {
		n := img.ChecksumOffset + 1
		sum := sha256.Sum256(b[:n])
		copy(b[n:], sum[:])
	}
	return b
}

func TestParsePartSpec(t *testing.T) {
	tests := []struct {
		in   string
		file string
		off  uint32
		err  string
	}{
		{"boot.bin@0x1000", "boot.bin", 0x1000, ""},
		{"a@b.bin@65536", "a@b.bin", 0x10000, ""},
		{"app.bin", "", 0, "want FILE@OFFSET"},
		{"@0x0", "", 0, "no file name"},
		{"x@0x1_0000_0000", "", 0, "not a number"},
		{"x@ten", "", 0, "not a number"},
	}
	for _, tc := range tests {
		f, o, err := ParsePartSpec(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || f != tc.file || o != tc.off {
			t.Errorf("%q: %q 0x%x %v", tc.in, f, o, err)
		}
	}
}

const manifest = `{
  "name": "LED controller", "version": "1.0",
  "new_install_prompt_erase": true,
  "builds": [
    {"chipFamily": "ESP32-C3", "parts": [{"path": "c3.bin", "offset": 0}]},
    {"chipFamily": "ESP32", "parts": [
      {"path": "boot.bin", "offset": 4096},
      {"path": "table.bin", "offset": "0x8000"},
      {"path": "app.bin", "offset": 65536}]}
  ]}`

func TestManifest(t *testing.T) {
	files := map[string][]byte{
		"boot.bin":  readTestdata(t, "bootloader-esp32-arduino.bin"),
		"table.bin": readTestdata(t, "partitions-arduino-ota.bin"),
		"app.bin":   readTestdata(t, "esp32-ledcontroller-v1.0.bin"),
	}
	if !LooksLikeManifest([]byte(manifest)) || LooksLikeManifest(files["app.bin"]) {
		t.Fatal("LooksLikeManifest")
	}
	m, err := ParseManifest([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	if !m.NewInstallPromptErase || m.Name != "LED controller" {
		t.Errorf("manifest fields: %+v", m)
	}
	b, err := m.Build(espimage.ChipESP32)
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Plan(func(path string) ([]byte, error) {
		if d, ok := files[path]; ok {
			return d, nil
		}
		return nil, os.ErrNotExist
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Writes) != 3 || p.Writes[1].Offset != 0x8000 {
		t.Fatalf("writes %+v", p.Writes)
	}
	if err := p.Check(Target{Chip: espimage.ChipESP32, FlashSize: 4 << 20}); err != nil {
		t.Error(err)
	}
	_, err = m.Build(espimage.ChipESP32S3)
	if !errors.Is(err, ErrNoBuild) || !strings.Contains(err.Error(), "ESP32-C3, ESP32, none for the ESP32-S3") {
		t.Errorf("S3: %v", err)
	}
	if _, err := b.Plan(func(string) ([]byte, error) { return nil, os.ErrNotExist }); err == nil || !strings.Contains(err.Error(), "boot.bin") {
		t.Errorf("missing part: %v", err)
	}
}

func TestManifestErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{`, "manifest:"},
		{`{"name":"x"}`, `"builds" is missing`},
		{`{"builds":[{"parts":[{"path":"a","offset":0}]}]}`, `"chipFamily" is missing`},
		{`{"builds":[{"chipFamily":"ESP32"}]}`, `"parts" is missing`},
		{`{"builds":[{"chipFamily":"ESP32","parts":[{"offset":0}]}]}`, `"path" is missing`},
		{`{"builds":[{"chipFamily":"ESP32","parts":[{"path":"a","offset":"0xZ"}]}]}`, `not a number`},
		{`{"builds":[{"chipFamily":"ESP32","parts":[{"path":"a","offset":-1}]}]}`, `not a number`},
	}
	for _, tc := range tests {
		_, err := ParseManifest([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestChipFamily(t *testing.T) {
	for c, want := range map[espimage.Chip]string{
		espimage.ChipESP32: "ESP32", espimage.ChipESP32S3: "ESP32-S3", espimage.ChipESP32C3: "ESP32-C3", espimage.ChipESP32S2: "ESP32-S2",
	} {
		if got := ChipFamily(c); got != want {
			t.Errorf("ChipFamily(%v) = %q, want %q", c, got, want)
		}
		if back, err := ParseChipFamily(want); err != nil || back != c {
			t.Errorf("ParseChipFamily(%q) = %v, %v", want, back, err)
		}
	}
}

func FuzzSplitMerged(f *testing.F) {
	b, _ := esp32Merged(f)
	f.Add(b[:0x9000])
	f.Add(b[0x1000:0x9000])
	f.Add([]byte{0xE9})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := SplitMerged("f", b)
		if err != nil {
			return
		}
		for _, pt := range p.Parts {
			if pt.End() > uint64(len(b)) {
				t.Fatalf("part %s at 0x%x runs past the input", pt.Name, pt.Offset)
			}
		}
		_ = p.Check(Target{Chip: espimage.ChipESP32, FlashSize: 4 << 20})
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(manifest))
	f.Add([]byte(`{"builds":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		for _, bd := range m.Builds {
			if bd.ChipFamily == "" || len(bd.Parts) == 0 {
				t.Fatal("accepted a build without chip or parts")
			}
		}
	})
}
