package browsertest

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/virtual"
	"github.com/gota-dev/gota/server"
)

// Goals for the page (issue "Honest emulator, honest figures").
const (
	wasmGzipGoal = 1_500_000               // bytes of main.wasm as served, gzipped
	coldTTIGoal  = 1000 * time.Millisecond // cold headless Chromium to an interactive page
)

// BenchmarkPageWeight reports the WebAssembly binary's size, raw and as
// served gzip-compressed, against its goal.
func BenchmarkPageWeight(b *testing.B) {
	dist := buildDist(b)
	s, err := server.New(server.Config{Dir: dist})
	if err != nil {
		b.Fatal(err)
	}
	raw, gz, ok := s.Sizes("/main.wasm")
	if !ok {
		b.Fatal("main.wasm not precompressed")
	}
	for i := 0; i < b.N; i++ {
	}
	b.ReportMetric(float64(raw), "wasm-bytes")
	b.ReportMetric(float64(gz), "wasm-gzip-bytes")
	fmt.Printf("page weight: main.wasm %d bytes raw, %d bytes gzipped (%.1f%%); goal <= %d gzipped: %s\n",
		raw, gz, 100*float64(gz)/float64(raw), wasmGzipGoal, verdict(gz <= wasmGzipGoal))
}

// BenchmarkTimeToInteractive starts a fresh headless Chromium (new
// profile: no HTTP cache, no compiled WebAssembly) for each of 3 loads
// and reports the median time from navigation to the rendered app
// (data-gota-ready), browser start-up not included.
func BenchmarkTimeToInteractive(b *testing.B) {
	app, err := server.DemoApp("1.0.0")
	if err != nil {
		b.Fatal(err)
	}
	s := startSite(b, app)
	var times []time.Duration
	for i := 0; i < b.N*3; i++ {
		ctx := newBrowser(b)
		times = append(times, load(b, ctx, s.URL+"/?n="+strconv.Itoa(i)))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	med := times[len(times)/2]
	b.ReportMetric(float64(med.Milliseconds()), "ms-to-interactive")
	fmt.Printf("time to interactive (cold headless Chromium, local server, median of %d): %d ms; goal <= %d ms: %s\n",
		len(times), med.Milliseconds(), coldTTIGoal.Milliseconds(), verdict(med <= coldTTIGoal))
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

// BenchmarkFlashBrowserVsCLI flashes the LEDController v1.1 image over an
// emulated 921600 baud line twice: through the page in Chromium (Web
// Serial code path, WebSocket to the virtual device) and with the updater
// in-process over the same kind of line, and reports the ratio.
func BenchmarkFlashBrowserVsCLI(b *testing.B) {
	_, v10 := sharedFile(b, "esp32-ledcontroller-v1.0.bin")
	p11, v11 := sharedFile(b, "esp32-ledcontroller-v1.1.bin")
	const baud = 921600

	var cliTotal, webTotal time.Duration
	var ratios []float64
	for i := 0; i < b.N; i++ {
		// CLI: updater over the virtual device's host end.
		path := filepath.Join(b.TempDir(), "cli-flash.bin")
		if _, err := server.EnsureFlash(path, v10); err != nil {
			b.Fatal(err)
		}
		dev, err := virtual.Open(path, virtual.Config{})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		sess, err := updater.Connect(ctx, dev.Host(), updater.Options{Baud: baud, Compression: true})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var phases []string
		progress := func(p updater.Progress) {
			if p.Phase != "send" || p.Sent == 0 || p.Sent == p.Total {
				phases = append(phases, fmt.Sprintf("%s %d ms", p.Phase, time.Since(start).Milliseconds()))
			}
		}
		if err := sess.Flash(ctx, v11, updater.FlashOptions{Progress: progress}); err != nil {
			b.Fatal(err)
		}
		cli := time.Since(start)
		b.Logf("CLI phases: %s", strings.Join(phases, ", "))
		cliTotal += cli
		sess.Close()
		cancel()
		dev.Close()

		// Browser.
		s := startSite(b, v10)
		bctx := newBrowser(b)
		load(b, bctx, s.URL)
		waitJS(b, bctx, "the virtual device button", `!!document.getElementById("connect-virtual")`, 10*time.Second)
		click(b, bctx, "#connect-virtual")
		waitJS(b, bctx, "the device panel", `!!document.getElementById("running") && !document.getElementById("busy")`, 60*time.Second)
		if got := text(b, bctx, `document.getElementById("status").innerText`); !strings.Contains(got, strconv.Itoa(baud)) {
			b.Logf("warning: the page did not switch to %d baud: %s", baud, got)
		}
		upload(b, bctx, p11)
		waitJS(b, bctx, "the Flash button", `!!document.getElementById("flash") && !document.getElementById("flash").disabled`, 20*time.Second)
		click(b, bctx, "#flash")
		waitJS(b, bctx, "the flash to finish", `!!document.getElementById("notice") && document.getElementById("notice").dataset.flashMs > 0`, 2*time.Minute)
		ms, err := strconv.Atoi(text(b, bctx, `document.getElementById("notice").dataset.flashMs`))
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("browser phases: %s", text(b, bctx, `(window.gotaTrace || []).join(", ")`))
		b.Logf("renders: %s", text(b, bctx, `window.gotaRenders + " renders, " + window.gotaRenderMS + " ms"`))
		web := time.Duration(ms) * time.Millisecond
		webTotal += web
		ratios = append(ratios, web.Seconds()/cli.Seconds())
		fmt.Printf("flash %d bytes at %d baud: CLI %.2f s, browser %.2f s, ratio %.3f (target <= 1.15)\n",
			len(v11), baud, cli.Seconds(), web.Seconds(), web.Seconds()/cli.Seconds())
	}
	b.ReportMetric(cliTotal.Seconds()/float64(b.N), "cli-s")
	b.ReportMetric(webTotal.Seconds()/float64(b.N), "browser-s")
	b.ReportMetric(webTotal.Seconds()/cliTotal.Seconds(), "browser/cli")
	sort.Float64s(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "median-browser/cli")
}

// BenchmarkInstallVsEsptoolJS installs the same merged image (stand-in
// bootloader, partition table, LEDController v1.1, 382 KB) on a blank
// virtual ESP32 over the same emulated line (WebSocket shim, switched to
// 921600 baud) three times: with the page's Install panel through the ROM
// loader only, with it and the published stub esptool-js ships (served
// by the page's server), and with esptool-js 0.7.0 itself (its stub).
// Wall time from the start (click / before main()) to the reset into the
// app.
func BenchmarkInstallVsEsptoolJS(b *testing.B) {
	_, app := sharedFile(b, "esp32-ledcontroller-v1.1.bin")
	path, merged := mergedFileWith(b, app)
	stubs := esptoolJSStubs(b)
	ctx := newBrowser(b)
	var gota, gotaStub, ejs time.Duration
	for i := 0; i < b.N; i++ {
		s := startBlankSite(b)
		load(b, ctx, s.URL)
		gota += pageInstall(b, ctx, path)

		s = startBlankSiteStubs(b, stubs)
		load(b, ctx, s.URL)
		gotaStub += pageInstall(b, ctx, path)

		s = startBlankSite(b)
		load(b, ctx, s.URL)
		waitJS(b, ctx, "the shim", `!!globalThis.gotaVirtual`, 10*time.Second)
		r := runEsptoolJS(b, ctx, s, merged, 921600)
		ejs += time.Duration(r.MS * float64(time.Millisecond))
	}
	g, gs, e := gota.Seconds()/float64(b.N), gotaStub.Seconds()/float64(b.N), ejs.Seconds()/float64(b.N)
	b.ReportMetric(g, "gota-rom-s")
	b.ReportMetric(gs, "gota-stub-s")
	b.ReportMetric(e, "esptool-js-s")
	fmt.Printf("install %d bytes at 921600 baud: Gota %.2f s (ROM loader), %.2f s (with the stub), esptool-js 0.7.0 %.2f s (with its stub); Gota/esptool-js %.2f and %.2f\n",
		len(merged), g, gs, e, g/e, gs/e)
}

// pageInstall installs path with the Install panel and returns the time
// from the click until the panel reports the install done.
func pageInstall(tb testing.TB, ctx context.Context, path string) time.Duration {
	tb.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.SetUploadFiles(chromedp.CSS("#install-file"), []string{path}, chromedp.NodeReady)); err != nil {
		tb.Fatal(err)
	}
	waitJS(tb, ctx, "the plan", `!!document.getElementById("install-plan")`, 10*time.Second)
	start := time.Now()
	click(tb, ctx, "#install-virtual")
	waitJS(tb, ctx, "the install", `(document.getElementById("install-result")||{innerText:""}).innerText.startsWith("Installed")`, 3*time.Minute)
	return time.Since(start)
}
