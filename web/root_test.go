package web

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/internal/shareddata"
)

// deviceRunning describes a device whose app0 runs img (valid) and whose
// app1 (size bytes) receives updates.
func deviceRunning(t *testing.T, img []byte, size uint32) *updater.DeviceInfo {
	t.Helper()
	p, err := espimage.Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	return &updater.DeviceInfo{
		Chip: "esp32", ChipRev: 300, Running: "app0", Next: "app0",
		Partitions: []updater.Partition{
			{Label: "app0", Subtype: 0x10, Offset: 0x10000, Size: 0x180000, State: "valid", Name: p.App.ProjectName, Version: p.App.Version,
				SHA256: hex.EncodeToString(p.Digest[:]), ImageLen: p.Length},
			{Label: "app1", Subtype: 0x11, Offset: 0x190000, Size: size},
		},
	}
}

// TestCheckOnPage runs the page's image checks (updater.Check underneath)
// on real images and checks how the page words and classifies them.
func TestCheckOnPage(t *testing.T) {
	v10 := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	s2 := shareddata.File(t, "esp32s2-blink.bin")
	boot := shareddata.File(t, "bootloader-esp32-v5.2.bin")
	corrupt := append([]byte(nil), v11...)
	corrupt[len(corrupt)/2] ^= 1

	tests := []struct {
		name        string
		image       []byte
		slot        uint32 // size of the update slot
		canFlash    bool
		overridable bool
		reason      string // substring of a reason, "" for none
		relation    string // prefix of Relation()
	}{
		{"different build", v11, 0x180000, true, false, "", "Different build"},
		{"same build", v10, 0x180000, false, true, "already running", "Same build"},
		{"corrupt", corrupt, 0x180000, false, false, "checksum", ""},
		{"wrong chip", s2, 0x180000, false, false, "esp32s2", ""},
		{"not an app", boot, 0x180000, false, false, "not an app", ""},
		{"too big", v11, 0x10000, false, false, "does not fit", ""},
		{"not an image", []byte("hello, this is not firmware"), 0x180000, false, false, "magic", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Root{Info: deviceRunning(t, v10, tc.slot), sess: &updater.Session{}}
			f := &ImageFile{Name: tc.name + ".bin", Data: tc.image}
			f.Image, f.ParseErr = espimage.Parse(tc.image)
			c.File = f
			c.check()
			if got := c.CanFlash(); got != tc.canFlash {
				t.Errorf("CanFlash = %v, want %v (reasons %q)", got, tc.canFlash, f.Reasons)
			}
			if f.Overridable != tc.overridable {
				t.Errorf("Overridable = %v, want %v (reasons %q)", f.Overridable, tc.overridable, f.Reasons)
			}
			joined := strings.Join(f.Reasons, " | ")
			if tc.reason == "" && joined != "" || !strings.Contains(joined, tc.reason) {
				t.Errorf("reasons %q, want one containing %q", joined, tc.reason)
			}
			if strings.Contains(joined, "--") {
				t.Errorf("reasons %q mention a command-line flag", joined)
			}
			if rel := c.Relation(); !strings.HasPrefix(rel, tc.relation) || tc.relation == "" && rel != "" {
				t.Errorf("Relation = %q, want prefix %q", rel, tc.relation)
			}
			if fits := c.Fits(); strings.HasPrefix(fits, "no") != (tc.name == "too big") && tc.name != "not an image" {
				t.Errorf("Fits = %q", fits)
			}
			if tc.overridable {
				f.Force = true
				if !c.CanFlash() {
					t.Error("CanFlash false after choosing to flash anyway")
				}
			}
		})
	}
}

func TestProgressText(t *testing.T) {
	c := &Root{Progress: &updater.Progress{Phase: "send", Sent: 150 << 10, Total: 300 << 10, Rate: 90 << 10, ETA: 1700e6}}
	if got, want := c.ProgressText(), "150.0 KiB of 300.0 KiB · 90.0 KiB/s · 2s left"; got != want {
		t.Errorf("ProgressText = %q, want %q", got, want)
	}
	if got := c.Percent(); got != 50 {
		t.Errorf("Percent = %d, want 50", got)
	}
	c.Rebooting = true
	if got := c.ProgressText(); got != "Rebooting…" {
		t.Errorf("ProgressText while rebooting = %q", got)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 316944: "309.5 KiB", 3 << 20: "3.00 MiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFlashFailureHint(t *testing.T) {
	for _, tt := range []struct{ phase, want string }{
		{"", "untouched"},
		{"begin", "untouched"},
		{"send", "untouched"},
		{"verify", "may or may not"},
		{"reboot", "was written"},
		{"done", "was written"},
	} {
		if got := flashFailureHint(tt.phase); !strings.Contains(got, tt.want) {
			t.Errorf("phase %q: %q, want it to say %q", tt.phase, got, tt.want)
		}
	}
}

// TestRollbackOffer: Roll back is offered whenever another slot holds a
// build the bootloader would boot, whether or not digests are known, and
// the labels show only what is known.
func TestRollbackOffer(t *testing.T) {
	// As NodeMCU's agent reports it: descriptors, no digests or lengths.
	nodemcu := func(runningState, otherState string) *updater.DeviceInfo {
		return &updater.DeviceInfo{Chip: "esp32", Running: "app1", Next: "app1", Partitions: []updater.Partition{
			{Label: "app0", State: otherState, Name: "led", Version: "1.1"},
			{Label: "app1", State: runningState, Name: "led", Version: "37d69ca"},
		}}
	}
	tests := []struct {
		name                string
		info                *updater.DeviceInfo
		onTrial, final      bool
		accept, rollback    string
		rollbackUnavailable bool
	}{
		{name: "on trial, rollback bootloader", info: nodemcu("testing", "valid"), onTrial: true,
			accept: "Accept: keep app1 (37d69ca) for good", rollback: "Roll back: mark the running build invalid and reboot into app0 (1.1)"},
		{name: "no rollback support", info: nodemcu("undefined", "undefined"), final: true,
			rollback: "reboot into app0 (1.1)"},
		{name: "other slot invalid", info: nodemcu("testing", "invalid"), onTrial: true,
			rollback: "Roll back (no other build to return to)", rollbackUnavailable: true},
		{name: "other slot never written", info: nodemcu("undefined", ""), rollbackUnavailable: true,
			rollback: "Roll back (no other build to return to)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Root{Info: tt.info}
			if c.OnTrial() != tt.onTrial || c.Final() != tt.final {
				t.Errorf("on trial %v final %v, want %v %v", c.OnTrial(), c.Final(), tt.onTrial, tt.final)
			}
			if (c.Previous() == nil) != tt.rollbackUnavailable {
				t.Errorf("Previous() = %+v", c.Previous())
			}
			if tt.accept != "" && c.AcceptText() != tt.accept {
				t.Errorf("accept %q, want %q", c.AcceptText(), tt.accept)
			}
			if !strings.Contains(c.RollbackText(), tt.rollback) {
				t.Errorf("rollback %q, want it to contain %q", c.RollbackText(), tt.rollback)
			}
			if strings.Contains(c.AcceptText()+c.RollbackText(), ", )") {
				t.Errorf("empty field in a label: %q / %q", c.AcceptText(), c.RollbackText())
			}
		})
	}
	if got := DigestText(""); got != "unknown" {
		t.Errorf("DigestText(\"\") = %q", got)
	}
}

// TestRelationWithoutDigests: against NodeMCU's agent, which reports no
// digest of the running build, the page never claims the builds differ.
func TestRelationWithoutDigests(t *testing.T) {
	v10 := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	other, err := espimage.SetVersion(v11, "feature-x")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		image []byte
		want  string
	}{
		{"same version string", v11, "Same version string as the running build; the device reports no digest"},
		{"other version string", other, "A different build from the running one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := deviceRunning(t, v10, 0x180000)
			info.Partitions[0].SHA256, info.Partitions[0].ImageLen = "", 0
			c := &Root{Info: info, sess: &updater.Session{}}
			f := &ImageFile{Name: "x.bin", Data: tc.image}
			f.Image, f.ParseErr = espimage.Parse(tc.image)
			c.File = f
			c.check()
			rel := c.Relation()
			if !strings.HasPrefix(rel, tc.want) || strings.Contains(rel, "digests differ") {
				t.Errorf("Relation = %q, want %q…", rel, tc.want)
			}
		})
	}
}
