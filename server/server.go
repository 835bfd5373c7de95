// Package server serves Gota's web page and, on the same origin, the
// WebSocket of a virtual ESP32: the page's "Connect virtual device"
// button opens ws://HOST/serial (a firmware-agent/virtual Device) through
// web/static/virtual-serial.js.
// `gota serve` and the browser tests both use it.
package server

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Paths on the server.
const (
	SerialPath        = "/serial"         // WebSocket of the virtual device
	VirtualDevicePath = "/virtual-device" // 200 when a virtual device is attached
	StubPath          = "/stub/"          // flasher stubs by chip (esp32.json, ...), when configured
)

// usbPort is a virtual device that says which USB serial device it is.
type usbPort interface{ USBIDs() (vid, pid uint16) }

// Config describes what to serve.
type Config struct {
	Dir    string       // built page: index.html, main.wasm, wasm_exec.js, ...
	Device http.Handler // the virtual device's WebSocket handler; nil for none
	// StubDir holds flasher stub JSON files named by chip (as esptool-js
	// publishes them); the page's installer uploads them. "" for none:
	// the page then talks to the ROM loader only.
	StubDir string
}

// Server is the page (and virtual device) handler.
type Server struct {
	mux  *http.ServeMux
	site *site
}

// New returns the handler for cfg. Every .wasm file in Dir is compressed
// once, here, and served gzip-encoded to browsers that accept it.
func New(cfg Config) (*Server, error) {
	st, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("serve: %s is not a directory", cfg.Dir)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "index.html")); err != nil {
		return nil, fmt.Errorf("serve: %s has no index.html (run ./build.sh first): %w", cfg.Dir, err)
	}
	s := &site{dir: cfg.Dir, gz: map[string]*gzFile{}}
	wasm, _ := filepath.Glob(filepath.Join(cfg.Dir, "*.wasm"))
	for _, f := range wasm {
		if err := s.compress(f); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	if cfg.Device != nil {
		mux.Handle(SerialPath, cfg.Device)
		mux.HandleFunc(VirtualDevicePath, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			usb := ""
			if u, ok := cfg.Device.(usbPort); ok {
				// What SerialPort.getInfo() reports for the port (the
				// page's shim passes it on): esptool-js picks its reset
				// sequence by it.
				vid, pid := u.USBIDs()
				usb = fmt.Sprintf(",\"usbVendorId\":%d,\"usbProductId\":%d", vid, pid)
			}
			fmt.Fprintf(w, "{\"serial\":%q%s}\n", SerialPath, usb)
		})
	}
	if cfg.StubDir != "" {
		mux.Handle(StubPath, http.StripPrefix(StubPath, http.FileServer(http.Dir(cfg.StubDir))))
	}
	mux.Handle("/", s)
	return &Server{mux: mux, site: s}, nil
}

type site struct {
	dir string
	mu  sync.Mutex
	gz  map[string]*gzFile // by clean URL path
}

type gzFile struct {
	data    []byte
	modTime time.Time
	rawSize int64
}

// compress gzips file once at the best level.
func (s *site) compress(file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	st, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		return fmt.Errorf("serve: gzip %s: %w", file, err)
	}
	s.mu.Lock()
	s.gz["/"+filepath.Base(file)] = &gzFile{data: buf.Bytes(), modTime: st.ModTime(), rawSize: int64(len(raw))}
	s.mu.Unlock()
	return nil
}

// Sizes returns the raw and gzipped size of a precompressed file such as
// "/main.wasm", or ok false.
func (s *Server) Sizes(name string) (raw, gz int64, ok bool) {
	s.site.mu.Lock()
	defer s.site.mu.Unlock()
	f := s.site.gz[name]
	if f == nil {
		return 0, 0, false
	}
	return f.rawSize, int64(len(f.data)), true
}

// ServeHTTP serves the page, the virtual device and its discovery URL.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	// Nothing is cached for long: the page changes with every build.
	w.Header().Set("Cache-Control", "no-cache")
	if strings.HasSuffix(p, ".wasm") {
		w.Header().Set("Content-Type", "application/wasm")
		w.Header().Add("Vary", "Accept-Encoding")
		s.mu.Lock()
		f := s.gz[p]
		s.mu.Unlock()
		if f != nil && acceptsGzip(r) {
			// Refresh the compressed copy if the file was rebuilt.
			if st, err := os.Stat(filepath.Join(s.dir, filepath.FromSlash(p))); err == nil && !st.ModTime().Equal(f.modTime) {
				if err := s.compress(filepath.Join(s.dir, filepath.FromSlash(p))); err == nil {
					s.mu.Lock()
					f = s.gz[p]
					s.mu.Unlock()
				}
			}
			w.Header().Set("Content-Encoding", "gzip")
			http.ServeContent(w, r, p, f.modTime, bytes.NewReader(f.data))
			return
		}
	}
	if ext := path.Ext(p); ext == ".js" {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	} else if t := mime.TypeByExtension(ext); t != "" && ext != "" {
		w.Header().Set("Content-Type", t)
	}
	http.FileServer(http.Dir(s.dir)).ServeHTTP(w, r)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			return !strings.Contains(strings.ReplaceAll(q, " ", ""), "q=0") || strings.Contains(q, "q=0.")
		}
	}
	return false
}
