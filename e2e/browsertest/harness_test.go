package browsertest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gota-dev/gota/firmware-agent/virtual"
	"github.com/gota-dev/gota/internal/shareddata"
	"github.com/gota-dev/gota/internal/testenv"
	"github.com/gota-dev/gota/server"
)

// chromiumPath is the browser the tests drive.
const chromiumPath = "/usr/bin/chromium"

// moduleRoot finds the directory holding go.mod.
func moduleRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above " + file)
		}
		dir = parent
	}
}

var (
	distOnce sync.Once
	distDir  string
	distErr  error
)

// buildDist builds the page the way build.sh does (WASM, wasm_exec.js,
// index.html and the static files) into a temporary directory, once per
// test binary. The committed Vugu output is used as is.
func buildDist(tb testing.TB) string {
	tb.Helper()
	distOnce.Do(func() {
		root := moduleRoot(tb)
		dir, err := os.MkdirTemp("", "gota-dist-")
		if err != nil {
			distErr = err
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "main.wasm"), "./wasm")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			distErr = fmt.Errorf("build wasm: %v\n%s", err, out)
			return
		}
		goroot, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			distErr = fmt.Errorf("go env GOROOT: %v", err)
			return
		}
		copies := map[string]string{
			filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"): "wasm_exec.js",
			filepath.Join(root, "index.html"):                                               "index.html",
			filepath.Join(root, "web", "static", "virtual-serial.js"):                       "virtual-serial.js",
			filepath.Join(root, "web", "static", "style.css"):                               "style.css",
			filepath.Join(root, "firmware-agent", "nodemcu", "gota.lua"):                    "gota.lua",
		}
		for from, to := range copies {
			b, err := os.ReadFile(from)
			if err != nil {
				distErr = err
				return
			}
			if err := os.WriteFile(filepath.Join(dir, to), b, 0o644); err != nil {
				distErr = err
				return
			}
		}
		distDir = dir
	})
	if distErr != nil {
		tb.Fatal(distErr)
	}
	return distDir
}

// site is a served page with a virtual device.
type site struct {
	URL    string
	Device *virtual.Device
	Server *server.Server
	Log    *syncLog
}

// syncLog collects the device console as the server sees it.
type syncLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *syncLog) add(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }

// snapshot returns the lines so far.
func (l *syncLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// startSite creates a flash file holding app in ota_0, boots a virtual
// device on it and serves the page in-process.
func startSite(tb testing.TB, app []byte) *site { return startSiteAgent(tb, app, "") }

// startSiteAgent is startSite with the device running agent ("" is the
// Go agent).
func startSiteAgent(tb testing.TB, app []byte, agent string) *site {
	tb.Helper()
	return startSiteWith(tb, app, virtual.Config{Agent: agent})
}

// startSiteWith is startSite with a device configuration (agent,
// bootloader, NodeMCU profile).
func startSiteWith(tb testing.TB, app []byte, cfg virtual.Config) *site {
	tb.Helper()
	dist := buildDist(tb)
	flashPath := filepath.Join(tb.TempDir(), "flash.bin")
	if _, err := server.EnsureFlash(flashPath, app); err != nil {
		tb.Fatal(err)
	}
	log := &syncLog{}
	cfg.Log = virtual.LineLog(log.add)
	dev, err := virtual.Open(flashPath, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	h, err := server.New(server.Config{Dir: dist, Device: dev})
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

// startDemoSite starts a browser (or skips) and a site whose virtual
// device runs the demo app 1.0.0.
func startDemoSite(t *testing.T) (context.Context, *site) {
	t.Helper()
	ctx := newBrowser(t)
	app, err := server.DemoApp("1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	return ctx, startSite(t, app)
}

// newBrowser starts headless Chromium with a fresh profile, or skips
// (fails on CI).
func newBrowser(tb testing.TB) context.Context {
	tb.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Missing(tb, "browser tests need Chromium at %s (apt-get install chromium): %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(tb.Logf))
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		tb.Fatalf("start chromium: %v", err)
	}
	tb.Cleanup(func() { cancelCtx(); cancelAlloc() })
	return ctx
}

// shots saves numbered PNG screenshots under one folder per test.
type shots struct {
	tb  testing.TB
	dir string
	n   int
}

func newShots(tb testing.TB) *shots {
	base := os.Getenv("GOTA_SCREENSHOTS")
	if base == "" {
		base = filepath.Join(os.TempDir(), "gota-screenshots")
	}
	dir := filepath.Join(base, strings.ReplaceAll(tb.Name(), "/", "_"))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("screenshots: %s", dir)
	return &shots{tb: tb, dir: dir}
}

func (s *shots) take(ctx context.Context, name string) {
	s.tb.Helper()
	s.n++
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.tb.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(s.dir, fmt.Sprintf("%02d-%s.png", s.n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		s.tb.Logf("screenshot %s: %v", name, err)
	}
}

// waitJS polls a JavaScript boolean expression until it is true. On
// timeout it fails with what the page shows.
func waitJS(tb testing.TB, ctx context.Context, what, expr string, timeout time.Duration) {
	tb.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := chromedp.Run(tctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		tb.Fatalf("waiting for %s (%s): %v\npage: %s", what, expr, err, pageState(ctx))
	}
}

// pageState summarises the page for failure messages.
func pageState(ctx context.Context) string {
	ectx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ectx, chromedp.Evaluate[string](`(() => {
		const t = (id) => { const e = document.getElementById(id); return e ? e.innerText : "-"; };
		return "status=" + t("status") + " | problem=" + t("problem") + " | notice=" + t("notice") +
			" | device=" + t("device") + " | image=" + t("image") + " | progress=" + t("progress") +
			" | console tail=" + t("console").slice(-600);
	})()`))
	return s
}

func text(tb testing.TB, ctx context.Context, expr string) string {
	tb.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		tb.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

func click(tb testing.TB, ctx context.Context, sel string) {
	tb.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err != nil {
		tb.Fatalf("click %s: %v\npage: %s", sel, err, pageState(ctx))
	}
}

func upload(tb testing.TB, ctx context.Context, path string) {
	tb.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{path}, chromedp.NodeReady)); err != nil {
		tb.Fatalf("give %s to the file input: %v", path, err)
	}
}

// load opens the page and waits until the WebAssembly app has rendered.
func load(tb testing.TB, ctx context.Context, url string) time.Duration {
	tb.Helper()
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(url)); err != nil {
		tb.Fatalf("navigate %s: %v", url, err)
	}
	waitJS(tb, ctx, "the page to start", `document.documentElement.hasAttribute("data-gota-ready")`, 60*time.Second)
	return time.Since(start)
}

// sharedFile reads one of the shared test vectors (skips when missing).
func sharedFile(tb testing.TB, name string) (path string, data []byte) {
	tb.Helper()
	data = shareddata.File(tb, name)
	return filepath.Join(shareddata.Dir(tb), name), data
}

func evalBool(ctx context.Context, expr string) (bool, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
}

// flashAgents are the device agents the browser's update tests run
// against: the Go agent and the C agent (firmware-agent/esp-idf built for
// the host).
var flashAgents = []string{"go", "c"}

// forAgents runs test once per agent of flashAgents.
func forAgents(t *testing.T, test func(t *testing.T, agent string)) {
	for _, a := range flashAgents {
		t.Run(a, func(t *testing.T) { test(t, a) })
	}
}
