package install

import (
	"context"
	"fmt"
	"time"

	"github.com/gota-dev/gota/core/romloader"
)

// romBaud is the rate the ROM loader and the app's console start at.
const romBaud = 115200

// RunOptions configure Run.
type RunOptions struct {
	// Baud is the rate to switch to for the transfer; 0 stays at 115200.
	Baud int
	// Erase erases the whole flash first (NVS, otadata and all).
	Erase bool
	// NoReset leaves the chip in the loader instead of resetting it into
	// the app afterwards.
	NoReset bool
	// Event receives progress; nil discards it.
	Event func(Event)
	// Stub, when set, returns the flasher stub for the chip found (nil:
	// stay with the ROM loader).
	Stub func(info *romloader.ChipInfo) (*romloader.Stub, error)
}

// Event is a step of Run.
type Event struct {
	Step        string // "connect", "chip", "plan", "baud", "erase", "write", "verified", "reset"
	Offset      uint32
	Done, Total int
	Text        string
}

// Resolver turns the chip found on the port into a plan (a manifest
// picks its build here; a file or parts ignore the chip).
type Resolver func(info *romloader.ChipInfo) (*Plan, error)

// Run connects to the ROM loader through c, identifies the chip, makes
// and checks the plan, and writes it: nothing is written when a check
// fails, and the chip stays in download mode to try again. Each region
// is verified by MD5 before the chip is reset into the app.
func Run(ctx context.Context, c *romloader.Client, resolve Resolver, opt RunOptions) (*Plan, error) {
	ev := opt.Event
	if ev == nil {
		ev = func(Event) {}
	}
	ev(Event{Step: "connect", Text: "resetting into download mode and syncing"})
	if err := c.Connect(ctx); err != nil {
		return nil, err
	}
	info, err := c.Detect(ctx)
	if err != nil {
		return nil, err
	}
	ev(Event{Step: "chip", Text: fmt.Sprintf("%s %s, MAC %s, %s flash", info.Name, info.RevString(), info.MACString(), sizeName(info.FlashSize))})
	plan, err := resolve(info)
	if err != nil {
		return nil, err
	}
	if err := plan.Check(Target{Chip: info.Chip, ChipRev: info.Rev, FlashSize: info.FlashSize}); err != nil {
		return plan, fmt.Errorf("nothing written, the chip stays in download mode:\n%w", err)
	}
	for _, line := range plan.Describe(opt.Erase, info.FlashSize) {
		ev(Event{Step: "plan", Text: line})
	}
	if err := startStub(ctx, c, info, opt, ev); err != nil {
		return plan, err
	}
	if info.FlashSize > 0 {
		if err := c.SetFlashParams(ctx, info.FlashSize); err != nil {
			return plan, err
		}
	}
	if opt.Baud > 0 && opt.Baud != c.Baud() {
		if err := c.ChangeBaud(ctx, opt.Baud); err != nil {
			return plan, err
		}
		ev(Event{Step: "baud", Text: fmt.Sprintf("%d baud", opt.Baud)})
	}
	if opt.Erase {
		ev(Event{Step: "erase", Total: info.FlashSize, Text: "erasing the whole flash"})
		if err := c.EraseFlash(ctx, info.FlashSize); err != nil {
			return plan, err
		}
	}
	for _, w := range plan.Writes {
		off := w.Offset
		err := c.WriteFlash(ctx, w.Offset, w.Data, func(done, total int) {
			ev(Event{Step: "write", Offset: off, Done: done, Total: total})
		})
		if err != nil {
			return plan, err
		}
		ev(Event{Step: "verified", Offset: off, Total: len(w.Data), Text: fmt.Sprintf("0x%06x %d bytes written, MD5 matches", off, len(w.Data))})
	}
	if opt.NoReset {
		return plan, nil
	}
	return plan, startApp(ctx, c, ev)
}

// startApp leaves the loader into the new app: back at 115200 first, the
// rate the ROM and the app's console start at, so the boot is readable
// and the port needs no change (and no reopening) after the reset; then
// an EN pulse through RTS, or FLASH_END without modem lines.
func startApp(ctx context.Context, c *romloader.Client, ev func(Event)) error {
	if c.Baud() != romBaud {
		if err := c.ChangeBaud(ctx, romBaud); err != nil {
			return err
		}
	}
	if !c.CanReset() {
		ev(Event{Step: "reset", Text: "no DTR/RTS: leaving the loader with FLASH_END (run user code)"})
		return c.RunApp(ctx)
	}
	ev(Event{Step: "reset", Text: "resetting into the app (EN through RTS)"})
	if err := c.HardReset(); err != nil {
		return err
	}
	// The ROM's first line after a reset ("rst:0x1 (POWERON_RESET),boot:...")
	// shows the reset took effect before the port is handed on.
	if !c.WaitText(ctx, "rst:", 2*time.Second) {
		ev(Event{Step: "reset", Text: "no boot message after the reset (press EN if the app does not start)"})
	}
	return nil
}

// Describe says, one line each, what goes where and what gets erased.
func (p *Plan) Describe(eraseAll bool, flashSize int) []string {
	var out []string
	if eraseAll {
		out = append(out, fmt.Sprintf("erase the whole %s flash first (NVS, otadata and all data are lost)", sizeName(flashSize)))
	}
	for _, w := range p.Writes {
		end := w.Offset + uint32(len(w.Data))
		eraseEnd := (end + SectorSize - 1) / SectorSize * SectorSize
		out = append(out, fmt.Sprintf("write 0x%06x-0x%06x (%d bytes; erases 0x%06x-0x%06x)", w.Offset, end, len(w.Data), w.Offset, eraseEnd))
	}
	for _, pt := range p.Parts {
		label := ""
		if pt.Label != "" {
			label = " in " + pt.Label
		}
		out = append(out, fmt.Sprintf("  0x%06x  %s%s", pt.Offset, pt.Describe(), label))
	}
	return out
}

func sizeName(n int) string {
	switch {
	case n == 0:
		return "unknown-size"
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	}
	return fmt.Sprintf("%d KB", n>>10)
}

// startStub uploads and starts the flasher stub when the options give one.
func startStub(ctx context.Context, c *romloader.Client, info *romloader.ChipInfo, opt RunOptions, ev func(Event)) error {
	if opt.Stub == nil || c.Stub() {
		return nil
	}
	s, err := opt.Stub(info)
	if err != nil || s == nil {
		return err
	}
	if err := c.RunStub(ctx, s); err != nil {
		return err
	}
	ev(Event{Step: "stub", Text: "flasher stub running"})
	return c.Attach(ctx)
}
