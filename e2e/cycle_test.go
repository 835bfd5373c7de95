package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// highBaud is the rate the host switches the line to for transfers: the
// fastest the Go agent accepts, to keep the suite quick.
const highBaud = "2000000"

// TestUpdateCycleOverPTY is the whole life of an update as a user runs it
// against a virtual ESP32 on a pseudo-terminal: create, info, flash (on
// trial), accept, flash again, rollback, and a corrupt image refused with
// the running build untouched.
func TestUpdateCycleOverPTY(t *testing.T) { forAgents(t, testUpdateCycleOverPTY) }

func testUpdateCycleOverPTY(t *testing.T, agent string) {
	base := shared(t, "esp32-ledcontroller-v1.1.bin")
	v1 := writeFile(t, "v1.bin", newBuild(t, base, "1.0.0"))
	v2img := newBuild(t, base, "2.0.0")
	v2 := writeFile(t, "v2.bin", v2img)
	v3 := writeFile(t, "v3.bin", newBuild(t, base, "3.0.0"))
	// A v4 with one byte of code changed: checksum and digest no longer match.
	bad := newBuild(t, base, "4.0.0")
	bad[0x30000] ^= 0x01
	corrupt := writeFile(t, "corrupt.bin", bad)

	flashPath := filepath.Join(t.TempDir(), "esp32.flash")
	mustGota(t, "device", "create", flashPath, "--app", v1)
	dev := startDevice(t, flashPath, "--fast-flash", "--agent", agent)
	port := dev.port

	in := deviceInfo(t, port)
	if in.Running != "app0" {
		t.Fatalf("fresh device runs %q, want app0\n%s", in.Running, dev.output())
	}
	if _, ver, _ := in.slot(t, "app0"); ver != "1.0.0" {
		t.Fatalf("app0 version %q, want 1.0.0", ver)
	}

	// Update to v2: it boots on trial.
	r := mustGota(t, "flash", v2, "--port", port, "--baud", highBaud)
	t.Logf("flash v2: %s", firstLine(r.stdout))
	in = deviceInfo(t, port)
	if st, ver, sha := in.slot(t, "app1"); in.Running != "app1" || st != "testing" || ver != "2.0.0" || sha != appendedDigest(t, v2img) {
		t.Fatalf("after flashing v2: running %s, app1 %s %s %s\n%s", in.Running, st, ver, sha, dev.output())
	}

	mustGota(t, "accept", "--port", port)
	in = deviceInfo(t, port)
	if st, _, _ := in.slot(t, "app1"); st != "valid" {
		t.Fatalf("after accept: app1 state %q, want valid", st)
	}

	// v3 goes to app0, on trial; rolling back returns to v2.
	mustGota(t, "flash", v3, "--port", port, "--baud", highBaud)
	in = deviceInfo(t, port)
	if st, ver, _ := in.slot(t, "app0"); in.Running != "app0" || st != "testing" || ver != "3.0.0" {
		t.Fatalf("after flashing v3: running %s, app0 %s %s", in.Running, st, ver)
	}
	mustGota(t, "rollback", "--port", port)
	in = deviceInfo(t, port)
	if st, ver, _ := in.slot(t, "app1"); in.Running != "app1" || st != "valid" || ver != "2.0.0" {
		t.Fatalf("after rollback: running %s, app1 %s %s; want app1 valid 2.0.0", in.Running, st, ver)
	}
	if st, _, _ := in.slot(t, "app0"); st != "invalid" {
		t.Errorf("after rollback: app0 state %q, want invalid", st)
	}

	// A corrupt image: the host refuses it before sending; forced, the
	// device refuses it. Either way v2 keeps running and boots next.
	r = gota(t, "flash", corrupt, "--port", port, "--baud", highBaud)
	if r.code == 0 {
		t.Fatalf("corrupt image accepted:\n%s", r)
	}
	if !mentionsAny(r.stderr, "checksum", "digest", "sha-256", "sha256") {
		t.Errorf("refusal does not say what is wrong with the image:\n%s", r.stderr)
	}
	r = gota(t, "flash", corrupt, "--port", port, "--baud", highBaud, "--force")
	if r.code == 0 {
		t.Fatalf("corrupt image accepted by the device with --force:\n%s", r)
	}
	t.Logf("forced corrupt image: %s", lastLine(r.stderr))
	in = deviceInfo(t, port)
	if _, ver, _ := in.slot(t, "app1"); in.Running != "app1" || in.Next != "app1" || ver != "2.0.0" {
		t.Fatalf("after the corrupt image: running %s, next %s, app1 %s; want app1/app1/2.0.0", in.Running, in.Next, ver)
	}

	// The flash file, read with the device stopped, agrees.
	dev.stop()
	ins := inspectFlash(t, flashPath)
	if ins.Boot.Partition != "app1" {
		t.Fatalf("inspect: boots %q, want app1", ins.Boot.Partition)
	}
	for _, a := range ins.Apps {
		if a.Name == "app1" && (a.Version != "2.0.0" || !a.Valid || a.State != "valid") {
			t.Fatalf("inspect: app1 %+v, want valid image 2.0.0 in state valid", a)
		}
	}
	if got := slotBytes(t, flashPath, "app1", len(v2img)); sum(got) != sum(v2img) {
		t.Fatal("app1 does not hold v2 byte for byte")
	}
}

func mentionsAny(s string, words ...string) bool {
	s = strings.ToLower(s)
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}
