package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/internal/shareddata"
)

// oracleRows reads expected.jsonl as generic objects, in file order.
func oracleRows(t *testing.T) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(shareddata.Dir(t), "expected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("expected.jsonl: %v", err)
		}
		rows = append(rows, m)
	}
	return rows
}

func decodeLines(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for i, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("output line %d is not one JSON object: %v\n%s", i+1, err, line)
		}
		recs = append(recs, m)
	}
	return recs
}

// TestImageInfoJSONMatchesOracle runs "gota image info --json" on every
// shared file and compares each output field the oracle has.
func TestImageInfoJSONMatchesOracle(t *testing.T) {
	dir := shareddata.Dir(t)
	rows := oracleRows(t)
	args := []string{"--json"}
	for _, r := range rows {
		args = append(args, filepath.Join(dir, r["file"].(string)))
	}
	var stdout, stderr bytes.Buffer
	err := imageInfo(&stdout, &stderr, args)
	// The partition tables in the set are not images, so the exit status is 1.
	if e, ok := err.(exitError); !ok || e.code != 1 {
		t.Errorf("exit: %v, want exitError{1}", err)
	}
	recs := decodeLines(t, stdout.Bytes())
	if len(recs) != len(rows) {
		t.Fatalf("%d output lines for %d files", len(recs), len(rows))
	}
	for i, want := range rows {
		got := recs[i]
		t.Run(want["file"].(string), func(t *testing.T) {
			for k, w := range want {
				if k == "error" {
					msg, _ := got["error"].(string)
					if !strings.Contains(msg, w.(string)) {
						t.Errorf("error = %q, want a sentence mentioning %q", msg, w)
					}
					continue
				}
				matchFields(t, k, got[k], w)
			}
			if _, ok := want["sha256_ok"]; !ok {
				if _, has := got["sha256_ok"]; has {
					t.Errorf("sha256_ok present without an appended digest")
				}
			}
			if _, ok := want["app"]; !ok {
				if _, has := got["app"]; has {
					t.Errorf("app present, oracle has no app descriptor")
				}
			}
		})
	}
}

// matchFields compares got with the oracle value want; objects match when
// every key of want matches (the command may print more fields).
func matchFields(t *testing.T, path string, got, want any) {
	t.Helper()
	wm, ok := want.(map[string]any)
	if !ok {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
		return
	}
	gm, ok := got.(map[string]any)
	if !ok {
		t.Errorf("%s = %#v, want an object", path, got)
		return
	}
	for k, w := range wm {
		matchFields(t, path+"."+k, gm[k], w)
	}
}

func TestImageInfoExitStatus(t *testing.T) {
	dir := shareddata.Dir(t)
	tmp := t.TempDir()
	led := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	corrupt := append([]byte(nil), led...)
	corrupt[0x20020+1000] ^= 0x10 // segment 3 data: checksum mismatch
	corruptPath := filepath.Join(tmp, "corrupt.bin")
	if err := os.WriteFile(corruptPath, corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	// hash_appended = 2: esp_image_format.c (v5.1.3) treats any non-zero
	// byte as "SHA-256 appended", so the image is valid and its digest is
	// reported. The digest covers byte 23, so it is recomputed.
	hash2 := append([]byte(nil), led...)
	hash2[23] = 2
	sum := sha256.Sum256(hash2[:len(hash2)-32])
	copy(hash2[len(hash2)-32:], sum[:])
	hash2Path := filepath.Join(tmp, "hash2.bin")
	if err := os.WriteFile(hash2Path, hash2, 0o644); err != nil {
		t.Fatal(err)
	}
	// A RAM segment over the bootloader's own data: esp_ota_end takes it,
	// the bootloader's verify_load_addresses refuses it, so it is invalid.
	overBoot, err := espimage.Build(espimage.Header{Chip: espimage.ChipESP32, HashAppended: true},
		[]espimage.Segment{{LoadAddr: 0x3F400020, Data: make([]byte, 512)}, {LoadAddr: 0x3FFF0100, Data: make([]byte, 64)}},
		&espimage.AppDesc{ProjectName: "overboot"})
	if err != nil {
		t.Fatal(err)
	}
	overBootPath := filepath.Join(tmp, "overboot.bin")
	if err := os.WriteFile(overBootPath, overBoot, 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "esp32-ledcontroller-v1.1.bin")
	minrev := filepath.Join(dir, "esp32c3-header-min-rev.bin")
	missing := filepath.Join(tmp, "missing.bin")

	tests := []struct {
		name     string
		args     []string
		wantCode int      // 0: nil error
		wantOut  []string // substrings of stdout
	}{
		{"valid files", []string{"--json", good, minrev}, 0, []string{`"valid":true`}},
		{"flag after files", []string{good, minrev, "--json"}, 0, []string{`"file":"esp32c3-header-min-rev.bin"`}},
		{"human summary", []string{good}, 0, []string{
			"esp32-ledcontroller-v1.1.bin: esp32 app, 316944 bytes", "DIO, 80MHz, 4MB", "entry       0x400824cc",
			"load 0x3f400020", "DROM", "checksum    0x", "(ok)", "arduino-lib-builder 37d69ca", "verdict     valid"}},
		{"checksum mismatch", []string{"--json", good, corruptPath}, 1, []string{`"checksum_ok":false`, `checksum mismatch`, `"file":"corrupt.bin"`}},
		{"checksum mismatch, human", []string{corruptPath}, 1, []string{"MISMATCH, computed 0x", "verdict     INVALID: checksum byte at offset 0x4d5ef"}},
		{"hash_appended byte 2", []string{"--json", hash2Path}, 0, []string{`"hash_appended":true`, `"sha256_ok":true`, `"valid":true`}},
		{"segment over bootloader RAM", []string{overBootPath}, 1, []string{"verdict     INVALID: segment 1: the bootloader refuses to load 0x3fff0100-0x3fff0140: overlaps bootloader data"}},
		{"bootloader image loads where it loads", []string{"--json", filepath.Join(dir, "bootloader-esp32-arduino.bin")}, 0, []string{`"valid":true`}},
		{"missing file", []string{"--json", missing}, 1, []string{`"file":"missing.bin"`, `"valid":false`, `no such file`}},
		{"no files", nil, 2, nil},
		{"unknown flag", []string{"--bogus", good}, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := imageInfo(&stdout, &stderr, tt.args)
			code := 0
			if err != nil {
				var e exitError
				if !errors.As(err, &e) {
					t.Fatalf("error %v is not an exitError", err)
				}
				code = e.code
			}
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("output does not contain %q:\n%s", s, stdout.String())
				}
			}
		})
	}
}

// TestImageInfoSetVersion checks the command sees a rebuilt image as a
// different, valid build.
func TestImageInfoSetVersion(t *testing.T) {
	led := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	nb, err := espimage.SetVersion(led, "v9.9")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	p := filepath.Join(tmp, "new.bin")
	if err := os.WriteFile(p, nb, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := imageInfo(&stdout, &stderr, []string{"--json", p, filepath.Join(shareddata.Dir(t), "esp32-ledcontroller-v1.1.bin")}); err != nil {
		t.Fatalf("image info: %v", err)
	}
	recs := decodeLines(t, stdout.Bytes())
	if v := recs[0]["app"].(map[string]any)["version"]; v != "v9.9" {
		t.Errorf("version %v", v)
	}
	if recs[0]["sha256"] == recs[1]["sha256"] {
		t.Error("rebuilt image has the same digest")
	}
}
