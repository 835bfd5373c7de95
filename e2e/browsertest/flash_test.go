package browsertest

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
)

// digestOf returns the appended SHA-256 of an image in hex.
func digestOf(t *testing.T, b []byte) string {
	t.Helper()
	img, err := espimage.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(img.Digest[:])
}

// partJS is a JavaScript expression true when the partition row for
// label shows state and digest (the LEDController builds share one
// descriptor, so only the digest tells them apart).
func partJS(label, state, digest string) string {
	return fmt.Sprintf(`(() => { const r = document.getElementById("part-%s");
		return !!r && r.dataset.state === %q && r.dataset.sha256 === %q; })()`, label, state, digest)
}

func runningJS(label string) string {
	return fmt.Sprintf(`(() => { const e = document.getElementById("running"); return !!e && e.innerText === %q && !document.getElementById("busy"); })()`, label)
}

// TestFlashAcceptRollback is the whole story in the browser: connect the
// virtual device (LEDController v1.0 in ota_0), flash v1.1, see it on
// trial, accept it, flash v1.2, roll it back, refuse a corrupt image
// without touching the flash, and see the boot log in the console.
func TestFlashAcceptRollback(t *testing.T) { forAgents(t, testFlashAcceptRollback) }

func testFlashAcceptRollback(t *testing.T, agent string) {
	st := &story{t: t}
	st.p11, st.v11 = sharedFile(t, "esp32-ledcontroller-v1.1.bin")
	st.p12, st.v12 = sharedFile(t, "esp32-ledcontroller-v1.2.bin")
	_, v10 := sharedFile(t, "esp32-ledcontroller-v1.0.bin")
	st.d10, st.d11, st.d12 = digestOf(t, v10), digestOf(t, st.v11), digestOf(t, st.v12)

	st.ctx = newBrowser(t)
	st.s = startSiteAgent(t, v10, agent)
	info, err := st.s.Device.Device().Info()
	if err != nil {
		t.Fatal(err)
	}
	st.slot0 = info.Running
	for _, p := range info.Partitions {
		if p.Label != st.slot0 && st.slot1 == "" {
			st.slot1 = p.Label
		}
	}
	t.Logf("v1.0 runs in %s; updates go to %s", st.slot0, st.slot1)
	st.shots = newShots(t)
	load(t, st.ctx, st.s.URL)
	st.shots.take(st.ctx, "loaded")

	st.connect()
	st.flashV11()
	st.accept()
	st.flashV12AndRollBack()
	st.sameBuild()
	st.corruptRefused()
	st.consoleShowsBoot()
	st.deltaAfterReload()
}

// story is the state TestFlashAcceptRollback's stages share.
type story struct {
	t             *testing.T
	ctx           context.Context
	s             *site
	shots         *shots
	slot0, slot1  string // v1.0 runs in slot0; updates go to slot1 first
	p11, p12      string // image paths
	v11, v12      []byte
	d10, d11, d12 string // digests
}

// connect connects the virtual device: v1.0 runs.
func (st *story) connect() {
	// Connect.
	waitJS(st.t, st.ctx, "the virtual device button", `!!document.getElementById("connect-virtual")`, 10*time.Second)
	click(st.t, st.ctx, "#connect-virtual")
	waitJS(st.t, st.ctx, "the device panel with v1.0 running", runningJS(st.slot0)+" && ("+partJS(st.slot0, "valid", st.d10)+" || "+partJS(st.slot0, "", st.d10)+")", 60*time.Second)
	if chip := text(st.t, st.ctx, `document.getElementById("chip").innerText`); !strings.HasPrefix(chip, "esp32") {
		st.t.Errorf("chip shows %q, want esp32…", chip)
	}
	st.shots.take(st.ctx, "connected")
}

// flashV11 chooses v1.1 (the page describes it before anything is sent)
// and flashes it: progress, reboot, the panel refreshes by itself, v1.1 is
// on trial.
func (st *story) flashV11() {
	// Choose v1.1: the page describes it before anything is sent.
	upload(st.t, st.ctx, st.p11)
	waitJS(st.t, st.ctx, "the image details", `!!document.getElementById("img-digest") && !!document.getElementById("relation")`, 20*time.Second)
	if got := text(st.t, st.ctx, `document.getElementById("img-digest").title`); got != st.d11 {
		st.t.Errorf("image digest shows %q, want %q", got, st.d11)
	}
	if got := text(st.t, st.ctx, `document.getElementById("img-project").innerText`); got == "" {
		st.t.Error("image project name is empty")
	}
	if got := text(st.t, st.ctx, `document.getElementById("img-fits").innerText`); !strings.HasPrefix(got, "yes") {
		st.t.Errorf("fits shows %q, want yes…", got)
	}
	st.t.Logf("v1.1 against v1.0: %s", text(st.t, st.ctx, `document.getElementById("relation").innerText`))
	st.shots.take(st.ctx, "v1.1-chosen")

	// Flash v1.1: progress, reboot, then the panel refreshes by itself.
	waitJS(st.t, st.ctx, "the Flash button", `!document.getElementById("flash").disabled`, 10*time.Second)
	sentBefore := st.s.Device.Line().Stats().HostToDevice
	click(st.t, st.ctx, "#flash")
	waitJS(st.t, st.ctx, "the progress bar past 25%", `(() => { const p = document.querySelector("#progress progress");
		return !!document.getElementById("notice") || !!p && p.value >= 25; })()`, 60*time.Second)
	if ok, _ := evalBool(st.ctx, `!!document.getElementById("progress-text")`); ok {
		st.t.Logf("progress: %s", text(st.t, st.ctx, `document.getElementById("progress-text").innerText`))
	}
	st.shots.take(st.ctx, "flashing")
	waitJS(st.t, st.ctx, "v1.1 on trial", runningJS(st.slot1)+" && "+partJS(st.slot1, "testing", st.d11), 120*time.Second)
	// The page negotiates DEFLATE as the CLI does: the LEDController
	// image compresses to about 56%.
	if sent := st.s.Device.Line().Stats().HostToDevice - sentBefore; sent >= int64(len(st.v11))*3/4 {
		st.t.Errorf("the page sent %d bytes for a %d-byte image: not compressed", sent, len(st.v11))
	}
	waitJS(st.t, st.ctx, "the Accept and Rollback buttons", `!!document.getElementById("accept") && !!document.getElementById("rollback")`, 10*time.Second)
	acceptText := text(st.t, st.ctx, `document.getElementById("accept").innerText`)
	rollbackText := text(st.t, st.ctx, `document.getElementById("rollback").innerText`)
	if !strings.Contains(acceptText, st.slot1) || !strings.Contains(rollbackText, st.slot0) {
		st.t.Errorf("trial buttons do not say what they do: %q / %q", acceptText, rollbackText)
	}
	st.shots.take(st.ctx, "v1.1-on-trial")
}

// accept accepts v1.1.
func (st *story) accept() {
	// Accept.
	click(st.t, st.ctx, "#accept")
	waitJS(st.t, st.ctx, "v1.1 valid", runningJS(st.slot1)+" && "+partJS(st.slot1, "valid", st.d11)+` && !document.getElementById("trial")`, 60*time.Second)
	st.shots.take(st.ctx, "v1.1-accepted")
}

// flashV12AndRollBack flashes v1.2 as a delta against v1.1, then rolls it
// back.
func (st *story) flashV12AndRollBack() {
	// Flash v1.2, then roll it back.
	upload(st.t, st.ctx, st.p12)
	waitJS(st.t, st.ctx, "the v1.2 details", fmt.Sprintf(`!!document.getElementById("img-digest") && document.getElementById("img-digest").title === %q`, st.d12), 20*time.Second)
	waitJS(st.t, st.ctx, "the Flash button", `!document.getElementById("flash").disabled`, 10*time.Second)
	st.shots.take(st.ctx, "v1.2-chosen")
	sentBefore := st.s.Device.Line().Stats().HostToDevice
	click(st.t, st.ctx, "#flash")
	waitJS(st.t, st.ctx, "v1.2 on trial", runningJS(st.slot0)+" && "+partJS(st.slot0, "testing", st.d12), 120*time.Second)
	// The page kept v1.1 when it flashed it, so v1.2 goes as changes
	// against the running v1.1 (protocol DELTA): a few KB, not 56%.
	if sent := st.s.Device.Line().Stats().HostToDevice - sentBefore; sent >= int64(len(st.v12))/10 {
		st.t.Errorf("the page sent %d bytes for v1.2 over v1.1: no delta against the cached running build", sent)
	}
	notice := text(st.t, st.ctx, `document.getElementById("notice") ? document.getElementById("notice").innerText : ""`)
	var wire int64
	if _, err := fmt.Sscanf(notice[strings.Index(notice, "; ")+2:], "%d on the wire", &wire); err != nil || !strings.Contains(notice, "changes against the running build") || wire > int64(len(st.v12))/10 {
		st.t.Errorf("notice after the delta flash: %q", notice)
	}
	st.shots.take(st.ctx, "v1.2-on-trial")
	click(st.t, st.ctx, "#rollback")
	waitJS(st.t, st.ctx, "v1.1 running again", runningJS(st.slot1)+" && "+partJS(st.slot1, "valid", st.d11)+" && "+partJS(st.slot0, "invalid", st.d12), 60*time.Second)
	st.shots.take(st.ctx, "rolled-back")
}

// sameBuild chooses the running build again: the page says so and
// flashes only when told to.
func (st *story) sameBuild() {
	// The running build again: the page says so and flashes only when
	// told to.
	upload(st.t, st.ctx, st.p11)
	waitJS(st.t, st.ctx, "the same-build caution", `!!document.getElementById("caution") && !!document.getElementById("force")`, 20*time.Second)
	if rel := text(st.t, st.ctx, `document.getElementById("relation") ? document.getElementById("relation").innerText : ""`); !strings.Contains(rel, "Same build") {
		st.t.Errorf("relation for the running build shows %q, want Same build…", rel)
	}
	if disabled, _ := evalBool(st.ctx, `document.getElementById("flash").disabled`); !disabled {
		st.t.Error("Flash is enabled for the running build before \"flash anyway\" is ticked")
	}
	click(st.t, st.ctx, "#force")
	waitJS(st.t, st.ctx, "Flash enabled by flash-anyway", `!document.getElementById("flash").disabled`, 5*time.Second)
	st.shots.take(st.ctx, "same-build-caution")
}

// corruptRefused: a corrupt image is refused and nothing is written.
func (st *story) corruptRefused() {
	// A corrupt image is refused and nothing is written.
	bad := append([]byte(nil), st.v11...)
	bad[len(bad)/2] ^= 0x55
	badPath := filepath.Join(st.t.TempDir(), "corrupt.bin")
	if err := os.WriteFile(badPath, bad, 0o644); err != nil {
		st.t.Fatal(err)
	}
	ops := st.s.Device.Flash().Ops()
	upload(st.t, st.ctx, badPath)
	waitJS(st.t, st.ctx, "the refusal", `!!document.getElementById("refusal")`, 20*time.Second)
	reason := text(st.t, st.ctx, `document.getElementById("refusal").innerText`)
	st.t.Logf("corrupt image refused: %s", reason)
	if !strings.Contains(strings.ToLower(reason), "digest") && !strings.Contains(strings.ToLower(reason), "checksum") {
		st.t.Errorf("refusal %q does not name the digest or checksum", reason)
	}
	if disabled, err := evalBool(st.ctx, `document.getElementById("flash").disabled`); err != nil || !disabled {
		st.t.Errorf("Flash is enabled for a corrupt image (err %v)", err)
	}
	click(st.t, st.ctx, "#flash") // disabled: must do nothing
	time.Sleep(300 * time.Millisecond)
	if got := st.s.Device.Flash().Ops(); got != ops {
		st.t.Errorf("flash operations went from %d to %d after the corrupt image was refused", ops, got)
	}
	st.shots.take(st.ctx, "corrupt-refused")
}

// consoleShowsBoot: the console shows the boot log, apart from protocol
// traffic, and follows the newest line.
func (st *story) consoleShowsBoot() {
	// The console shows the boot log, apart from protocol traffic.
	console := text(st.t, st.ctx, `document.getElementById("console").innerText`)
	if !strings.Contains(console, "boot: Loaded app from partition") {
		st.t.Errorf("console lacks the boot log; it shows:\n%s", console)
	}
	if strings.ContainsRune(console, 0xFFFD) {
		st.t.Errorf("console shows undecodable bytes (protocol frames leaking?):\n%s", console)
	}
	// The pane follows the newest line.
	if ok, _ := evalBool(st.ctx, `(() => { const e = document.getElementById("console");
		const r = document.createRange(); const t = e.querySelector("span").firstChild;
		r.setStart(t, t.length - 1); r.setEnd(t, t.length);
		const last = r.getBoundingClientRect(), box = e.getBoundingClientRect();
		return last.bottom <= box.bottom + 1 && last.top >= box.top - 1; })()`); !ok {
		st.t.Errorf("console pane is not scrolled to its last line: %s", text(st.t, st.ctx, `(() => { const e = document.getElementById("console");
			return "scrollTop " + e.scrollTop + " clientHeight " + e.clientHeight + " scrollHeight " + e.scrollHeight + " renders " + window.gotaRenders; })()`))
	}
	st.shots.take(st.ctx, "console")
}

// deltaAfterReload: the page kept v1.1 in Cache Storage, so after a reload
// it still sends v1.2 as changes against it.
func (st *story) deltaAfterReload() {
	// The page kept v1.1 (running again) in Cache Storage: after a reload
	// it still sends v1.2 as changes against it.
	load(st.t, st.ctx, st.s.URL)
	waitJS(st.t, st.ctx, "the virtual device button", `!!document.getElementById("connect-virtual")`, 10*time.Second)
	click(st.t, st.ctx, "#connect-virtual")
	waitJS(st.t, st.ctx, "the device panel after the reload", runningJS(st.slot1)+" && "+partJS(st.slot1, "valid", st.d11), 60*time.Second)
	upload(st.t, st.ctx, st.p12)
	waitJS(st.t, st.ctx, "the v1.2 details after the reload", fmt.Sprintf(`!!document.getElementById("img-digest") && document.getElementById("img-digest").title === %q`, st.d12), 20*time.Second)
	waitJS(st.t, st.ctx, "the Flash button", `!document.getElementById("flash").disabled`, 10*time.Second)
	sentBefore := st.s.Device.Line().Stats().HostToDevice
	click(st.t, st.ctx, "#flash")
	waitJS(st.t, st.ctx, "v1.2 on trial again", runningJS(st.slot0)+" && "+partJS(st.slot0, "testing", st.d12), 120*time.Second)
	if sent := st.s.Device.Line().Stats().HostToDevice - sentBefore; sent >= int64(len(st.v12))/10 {
		st.t.Errorf("after a reload the page sent %d bytes for v1.2 over v1.1: the cached base was not used", sent)
	}
	st.shots.take(st.ctx, "delta-after-reload")
}

// TestUnplugDuringFlash pulls the cable a third of the way through a
// transfer: the page says the device went away and what to do, the
// running build is untouched, and after reconnecting the update completes.
func TestUnplugDuringFlash(t *testing.T) { forAgents(t, testUnplugDuringFlash) }

func testUnplugDuringFlash(t *testing.T, agent string) {
	_, v10 := sharedFile(t, "esp32-ledcontroller-v1.0.bin")
	p11, v11 := sharedFile(t, "esp32-ledcontroller-v1.1.bin")
	d10, d11 := digestOf(t, v10), digestOf(t, v11)
	ctx := newBrowser(t)
	s := startSiteAgent(t, v10, agent)
	info, err := s.Device.Device().Info()
	if err != nil {
		t.Fatal(err)
	}
	slot0 := info.Running
	shots := newShots(t)
	load(t, ctx, s.URL)
	waitJS(t, ctx, "the virtual device button", `!!document.getElementById("connect-virtual")`, 10*time.Second)
	click(t, ctx, "#connect-virtual")
	waitJS(t, ctx, "the device panel", runningJS(slot0), 60*time.Second)
	upload(t, ctx, p11)
	waitJS(t, ctx, "the Flash button", `!!document.getElementById("flash") && !document.getElementById("flash").disabled`, 20*time.Second)
	click(t, ctx, "#flash")
	waitJS(t, ctx, "a third of the transfer", `(() => { const p = document.querySelector("#progress progress"); return !!p && p.value >= 33; })()`, 60*time.Second)
	s.Device.Unplug()
	waitJS(t, ctx, "the disconnect banner", `!!document.getElementById("problem") && document.getElementById("problem").innerText.includes("disconnected")`, 20*time.Second)
	banner := text(t, ctx, `document.getElementById("problem").innerText`)
	if !strings.Contains(banner, "Connect") {
		t.Errorf("banner does not say what to do next: %q", banner)
	}
	shots.take(ctx, "unplugged-mid-flash")

	// The device still runs v1.0 and will boot it.
	after, err := s.Device.Device().Info()
	if err != nil {
		t.Fatal(err)
	}
	if after.Running != slot0 || after.Next != slot0 {
		t.Errorf("after the interrupted flash: running %s, next %s; want %s for both", after.Running, after.Next, slot0)
	}

	// Reconnect and flash again: it completes.
	click(t, ctx, "#connect-virtual")
	waitJS(t, ctx, "the device panel again", runningJS(slot0)+" && "+partJS(slot0, "valid", d10)+" || "+runningJS(slot0)+" && "+partJS(slot0, "", d10), 60*time.Second)
	waitJS(t, ctx, "the Flash button", `!!document.getElementById("flash") && !document.getElementById("flash").disabled`, 20*time.Second)
	click(t, ctx, "#flash")
	waitJS(t, ctx, "v1.1 on trial", fmt.Sprintf(`(() => { const r = document.getElementById("running"); return !!r && r.innerText !== %q && !document.getElementById("busy"); })()`, slot0), 120*time.Second)
	running := text(t, ctx, `document.getElementById("running").innerText`)
	waitJS(t, ctx, "v1.1 testing", partJS(running, "testing", d11), 10*time.Second)
	shots.take(ctx, "flashed-after-replug")
}
