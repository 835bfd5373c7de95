package virtual

import (
	"context"
	"errors"

	"io"
	"sync"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/rom"
)

// chipPort is the chip's UART as the agents and the ROM loader use it.
type chipPort interface {
	io.ReadWriter
	SetBaud(baud int) error
	Baud() int
	// InstallDriver sets the UART receive path (uart_driver_install).
	InstallDriver(r link.Receiver)
	// Buffered is uart_get_buffered_data_len (the agent's idle rule).
	Buffered() int
}

// The ROM's and the flasher stub's UART receive paths. Both run from
// ROM/IRAM, so flash operations do not stop their interrupt. The ROM's
// buffer holds a whole command (MEM_DATA blocks are 0x1800 bytes, esptool
// ESP_RAM_BLOCK); the stub double-buffers 16 KiB write blocks so that the
// next one arrives while it writes (esptool FLASH_WRITE_SIZE 0x4000). The
// exact sizes in the ROM and stub have not been checked.
var (
	romReceiver  = link.Receiver{RingBuffer: 8 << 10, ISRInIRAM: true}
	stubReceiver = link.Receiver{RingBuffer: 2 * (16<<10 + 64), ISRInIRAM: true}
)

// bootRetry is how long a failing second-stage bootloader takes from
// reset to its next reset (reading the partition table and the apps; not
// measured).
const bootRetry = 500 * time.Millisecond

// romBaud is the rate the ROM prints and listens at (40 MHz crystal;
// serial-protocol.rst: the chip "always initialises at 115200bps").
const romBaud = 115200

// chip runs one life of the virtual ESP32 at a time, between resets:
// the ROM's download mode, the ROM's boot loop over a flash without a
// bootloader, or the app with its agent. The board (reset circuit)
// decides which, from the host's DTR/RTS and the BOOT button.
type chip struct {
	cfg   Config
	rom   *rom.Chip
	fl    *flash.Flash
	line  *link.Line
	uart  *uart
	board *rom.Board
	boot  bootFunc
	life  context.Context // the device's lifetime

	lifeMu sync.Mutex // serialises hold and start
	lives  int        // counts lives (under mu), so a life can restart only itself

	mu     sync.Mutex
	dev    *device.Device
	state  string
	cancel context.CancelFunc
	done   chan struct{}
}

func newChip(ctx context.Context, fl *flash.Flash, cfg Config, line *link.Line, boot bootFunc) (*chip, error) {
	name := cfg.Chip
	if name == "" {
		name = "esp32"
	}
	rc, err := rom.ChipByName(name)
	if err != nil {
		return nil, err
	}
	if cfg.ChipRev == 0 {
		cfg.ChipRev = rc.DefaultRev
	}
	c := &chip{cfg: cfg, rom: rc, fl: fl, line: line, uart: newUART(line.Device()), boot: boot, life: ctx}
	c.board = rom.NewBoard(cfg.Reset, c.hold, c.start)
	c.board.HoldBoot(cfg.BootButton)
	line.WatchSignals(func(s link.Signals) { c.board.SetSignals(rom.Signals{DTR: s.DTR, RTS: s.RTS}) })
	return c, nil
}

// powerOn boots the chip for the first time, synchronously.
func (c *chip) powerOn() {
	mode := rom.FlashBoot
	if c.cfg.BootButton {
		mode = rom.DownloadBoot
	}
	c.start(mode)
}

// stop ends the current life and waits (up to 2 s) for it.
func (c *chip) stop() {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.cancel, c.done = nil, nil
	c.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	c.uart.port() // fails the old life's pending Read and later Writes
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}

// hold puts the chip in reset: nothing runs, what the host sends is lost.
func (c *chip) hold() {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	c.stop()
	c.run("reset", func(ctx context.Context, p *uartPort) { io.Copy(io.Discard, p) })
}

// start takes the chip out of reset in mode.
func (c *chip) start(mode rom.BootMode) {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	c.startLocked(mode)
}

// restart is how a life resets the chip itself (FLASH_END, a failing
// bootloader): unless a reset from outside came first.
func (c *chip) restart(life int, mode rom.BootMode) {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.currentLife() == life {
		c.startLocked(mode)
	}
}

// currentLife returns the number of the life that runs.
func (c *chip) currentLife() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lives
}

func (c *chip) startLocked(mode rom.BootMode) {
	c.stop()
	if c.life.Err() != nil {
		return
	}
	dev := c.line.Device()
	if mode == rom.DownloadBoot {
		dev.SetBaudNow(romBaud)
		dev.InstallDriver(romReceiver)
		c.run("download", c.download)
		return
	}
	word, ok := rom.FlashBootHeader(c.rom, c.fl)
	if !ok {
		dev.SetBaudNow(romBaud)
		dev.InstallDriver(romReceiver)
		c.run("boot loop", func(ctx context.Context, p *uartPort) {
			for ctx.Err() == nil {
				err := rom.BootLoop(ctx, c.console(p), c.rom, c.cfg.ChipRev, word)
				if !c.waitLine(ctx, err) {
					return
				}
			}
		})
		return
	}
	dev.SetBaudNow(c.line.InitialBaud())
	// Until the app installs its own driver, the line's configured one.
	dev.InstallDriver(c.cfg.Line.Receiver)
	// Boot before returning, so that Device() is set when New returns.
	p := c.uart.port()
	booted, serve, release, err := c.boot(c.fl, c.cfg, p)
	c.mu.Lock()
	c.dev = booted
	c.mu.Unlock()
	state := "app"
	if err != nil {
		state = "boot loop"
	}
	c.runOn(state, p, func(ctx context.Context, p *uartPort) {
		life := c.currentLife()
		if err != nil {
			// The bootloader printed why (no valid partition table, no
			// bootable app) and resets the chip, which fails again
			// (bootloader_utility.c: bootloader_reset after "No bootable
			// app partitions"), until the host installs something.
			select {
			case <-ctx.Done():
			case <-time.After(bootRetry):
				go c.restart(life, rom.FlashBoot)
				<-ctx.Done()
			}
			return
		}
		defer release()
		serveLoop(ctx, c.line, serve)
	})
}

// run starts a life: f runs with a fresh UART port until ctx ends.
func (c *chip) run(state string, f func(ctx context.Context, p *uartPort)) {
	c.runOn(state, c.uart.port(), f)
}

func (c *chip) runOn(state string, p *uartPort, f func(ctx context.Context, p *uartPort)) {
	ctx, cancel := context.WithCancel(c.life)
	done := make(chan struct{})
	c.mu.Lock()
	c.lives++
	c.state, c.cancel, c.done = state, cancel, done
	if state != "app" {
		c.dev = nil
	}
	c.mu.Unlock()
	go func() {
		defer close(done)
		f(ctx, p)
	}()
}

// waitLine decides after a UART error whether the life goes on: after a
// line cut it waits for the line to come back; after a reset, the end of
// the device or a closed line it does not.
func (c *chip) waitLine(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, errReset) || errors.Is(err, link.ErrClosed) {
		return false
	}
	if errors.Is(err, rom.ErrHung) {
		return true // the loader stays deaf in its next Serve
	}
	if errors.Is(err, link.ErrDisconnected) {
		return c.line.WaitUp(ctx) == nil
	}
	select { // do not spin on an unexpected error
	case <-ctx.Done():
		return false
	case <-time.After(100 * time.Millisecond):
		return true
	}
}

// download is the ROM's download mode: banner, then the serial loader
// until the host makes the chip leave it.
func (c *chip) download(ctx context.Context, p *uartPort) {
	life := c.currentLife()
	// The stub sets up its own receive path when it starts.
	l := rom.New(rom.Config{Chip: c.rom, Flash: c.fl, Rev: c.cfg.ChipRev,
		OnStub: func(*rom.Stub) { p.InstallDriver(stubReceiver) }})
	defer l.Close()
	if _, err := io.WriteString(c.console(p), rom.DownloadBanner(c.rom, c.cfg.ChipRev)); err != nil && !c.waitLine(ctx, err) {
		return
	}
	for {
		err := l.Serve(ctx, p)
		var exit *rom.Exit
		if errors.As(err, &exit) {
			// Reboot or jump to the flash bootloader: a new life, started
			// from outside this one.
			go c.restart(life, rom.FlashBoot)
			<-ctx.Done()
			return
		}
		if l.Hung() {
			c.mu.Lock()
			c.state = "hung"
			c.mu.Unlock()
		}
		if !c.waitLine(ctx, err) {
			return
		}
	}
}

// console is where the ROM prints: the UART, and a copy to Config.Log.
// What it prints while the line is down is lost, as a UART nobody listens
// to loses it; only a reset or the end of the line stops it.
func (c *chip) console(p *uartPort) io.Writer {
	var w io.Writer = lossyWriter{p}
	if c.cfg.Log != nil {
		w = &teeWriter{w, c.cfg.Log}
	}
	return w
}

// lossyWriter drops what cannot be sent because the line is cut.
type lossyWriter struct{ w io.Writer }

func (l lossyWriter) Write(b []byte) (int, error) {
	n, err := l.w.Write(b)
	if errors.Is(err, link.ErrDisconnected) {
		return len(b), nil
	}
	return n, err
}

// teeWriter writes to w and copies what it wrote to log.
type teeWriter struct{ w, log io.Writer }

func (t *teeWriter) Write(b []byte) (int, error) {
	n, err := t.w.Write(b)
	t.log.Write(b[:n])
	return n, err
}

// device returns the booted device, nil outside the app.
func (c *chip) device() *device.Device {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dev
}

// State says what the chip does: "app", "download", "boot loop", "hung"
// (an unknown program was started) or "reset" (held in reset).
func (c *chip) State() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// close ends the chip; the device's lifetime context is done already, so
// no life starts after this one.
func (c *chip) close() {
	c.board.Close()
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	c.stop()
}

// espChip maps the ROM chip to the image chip id the bootloader checks.
func espChip(c *rom.Chip) espimage.Chip {
	return espimage.Chip(c.ChipID)
}
