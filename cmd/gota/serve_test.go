package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/internal/shareddata"
)

func fakeDist(t *testing.T) string {
	dir := t.TempDir()
	for name, body := range map[string]string{"index.html": "<!doctype html>gota", "main.wasm": strings.Repeat("wasm", 1000)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startServe runs serve in the background and returns its URL.
func startServe(t *testing.T, o serveOptions) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, o, io.Discard, func(u string) { urls <- u }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case u := <-urls:
		return u
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	return ""
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeWithDemoDevice(t *testing.T) {
	u := startServe(t, serveOptions{dir: fakeDist(t), addr: "127.0.0.1:0"})
	if code, body := get(t, u); code != 200 || !strings.Contains(body, "gota") {
		t.Errorf("GET /: %d %q", code, body)
	}
	if code, _ := get(t, u+"virtual-device"); code != 200 {
		t.Errorf("GET /virtual-device: %d, want 200", code)
	}
}

func TestServeWithAppImage(t *testing.T) {
	app := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	appPath := filepath.Join(shareddata.Dir(t), "esp32-ledcontroller-v1.0.bin")
	flashPath := filepath.Join(t.TempDir(), "flash.bin")
	startServe(t, serveOptions{dir: fakeDist(t), addr: "127.0.0.1:0", flash: flashPath, app: appPath})
	// The flash file stays (given with --flash) and boots the image.
	fl, err := flash.Open(flashPath)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	dev, err := device.Open(device.Config{Flash: fl})
	if err != nil {
		t.Fatal(err)
	}
	info, err := dev.Info()
	if err != nil {
		t.Fatal(err)
	}
	img, err := espimage.Parse(app)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range info.Partitions {
		if p.Label == info.Running {
			if !bytes.Equal(p.SHA256, img.Digest[:]) {
				t.Errorf("running partition %s holds digest %x, want the --app image's %x", p.Label, p.SHA256, img.Digest)
			}
			return
		}
	}
	t.Errorf("running partition %q not listed", info.Running)
}

func TestServeNoDevice(t *testing.T) {
	u := startServe(t, serveOptions{dir: fakeDist(t), addr: "127.0.0.1:0", noDevice: true})
	if code, _ := get(t, u+"virtual-device"); code != 404 {
		t.Errorf("GET /virtual-device without a device: %d, want 404", code)
	}
}

func TestServeErrors(t *testing.T) {
	tests := []struct {
		name string
		o    serveOptions
		want string
	}{
		{"no page", serveOptions{dir: t.TempDir(), addr: "127.0.0.1:0", noDevice: true}, "index.html"},
		{"missing app", serveOptions{dir: fakeDist(t), addr: "127.0.0.1:0", app: filepath.Join(t.TempDir(), "nope.bin")}, "--app"},
		{"bad address", serveOptions{dir: fakeDist(t), addr: "256.0.0.1:x", noDevice: true}, "256.0.0.1"},
		{"unknown agent", serveOptions{dir: fakeDist(t), addr: "127.0.0.1:0", agent: "python"}, `agent "python"`},
	}
	for _, tc := range tests {
		err := serve(context.Background(), tc.o, io.Discard, func(string) {})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

// TestServeAgents serves the virtual device with --agent lua and --agent c
// and talks to gota.lua and the C agent over the page's WebSocket, as the
// browser does.
func TestServeAgents(t *testing.T) {
	for _, tc := range []struct{ agent, name string }{{"lua", "gota-lua/1"}, {"c", "gota-c/1"}} {
		t.Run(tc.agent, func(t *testing.T) {
			u := startServe(t, serveOptions{dir: fakeDist(t), addr: "127.0.0.1:0", agent: tc.agent})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p, err := openPort(ctx, "ws"+strings.TrimPrefix(u, "http")+"serial")
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			s, err := updater.Connect(ctx, p, updater.Options{})
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer s.Close()
			if got := s.Caps().Agent; got != tc.name {
				t.Errorf("agent %q, want %s", got, tc.name)
			}
			if di, err := s.Info(ctx); err != nil || di.Running != "app0" {
				t.Errorf("info: %+v, %v", di, err)
			}
		})
	}
}
