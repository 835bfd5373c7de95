package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/espimage"
)

func writeSite(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"index.html":   "<!doctype html><title>t</title>",
		"main.wasm":    strings.Repeat("\x00asm wasm bytes ", 4096),
		"wasm_exec.js": "// go",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestServeWasmGzip(t *testing.T) {
	dir := writeSite(t)
	raw, _ := os.ReadFile(filepath.Join(dir, "main.wasm"))
	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()

	tests := []struct {
		accept   string
		wantGzip bool
	}{
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{"gzip;q=0", false},
		{"identity", false},
		{"", false},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest("GET", ts.URL+"/main.wasm", nil)
		req.Header.Set("Accept-Encoding", tc.accept)
		// A Transport with compression off hands back the bytes as sent.
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/wasm" {
			t.Errorf("Accept-Encoding %q: Content-Type %q, want application/wasm", tc.accept, ct)
		}
		gotGzip := resp.Header.Get("Content-Encoding") == "gzip"
		if gotGzip != tc.wantGzip {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", tc.accept, gotGzip, tc.wantGzip)
			continue
		}
		if gotGzip {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(zr)
		}
		if !bytes.Equal(body, raw) {
			t.Errorf("Accept-Encoding %q: body differs from main.wasm (%d bytes, want %d)", tc.accept, len(body), len(raw))
		}
	}
	r, gz, ok := s.Sizes("/main.wasm")
	if !ok || r != int64(len(raw)) || gz <= 0 || gz >= r {
		t.Errorf("Sizes = %d, %d, %v; want %d raw and a smaller gzip", r, gz, ok, len(raw))
	}
}

func TestServeNoDevice(t *testing.T) {
	s, err := New(Config{Dir: writeSite(t)})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/": 200, "/wasm_exec.js": 200, VirtualDevicePath: 404, "/missing.js": 404} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", rec.Code)
	}
}

func TestServeNeedsBuiltPage(t *testing.T) {
	_, err := New(Config{Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "index.html") {
		t.Errorf("empty dir: err %v, want one naming index.html", err)
	}
	_, err = New(Config{Dir: filepath.Join(t.TempDir(), "nope")})
	if err == nil {
		t.Error("missing dir: no error")
	}
}

func TestDemoAppIsValid(t *testing.T) {
	b, err := DemoApp("1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	img, err := espimage.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Verify(espimage.VerifyOptions{Chip: espimage.ChipESP32, CheckChip: true, PartitionOffset: 0x10000, RequireApp: true}); err != nil {
		t.Fatalf("demo app does not verify: %v", err)
	}
	if img.App == nil || img.App.Version != "1.2.3" || img.App.ProjectName != "gota-demo" {
		t.Errorf("app descriptor %+v, want gota-demo 1.2.3", img.App)
	}
}

func TestServeStubs(t *testing.T) {
	stubs := t.TempDir()
	if err := os.WriteFile(filepath.Join(stubs, "esp32.json"), []byte(`{"entry":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir  string
		want int
	}{{stubs, http.StatusOK}, {"", http.StatusNotFound}} {
		s, err := New(Config{Dir: writeSite(t), StubDir: tc.dir})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s)
		resp, err := http.Get(ts.URL + StubPath + "esp32.json")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ts.Close()
		if resp.StatusCode != tc.want || tc.want == http.StatusOK && string(body) != `{"entry":1}` {
			t.Errorf("StubDir %q: %d %q, want %d", tc.dir, resp.StatusCode, body, tc.want)
		}
	}
}
