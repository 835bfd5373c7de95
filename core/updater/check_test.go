package updater

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/internal/shareddata"
	"github.com/gota-dev/gota/protocol"
)

// deviceWith describes a two-slot ESP32 running img in app0 (state st),
// as the Go agent reports it; app1 is 1.25 MiB.
func deviceWith(t *testing.T, img []byte, st string) *DeviceInfo {
	t.Helper()
	p, err := espimage.Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	return &DeviceInfo{
		Chip: "esp32", ChipRev: 300, Running: "app0", Next: "app0",
		Partitions: []Partition{
			{Label: "app0", Subtype: 0x10, Offset: 0x10000, Size: 0x140000, State: protocol.OTAState(st),
				Name: p.App.ProjectName, Version: p.App.Version, SHA256: hex.EncodeToString(p.Digest[:]), ImageLen: p.Length},
			{Label: "app1", Subtype: 0x11, Offset: 0x150000, Size: 0x140000},
		},
	}
}

func setVersion(t *testing.T, b []byte, v string) []byte {
	t.Helper()
	out, err := espimage.SetVersion(b, v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// withMinRev rebuilds img requiring chip revision rev or later.
func withMinRev(t *testing.T, img []byte, rev uint16) []byte {
	t.Helper()
	p, err := espimage.Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	h := p.Header
	h.MinChipRevFull = rev
	out, err := espimage.Build(h, p.Segments, p.App)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCheck(t *testing.T) {
	v10 := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	s2 := shareddata.File(t, "esp32s2-blink.bin")
	boot := shareddata.File(t, "bootloader-esp32-v5.2.bin")
	semver10 := setVersion(t, v10, "1.0.0")
	semver11 := setVersion(t, v11, "1.1.0")
	semver09 := setVersion(t, v11, "v0.9")
	big := append(append([]byte(nil), v11...), make([]byte, 1468006-len(v11))...)
	overBoot, err := espimage.Build(espimage.Header{Chip: espimage.ChipESP32, HashAppended: true},
		[]espimage.Segment{{LoadAddr: 0x3F400020, Data: make([]byte, 512)}, {LoadAddr: 0x3FFF0100, Data: make([]byte, 64)}},
		&espimage.AppDesc{ProjectName: "overboot", Version: "9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), v11...)
	corrupt[5000] ^= 0x40

	tests := []struct {
		name     string
		running  []byte
		state    string
		image    []byte
		opt      CheckOptions
		refused  string      // substring of the refusal, "" = accepted
		kind     RefusalKind // of the refusal
		relation Relation
		warning  string // substring of a warning
		noDigest bool   // the device reports no digest (NodeMCU)
	}{
		{name: "same version, no digest", running: v10, state: "valid", image: v10, noDigest: true,
			relation: "same version", warning: "the device reports no digest, so whether the content differs is unknown"},
		{name: "other build, no digest", running: v10, state: "valid", image: v11, noDigest: true, relation: "same version"},
		{name: "upgrade, no digest", running: semver10, state: "valid", image: semver11, noDigest: true, relation: "upgrade"},
		{name: "different build, same version", running: v10, state: "valid", image: v11,
			relation: "different build", warning: `version string "37d69ca" equals the running build's`},
		{name: "semver upgrade", running: semver10, state: "valid", image: semver11, relation: "upgrade"},
		{name: "same build", running: v10, state: "valid", image: v10,
			refused: "image is the build already running in app0 (sha256 c99fe6bc0fa6b527…)", kind: RefusedSameBuild},
		{name: "same build forced", running: v10, state: "valid", image: v10, opt: CheckOptions{Force: true},
			relation: "same build", warning: "forced: image is the build already running"},
		{name: "older", running: semver10, state: "valid", image: semver09,
			refused: "image version v0.9 is older than the running 1.0.0", kind: RefusedDowngrade},
		{name: "older allowed", running: semver10, state: "valid", image: semver09, opt: CheckOptions{AllowDowngrade: true},
			relation: "older", warning: "downgrade from 1.0.0 to v0.9"},
		{name: "wrong chip", running: v10, state: "valid", image: s2, refused: "image is for esp32s2, device is esp32"},
		{name: "too big", running: v10, state: "valid", image: big, refused: "image 1.4 MiB does not fit app1 (1.25 MiB)"},
		{name: "unconfirmed", running: v10, state: "testing", image: v11,
			refused: "device is running an unconfirmed build (app0 is on trial): accept or roll back first", kind: RefusedOnTrial},
		{name: "chip revision", running: v10, state: "valid", image: withMinRev(t, v11, 301),
			refused: "image needs chip revision v3.1 or later, device is v3.0"},
		{name: "bootloader", running: v10, state: "valid", image: boot, refused: "image is not an app"},
		{name: "segment over bootloader RAM", running: v10, state: "valid", image: overBoot,
			refused: "image: segment 1: the bootloader refuses to load 0x3fff0100-0x3fff0140: overlaps bootloader data"},
		{name: "corrupt", running: v10, state: "valid", image: corrupt, refused: "image: "},
		{name: "not an image", running: v10, state: "valid", image: []byte("hello"), refused: "image: "},
		{name: "not an image forced", running: v10, state: "valid", image: []byte("hello"), opt: CheckOptions{Force: true}, warning: "forced: image: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := deviceWith(t, tt.running, tt.state)
			if tt.noDigest {
				info.Partitions[0].SHA256, info.Partitions[0].ImageLen = "", 0
			}
			plan, err := Check(info, tt.image, tt.opt)
			if tt.refused != "" {
				if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("err = %v, want refusal containing %q", err, tt.refused)
				}
				wantRefusal(t, err, tt.refused, tt.kind)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if plan.Target != "app1" || plan.Size != len(tt.image) {
				t.Errorf("plan target %q size %d", plan.Target, plan.Size)
			}
			if tt.relation != "" && plan.Relation != tt.relation {
				t.Errorf("relation %q, want %q", plan.Relation, tt.relation)
			}
			found := tt.warning == ""
			for _, w := range plan.Warnings {
				found = found || strings.Contains(w, tt.warning)
			}
			if !found {
				t.Errorf("warnings %q, want one containing %q", plan.Warnings, tt.warning)
			}
		})
	}
}

// TestNextUpdate follows esp_ota_get_next_update_partition on reported
// tables, including the Lua agent's (no subtypes).
func TestNextUpdate(t *testing.T) {
	three := []Partition{{Label: "factory", Subtype: 0}, {Label: "ota_0", Subtype: 0x10}, {Label: "ota_1", Subtype: 0x11}, {Label: "ota_2", Subtype: 0x12}}
	tests := []struct {
		running string
		parts   []Partition
		want    string
	}{
		{"factory", three, "ota_0"},
		{"ota_0", three, "ota_1"},
		{"ota_2", three, "ota_0"},
		{"app0", []Partition{{Label: "app0", Subtype: -1}, {Label: "app1", Subtype: -1}}, "app1"},
		{"a", []Partition{{Label: "a", Subtype: -1}, {Label: "b", Subtype: -1}, {Label: "c", Subtype: -1}}, ""},
	}
	for _, tt := range tests {
		got := ""
		if p := nextUpdate(&DeviceInfo{Running: tt.running, Partitions: tt.parts}); p != nil {
			got = p.Label
		}
		if got != tt.want {
			t.Errorf("running %s: next %q, want %q", tt.running, got, tt.want)
		}
	}
}

func TestHuman(t *testing.T) {
	for n, want := range map[int]string{0x140000: "1.25 MiB", 1468006: "1.4 MiB", 316944: "309.52 KiB", 1 << 20: "1 MiB", 512: "0.5 KiB"} {
		if got := human(n); got != want {
			t.Errorf("human(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestVersionOrder(t *testing.T) {
	for _, tc := range []struct {
		newV, oldV     string
		older, isNewer bool
	}{
		{"1.1.0", "1.0.0", false, true},
		{"v0.9", "1.0.0", true, false},
		{"1.2", "1.2.0", false, false},
		{"2.0.0-rc1", "2.0.0", true, false},
		{"1.0.10", "1.0.9", false, true},
		{"37d69ca", "1.0.0", false, false}, // a git hash is no version: neither
		{" 1.0.1 ", "1.0.0", false, true},
		{"", "1.0.0", false, false},
	} {
		if got := older(tc.newV, tc.oldV); got != tc.older {
			t.Errorf("older(%q, %q) = %v", tc.newV, tc.oldV, got)
		}
		if got := newer(tc.newV, tc.oldV); got != tc.isNewer {
			t.Errorf("newer(%q, %q) = %v", tc.newV, tc.oldV, got)
		}
	}
}

// wantRefusal checks a typed refusal: one of kind, a reason containing
// want, and no command-line hint in any reason (cmd and web word those).
func wantRefusal(t *testing.T, err error, want string, kind RefusalKind) {
	t.Helper()
	var re *RefusedError
	if !errors.As(err, &re) || len(re.Refusals) == 0 {
		t.Fatalf("err = %#v, want a *RefusedError with Refusals", err)
	}
	for _, r := range re.Reasons() {
		if strings.Contains(r, "--") {
			t.Errorf("reason %q carries a CLI hint", r)
		}
	}
	if !strings.Contains(strings.Join(re.Reasons(), "\n"), want) {
		t.Errorf("reasons %q, want one containing %q", re.Reasons(), want)
	}
	if !re.Has(kind) {
		t.Errorf("refusals %+v, want one of kind %d", re.Refusals, kind)
	}
}
