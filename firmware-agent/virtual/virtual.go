// Package virtual runs a virtual ESP32: a device (package device) booted
// from an emulated flash, a device agent serving the Gota protocol (the
// Go agent of package agent or gota.lua in the NodeMCU board of package
// nodemcu) and the emulated serial line it talks over (package link).
//
// The host end of the line is reached in-process (Host), over a
// WebSocket (ServeHTTP, Listen: ws://…/serial?baud=N, the way the browser
// page reaches it) and/or through a pseudo-terminal (AttachPTY, which any
// serial program can open). `gota device run`, `gota serve` and the web
// server's tests all run their virtual device through this package.
//
// # Resets and the ROM
//
// The chip lives from reset to reset (chip.go). The host's DTR/RTS travel
// with the line (link.Line.SetSignals; over the WebSocket as text
// messages, signals.go) to the board's reset circuit (rom.Board: the
// auto-reset circuit of dev boards, or the USB-Serial-JTAG of S3/C3), and
// Config.BootButton holds GPIO0 low as the BOOT button does. When the
// chip leaves reset, the ROM either
//
//   - enters download mode (GPIO0 low): it prints its banner ("...
//     waiting for download") and serves the serial loader (package rom),
//     flasher stubs included, until the host ends it with FLASH_END or
//     RUN_USER_CODE, which boots the flash;
//   - finds no bootloader image at the chip's bootloader offset (a blank
//     or broken flash) and prints "invalid header: 0x..." in a watchdog
//     reset loop, as a real chip does;
//   - or boots the flash: package device's bootloader and the app with
//     its agent, as before.
//
// State reports which. Each life gets its own view of the UART (uart.go),
// so a reset ends whatever ran without touching the host's side of the
// line, and bytes sent while the chip resets are lost.
package virtual

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gota-dev/gota/firmware-agent/agent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/nodemcu"
	"github.com/gota-dev/gota/firmware-agent/rom"
)

// Config configures a virtual device.
type Config struct {
	// Agent names the device agent: "go" (the default) or "lua".
	Agent string
	// NoRollback boots with a bootloader without app rollback support.
	NoRollback bool
	// Rollback gives the Lua agent's board a bootloader with app rollback
	// support (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, a custom NodeMCU
	// build). Without it that board has none: stock NodeMCU builds leave
	// the option off (ESP-IDF's default).
	Rollback bool
	// Profile names the NodeMCU firmware the Lua agent's board emulates
	// (nodemcu.Profiles; default "console", current dev-esp32).
	Profile string
	// agentScript, in tests, replaces gota.lua.
	agentScript []byte
	// REPLOnly boots the Lua agent's board without the agent: NodeMCU's
	// REPL and a file system whose init.lua is a small user program, as a
	// board fresh from idf.py flash with the user's files (for
	// `gota nodemcu install`). Installing writes gota.lua there.
	REPLOnly bool
	// Line configures the emulated line; Line.Baud is the console rate at
	// power-on (default 115200). Line.OnDisconnect, if set, runs when a
	// fault cuts the line, before the host ports are dropped.
	Line link.Config
	// Log, when set, receives a copy of the device console (boot log,
	// and for the Lua agent what the board prints).
	Log io.Writer
	// Chip is what the ROM loader identifies as: esp32 (default),
	// esp32s2, esp32s3 or esp32c3 (rom.ChipByName); ChipRev its revision
	// (major*100+minor, default the chip's rom.Chip.DefaultRev: v3.0 for
	// ESP32).
	Chip    string
	ChipRev uint16
	// Reset is how the host's DTR/RTS reach EN and GPIO0: the dev
	// board's auto-reset circuit (default) or the USB-Serial-JTAG of
	// ESP32-S3/C3 (rom.Circuit).
	Reset rom.Circuit
	// BootButton holds GPIO0 low, as the BOOT button does: every reset,
	// power-on included, enters the ROM's download mode.
	BootButton bool
}

// ErrUnknownAgent is returned for a Config.Agent that is not one of Agents.
var ErrUnknownAgent = errors.New("unknown agent")

// bootFunc boots a device on fl and returns how to serve the agent
// protocol on uart once per connection, and what to release at the end.
type bootFunc func(fl *flash.Flash, cfg Config, uart chipPort) (dev *device.Device, serve func(context.Context) error, release func(), err error)

var agents = map[string]bootFunc{"go": bootGo, "lua": bootLua}

// Agents returns the names Config.Agent accepts, sorted.
func Agents() []string {
	var names []string
	for n := range agents {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// bootGo boots the device for the Go agent; a new Serve runs for every
// connection (each time the line comes back after a cut), keeping the OTA
// state across.
func bootGo(fl *flash.Flash, cfg Config, uart chipPort) (*device.Device, func(context.Context) error, func(), error) {
	con := agent.NewConsole()
	boot := newBootLog(uart)
	defer boot.use(con)
	dev, err := device.Open(deviceConfig(fl, cfg, withLog(boot, cfg.Log)))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("boot: %w", err)
	}
	consoleAtReset(dev, uart)
	uart.InstallDriver(agent.UART)
	a := agent.New(dev, con, agent.Options{SetBaud: uart.SetBaud, QuietAttach: quietAttach(cfg)})
	return dev, func(ctx context.Context) error { boot.wait(ctx); return a.Serve(ctx, uart) }, func() {}, nil
}

// bootLua boots the device and runs the embedded gota.lua on it, as a
// board running NodeMCU with gota.lua started from init.lua would. The
// board (Lua state, transfer in progress) lives as long as the device:
// every time the line comes back it is attached again.
func bootLua(fl *flash.Flash, cfg Config, uart chipPort) (*device.Device, func(context.Context) error, func(), error) {
	prof, err := nodemcu.FindProfile(cmp.Or(cfg.Profile, "console"))
	if err != nil {
		return nil, nil, nil, err
	}
	con := nodemcu.NewConsole()
	boot := newBootLog(uart)
	defer boot.use(con)
	dc := deviceConfig(fl, cfg, withLog(boot, cfg.Log))
	// Stock NodeMCU builds leave CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE off.
	dc.NoRollback = cfg.NoRollback || !cfg.Rollback
	dev, err := device.Open(dc)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("boot: %w", err)
	}
	consoleAtReset(dev, uart)
	uart.InstallDriver(prof.Options.Firmware.Receiver())
	opt := prof.Options
	opt.Console, opt.Log, opt.SetBaud, opt.ConsoleBaud = con, cfg.Log, uart.SetBaud, uart.Baud()
	// The board reads the line only as its Lua task takes bytes, so the
	// line's FIFO and ring (Receiver) fill while Lua is busy in
	// otaupgrade, and the FIFO alone takes bytes during flash operations.
	opt.InputQueue = prof.Options.Firmware.InputQueue()
	script := nodemcu.AgentScript
	if cfg.agentScript != nil {
		script = cfg.agentScript
	}
	if cfg.REPLOnly {
		opt.FS, script = nodemcu.NewFS(), nil
		opt.FS.WriteFile("init.lua", []byte(DemoUserInit))
	}
	board := nodemcu.NewBoard(dev, script, opt)
	return dev, func(ctx context.Context) error { boot.wait(ctx); return board.Run(ctx, uart) }, func() { board.Close() }, nil
}

func deviceConfig(fl *flash.Flash, cfg Config, log io.Writer) device.Config {
	c, _ := rom.ChipByName(cfg.Chip)
	if c == nil {
		c = rom.ESP32
	}
	return device.Config{Flash: fl, Log: log, NoRollback: cfg.NoRollback, Chip: espChip(c), ChipRev: cfg.ChipRev}
}

// quietAttach reports whether the app cannot tell that a host opened the
// port: on UART0 behind a bridge nothing reaches the chip when a port
// opens (DTR and RTS drive EN and GPIO0, link/signals.go), while USB-CDC
// and USB-Serial-JTAG see the host's DTR.
func quietAttach(cfg Config) bool { return cfg.Line.UART == link.Bridge }

// consoleAtReset puts the device's UART back to its power-on rate at
// every reset, before the ROM and the bootloader print: a host still at
// the agent's fast rate reads the boot log garbled, as from a real board.
// What the app sent before restarting leaves first at the old rate (an
// agent waits for it, uart_wait_tx_done, before esp_restart).
func consoleAtReset(dev *device.Device, uart chipPort) {
	baud := uart.Baud()
	dev.OnReset(func() { uart.SetBaud(baud) })
}

// DemoUserInit is the init.lua of a REPLOnly board: the user's program
// the installer must keep.
const DemoUserInit = "-- the board owner's program\nprint(\"hello from init.lua\")\n"

func withLog(con, log io.Writer) io.Writer {
	if log == nil {
		return con
	}
	return io.MultiWriter(log, con)
}

// Device is a running virtual ESP32 and its line.
type Device struct {
	ports
	chip      *chip
	flash     *flash.Flash
	ownsFlash bool
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// Open boots a virtual device on the flash file at path; Close closes
// the file.
func Open(path string, cfg Config) (*Device, error) {
	fl, err := flash.Open(path)
	if err != nil {
		return nil, fmt.Errorf("virtual device: %w", err)
	}
	d, err := New(fl, cfg)
	if err != nil {
		fl.Close()
		return nil, err
	}
	d.ownsFlash = true
	return d, nil
}

// New boots a virtual device on fl (which the caller closes after Close)
// and starts its agent.
func New(fl *flash.Flash, cfg Config) (*Device, error) {
	if cfg.Agent == "" {
		cfg.Agent = "go"
	}
	boot := agents[cfg.Agent]
	if boot == nil {
		return nil, fmt.Errorf("agent %q: %w (have %s)", cfg.Agent, ErrUnknownAgent, strings.Join(Agents(), ", "))
	}
	if cfg.Agent == "lua" {
		// Checked here: the board boots only when the chip runs an app.
		if _, err := nodemcu.FindProfile(cmp.Or(cfg.Profile, "console")); err != nil {
			return nil, err
		}
	}
	d := &Device{flash: fl}
	onCut := cfg.Line.OnDisconnect
	cfg.Line.OnDisconnect = func() {
		if onCut != nil {
			onCut()
		}
		d.disconnected()
	}
	d.line = link.New(cfg.Line)
	fl.SetGuard(d.line.FlashGuard())
	ctx, cancel := context.WithCancel(context.Background())
	c, err := newChip(ctx, fl, cfg, d.line, boot)
	if err != nil {
		cancel()
		fl.SetGuard(nil)
		d.line.Close()
		return nil, fmt.Errorf("virtual device: %w", err)
	}
	d.chip, d.cancel, d.ctx = c, cancel, ctx
	c.powerOn()
	return d, nil
}

// serveLoop calls serve each time the line is up, until ctx is done. The
// device's UART keeps its rate across cuts, as a real one does: the agent
// itself must return to 115200 when its host is gone.
func serveLoop(ctx context.Context, line *link.Line, serve func(context.Context) error) {
	for ctx.Err() == nil {
		if err := line.WaitUp(ctx); err != nil {
			return
		}
		start := time.Now()
		serve(ctx)
		// Serve returns when the line is cut; if it returned for any
		// other reason, do not spin.
		if time.Since(start) < 100*time.Millisecond && line.Up() {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// Host returns the host end of the line, for an in-process session. Do
// not use it together with the WebSocket or pseudo-terminal ports.
func (d *Device) Host() *link.End { return d.line.Host() }

// Line returns the emulated line (statistics, fault injection).
func (d *Device) Line() *link.Line { return d.line }

// Device returns the booted device (its OTA API and state), or nil while
// the chip is not running its app (reset, download mode, boot loop).
func (d *Device) Device() *device.Device { return d.chip.device() }

// State says what the chip does: "app", "download", "boot loop", "hung"
// (an unknown uploaded program runs) or "reset".
func (d *Device) State() string { return d.chip.State() }

// Board returns the chip's reset circuit and buttons (BOOT, EN).
func (d *Device) Board() *rom.Board { return d.chip.board }

// Flash returns the device's emulated flash chip.
func (d *Device) Flash() *flash.Flash { return d.flash }

// Close stops the agent (waiting up to 2 s for it), the line and the
// ports, and closes the flash file if Open opened it.
func (d *Device) Close() error {
	var err error
	d.closeOnce.Do(func() {
		d.cancel()
		d.line.Close() // unblocks the agent's pending read
		d.chip.close()
		d.ports.close()
		d.flash.SetGuard(nil)
		if d.ownsFlash {
			err = d.flash.Close()
		}
	})
	return err
}

// LineLog returns a writer for Config.Log that calls f with each line of
// the console, without its line end.
func LineLog(f func(line string)) io.Writer { return &lineWriter{f: f} }

// lineWriter splits written text into lines.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	f   func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.f(strings.TrimSuffix(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
