package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/otadata"
	"github.com/gota-dev/gota/internal/shareddata"
)

func otadataCmd(o, e *bytes.Buffer, a []string) error { return otadataShow(o, e, a) }

func writeOtadata(t *testing.T, a, b otadata.Entry) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "otadata.bin")
	if err := os.WriteFile(f, otadata.Data{Entries: [2]otadata.Entry{a, b}}.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestOtadataShow(t *testing.T) {
	blank, _ := otadata.Parse(bytes.Repeat([]byte{0xFF}, 32))
	badCRC := otadata.NewEntry(5, otadata.StateValid)
	badCRC.CRC = 0x12345678
	for _, tc := range []struct {
		name       string
		a, b       otadata.Entry
		args       []string
		wantActive *int
		wantBoot   string
		text       []string
	}{
		{"seq 1 and 2", otadata.NewEntry(1, otadata.StateValid), otadata.NewEntry(2, otadata.StatePendingVerify), nil,
			ptr(1), "ota_1", []string{"testing", "0x55f63774", "active: sector 1, seq 2 -> ota_1 (slot 1 of 2)"}},
		{"tie", otadata.NewEntry(3, otadata.StateValid), otadata.NewEntry(3, otadata.StateNew), nil,
			ptr(0), "ota_0", []string{"active: sector 0, seq 3 -> ota_0"}},
		{"blank", blank, blank, nil, nil, "factory if present, else ota_0 (no valid entry)",
			[]string{"no: blank (seq 0xffffffff)", "0x2144df1c", "active: none"}},
		{"bad crc", otadata.NewEntry(1, otadata.StateValid), badCRC, nil,
			ptr(0), "ota_0", []string{"no: CRC mismatch", "0x12345678", "0xc8210fcd"}},
		{"aborted", otadata.NewEntry(1, otadata.StateValid), otadata.NewEntry(2, otadata.StateAborted), nil,
			ptr(0), "ota_0", []string{"no: state aborted"}},
		{"three slots", otadata.NewEntry(3, otadata.StateValid), blank, []string{"--slots", "3"},
			ptr(0), "ota_2", []string{"slot 2 of 3"}},
	} {
		f := writeOtadata(t, tc.a, tc.b)
		out, _, err := runCmd(otadataCmd, append(append([]string{}, tc.args...), f)...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, w := range tc.text {
			if !strings.Contains(out, w) {
				t.Errorf("%s: text lacks %q:\n%s", tc.name, w, out)
			}
		}
		out, _, err = runCmd(otadataCmd, append([]string{f, "--json"}, tc.args...)...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got otadataJSON
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, out)
		}
		if (got.Active == nil) != (tc.wantActive == nil) || got.Active != nil && *got.Active != *tc.wantActive || got.Boot != tc.wantBoot {
			t.Errorf("%s: active %v boot %q, want %v %q", tc.name, got.Active, got.Boot, tc.wantActive, tc.wantBoot)
		}
		if len(got.Entries) != 2 || got.Entries[0].Seq != tc.a.Seq || got.Entries[1].CRCExpected != otadata.CRC(tc.b.Seq) ||
			got.Entries[0].Valid != tc.a.Valid() || got.Entries[1].State != tc.b.State.String() {
			t.Errorf("%s: entries %+v", tc.name, got.Entries)
		}
	}
}

func ptr(i int) *int { return &i }

func TestOtadataShowSlotsFromTable(t *testing.T) {
	table := filepath.Join(shareddata.Dir(t), "partitions-arduino-ota.bin")
	f := writeOtadata(t, otadata.NewEntry(3, otadata.StateValid), otadata.NewEntry(4, otadata.StateNew))
	out, _, err := runCmd(otadataCmd, "--table", table, f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "active: sector 1, seq 4 -> ota_1 (slot 1 of 2)") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestOtadataShowErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.bin")
	os.WriteFile(short, make([]byte, 100), 0o644)
	if _, _, err := runCmd(otadataCmd, short); err == nil || !strings.Contains(err.Error(), "0x2000") || !strings.Contains(err.Error(), "0x64") {
		t.Errorf("short file: %v", err)
	}
	f := writeOtadata(t, otadata.NewEntry(1, otadata.StateValid), otadata.NewEntry(2, otadata.StateValid))
	if _, _, err := runCmd(otadataCmd, "--slots", "17", f); err == nil || !strings.Contains(err.Error(), "1..16") {
		t.Errorf("--slots 17: %v", err)
	}
	var ee exitError
	if _, _, err := runCmd(otadataCmd); err == nil || !errors.As(err, &ee) || ee.code != 2 {
		t.Errorf("no file: %v", err)
	}
}
