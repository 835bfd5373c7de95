package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/agent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/internal/shareddata"
)

// agentServer serves a virtual ESP32 running the Go agent at ws://.../serial,
// one Serve per WebSocket connection (the rate in ?baud= is not modelled
// here; the device run command's line emulator does that).
func agentServer(t *testing.T) (url string, dev *device.Device) {
	t.Helper()
	content, err := device.Build(device.CreateOptions{App: shareddata.File(t, "esp32-ledcontroller-v1.0.bin")})
	if err != nil {
		t.Fatal(err)
	}
	con := agent.NewConsole()
	dev, err = device.Open(device.Config{Flash: flash.FromBytes(content), Log: con})
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(dev, con, agent.Options{})
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		nc := websocket.NetConn(ctx, c, websocket.MessageBinary)
		a.Serve(ctx, nc)
		nc.Close()
	}))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close(); wg.Wait() })
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/serial", dev
}

func run(t *testing.T, f func(stdout, stderr *bytes.Buffer) error) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := f(&stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestRemoteCommands(t *testing.T) {
	url, _ := agentServer(t)
	dir := shareddata.Dir(t)
	v11 := filepath.Join(dir, "esp32-ledcontroller-v1.1.bin")
	v10 := filepath.Join(dir, "esp32-ledcontroller-v1.0.bin")
	t.Setenv("GOTA_CACHE", t.TempDir())

	out, _, err := run(t, func(o, e *bytes.Buffer) error { return remoteInfo(o, e, []string{"--port", url, "--json"}) })
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Running, Next string
		Partitions    map[string]map[string]any
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("info --json: %v\n%s", err, out)
	}
	if j.Running != "app0" || j.Next != "app0" || j.Partitions["app0"]["state"] != "valid" ||
		j.Partitions["app0"]["version"] != "37d69ca" || j.Partitions["app0"]["secure_version"] != 0.0 ||
		!strings.HasPrefix(j.Partitions["app0"]["sha256"].(string), "c99fe6bc") || len(j.Partitions["app1"]) != 0 {
		t.Errorf("info --json:\n%s", out)
	}

	out, _, err = run(t, func(o, e *bytes.Buffer) error { return remoteInfo(o, e, []string{"--port", url}) })
	if err != nil || !strings.Contains(out, "running  app0") || !strings.Contains(out, "* app0     ota_0") {
		t.Errorf("info: %v\n%s", err, out)
	}

	// Flash at the default 921600: the WebSocket reconnects with ?baud=.
	// With the running build as base, frames go as deltas against it.
	out, errOut, err := run(t, func(o, e *bytes.Buffer) error { return remoteFlash(o, e, []string{v11, "--port", url, "--base", v10}) })
	if err != nil {
		t.Fatalf("flash: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "flashed "+v11+" to app1") || !strings.Contains(out, "running app1 (testing)") ||
		!strings.Contains(out, "frames against the base") {
		t.Errorf("flash stdout:\n%s", out)
	}
	for _, want := range []string{"at 921600 baud", `warning: version string "37d69ca" equals`, "gota: sent 316944 of 316944 bytes (100%)", "device| I (", "Loaded app from partition at offset 0x190000"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("flash stderr lacks %q:\n%s", want, errOut)
		}
	}

	_, _, err = run(t, func(o, e *bytes.Buffer) error { return remoteFlash(o, e, []string{v11, "--port", url}) })
	if err == nil || !strings.Contains(err.Error(), "unconfirmed build") {
		t.Errorf("flash on trial: %v", err)
	}
	out, _, err = run(t, func(o, e *bytes.Buffer) error { return remoteSimple(o, e, "accept", []string{"--port", url}, acceptFn) })
	if err != nil || out != "accept: running app1 (valid), next boot app1\n" {
		t.Errorf("accept: %v %q", err, out)
	}
	_, _, err = run(t, func(o, e *bytes.Buffer) error { return remoteFlash(o, e, []string{"--port", url, v11}) })
	if err == nil || !strings.Contains(err.Error(), "image is the build already running in app1") ||
		!strings.Contains(err.Error(), "; use --force to flash it again") || !errors.Is(err, updater.ErrRefused) {
		t.Errorf("same build: %v", err)
	}

	out, _, err = run(t, func(o, e *bytes.Buffer) error {
		return remoteFlash(o, e, []string{v10, "--port", url, "--no-reboot", "--baud", "0", "--no-compress"})
	})
	if err != nil || !strings.Contains(out, "app0 boots next; still running app1") {
		t.Errorf("flash --no-reboot: %v\n%s", err, out)
	}
	out, _, err = run(t, func(o, e *bytes.Buffer) error { return remoteSimple(o, e, "reboot", []string{"--port", url}, rebootFn) })
	if err != nil || out != "reboot: running app0 (testing), next boot app0\n" {
		t.Errorf("reboot: %v %q", err, out)
	}
	out, _, err = run(t, func(o, e *bytes.Buffer) error {
		return remoteSimple(o, e, "rollback", []string{"--port", url}, rollbackFn)
	})
	if err != nil || out != "rollback: running app1 (valid), next boot app1\n" {
		t.Errorf("rollback: %v %q", err, out)
	}

	out, _, err = run(t, func(o, e *bytes.Buffer) error {
		return remoteMonitor(o, e, []string{"--port", url, "--timeout", "500ms"})
	})
	if err != nil || !strings.Contains(out, "gota-agent: ready (gota-go/1, protocol 1)\n") {
		t.Errorf("monitor: %v %q", err, out)
	}

	if _, _, err := run(t, func(o, e *bytes.Buffer) error { return remoteInfo(o, e, []string{"--port", ""}) }); err == nil || !strings.Contains(err.Error(), "no port") {
		t.Errorf("no port: %v", err)
	}
	if _, _, err := run(t, func(o, e *bytes.Buffer) error { return remoteInfo(o, e, []string{"--port", url, "--baud", "5"}) }); err == nil || !strings.Contains(err.Error(), "--baud 5") {
		t.Errorf("bad baud: %v", err)
	}
}

// TestRemoteUsage checks that the remote commands refuse a wrong argument
// count or a missing port before opening anything.
func TestRemoteUsage(t *testing.T) {
	t.Setenv("GOTA_PORT", "")
	t.Setenv("GOTA_CACHE", "off")
	info := func(o, e *bytes.Buffer, a []string) error { return remoteInfo(o, e, a) }
	flash := func(o, e *bytes.Buffer, a []string) error { return remoteFlash(o, e, a) }
	accept := func(o, e *bytes.Buffer, a []string) error { return remoteSimple(o, e, "accept", a, acceptFn) }
	monitor := func(o, e *bytes.Buffer, a []string) error { return remoteMonitor(o, e, a) }
	tests := []struct {
		name      string
		cmd       func(o, e *bytes.Buffer, a []string) error
		args      []string
		wantUsage string // printed on stderr, exit status 2
		wantErr   string // else the error
	}{
		{"info with a file", info, []string{"extra", "--port", "/dev/null"}, "usage: gota info --port PORT", ""},
		{"flash without a file", flash, []string{"--port", "/dev/null"}, "usage: gota flash FILE --port PORT", ""},
		{"flash with two files", flash, []string{"a.bin", "b.bin", "--port", "/dev/null"}, "usage: gota flash FILE", ""},
		{"accept with an argument", accept, []string{"now", "--port", "/dev/null"}, "usage: gota accept --port PORT", ""},
		{"monitor, bad flag", monitor, []string{"--bogus"}, "usage: gota monitor --port PORT", ""},
		{"info without a port", info, nil, "", "no port: give --port"},
		{"flash, rate out of range", flash, []string{"a.bin", "--port", "/dev/null", "--baud", "3000000"}, "", "--baud 3000000: must be between 9600 and 2000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := run(t, func(o, e *bytes.Buffer) error { return tt.cmd(o, e, tt.args) })
			if tt.wantUsage != "" {
				if err != (exitError{2}) || !strings.Contains(stderr, tt.wantUsage) {
					t.Errorf("err %v, stderr %q; want exit 2 and %q", err, stderr, tt.wantUsage)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestFlashUsesImageCache flashes a build, accepts it, and flashes the
// next one: gota cached the first when it flashed it, so the second goes
// as deltas against it without --base.
func TestFlashUsesImageCache(t *testing.T) {
	t.Setenv("GOTA_CACHE", t.TempDir())
	url, _ := agentServer(t)
	dir := shareddata.Dir(t)
	v11 := filepath.Join(dir, "esp32-ledcontroller-v1.1.bin")
	v12 := filepath.Join(dir, "esp32-ledcontroller-v1.2.bin")
	flash := func(image string) (string, string) {
		t.Helper()
		out, errOut, err := run(t, func(o, e *bytes.Buffer) error { return remoteFlash(o, e, []string{image, "--port", url}) })
		if err != nil {
			t.Fatalf("flash %s: %v\n%s", image, err, errOut)
		}
		return out, errOut
	}
	// v1.0 runs, created with the device: not in the cache.
	if out, errOut := flash(v11); strings.Contains(errOut, "image cache") || strings.Contains(out, "against the base") {
		t.Errorf("first flash used a base it cannot have:\n%s\n%s", out, errOut)
	}
	if _, _, err := run(t, func(o, e *bytes.Buffer) error { return remoteSimple(o, e, "accept", []string{"--port", url}, acceptFn) }); err != nil {
		t.Fatal(err)
	}
	out, errOut := flash(v12)
	if !strings.Contains(errOut, "the running build is in the image cache") || !strings.Contains(out, "frames against the base") {
		t.Errorf("second flash did not use the cached running build:\n%s\n%s", out, errOut)
	}
}

func TestImageCache(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GOTA_CACHE", dir)
	c := openImageCache()
	v10 := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	img, err := espimage.Parse(v10)
	if err != nil {
		t.Fatal(err)
	}
	digest := hex.EncodeToString(img.Digest[:])
	if c.get(digest) != nil {
		t.Fatal("empty cache returned an image")
	}
	c.put(v10)
	if got := c.get(digest); !bytes.Equal(got, v10[:img.Length]) {
		t.Fatalf("get after put: %d bytes", len(got))
	}
	// A file whose name does not match its digest is no base.
	bad := append([]byte(nil), v10...)
	bad[len(bad)/2] ^= 1
	other := strings.Repeat("ab", 32)
	if err := os.WriteFile(filepath.Join(dir, other+".bin"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if c.get(other) != nil || c.get("../"+digest) != nil {
		t.Error("get returned a corrupt or mislabelled file")
	}
	c.put([]byte("not an image")) // ignored
	// The cache keeps maxCachedImages.
	for i := range maxCachedImages + 3 {
		b, err := espimage.SetVersion(v10, fmt.Sprintf("v%d", i))
		if err != nil {
			t.Fatal(err)
		}
		c.put(b)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.bin")); len(files) != maxCachedImages {
		t.Errorf("%d images in the cache, want %d", len(files), maxCachedImages)
	}
	t.Setenv("GOTA_CACHE", "off")
	if openImageCache() != nil {
		t.Error("GOTA_CACHE=off still opens a cache")
	}
}
