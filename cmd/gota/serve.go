package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/virtual"
	"github.com/gota-dev/gota/server"
)

func init() {
	register(&command{
		name:  "serve",
		usage: "[--dir dist] [--addr 127.0.0.1:$PORT] [--flash FILE] [--app IMAGE] [--agent go] [--uart bridge|usb] [--fast-flash] [--rollback] [--nodemcu P] [--no-device]: serve the web flasher with a virtual ESP32",
		run:   runServe,
	})
}

// serveOptions are the flags of gota serve.
type serveOptions struct {
	dir       string // built page
	addr      string // listen address
	flash     string // flash file of the virtual device, "" = temporary
	app       string // app image for a new flash file, "" = demo app
	agent     string // device agent of the virtual device
	uart      link.UART
	fastFlash bool
	rollback  bool   // Lua agent: bootloader with rollback support
	profile   string // Lua agent: NodeMCU firmware profile
	noDevice  bool
	stubDir   string // flasher stubs for the page's installer
}

func runServe(args []string) error {
	fs := newFlagSet("serve", os.Stderr, "serve [flags]",
		"Serves the web flasher on 127.0.0.1 with a virtual ESP32 attached, until Ctrl-C.")
	var o serveOptions
	fs.StringVar(&o.dir, "dir", "dist", "directory with the built page (index.html, main.wasm, wasm_exec.js)")
	fs.StringVar(&o.addr, "addr", "", "address to listen on (default 127.0.0.1:$PORT, or 127.0.0.1:8080)")
	fs.StringVar(&o.flash, "flash", "", "flash file of the virtual device, created if missing (default: a temporary file)")
	fs.StringVar(&o.app, "app", "", "app image for a new flash file (default: a small demo app)")
	fs.StringVar(&o.agent, "agent", "go", "agent of the virtual device: "+strings.Join(virtual.Agents(), ", "))
	uartFlag(fs, &o.uart)
	fs.BoolVar(&o.fastFlash, "fast-flash", false, "instant flash operations (default: realistic SPI NOR timing)")
	fs.BoolVar(&o.noDevice, "no-device", false, "serve the page without a virtual device")
	fs.BoolVar(&o.rollback, "rollback", false, "with --agent lua: a bootloader with app rollback support (stock NodeMCU builds have none)")
	fs.StringVar(&o.profile, "nodemcu", "console", "with --agent lua: NodeMCU firmware `profile` ("+nodemcuProfiles()+")")
	fs.StringVar(&o.stubDir, "stub", os.Getenv("GOTA_STUB_DIR"), "directory of flasher stub JSON files by chip (e.g. node_modules/esptool-js/lib/targets/stub_flasher) for the page's installer; default $GOTA_STUB_DIR, none: ROM loader only")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	if err := checkAgent(o.agent); err != nil {
		return err
	}
	if o.addr == "" {
		port := os.Getenv("PORT")
		if port == "" {
			port = "8080"
		}
		o.addr = net.JoinHostPort("127.0.0.1", port)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, o, os.Stderr, func(url string) {
		fmt.Printf("Gota web flasher: %s\n", url)
	})
}

// serve runs the page server until ctx is done. ready receives the URL
// once the server listens; notes go to log.
func serve(ctx context.Context, o serveOptions, log io.Writer, ready func(url string)) error {
	cfg := server.Config{Dir: o.dir, StubDir: o.stubDir}
	if !o.noDevice {
		path := o.flash
		if path == "" {
			tmp, err := os.MkdirTemp("", "gota-serve-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			path = filepath.Join(tmp, "flash.bin")
		}
		var app []byte
		if o.app != "" {
			b, err := os.ReadFile(o.app)
			if err != nil {
				return fmt.Errorf("--app: %w", err)
			}
			app = b
		}
		created, err := server.EnsureFlash(path, app)
		if err != nil {
			return err
		}
		if !created && o.app != "" {
			fmt.Fprintf(log, "gota serve: %s exists; --app ignored\n", path)
		}
		fl, err := flash.Open(path)
		if err != nil {
			return err
		}
		defer fl.Close()
		if !o.fastFlash {
			fl.SetTiming(flash.RealisticTiming)
		}
		dev, err := virtual.New(fl, virtual.Config{Agent: o.agent, Rollback: o.rollback, Profile: o.profile, Line: link.Config{UART: o.uart}})
		if err != nil {
			return err
		}
		defer func() {
			dev.Close()
			fmt.Fprintf(log, "gota serve: line stats: %s\n", lineStats(dev.Line().Stats()))
		}()
		cfg.Device = dev
		fmt.Fprintf(log, "gota serve: virtual ESP32 on flash file %s\n", path)
	}
	h, err := server.New(cfg)
	if err != nil {
		return err
	}
	if raw, gz, ok := h.Sizes("/main.wasm"); ok {
		fmt.Fprintf(log, "gota serve: main.wasm %d bytes, %d gzipped\n", raw, gz)
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ready(fmt.Sprintf("http://%s/", ln.Addr()))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}
	return nil
}
