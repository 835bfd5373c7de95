// Package nodemcu runs a NodeMCU Lua program, such as the Gota agent
// gota.lua, on the virtual ESP32 of package device.
//
// The program runs in gopher-lua (Lua 5.1 semantics) with Go versions of
// the NodeMCU dev-esp32 modules it may use: console, uart, node, tmr, bit
// and otaupgrade. otaupgrade is backed by the device and returns the
// values and raises the error strings of NodeMCU's otaupgrade.c. Fields a
// module does not provide raise an error instead of reading as nil, so a
// program that needs more than the harness offers fails loudly.
//
// gopher-lua is not safe for concurrent use, so everything Lua runs on one
// goroutine fed by an event queue: serial input, timer expiries and
// reboots, the way NodeMCU's single Lua task is fed by FreeRTOS tasks.
package nodemcu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/gota-dev/gota/firmware-agent/device"
)

// Firmware selects which generation of NodeMCU dev-esp32 is emulated.
// Dates and sources: README.md, "Firmware generations".
type Firmware int

const (
	// ConsoleFirmware is dev-esp32 since PR #3666 (opened 2024-10-25,
	// "Refactor to clean up and fix console handling"): the console module
	// (console.on, console.mode, console.write) serves the console, and
	// every uart function on the console UART raises "uart in use by system
	// console; use the 'console' module instead". Nothing changes the
	// console's rate.
	ConsoleFirmware Firmware = iota
	// UARTFirmware is dev-esp32 from 2022-08-30 (d24f2ae4, "really feed
	// uart data to both console and on-data cb") to 2024-04-27: the
	// NodeMCU UART driver owns the console (platform_uart_start at boot),
	// so uart.on("data", ..., run_input) gets console input from boot;
	// uart.setup changes the rate; uart.write(0, ...) writes the console.
	UARTFirmware
	// UARTStartFirmware is dev-esp32 from 2024-05-12 (53da95b5, "Fix
	// uart.on('data') on console") until the console module: the console
	// is read through the IDF's stdin and fed to uart.on callbacks only
	// once uart.start(0) has allocated the line buffer (uart.start(0)
	// itself returns false). Without it a callback never fires.
	UARTStartFirmware
)

// String names the generation as the README and CLI do.
func (f Firmware) String() string {
	switch f {
	case ConsoleFirmware:
		return "console"
	case UARTFirmware:
		return "uart"
	case UARTStartFirmware:
		return "uart-start"
	}
	return fmt.Sprintf("Firmware(%d)", int(f))
}

// uartConsole reports whether the uart module serves the console.
func (f Firmware) uartConsole() bool { return f != ConsoleFirmware }

// Options configure a Board. The zero value is a current firmware with
// input echo on, as NodeMCU boots.
type Options struct {
	Firmware Firmware
	// NoEcho turns the REPL's input echo off from boot (as uart.setup's
	// echo argument 0 would).
	NoEcho bool
	// Console is the board's console UART; nil makes a new one. Pass the
	// same Console as the device's Config.Log so boot log lines reach the
	// serial line as on a real board.
	Console *Console
	// Log, when set, receives a copy of the text the board prints (print,
	// REPL echo and errors, banner); bytes the program writes with
	// console.write or uart.write, such as protocol frames, are not copied.
	Log io.Writer
	// ConsoleBaud is the console rate after a reset (default 115200).
	ConsoleBaud int
	// SetBaud, when set, is called for uart.setup on the console UART, and
	// with 115200 after a reboot that follows a rate change, so a serial
	// line model can follow; its error is raised in Lua.
	SetBaud func(baud int) error
	// HeapFree is what node.heap() reports (default 180000 bytes, typical
	// for NodeMCU on an ESP32 with WiFi off).
	HeapFree int
	// Banner is printed at every boot before the program runs; empty
	// means a NodeMCU-style banner.
	Banner string
	// RxBuffer, when positive, is how many bytes the board can take in
	// while Lua is stuck in a long otaupgrade call (commence erasing the
	// slot, write programming flash): the UART FIFO plus driver ring, 128 +
	// 256 on NodeMCU's console. Bytes beyond it are lost, as on the chip.
	// 0 = unlimited.
	RxBuffer int
	// InputQueue, when positive, is how many received bytes may wait for
	// the Lua task: NodeMCU's task queue between the console reader and
	// Lua. The board then reads the serial line only as Lua takes bytes,
	// so the line's own receive path (FIFO, driver ring, ISR stopped
	// during flash operations: package link) fills and overruns as on the
	// chip. 0 = read the line as fast as it delivers.
	InputQueue int
	// NoBit leaves out the bit module (CONFIG_NODEMCU_CMODULE_BIT, off by
	// default in dev-esp32's components/modules/Kconfig).
	NoBit bool
	// Crypto adds the crypto module (CONFIG_NODEMCU_CMODULE_CRYPTO, off
	// by default): crypto.new_hash with mbedtls digests.
	Crypto bool
	// FS, when set, is the board's SPIFFS: the io library, the file
	// module, dofile and loadfile work on it, and a board created with a
	// nil program runs init.lua from it at every boot, as NodeMCU does.
	FS *FS
}

// consoleUART is the console UART number (CONFIG_ESP_CONSOLE_UART_NUM).
const consoleUART = 0

// Board is a virtual NodeMCU board: a device plus the Lua VM running the
// program from boot (as init.lua would), reconnectable to serial lines.
// The Lua state survives serial disconnects and is rebuilt at every device
// reboot.
type Board struct {
	dev    *device.Device
	script []byte
	opt    Options

	con *Console

	mu      sync.Mutex
	queue   []func()
	wake    chan struct{}
	closed  bool
	baud    int  // console rate set by uart.setup; 0 = boot default
	busy    bool // Lua is inside an otaupgrade call
	busyIn  int  // bytes received during the current busy period
	dropped int  // received bytes lost to a full RxBuffer
	queued  int  // bytes read from the line that Lua has not taken yet
	// roomCond (on mu) wakes line readers waiting for input queue room.
	roomCond *sync.Cond
	errs     []string // Lua errors raised in callbacks or the program
	done     chan struct{}
	stopped  chan struct{}

	// Owned by the Lua goroutine.
	vm *vm
}

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("nodemcu: board closed")

// NewBoard powers up a board: the program starts at once (its output is
// lost until a serial line is attached with Run). dev must already be open
// (booted); the board follows every later reboot of dev.
func NewBoard(dev *device.Device, script []byte, opt Options) *Board {
	if opt.HeapFree == 0 {
		opt.HeapFree = 180000
	}
	con := opt.Console
	if con == nil {
		con = NewConsole()
	}
	if opt.ConsoleBaud == 0 {
		opt.ConsoleBaud = 115200
	}
	b := &Board{
		con:     con,
		dev:     dev,
		script:  append([]byte(nil), script...),
		opt:     opt,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	b.roomCond = sync.NewCond(&b.mu)
	if dev != nil {
		dev.OnReboot(b.rebooted)
	}
	b.post(b.boot)
	go b.loop()
	return b
}

// Serve runs script on dev as NodeMCU would from init.lua and connects it
// to the serial line conn until ctx is done or conn fails (io.EOF and
// closed pipes end it without error). log, when non-nil, receives a copy of
// the console output. It mirrors agent.Serve for `gota device run --agent lua`.
func Serve(ctx context.Context, dev *device.Device, script []byte, conn io.ReadWriter, log io.Writer) error {
	b := NewBoard(dev, script, Options{Log: log})
	defer b.Close()
	return b.Run(ctx, conn)
}

// Run attaches the serial line conn: the board's console output goes to
// it and what it reads is console input. It returns when ctx is done or
// reading conn fails; the board keeps running (as a board does when the
// USB cable is pulled) until Close.
func (b *Board) Run(ctx context.Context, conn io.ReadWriter) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	b.con.attach(conn)
	defer b.con.detach(conn)

	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			room := b.waitRoom(len(buf))
			if room == 0 {
				readErr <- ErrClosed
				return
			}
			n, err := conn.Read(buf[:room])
			if n > 0 {
				if data := b.receive(buf[:n]); len(data) > 0 {
					b.enqueue(len(data))
					b.post(func() {
						b.input(data)
						b.enqueue(-len(data))
					})
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return ErrClosed
	case err := <-readErr:
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
			return nil
		}
		return fmt.Errorf("nodemcu: serial read: %w", err)
	}
}

// receive applies the RxBuffer limit to bytes just read from the line
// and returns those that are kept.
func (b *Board) receive(p []byte) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.busy && b.opt.RxBuffer > 0 {
		room := max(b.opt.RxBuffer-b.busyIn, 0)
		if len(p) > room {
			b.dropped += len(p) - room
			p = p[:room]
		}
		b.busyIn += len(p)
	}
	return append([]byte(nil), p...)
}

// waitRoom blocks until the board's input queue (Options.InputQueue) has
// room and returns how many bytes it takes now, at most max; 0 once the
// board is closed. Until then the bytes stay in the serial line's receive
// path (the UART's FIFO and driver ring), whose own limits then apply.
func (b *Board) waitRoom(max int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		if b.closed {
			return 0
		}
		if b.opt.InputQueue <= 0 {
			return max
		}
		if room := b.opt.InputQueue - b.queued; room > 0 {
			return min(room, max)
		}
		b.roomCond.Wait()
	}
}

// enqueue counts n bytes into (or, negative, out of) the input queue.
func (b *Board) enqueue(n int) {
	b.mu.Lock()
	b.queued += n
	b.mu.Unlock()
	if n < 0 {
		b.roomCond.Broadcast()
	}
}

// setBusy marks the start and end of a long call in which the Lua task
// does not read the console.
func (b *Board) setBusy(busy bool) {
	b.mu.Lock()
	b.busy, b.busyIn = busy, 0
	b.mu.Unlock()
}

// Dropped returns how many received bytes were lost to a full RxBuffer.
func (b *Board) Dropped() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// Close stops the Lua VM and its timers.
func (b *Board) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	b.mu.Unlock()
	b.roomCond.Broadcast()
	<-b.stopped
	return nil
}

// LuaErrors returns the Lua errors raised so far outside a pcall: in the
// program, in callbacks, or on the REPL. On a real board most of them
// would have restarted the chip.
func (b *Board) LuaErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// do runs f on the Lua goroutine with the current Lua state (nil while
// rebooting) and waits for it. Tests use it to inspect the VM.
func (b *Board) do(f func(*vm)) {
	ch := make(chan struct{})
	b.post(func() { f(b.vm); close(ch) })
	select {
	case <-ch:
	case <-b.stopped:
	}
}

// post queues f for the Lua goroutine; it never blocks, because device
// callbacks may call it from the Lua goroutine itself.
func (b *Board) post(f func()) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.queue = append(b.queue, f)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Board) loop() {
	defer close(b.stopped)
	defer func() {
		if b.vm != nil {
			b.vm.kill()
			b.vm = nil
		}
	}()
	for {
		select {
		case <-b.done:
			return
		case <-b.wake:
		}
		for {
			b.mu.Lock()
			if b.closed {
				b.mu.Unlock()
				return
			}
			q := b.queue
			b.queue = nil
			b.mu.Unlock()
			if len(q) == 0 {
				break
			}
			for _, f := range q {
				f()
			}
		}
	}
}

// write sends raw console output to the attached serial line.
func (b *Board) write(p []byte) { b.con.Write(p) }

// writeText sends console text to the serial line and the log copy.
func (b *Board) writeText(p []byte) {
	b.con.Write(p)
	if b.opt.Log != nil {
		b.opt.Log.Write(p)
	}
}

// rebooted is the device's reboot hook: the console UART is back at its
// boot rate and the Lua VM is rebuilt.
func (b *Board) rebooted() {
	b.mu.Lock()
	changed := b.baud != 0 && b.baud != b.opt.ConsoleBaud
	b.baud = 0
	b.mu.Unlock()
	if changed && b.opt.SetBaud != nil {
		b.opt.SetBaud(b.opt.ConsoleBaud)
	}
	b.post(b.boot)
}

// Console is a board's console UART: what the Lua program prints and the
// device logs goes to the serial line attached by Run (and is dropped
// while none is, as a UART with nothing listening does). Writes are
// whole: a frame is never split by a log line.
type Console struct {
	mu  sync.Mutex
	out io.Writer
}

// NewConsole returns a console with no serial line attached.
func NewConsole() *Console { return &Console{} }

// Write sends p to the attached serial line. It never fails: a broken
// line is noticed by the reader of Run.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out != nil {
		c.out.Write(p)
	}
	return len(p), nil
}

func (c *Console) attach(w io.Writer) {
	c.mu.Lock()
	c.out = w
	c.mu.Unlock()
}

func (c *Console) detach(w io.Writer) {
	c.mu.Lock()
	if c.out == w {
		c.out = nil
	}
	c.mu.Unlock()
}

func (b *Board) recordError(msg string) {
	b.mu.Lock()
	b.errs = append(b.errs, msg)
	b.mu.Unlock()
}

// boot replaces the Lua VM with a fresh one and runs the program, as
// NodeMCU does after every reset.
func (b *Board) boot() {
	if b.vm != nil {
		b.vm.kill()
	}
	b.vm = newVM(b)
	banner := b.opt.Banner
	if banner == "" {
		banner = "\nNodeMCU ESP32 (Gota virtual board, gopher-lua " + luaVersion + ")\n"
	}
	b.writeText([]byte(banner))
	if b.script == nil && b.opt.FS != nil {
		// CONFIG_LUA_INIT_STRING "@init.lua": run it when it exists.
		if src, ok := b.opt.FS.ReadFile("init.lua"); ok {
			b.vm.runProgram(src, "init.lua")
		}
	} else {
		b.vm.runProgram(b.script, programName)
	}
	if b.vm != nil && !b.vm.dead {
		b.vm.prompt()
	}
}

// input feeds received serial bytes to the current VM.
func (b *Board) input(p []byte) {
	if b.vm == nil || b.vm.dead {
		return // rebooting: bytes are lost, as on the real chip
	}
	b.vm.input(p)
}
