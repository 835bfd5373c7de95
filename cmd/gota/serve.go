package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/gota-dev/gota/web/server"
)

func init() {
	register(&command{
		name:  "serve",
		usage: "[--dir dist] [--addr 127.0.0.1:$PORT] [--flash FILE] [--app IMAGE] [--no-device]: serve the web flasher with a virtual ESP32",
		run:   runServe,
	})
}

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dir := fs.String("dir", "dist", "directory with the built page (index.html, main.wasm, wasm_exec.js)")
	listen := fs.String("addr", "", "address to listen on (default 127.0.0.1:$PORT, or 127.0.0.1:8080)")
	fs.StringVar(listen, "listen", "", "same as --addr")
	flashPath := fs.String("flash", "", "flash file of the virtual device, created if missing (default: a temporary file)")
	appPath := fs.String("app", "", "app image for a new flash file (default: a small demo app)")
	noDevice := fs.Bool("no-device", false, "serve the page without a virtual device")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	addr := *listen
	if addr == "" {
		port := os.Getenv("PORT")
		if port == "" {
			port = "8080"
		}
		addr = net.JoinHostPort("127.0.0.1", port)
	}

	cfg := server.Config{Dir: *dir}
	if !*noDevice {
		path := *flashPath
		if path == "" {
			tmp, err := os.MkdirTemp("", "gota-serve-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			path = filepath.Join(tmp, "flash.bin")
		}
		var app []byte
		if *appPath != "" {
			b, err := os.ReadFile(*appPath)
			if err != nil {
				return fmt.Errorf("--app: %w", err)
			}
			app = b
		}
		created, err := server.EnsureFlash(path, app)
		if err != nil {
			return err
		}
		if !created && *appPath != "" {
			fmt.Fprintf(os.Stderr, "gota serve: %s exists; --app ignored\n", path)
		}
		dev, err := server.OpenVirtual(path, server.VirtualOptions{})
		if err != nil {
			return err
		}
		defer dev.Close()
		cfg.Device = dev
		fmt.Fprintf(os.Stderr, "gota serve: virtual ESP32 on flash file %s\n", path)
	}
	h, err := server.New(cfg)
	if err != nil {
		return err
	}
	if raw, gz, ok := h.Sizes("/main.wasm"); ok {
		fmt.Fprintf(os.Stderr, "gota serve: main.wasm %d bytes, %d gzipped\n", raw, gz)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("Gota web flasher: http://%s/\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
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
