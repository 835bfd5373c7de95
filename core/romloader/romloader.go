// Package romloader is the host side of the ESP32 ROM serial bootloader
// (download mode), as esptool's serial-protocol documentation and
// esptool/loader.py describe it: reset into download mode through DTR
// and RTS, sync, identify the chip, change the rate, write compressed
// data with MD5 verification, erase, and reset into the app.
//
// It does no I/O of its own beyond the Port and Signals it is given and
// imports neither os nor net, so the browser (Web Serial) and the CLI
// share it.
package romloader

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

var le = binary.LittleEndian

// Port is the host end of the serial line.
type Port interface {
	io.ReadWriter
	// SetBaud changes the host side's rate; Read keeps working across it.
	SetBaud(baud int) error
}

// Signals drives the modem control lines. On dev boards DTR and RTS reach
// GPIO0 and EN through the two-transistor auto-reset circuit; the
// USB-Serial-JTAG peripheral of S3 and C3 decodes them the same way.
// go.bug.st/serial ports and Web Serial (setSignals) both provide them.
type Signals interface {
	SetDTR(bool) error
	SetRTS(bool) error
}

// Options configure a Client.
type Options struct {
	// Signals resets the chip; nil means the chip must already be in
	// download mode (hold BOOT, press EN).
	Signals Signals
	// USBJTAG selects the USB-Serial-JTAG reset sequence (S3/C3 native
	// USB port) instead of the classic one.
	USBJTAG bool
	// Sleep waits; nil means time.Sleep. Tests and the browser may
	// replace it.
	Sleep func(time.Duration)
	// Log receives text the chip prints outside frames (boot messages),
	// one line at a time. nil discards it.
	Log func(line string)
	// Attempts is how many reset-and-sync rounds Connect makes; 0 means 7
	// (esptool's DEFAULT_CONNECT_ATTEMPTS).
	Attempts int
}

// Command opcodes (esptool loader.py, serial-protocol.rst).
const (
	opFlashBegin     = 0x02
	opFlashData      = 0x03
	opFlashEnd       = 0x04
	opMemBegin       = 0x05
	opMemEnd         = 0x06
	opMemData        = 0x07
	opSync           = 0x08
	opWriteReg       = 0x09
	opReadReg        = 0x0A
	opSPISetParams   = 0x0B
	opSPIAttach      = 0x0D
	opChangeBaudrate = 0x0F
	opFlashDeflBegin = 0x10
	opFlashDeflData  = 0x11
	opFlashDeflEnd   = 0x12
	opSPIFlashMD5    = 0x13
	opGetSecInfo     = 0x14
	opEraseFlash     = 0xD0 // stub only
	opEraseRegion    = 0xD1 // stub only
	opReadFlash      = 0xD2 // stub only
)

// checksumSeed starts the XOR checksum of data payloads.
const checksumSeed = 0xEF

// checksum is the ROM's XOR checksum of a data payload.
func checksum(data []byte) uint32 {
	c := byte(checksumSeed)
	for _, b := range data {
		c ^= b
	}
	return uint32(c)
}

// Timeouts of esptool loader.py.
var (
	defaultTimeout   = 3 * time.Second
	syncTimeout      = 100 * time.Millisecond
	md5PerMB         = 8 * time.Second
	eraseRegionPerMB = 30 * time.Second
	eraseWritePerMB  = 40 * time.Second
)

// timeoutPerMB scales a per-megabyte timeout, never below the default.
func timeoutPerMB(perMB time.Duration, size int) time.Duration {
	t := time.Duration(float64(perMB) * float64(size) / 1e6)
	return max(t, defaultTimeout)
}

// ErrTimeout is returned when the chip does not answer in time.
var ErrTimeout = errors.New("no reply from the chip")

// StatusError is a failure status the loader sent back.
type StatusError struct {
	Op     byte
	Status byte
	Code   byte
	Stub   bool
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("command 0x%02x failed: status %d, error 0x%02x (%s)", e.Op, e.Status, e.Code, e.meaning())
}

// romErrors are the ROM loader's error values (serial-protocol.rst,
// "ROM Loader Errors").
var romErrors = map[byte]string{
	0x00: "undefined error", 0x01: "the input parameter is invalid",
	0x02: "failed to malloc memory", 0x03: "failed to send out message",
	0x04: "failed to receive message", 0x05: "the format of the received message is invalid",
	0x06: "message is ok, but the running result is wrong", 0x07: "checksum error",
	0x08: "flash write error (read-back CRC mismatch)", 0x09: "flash read error",
	0x0a: "flash read length error", 0x0b: "deflate failed",
	0x0c: "deflate Adler32 error", 0x0d: "deflate parameter error",
	0x0e: "invalid RAM binary size", 0x0f: "invalid RAM binary address",
}

// stubErrors are the flasher stub's (stub_flasher.h).
var stubErrors = map[byte]string{
	0xC0: "bad data length", 0xC1: "bad data checksum", 0xC2: "bad blocksize",
	0xC3: "invalid command", 0xC4: "failed SPI operation", 0xC5: "failed SPI unlock",
	0xC6: "not in flash mode", 0xC7: "inflate error", 0xC8: "not enough data",
	0xC9: "too much data", 0xFF: "command not implemented",
}

func (e *StatusError) meaning() string {
	m := romErrors
	if e.Stub {
		m = stubErrors
	}
	if s, ok := m[e.Code]; ok {
		return s
	}
	return "unknown error"
}

// Retryable reports whether the failure came from the line (a checksum
// or a garbled message) rather than the flash, so sending again may work.
func (e *StatusError) Retryable() bool {
	if e.Stub {
		return e.Code == 0xC1 || e.Code == 0xC0
	}
	return e.Code == 0x07 || e.Code == 0x05
}

// Client talks to one chip's ROM loader (or flasher stub) over a Port.
type Client struct {
	port Port
	opt  Options

	mu   sync.Mutex
	dec  slipDecoder
	q    [][]byte      // decoded frames not yet read
	wake chan struct{} // signalled when a frame or an error arrives
	err  error         // the port's read error, sticky
	raw  []byte        // bytes outside frames since the last takeRaw
	line []byte        // partial log line

	baud      int
	stub      bool
	statusLen int // 4 for ESP32-family ROMs, 2 for the stub
	info      *ChipInfo
}

// New starts reading from port. Close stops the client; the port stays
// open, but a Read may still be pending on it.
func New(port Port, opt Options) *Client {
	if opt.Sleep == nil {
		opt.Sleep = time.Sleep
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 7
	}
	c := &Client{port: port, opt: opt, wake: make(chan struct{}, 1), baud: 115200, statusLen: 4}
	go c.pump()
	return c
}

// pump reads the port until it fails.
func (c *Client) pump() {
	buf := make([]byte, 4096)
	for {
		n, err := c.port.Read(buf)
		c.mu.Lock()
		var lines []string
		if n > 0 {
			frames := c.dec.feed(buf[:n])
			c.q = append(c.q, frames...)
			lines = c.noteText(c.dec.takeText())
		}
		if err != nil {
			c.err = err
		}
		c.mu.Unlock()
		for _, l := range lines { // outside the lock: Log may take its own
			c.opt.Log(l)
		}
		select {
		case c.wake <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// noteText keeps text for boot-mode detection and returns the lines it
// completes, for Options.Log.
func (c *Client) noteText(t []byte) (lines []string) {
	if len(t) == 0 {
		return nil
	}
	c.raw = append(c.raw, t...)
	if len(c.raw) > 64<<10 {
		c.raw = c.raw[len(c.raw)-32<<10:]
	}
	if c.opt.Log == nil {
		return nil
	}
	for _, b := range t {
		switch b {
		case '\n':
			lines = append(lines, string(c.line))
			c.line = c.line[:0]
		case '\r':
		default:
			if len(c.line) < 1024 {
				c.line = append(c.line, b)
			}
		}
	}
	return lines
}

// takeRaw returns and clears the text seen since the last call.
func (c *Client) takeRaw() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.raw
	c.raw = nil
	return r
}

// flushInput drops frames received so far (text stays for takeRaw).
func (c *Client) flushInput() {
	c.mu.Lock()
	c.q = nil
	c.mu.Unlock()
}

// readFrame returns the next frame, waiting up to timeout.
func (c *Client) readFrame(ctx context.Context, timeout time.Duration) ([]byte, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		c.mu.Lock()
		if len(c.q) > 0 {
			f := c.q[0]
			c.q = c.q[1:]
			c.mu.Unlock()
			return f, nil
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		select {
		case <-c.wake:
		case <-t.C:
			return nil, ErrTimeout
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// send writes one command packet.
func (c *Client) send(op byte, data []byte, chk uint32) error {
	pkt := make([]byte, 8, 8+len(data))
	pkt[0] = 0x00
	pkt[1] = op
	le.PutUint16(pkt[2:], uint16(len(data)))
	le.PutUint32(pkt[4:], chk)
	pkt = append(pkt, data...)
	if _, err := c.port.Write(appendSLIP(nil, pkt)); err != nil {
		return fmt.Errorf("write command 0x%02x: %w", op, err)
	}
	return nil
}

// response is a decoded reply.
type response struct {
	op    byte
	value uint32
	data  []byte
}

// recv waits for the reply to op, skipping others (extra SYNC replies).
func (c *Client) recv(ctx context.Context, op byte, timeout time.Duration) (response, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return response{}, fmt.Errorf("command 0x%02x: %w within %v", op, ErrTimeout, timeout)
		}
		f, err := c.readFrame(ctx, left)
		if errors.Is(err, ErrTimeout) {
			return response{}, fmt.Errorf("command 0x%02x: %w within %v", op, ErrTimeout, timeout)
		}
		if err != nil {
			return response{}, err
		}
		if len(f) < 8 || f[0] != 0x01 {
			continue
		}
		r := response{op: f[1], value: le.Uint32(f[4:]), data: f[8:]}
		if n := int(le.Uint16(f[2:])); n < len(r.data) {
			r.data = r.data[:n]
		}
		if r.op == op {
			return r, nil
		}
	}
}

// command sends op and returns its reply, checking the status bytes.
// The reply's data without status bytes is returned.
func (c *Client) command(ctx context.Context, op byte, data []byte, chk uint32, timeout time.Duration) (response, error) {
	if err := c.send(op, data, chk); err != nil {
		return response{}, err
	}
	r, err := c.recv(ctx, op, timeout)
	if err != nil {
		return r, err
	}
	n := c.statusLen
	if len(r.data) < n {
		if len(r.data) >= 2 { // a reply shorter than expected still has status and error first
			n = len(r.data)
		} else {
			return r, fmt.Errorf("command 0x%02x: reply has %d data bytes, want at least %d status bytes", op, len(r.data), c.statusLen)
		}
	}
	st := r.data[len(r.data)-n:]
	if st[0] != 0 {
		return r, &StatusError{Op: op, Status: st[0], Code: st[1], Stub: c.stub}
	}
	r.data = r.data[:len(r.data)-n]
	return r, nil
}

// retryAttempts is how often an idempotent command is sent before its
// failure is final (esptool's WRITE_BLOCK_ATTEMPTS for data blocks; here
// for every command that may safely run twice).
const retryAttempts = 3

// commandRetry is command for idempotent requests (register reads and
// writes, SPI attach and parameters, MD5, FLASH_DEFL_BEGIN): a reply
// lost on the line or a checksum/format error the line caused is retried.
func (c *Client) commandRetry(ctx context.Context, op byte, data []byte, chk uint32, timeout time.Duration) (response, error) {
	var r response
	var err error
	for i := 0; i < retryAttempts; i++ {
		r, err = c.command(ctx, op, data, chk, timeout)
		if err == nil || ctx.Err() != nil {
			return r, err
		}
		var se *StatusError
		if errors.As(err, &se) && !se.Retryable() {
			return r, err
		}
		if !errors.Is(err, ErrTimeout) && !errors.As(err, &se) {
			return r, err // the port failed
		}
	}
	return r, err
}

// Close stops the client. The port is left open.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = errors.New("client closed")
	}
	c.mu.Unlock()
	return nil
}
