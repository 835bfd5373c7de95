package romloader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// resetDelay is esptool's DEFAULT_RESET_DELAY: how long GPIO0 stays low
// after EN is released; every other attempt adds 0.5 s for boards with a
// slow EN capacitor (esptool loader.py _construct_reset_strategy_sequence).
const resetDelay = 50 * time.Millisecond

// classicReset is esptool's ClassicReset (reset.py): with the auto-reset
// circuit, RTS drives EN low and DTR drives GPIO0 low, each only while
// the other line is not asserted.
func (c *Client) classicReset(delay time.Duration) error {
	s := c.opt.Signals
	steps := []func() error{
		func() error { return s.SetDTR(false) }, // IO0 high
		func() error { return s.SetRTS(true) },  // EN low: chip in reset
		func() error { c.opt.Sleep(100 * time.Millisecond); return nil },
		func() error { return s.SetDTR(true) },  // IO0 low
		func() error { return s.SetRTS(false) }, // EN high: chip out of reset, samples IO0
		func() error { c.opt.Sleep(delay); return nil },
		func() error { return s.SetDTR(false) }, // IO0 high, done
	}
	return run(steps)
}

// usbJTAGReset is esptool's USBJTAGSerialReset: the USB-Serial-JTAG
// peripheral resets the chip on the RTS/DTR pattern below.
func (c *Client) usbJTAGReset() error {
	s := c.opt.Signals
	sleep := func() error { c.opt.Sleep(100 * time.Millisecond); return nil }
	steps := []func() error{
		func() error { return s.SetRTS(false) },
		func() error { return s.SetDTR(false) }, // idle
		sleep,
		func() error { return s.SetDTR(true) }, // set IO0
		func() error { return s.SetRTS(false) },
		sleep,
		func() error { return s.SetRTS(true) }, // reset; through (1,1), not (0,0)
		func() error { return s.SetDTR(false) },
		func() error { return s.SetRTS(true) }, // Windows propagates DTR only on an RTS write
		sleep,
		func() error { return s.SetDTR(false) },
		func() error { return s.SetRTS(false) }, // out of reset
	}
	return run(steps)
}

// HardReset restarts the chip into its flash boot: EN low, then high
// with GPIO0 released (esptool HardReset).
func (c *Client) HardReset() error {
	if c.opt.Signals == nil {
		return errors.New("no DTR/RTS on this port: press EN (reset) to start the app")
	}
	return HardReset(c.opt.Signals, c.opt.USBJTAG, c.opt.Sleep)
}

// HardReset pulses EN through RTS with GPIO0 (DTR) released, as esptool's
// HardReset does: 100 ms, or 200 ms and 200 ms after on USB-Serial-JTAG
// so the chip can take further DTR/RTS changes. sleep nil is time.Sleep.
func HardReset(s Signals, usbJTAG bool, sleep func(time.Duration)) error {
	if sleep == nil {
		sleep = time.Sleep
	}
	hold, after := 100*time.Millisecond, time.Duration(0)
	if usbJTAG {
		hold, after = 200*time.Millisecond, 200*time.Millisecond
	}
	return run([]func() error{
		func() error { return s.SetDTR(false) },
		func() error { return s.SetRTS(true) },
		func() error { sleep(hold); return nil },
		func() error { return s.SetRTS(false) },
		func() error { sleep(after); return nil },
	})
}

func run(steps []func() error) error {
	for _, f := range steps {
		if err := f(); err != nil {
			return fmt.Errorf("set DTR/RTS: %w", err)
		}
	}
	return nil
}

// bootMode finds the ROM's first boot message: "rst:0x1 (POWERON_RESET),
// boot:0x13 (SPI_FAST_FLASH_BOOT)" for a flash boot, "boot:0x3
// (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))" then "waiting for
// download" in download mode (esptool loader.py _connect_attempt). It
// returns the mode ("0x13"), whether "waiting for download" follows, and
// whether a boot message was found. (Hand-written, not regexp: the page
// carries this package, and regexp costs it 100 KB gzipped.)
func bootMode(b []byte) (mode string, download, ok bool) {
	i := bytes.Index(b, []byte("boot:0x"))
	if i < 0 {
		return "", false, false
	}
	j := i + len("boot:0x")
	for j < len(b) && isHexDigit(b[j]) {
		j++
	}
	if j == i+len("boot:0x") {
		return "", false, false
	}
	return string(b[i+len("boot:") : j]), bytes.Contains(b[j:], []byte("waiting for download")), true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// NotInDownloadModeError says the chip answered with a normal boot (or
// not at all) instead of the ROM loader.
type NotInDownloadModeError struct {
	BootMode string // "0x13" etc., "" when no boot message was seen
	Download bool   // the ROM said "waiting for download" but did not sync
	Reset    bool   // the client drove DTR/RTS
}

func (e *NotInDownloadModeError) Error() string {
	how := "hold BOOT (GPIO0 low), press and release EN (reset), then release BOOT, and try again"
	switch {
	case e.Download:
		return "the chip is in download mode but does not answer SYNC: the line from the chip to the host seems down"
	case e.BootMode != "":
		return fmt.Sprintf("the chip booted in mode %s, not in download mode; %s", e.BootMode, how)
	case e.Reset:
		return "no answer from the ROM loader after resetting through DTR/RTS (the board may lack the auto-reset circuit); " + how
	}
	return "no answer from the ROM loader; " + how
}

// Connect resets the chip into download mode (when Signals are set) and
// syncs, trying the classic sequence with two delays, or the USB-JTAG
// sequence, up to Options.Attempts times as esptool does.
func (c *Client) Connect(ctx context.Context) error {
	var last *NotInDownloadModeError
	for i := 0; i < c.opt.Attempts; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := c.connectAttempt(ctx, i)
		if err == nil {
			return nil
		}
		var nd *NotInDownloadModeError
		if !errors.As(err, &nd) {
			return err
		}
		if last == nil || nd.BootMode != "" || last.BootMode == "" {
			last = nd // an attempt that saw boot messages says more
		}
		if c.opt.Signals == nil && i >= 1 {
			break // nothing changes between attempts without a reset
		}
	}
	return last
}

func (c *Client) connectAttempt(ctx context.Context, attempt int) error {
	reset := c.opt.Signals != nil
	if reset {
		c.flushInput()
		c.takeRaw() // isolate this reset's boot messages
		var err error
		switch {
		case c.opt.USBJTAG:
			err = c.usbJTAGReset()
		case attempt%2 == 0:
			err = c.classicReset(resetDelay)
		default:
			err = c.classicReset(resetDelay + 500*time.Millisecond)
		}
		if err != nil {
			return err
		}
	}
	for i := 0; i < 5; i++ {
		c.flushInput()
		err := c.sync(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrTimeout) {
			var se *StatusError
			if !errors.As(err, &se) {
				return err
			}
		}
		c.opt.Sleep(50 * time.Millisecond)
	}
	boot := c.takeRaw()
	nd := &NotInDownloadModeError{Reset: reset}
	if mode, download, ok := bootMode(boot); ok {
		nd.BootMode = mode
		nd.Download = download
	}
	return nd
}

// syncPayload is SYNC's data: 07 07 12 20 then 32 bytes of 0x55.
var syncPayload = append([]byte{0x07, 0x07, 0x12, 0x20}, make55(32)...)

func make55(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0x55
	}
	return b
}

// sync sends SYNC and drains the further replies the ROM sends (eight in
// all). A value of 0 in every reply means a flasher stub is running.
func (c *Client) sync(ctx context.Context) error {
	r, err := c.command(ctx, opSync, syncPayload, 0, syncTimeout)
	if err != nil {
		return err
	}
	stub := r.value == 0
	for i := 0; i < 7; i++ {
		r, err := c.recv(ctx, opSync, syncTimeout)
		if err != nil {
			break
		}
		stub = stub && r.value == 0
	}
	if stub {
		c.stub, c.statusLen = true, 2
	}
	return nil
}

// Stub reports whether a flasher stub answers rather than the ROM.
func (c *Client) Stub() bool { return c.stub }

// WaitText waits up to d for s in what the chip prints outside frames
// (from now on), e.g. the ROM's "rst:" line after a reset, and reports
// whether it came. Only text at the port's current rate is readable.
func (c *Client) WaitText(ctx context.Context, s string, d time.Duration) bool {
	c.takeRaw()
	deadline := time.Now().Add(d)
	var seen []byte
	for {
		seen = append(seen, c.takeRaw()...)
		if bytes.Contains(seen, []byte(s)) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		c.mu.Lock()
		dead := c.err != nil
		c.mu.Unlock()
		if dead {
			return false
		}
		select {
		case <-c.wake:
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}
