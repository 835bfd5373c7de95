package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/gota-dev/gota/core/updater"
)

// The commands that talk to a device agent over a serial line or the
// virtual device's WebSocket.
func init() {
	common := "--port PORT [--baud N]"
	register(&command{name: "info", usage: common + " [--json]\n                       show the device's partitions and OTA state", run: runInfo})
	register(&command{name: "flash", usage: "FILE " + common + " [--base RUNNING.bin] [--force] [--allow-downgrade] [--no-reboot] [--no-compress] [--no-resume]\n                       update over the air", run: runFlash})
	register(&command{name: "accept", usage: common + "\n                       mark the running build valid (cancel rollback)", run: runAccept})
	register(&command{name: "rollback", usage: common + "\n                       mark the running build invalid and reboot into the previous one", run: runRollback})
	register(&command{name: "reboot", usage: common + "\n                       restart the device", run: runReboot})
	register(&command{name: "monitor", usage: "--port PORT [--baud N] [--reset]\n                       print the device log until Ctrl-C (N: the console's rate)", run: runMonitor})
}

// remoteFlags are the flags every remote command takes.
type remoteFlags struct {
	fs      *flag.FlagSet
	port    string
	baud    int
	timeout time.Duration
}

// switchBaudUsage describes --baud for commands that handshake.
const switchBaudUsage = "line rate to switch to after the handshake if the agent offers it (0 = stay at 115200)"

// newRemoteFlags returns the flags of the command whose synopsis (for the
// usage) is given, e.g. "flash FILE --port PORT [flags]".
func newRemoteFlags(synopsis string, stderr io.Writer, baud int, baudUsage string) *remoteFlags {
	name, _, _ := strings.Cut(synopsis, " ")
	r := &remoteFlags{fs: newFlagSet(name, stderr, synopsis)}
	r.fs.StringVar(&r.port, "port", os.Getenv("GOTA_PORT"), "serial device (/dev/ttyUSB0) or ws://HOST:PORT/serial of a virtual device (default $GOTA_PORT)")
	r.fs.IntVar(&r.baud, "baud", baud, baudUsage)
	r.fs.DurationVar(&r.timeout, "timeout", 0, "give up after this long (0 = no limit)")
	return r
}

// parse parses args (flags may follow positional arguments), checks that
// there are nargs positional arguments, and checks the port and rate.
func (r *remoteFlags) parse(args []string, nargs int) ([]string, error) {
	pos, err := parseArgs(r.fs, args, nargs, nargs)
	if err != nil {
		return nil, err
	}
	if r.port == "" {
		return nil, errors.New("no port: give --port /dev/ttyUSB0 or --port ws://HOST:PORT/serial (or set GOTA_PORT)")
	}
	if r.baud != 0 && (r.baud < 9600 || r.baud > 2000000) {
		return nil, fmt.Errorf("--baud %d: must be between 9600 and 2000000", r.baud)
	}
	return pos, nil
}

// context returns a context cancelled by Ctrl-C and the timeout.
func (r *remoteFlags) context() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if r.timeout <= 0 {
		return ctx, stop
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	return ctx, func() { cancel(); stop() }
}

// output serialises device log lines, progress and messages on stderr.
type output struct {
	mu  sync.Mutex
	w   io.Writer
	bar *progressbar.ProgressBar
}

// deviceLine prints a line of device log.
func (o *output) deviceLine(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.bar != nil {
		o.bar.Clear()
	}
	fmt.Fprintf(o.w, "device| %s\n", line)
	if o.bar != nil {
		o.bar.RenderBlank()
	}
}

func (o *output) printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.bar != nil {
		o.bar.Clear()
	}
	fmt.Fprintf(o.w, format, args...)
	if o.bar != nil {
		o.bar.RenderBlank()
	}
}

// session opens the port and handshakes.
func (r *remoteFlags) session(ctx context.Context, out *output, opt updater.Options) (*updater.Session, port, error) {
	p, err := openPort(ctx, r.port)
	if err != nil {
		return nil, nil, err
	}
	opt.Log = out.deviceLine
	s, err := updater.Connect(ctx, p, opt)
	if err != nil {
		p.Close()
		return nil, nil, fmt.Errorf("%s: %w", r.port, err)
	}
	return s, p, nil
}
