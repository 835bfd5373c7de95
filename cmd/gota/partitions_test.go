package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/partition"
	"github.com/gota-dev/gota/internal/shareddata"
)

func runCmd(f func(stdout, stderr *bytes.Buffer, args []string) error, args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := f(&out, &errb, args)
	return out.String(), errb.String(), err
}

func showCmd(o, e *bytes.Buffer, a []string) error    { return partitionsShow(o, e, a) }
func convertCmd(o, e *bytes.Buffer, a []string) error { return partitionsConvert(o, e, a) }

const arduinoCSV = `# ESP-IDF Partition Table
# Name, Type, SubType, Offset, Size, Flags
nvs,data,nvs,0x9000,20K,
otadata,data,ota,0xe000,8K,
app0,app,ota_0,0x10000,1280K,
app1,app,ota_1,0x150000,1280K,
spiffs,data,spiffs,0x290000,1344K,
version,data,nvs_keys,0x3e0000,32K,
coredump,data,coredump,0x3f0000,64K,
`

func TestPartitionsConvertRoundTrip(t *testing.T) {
	bin := filepath.Join(shareddata.Dir(t), "partitions-arduino-ota.bin")
	raw := shareddata.File(t, "partitions-arduino-ota.bin")
	dir := t.TempDir()
	csvPath, binPath := filepath.Join(dir, "t.csv"), filepath.Join(dir, "t.bin")

	if _, _, err := runCmd(convertCmd, bin, csvPath); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(csvPath)
	if string(got) != arduinoCSV {
		t.Fatalf("CSV =\n%s\nwant\n%s", got, arduinoCSV)
	}
	// Flags may follow the positional arguments.
	if _, _, err := runCmd(convertCmd, csvPath, binPath, "--offset", "0x8000"); err != nil {
		t.Fatal(err)
	}
	back, _ := os.ReadFile(binPath)
	if !bytes.Equal(back, raw) {
		t.Fatalf("binary -> CSV -> binary differs")
	}
	out, _, err := runCmd(convertCmd, bin, "-")
	if err != nil || out != arduinoCSV {
		t.Fatalf("convert to stdout: %v\n%s", err, out)
	}
}

func TestPartitionsConvertWorkedExample(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "two_ota.csv")
	os.WriteFile(in, []byte("nvs,data,nvs,,0x4000,\notadata,data,ota,,0x2000,\nphy_init,data,phy,,0x1000,\n"+
		"factory,app,factory,,1M,\nota_0,app,ota_0,,1M,\nota_1,app,ota_1,,1M,\n"), 0o644)
	out, _, err := runCmd(convertCmd, in, "-")
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(out)
	if len(b) != partition.MaxTableSize || hex.EncodeToString(b[6*32+16:7*32]) != "bf25822c0fa6d8641bd930251e06b4c4" {
		t.Fatalf("wrong table: %d bytes, MD5 record % x", len(b), b[6*32:7*32])
	}
}

func TestPartitionsConvertRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	raw := shareddata.File(t, "partitions-arduino-ota.bin")
	badMD5 := append([]byte(nil), raw...)
	badMD5[7*32+16] ^= 1
	badMagic := append([]byte(nil), raw...)
	badMagic[2*32] = 0
	tb, _ := partition.Decode(raw)
	tb.Partitions[1].Size = 0x1000
	shortOtadata, _ := tb.Encode()

	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"overlap", write("overlap.csv", []byte("# x\na,data,nvs,0x9000,8K\nb,data,nvs,0xa000,4K\n")),
			[]string{"CSV Error at line 3", "Partitions overlap"}},
		{"misaligned app", write("align.csv", []byte("a,app,factory,0x18000,64K\n")),
			[]string{"Error at line 1", "Offset 0x18000 is not aligned to 0x10000"}},
		{"duplicate", write("dup.csv", []byte("a,data,nvs,,16K\na,data,nvs,,16K\n")),
			[]string{"Error at line 2", "Partition names must be unique"}},
		{"bad md5", write("md5.bin", badMD5), []string{"MD5 checksums don't match", "computed: 0x", "parsed: 0x"}},
		{"bad magic", write("magic.bin", badMagic), []string{"record 2 at byte 0x40", "Invalid magic bytes"}},
		{"binary fails verify", write("otadata.bin", shortOtadata), []string{"partition 1 (\"otadata\")", "otadata partition must have size = 0x2000"}},
	} {
		out := filepath.Join(dir, tc.name+".out")
		_, _, err := runCmd(convertCmd, tc.file, out)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, w)
			}
		}
		if _, serr := os.Stat(out); serr == nil {
			t.Errorf("%s: output written despite the error", tc.name)
		}
	}

	// --no-verify converts what verification refuses, as gen_esp32part.py does.
	noVerifyOut := filepath.Join(dir, "noverify.bin")
	if _, _, err := runCmd(convertCmd, "--no-verify", filepath.Join(dir, "align.csv"), noVerifyOut); err != nil {
		t.Errorf("--no-verify: %v", err)
	} else if b, _ := os.ReadFile(noVerifyOut); len(b) != partition.MaxTableSize || b[5] != 0x80 || b[6] != 0x01 {
		t.Errorf("--no-verify wrote % x", b[:32])
	}

	var ee exitError
	if _, _, err := runCmd(convertCmd, "only-one"); !errors.As(err, &ee) || ee.code != 2 {
		t.Errorf("usage error = %v, want exit 2", err)
	}
	if _, _, err := runCmd(convertCmd, "--offset", "0x8800", "a", "b"); !errors.As(err, &ee) || ee.code != 2 {
		t.Errorf("bad --offset = %v, want exit 2", err)
	}
}

func TestPartitionsShow(t *testing.T) {
	dir := shareddata.Dir(t)
	out, _, err := runCmd(showCmd, filepath.Join(dir, "partitions-arduino-ota.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Name", "app1", "ota_1", "0x150000", "0x140000", "1280K", "nvs_keys", "MD5 record present"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}

	out, _, err = runCmd(showCmd, "--json", filepath.Join(dir, "partitions-singleapp-nomd5.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Format     string
		MD5        *bool
		Valid      bool
		Partitions []struct {
			Name, Type, Subtype string
			Offset, Size        uint32
			Flags               []string
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.Format != "binary" || got.MD5 == nil || *got.MD5 || !got.Valid || len(got.Partitions) != 3 {
		t.Fatalf("JSON = %+v", got)
	}
	p := got.Partitions[1]
	if p.Name != "rfdata" || p.Type != "data" || p.Subtype != "phy" || p.Offset != 0x110000 || p.Size != 0x40000 || p.Flags == nil {
		t.Fatalf("partition 1 = %+v", p)
	}

	// CSV input with flags.
	csv := filepath.Join(t.TempDir(), "t.csv")
	os.WriteFile(csv, []byte("nvs,data,nvs,,16K,encrypted\nfactory,app,factory,,1M\n"), 0o644)
	out, _, err = runCmd(showCmd, csv, "--json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"format": "csv"`) || strings.Contains(out, `"md5"`) || !strings.Contains(out, `"encrypted"`) {
		t.Fatalf("CSV JSON:\n%s", out)
	}
}

func TestPartitionsShowInvalidTable(t *testing.T) {
	tb := &partition.Table{Partitions: []partition.Partition{
		{Name: "otadata", Type: partition.TypeData, Subtype: partition.SubtypeOTAData, Offset: 0x9000, Size: 0x1000},
	}}
	b, _ := tb.Encode()
	f := filepath.Join(t.TempDir(), "bad.bin")
	os.WriteFile(f, b, 0o644)
	out, stderr, err := runCmd(showCmd, f)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("err = %v, want exit 1", err)
	}
	if !strings.Contains(out, "otadata") || !strings.Contains(stderr, "otadata partition must have size = 0x2000") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out, stderr)
	}
}

// TestPartitionsIDFVersion: convert and show apply the gen_esp32part.py
// rules of --idf-version (default: the newest known, v5.5), where releases
// disagree (partition.IDFVersion).
func TestPartitionsIDFVersion(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	littlefs := write("littlefs.csv", "nvs,data,nvs,,16K\nfs,data,littlefs,,64K\n")
	smallNVS := write("small-nvs.csv", "nvs,data,nvs,,8K\napp,app,factory,,1M\n")
	roTable := &partition.Table{Partitions: []partition.Partition{
		{Name: "ro", Type: partition.TypeData, Subtype: partition.SubtypeNVS, Offset: 0x9000, Size: 0x4000, Flags: partition.FlagReadonly},
	}}
	rob, _ := roTable.Encode()
	roBin := filepath.Join(dir, "ro.bin")
	os.WriteFile(roBin, rob, 0o644)

	// littlefs: v5.1.4 on.
	if _, _, err := runCmd(convertCmd, littlefs, filepath.Join(dir, "lfs.bin")); err != nil {
		t.Errorf("littlefs, default version: %v", err)
	}
	_, _, err := runCmd(convertCmd, "--idf-version", "v5.1.3", littlefs, filepath.Join(dir, "lfs513.bin"))
	if err == nil || !strings.Contains(err.Error(), "Value 'littlefs' is not valid") {
		t.Errorf("littlefs, v5.1.3: %v, want the unknown keyword", err)
	}

	// Read/write NVS of at least 0x3000 bytes: v5.5 on.
	var ee exitError
	_, _, err = runCmd(showCmd, smallNVS)
	if err == nil || !strings.Contains(err.Error(), "Error at line 1: Partition nvs invalid") ||
		!strings.Contains(err.Error(), "the size of read/write NVS has to be at least 0x3000") {
		t.Errorf("small NVS, default version: %v, want the NVS minimum", err)
	}
	if out, _, err := runCmd(showCmd, "--json", "--idf-version", "v5.4", smallNVS); err != nil || !strings.Contains(out, `"valid": true`) {
		t.Errorf("small NVS, v5.4: %v\n%s", err, out)
	}

	// readonly: a flag v5.1.3's script does not know; its CSV drops it.
	out, _, err := runCmd(convertCmd, "--idf-version", "5.1.3", roBin, "-")
	if err != nil || !strings.HasSuffix(out, "ro,data,nvs,0x9000,16K,\n") {
		t.Errorf("readonly binary to v5.1.3 CSV: %v\n%s", err, out)
	}
	out, _, err = runCmd(convertCmd, roBin, "-")
	if err != nil || !strings.HasSuffix(out, "ro,data,nvs,0x9000,16K,readonly\n") {
		t.Errorf("readonly binary to CSV: %v\n%s", err, out)
	}
	out, _, _ = runCmd(showCmd, "--idf-version", "v5.1.3", roBin)
	if !strings.Contains(out, "0x2") {
		t.Errorf("show v5.1.3 does not list the readonly bit as unknown:\n%s", out)
	}

	for _, bad := range []string{"v4.4", "v6.0", "five"} {
		_, stderr, err := runCmd(showCmd, "--idf-version", bad, roBin)
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(stderr, "ESP-IDF version") {
			t.Errorf("--idf-version %s: %v %q, want a usage error", bad, err, stderr)
		}
	}
}
