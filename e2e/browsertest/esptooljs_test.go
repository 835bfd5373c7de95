package browsertest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gota-dev/gota/internal/testenv"
)

// esptoolJSBundle returns esptool-js 0.7.0's self-contained ES module
// (bundle.js, stubs inlined), which build.sh's deps step installs into
// .deps; the test skips with that advice when it is missing (fails on CI).
func esptoolJSBundle(tb testing.TB) []byte {
	tb.Helper()
	dir := filepath.Join(moduleRoot(tb), ".deps", "node_modules", "esptool-js")
	pkg, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		testenv.Missing(tb, "esptool-js not installed (./build.sh test installs esptool-js@0.7.0 into .deps): %v", err)
	}
	if !bytes.Contains(pkg, []byte(`"version": "0.7.0"`)) {
		tb.Fatalf("%s is not esptool-js 0.7.0", dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, "bundle.js"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// serveFile puts b in the served directory under a name unique to tb.
func serveFile(tb testing.TB, name string, b []byte) string {
	tb.Helper()
	dist := buildDist(tb)
	n := strings.NewReplacer("/", "_", " ", "_").Replace(tb.Name()) + "-" + name
	if err := os.WriteFile(filepath.Join(dist, n), b, 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.Remove(filepath.Join(dist, n)) })
	return "/" + n
}

// padTo4 is what esptool-js's writeFlash does to an image before it
// hashes and sends it (padTo(image, 4), 0xFF).
func padTo4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0xFF)
	}
	return b
}

// esptoolJSScript drives esptool-js from the page through the virtual
// device's SerialPort shim: main() (reset into download mode, sync,
// detect, upload and start the stub, switch to baud), writeFlash of the
// merged image at 0x0 compressed and MD5-checked, then a hard reset (EN
// pulse through RTS).
// calculateMD5Hash returns the MD5 the Go side computed of exactly the
// bytes esptool-js sends (it has no MD5 of its own); esptool-js compares
// it with the device's SPI_FLASH_MD5 and fails on a difference.
const esptoolJSScript = `(async () => {
	const m = await import(%q);
	const log = [];
	const tz = performance.now(); const stamp = (s) => log.push(((performance.now() - tz) / 1000).toFixed(2) + " " + s);
	const terminal = { clean() {}, writeLine: stamp, write: stamp };
	const transport = new m.Transport(gotaVirtual.port(), false);
	const loader = new m.ESPLoader({ transport, baudrate: %d, romBaudrate: 115200, terminal });
	const image = new Uint8Array(await (await fetch(%q)).arrayBuffer());
	const t0 = performance.now();
	const chip = await loader.main();
	const stub = loader.IS_STUB;
	await loader.writeFlash({
		fileArray: [{ data: image, address: 0 }],
		flashMode: "keep", flashFreq: "keep", flashSize: "keep",
		eraseAll: false, compress: true,
		calculateMD5Hash: (img) => img.length === %d ? %q : "length " + img.length,
	});
	// esptool-js 0.7.0's HardReset only releases RTS (reset.js), which
	// resets nothing after its ClassicReset left RTS released, on a real
	// board as on this one; esptool's HardReset asserts RTS first
	// (esptool/reset.py). Assert it, then let esptool-js release it.
	await transport.setRTS(true);
	await loader.after("hard_reset");
	const ms = performance.now() - t0;
	await transport.disconnect();
	return JSON.stringify({ chip, stub, ms, log: log.join("\n") });
})()`

type esptoolJSResult struct {
	Chip string  `json:"chip"`
	Stub bool    `json:"stub"`
	MS   float64 `json:"ms"`
	Log  string  `json:"log"`
}

// runEsptoolJS installs image with esptool-js in the page at baud.
func runEsptoolJS(tb testing.TB, ctx context.Context, s *site, image []byte, baud int) esptoolJSResult {
	tb.Helper()
	bundle := serveFile(tb, "esptool-bundle.js", esptoolJSBundle(tb))
	img := serveFile(tb, "image.bin", image)
	padded := padTo4(append([]byte(nil), image...))
	sum := md5.Sum(padded)
	js := fmt.Sprintf(esptoolJSScript, bundle, baud, img, len(padded), hex.EncodeToString(sum[:]))
	tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	out, err := chromedp.Run(tctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatalf("esptool-js failed; device console:\n%s\nesptool-js: %v", strings.Join(s.Log.tail(40), "\n"), err)
	}
	var r esptoolJSResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		tb.Fatalf("esptool-js result %q: %v", out, err)
	}
	return r
}

// TestEsptoolJS: esptool-js 0.7.0, which nobody here wrote, installs a
// merged image on a blank virtual ESP32 through the page's SerialPort
// shim: it detects the chip, uploads and starts its stub, writes with
// compression and MD5 verification, resets, and the app boots: its agent answers the page.
func TestEsptoolJS(t *testing.T) {
	ctx := newBrowser(t)
	s := startBlankSite(t)
	_, merged := mergedFile(t)
	load(t, ctx, s.URL)
	waitJS(t, ctx, "the shim", `!!globalThis.gotaVirtual`, 10*time.Second)
	r := runEsptoolJS(t, ctx, s, merged, 921600)
	t.Logf("esptool-js: %s, stub %v, %.0f ms", r.Chip, r.Stub, r.MS)
	if !strings.HasPrefix(r.Chip, "ESP32") || !r.Stub {
		t.Errorf("chip %q, stub running %v\n%s", r.Chip, r.Stub, r.Log)
	}
	for _, want := range []string{"Uploading stub", "Stub running", "Hash of data verified"} {
		if !strings.Contains(r.Log, want) {
			t.Errorf("esptool-js log lacks %q:\n%s", want, r.Log)
		}
	}
	waitState(t, s, "app")
	// The app's agent answers the page's OTA panel.
	click(t, ctx, "#connect-virtual")
	waitJS(t, ctx, "the agent", `!!document.getElementById("running") && document.getElementById("running").innerText === "app0"`, 30*time.Second)
}

// tail returns the last n console lines.
func (l *syncLog) tail(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) > n {
		return append([]string(nil), l.lines[len(l.lines)-n:]...)
	}
	return append([]string(nil), l.lines...)
}
