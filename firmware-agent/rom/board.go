package rom

import (
	"sync"
	"time"
)

// Signals are the modem control lines a host drives, true = asserted
// (pyserial's setDTR(True), Web Serial's dataTerminalReady: true). They
// are active low: asserted pulls the wire to 0 V (esptool
// docs/en/advanced-topics/boot-mode-selection.rst).
type Signals struct {
	DTR, RTS bool
}

// Circuit is how DTR and RTS reach the chip.
type Circuit int

const (
	// AutoReset is the two-transistor circuit of dev boards with a
	// USB-UART bridge (ESP32-DevKitC schematic, boot-mode-selection.rst
	// "Automatic Bootloader"): RTS asserted alone pulls EN low, DTR
	// asserted alone pulls GPIO0 low, both or neither leave both high.
	// EN has a capacitor (1-10 µF with the 10 kΩ pull-up), so the chip
	// leaves reset ENRiseTime after EN is released, and GPIO0 is sampled
	// then: esptool's classic reset keeps DTR asserted 50 ms after
	// releasing RTS for that reason (esptool/reset.py ClassicReset).
	AutoReset Circuit = iota
	// USBSerialJTAG is the ESP32-S3/C3 built-in USB-Serial-JTAG
	// controller: the host's (virtual) DTR/RTS drive the chip's reset and
	// boot mode directly. DTR asserted alone requests download boot;
	// RTS asserted alone holds the chip in reset; the chip starts when RTS
	// is released, in download mode if requested since its last start.
	// esptool's USBJTAGSerialReset goes (0,0) (1,0) (1,1) (0,1) (0,0)
	// for that reason (esptool/reset.py; ESP32-C3 TRM, USB Serial/JTAG
	// Controller).
	USBSerialJTAG
	// NoSignals is a port without modem lines (a pseudo-terminal): only
	// the BOOT and EN buttons act.
	NoSignals
)

// ENRiseTime is how long after EN is released the chip leaves reset: the
// RC of a 10 kΩ pull-up and a 1 µF capacitor reaching the CHIP_PU
// threshold.
const ENRiseTime = 10 * time.Millisecond

// BootMode is what the ROM does when the chip leaves reset.
type BootMode int

const (
	// FlashBoot: GPIO0 high, the ROM loads the bootloader from flash
	// (boot:0x13 SPI_FAST_FLASH_BOOT on ESP32).
	FlashBoot BootMode = iota
	// DownloadBoot: GPIO0 low, the ROM serial loader waits for a host.
	DownloadBoot
)

func (m BootMode) String() string {
	if m == DownloadBoot {
		return "download"
	}
	return "flash"
}

// Board is a chip's reset and strapping logic. Every change of the
// signals or buttons may put the chip in reset (Hold runs) or start it
// (Start runs with the boot mode); callbacks run on their own goroutine,
// one at a time.
type Board struct {
	mu      sync.Mutex
	circuit Circuit
	sig     Signals
	bootBtn bool // BOOT button held: GPIO0 low
	enBtn   bool // EN button held: chip in reset
	held    bool // the chip is in reset
	dlReq   bool // USB-Serial-JTAG download request
	timer   *time.Timer
	gen     int
	events  chan func()
	hold    func()
	start   func(BootMode)
	closed  bool
}

// NewBoard returns a running chip (it is not in reset) on circuit;
// hold is called when the chip enters reset, start when it leaves it.
func NewBoard(circuit Circuit, hold func(), start func(BootMode)) *Board {
	b := &Board{circuit: circuit, hold: hold, start: start, events: make(chan func(), 64)}
	go func() {
		for f := range b.events {
			f()
		}
	}()
	return b
}

// Close stops delivering callbacks.
func (b *Board) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		if b.timer != nil {
			b.timer.Stop()
		}
		close(b.events)
	}
}

// Signals returns the host's lines as last set.
func (b *Board) Signals() Signals {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sig
}

// SetSignals applies the host's DTR and RTS. They have no effect on a
// NoSignals board.
func (b *Board) SetSignals(s Signals) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.circuit == NoSignals {
		b.sig = s
		return
	}
	b.sig = s
	if b.circuit == USBSerialJTAG && s.DTR && !s.RTS {
		b.dlReq = true
	}
	b.updateLocked()
}

// HoldBoot presses (true) or releases the BOOT button (GPIO0 to ground).
func (b *Board) HoldBoot(down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bootBtn = down
}

// PressEN presses (true) or releases the EN (reset) button.
func (b *Board) PressEN(down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.enBtn = down
	b.updateLocked()
}

// Reset presses and releases EN, as a power cycle or the EN button does.
func (b *Board) Reset() {
	b.PressEN(true)
	b.PressEN(false)
}

// enLow reports whether the chip's reset input is asserted.
func (b *Board) enLow() bool {
	if b.enBtn {
		return true
	}
	switch b.circuit {
	case AutoReset, USBSerialJTAG:
		return b.sig.RTS && !b.sig.DTR
	}
	return false
}

// gpio0Low reports the strap the ROM samples.
func (b *Board) gpio0Low() bool {
	if b.bootBtn {
		return true
	}
	switch b.circuit {
	case AutoReset:
		return b.sig.DTR && !b.sig.RTS
	case USBSerialJTAG:
		return b.dlReq
	}
	return false
}

func (b *Board) updateLocked() {
	if b.closed {
		return
	}
	if b.enLow() {
		if b.timer != nil {
			b.timer.Stop() // EN fell again before the chip started
			b.timer = nil
			b.gen++ // a callback already waiting for the lock must not start it
		}
		if !b.held {
			b.held = true
			b.gen++
			b.events <- b.hold
		}
		return
	}
	if !b.held || b.timer != nil {
		return
	}
	if b.circuit == USBSerialJTAG && !b.enBtn {
		// The controller drives the reset itself: the chip starts now,
		// in the mode requested so far.
		b.startLocked()
		return
	}
	gen := b.gen
	b.timer = time.AfterFunc(ENRiseTime, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.closed || gen != b.gen || b.enLow() {
			return
		}
		b.timer = nil
		b.startLocked()
	})
}

// startLocked takes the chip out of reset, sampling the boot strap.
func (b *Board) startLocked() {
	b.held = false
	mode := FlashBoot
	if b.gpio0Low() {
		mode = DownloadBoot
	}
	b.dlReq = false
	b.events <- func() { b.start(mode) }
}

// InReset reports whether the chip is held in reset.
func (b *Board) InReset() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}
