package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/virtual"
	"github.com/gota-dev/gota/server"
)

// startBlankSite serves the page with a virtual ESP32 whose flash is
// erased: it boot-loops until something is installed through its ROM.
func startBlankSite(tb testing.TB) *site {
	tb.Helper()
	return startBlankSiteStubs(tb, "")
}

// startBlankSiteStubs is startBlankSite with flasher stubs served from
// stubDir ("" for none) to the page's installer.
func startBlankSiteStubs(tb testing.TB, stubDir string) *site {
	tb.Helper()
	dist := buildDist(tb)
	flashPath := filepath.Join(tb.TempDir(), "blank.bin")
	if err := os.WriteFile(flashPath, bytes.Repeat([]byte{0xFF}, 4<<20), 0o644); err != nil {
		tb.Fatal(err)
	}
	log := &syncLog{}
	dev, err := virtual.Open(flashPath, virtual.Config{Log: virtual.LineLog(log.add)})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := server.New(server.Config{Dir: dist, Device: dev, StubDir: stubDir})
	if err != nil {
		dev.Close()
		tb.Fatal(err)
	}
	ts := httptest.NewServer(h)
	tb.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		dev.Close()
	})
	return &site{URL: ts.URL, Device: dev, Server: h, Log: log}
}

// esptoolJSStubs is the directory of esptool-js 0.7.0's stub JSON files
// (esp-flasher-stub v1.2.2, Apache-2.0 OR MIT), or a skip.
func esptoolJSStubs(tb testing.TB) string {
	tb.Helper()
	esptoolJSBundle(tb) // skips when esptool-js is not installed
	return filepath.Join(moduleRoot(tb), ".deps", "node_modules", "esptool-js", "lib", "targets", "stub_flasher")
}

// TestInstallPanelStub: with stubs served (gota serve --stub), the page
// uploads the published flasher stub and writes through it.
func TestInstallPanelStub(t *testing.T) {
	ctx := newBrowser(t)
	s := startBlankSiteStubs(t, esptoolJSStubs(t))
	path, _ := mergedFile(t)
	load(t, ctx, s.URL)
	pageInstall(t, ctx, path)
	steps := text(t, ctx, `document.getElementById("install-steps").innerText`)
	for _, want := range []string{"flasher stub running", "MD5 matches"} {
		if !strings.Contains(steps, want) {
			t.Errorf("steps lack %q:\n%s", want, steps)
		}
	}
	waitJS(t, ctx, "the agent after the install", `!!document.getElementById("running") && document.getElementById("running").innerText === "app0"`, 60*time.Second)
}

// mergedFile writes a merged image (the virtual device's stand-in
// bootloader, partition table and the demo app with its agent) as
// esptool merge_bin lays it out.
func mergedFile(tb testing.TB) (string, []byte) {
	tb.Helper()
	app, err := server.DemoApp("1.0.0")
	if err != nil {
		tb.Fatal(err)
	}
	return mergedFileWith(tb, app)
}

// mergedFileWith is mergedFile with app in place of the demo app.
func mergedFileWith(tb testing.TB, app []byte) (string, []byte) {
	tb.Helper()
	content, err := device.Build(device.CreateOptions{App: app})
	if err != nil {
		tb.Fatal(err)
	}
	merged := content[:0x10000+len(app)]
	path := filepath.Join(tb.TempDir(), "demo.factory.bin")
	if err := os.WriteFile(path, merged, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path, merged
}

// TestInstallPanel: a blank virtual ESP32 goes from erased to "agent
// ready" from the page: the Install panel shows the plan of a merged
// image, resets the board into download mode through the SerialPort
// shim's setSignals, writes with progress, resets it into the app and
// hands over to the OTA panel once the agent answers.
func TestInstallPanel(t *testing.T) {
	ctx := newBrowser(t)
	s := startBlankSite(t)
	path, merged := mergedFile(t)
	sh := newShots(t)
	load(t, ctx, s.URL)
	waitJS(t, ctx, "the virtual device button", `!!document.getElementById("install-file")`, 10*time.Second)
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := chromedp.Do(tctx, chromedp.SetUploadFiles(chromedp.CSS("#install-file"), []string{path}, chromedp.NodeReady)); err != nil {
		t.Fatal(err)
	}
	cancel()
	waitJS(t, ctx, "the plan", `(document.getElementById("install-plan")||{innerText:""}).innerText.includes("app gota-demo")`, 10*time.Second)
	plan := text(t, ctx, `document.getElementById("install-plan").innerText`)
	for _, want := range []string{"merged image", fmt.Sprintf("write 0x000000-0x%06x", len(merged)), "0x001000 bootloader (esp32", "0x008000 partition table (5 entries)", "0x010000 app gota-demo 1.0.0"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	sh.take(ctx, "plan")
	start := time.Now()
	click(t, ctx, "#install-virtual")
	waitJS(t, ctx, "the agent after the install", `!!document.getElementById("running") && document.getElementById("running").innerText === "app0"`, 90*time.Second)
	t.Logf("install to agent ready: %.1f s", time.Since(start).Seconds())
	sh.take(ctx, "installed")
	steps := text(t, ctx, `document.getElementById("install-steps").innerText`)
	for _, want := range []string{"ESP32 v3.0", "no flasher stub served", "MD5 matches", "resetting into the app"} {
		if !strings.Contains(steps, want) {
			t.Errorf("steps lack %q:\n%s", want, steps)
		}
	}
	if res := text(t, ctx, `document.getElementById("install-result").innerText`); !strings.Contains(res, "agent answers") {
		t.Errorf("result %q", res)
	}
	console := text(t, ctx, `document.getElementById("console").innerText`)
	if !strings.Contains(console, "waiting for download") {
		t.Errorf("console lacks the ROM banner:\n%s", console)
	}
}

// TestInstallManifest: the panel takes an ESP Web Tools manifest by URL,
// picks the build for the chip it finds and fetches its parts relative
// to the manifest.
func TestInstallManifest(t *testing.T) {
	ctx := newBrowser(t)
	s := startBlankSite(t)
	app, err := server.DemoApp("1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	content, err := device.Build(device.CreateOptions{App: app})
	if err != nil {
		t.Fatal(err)
	}
	dir := strings.NewReplacer("/", "_").Replace(t.Name())
	root := filepath.Join(buildDist(t), dir)
	os.MkdirAll(filepath.Join(root, "parts"), 0o755)
	t.Cleanup(func() { os.RemoveAll(root) })
	files := map[string][]byte{
		"manifest.json": []byte(`{"name": "demo", "version": "1.0.0", "builds": [
			{"chipFamily": "ESP32-S3", "parts": [{"path": "parts/s3.bin", "offset": 0}]},
			{"chipFamily": "ESP32", "parts": [
				{"path": "parts/bootloader.bin", "offset": 4096},
				{"path": "parts/partitions.bin", "offset": 32768},
				{"path": "parts/app.bin", "offset": 65536}]}]}`),
		"parts/bootloader.bin": content[0x1000:0x8000],
		"parts/partitions.bin": content[0x8000:0x9000],
		"parts/app.bin":        app,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	load(t, ctx, s.URL)
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = chromedp.Do(tctx, chromedp.SendKeys("#install-url", s.URL+"/"+dir+"/manifest.json", chromedp.NodeVisible))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	click(t, ctx, "#install-load")
	waitJS(t, ctx, "the manifest's plan", `(document.getElementById("install-plan")||{innerText:""}).innerText.includes("ESP Web Tools manifest")`, 10*time.Second)
	plan := text(t, ctx, `document.getElementById("install-plan").innerText`)
	for _, want := range []string{"ESP32: write parts/app.bin at 0x010000", "ESP32-S3: write parts/s3.bin at 0x000000"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	click(t, ctx, "#install-virtual")
	waitJS(t, ctx, "the agent after the install", `!!document.getElementById("running") && document.getElementById("running").innerText === "app0"`, 90*time.Second)
	steps := text(t, ctx, `document.getElementById("install-steps").innerText`)
	if n := strings.Count(steps, "MD5 matches"); n != 3 {
		t.Errorf("%d parts verified, want 3:\n%s", n, steps)
	}
}

// TestInstallPanelRefuses: a merged image for another chip is refused
// once the chip is known; the page says why and that nothing was
// written, and the board stays in download mode for the next try.
func TestInstallPanelRefuses(t *testing.T) {
	ctx := newBrowser(t)
	s := startBlankSite(t)
	_, boot := sharedFile(t, "bootloader-esp32c3.bin")
	_, table := sharedFile(t, "partitions-arduino-ota.bin")
	merged := bytes.Repeat([]byte{0xFF}, 0x9000)
	copy(merged, boot)
	copy(merged[0x8000:], table)
	path := filepath.Join(t.TempDir(), "c3.factory.bin")
	if err := os.WriteFile(path, merged, 0o644); err != nil {
		t.Fatal(err)
	}
	load(t, ctx, s.URL)
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := chromedp.Do(tctx, chromedp.SetUploadFiles(chromedp.CSS("#install-file"), []string{path}, chromedp.NodeReady))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the plan", `!!document.getElementById("install-plan")`, 10*time.Second)
	click(t, ctx, "#install-virtual")
	waitJS(t, ctx, "the refusal", `!!document.getElementById("problem")`, 30*time.Second)
	p := text(t, ctx, `document.getElementById("problem").innerText`)
	for _, want := range []string{"Install failed", "for esp32c3, the device is esp32", "nothing written", "download mode"} {
		if !strings.Contains(p, want) {
			t.Errorf("problem banner lacks %q:\n%s", want, p)
		}
	}
	if st := s.Device.State(); st != "download" {
		t.Errorf("device state %q after the refusal, want download", st)
	}
}

// TestOTAMergedImage: a merged image dropped on the OTA panel of a device
// that runs an agent is not "bad magic byte": its app part is flashed
// over the air, and the page says so.
func TestOTAMergedImage(t *testing.T) {
	ctx, s := startDemoSite(t)
	app2, err := server.DemoApp("2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	path, _ := mergedFileWith(t, app2)
	load(t, ctx, s.URL)
	waitJS(t, ctx, "the virtual device button", `!!document.getElementById("connect-virtual")`, 10*time.Second)
	click(t, ctx, "#connect-virtual")
	waitJS(t, ctx, "the device panel", `!!document.getElementById("running") && document.getElementById("running").innerText === "app0"`, 60*time.Second)
	upload(t, ctx, path)
	waitJS(t, ctx, "the merged-image note", `!!document.getElementById("merged-note")`, 10*time.Second)
	if note := text(t, ctx, `document.getElementById("merged-note").innerText`); !strings.Contains(note, "its app part (app0, 0x10000") {
		t.Errorf("note %q", note)
	}
	if v := text(t, ctx, `document.getElementById("img-version").innerText`); v != "2.0.0" {
		t.Errorf("image version %q, want 2.0.0", v)
	}
	click(t, ctx, "#flash")
	waitJS(t, ctx, "2.0.0 running in app1", `!!document.getElementById("running") && document.getElementById("running").innerText === "app1"`, 90*time.Second)
}
