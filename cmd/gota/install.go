package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/install"
	"github.com/gota-dev/gota/core/romloader"
	"github.com/gota-dev/gota/core/updater"
)

// The commands that talk to the chip's ROM serial bootloader.
func init() {
	register(&command{name: "install", usage: "[--erase] [--stub DIR] --port PORT FILE|manifest.json|URL|FILE@OFFSET...\n                       first install or recovery through the ROM bootloader", run: runInstall})
	register(&command{name: "chip", usage: "--port PORT\n                       identify the chip in download mode (chip, revision, MAC, flash size)", run: runChip})
}

// romFlags are the flags of the ROM loader commands.
type romFlags struct {
	*remoteFlags
	usbJTAG *bool
}

func newROMFlags(synopsis string, stderr io.Writer, baud int, baudUsage string) *romFlags {
	rf := &romFlags{remoteFlags: newRemoteFlags(synopsis, stderr, baud, baudUsage)}
	rf.usbJTAG = rf.fs.Bool("usb-jtag", false, "the port is the chip's own USB-Serial-JTAG (S3, C3): use its reset sequence")
	return rf
}

// openROM opens the port and a ROM loader client on it. A port without
// modem lines (a pseudo-terminal) gets no automatic reset: the chip must
// be in download mode already.
func (rf *romFlags) openROM(ctx context.Context, out *output) (port, *romloader.Client, error) {
	p, err := openPort(ctx, rf.port)
	if err != nil {
		return nil, nil, err
	}
	opt := romloader.Options{USBJTAG: *rf.usbJTAG, Log: func(l string) { out.deviceLine(l) }}
	if s := portSignals(p); s != nil {
		if err := s.SetDTR(false); err == nil {
			opt.Signals = s
		} else {
			out.printf("note: %s has no DTR/RTS (%v): the chip is not reset; hold BOOT and press EN to put it in download mode\n", rf.port, err)
		}
	}
	return p, romloader.New(p, opt), nil
}

// detectROM opens the port, resets the chip into download mode, syncs
// and identifies it. On success the caller closes the client, then the
// port.
func (rf *romFlags) detectROM(ctx context.Context, out *output) (port, *romloader.Client, *romloader.ChipInfo, error) {
	p, c, err := rf.openROM(ctx, out)
	if err != nil {
		return nil, nil, nil, err
	}
	err = c.Connect(ctx)
	var info *romloader.ChipInfo
	if err == nil {
		info, err = c.Detect(ctx)
	}
	if err != nil {
		c.Close()
		p.Close()
		return nil, nil, nil, err
	}
	return p, c, info, nil
}

func runChip(args []string) error { return romChip(os.Stdout, os.Stderr, args) }

func romChip(stdout, stderr io.Writer, args []string) error {
	rf := newROMFlags("chip --port PORT", stderr, 0, "unused")
	if _, err := rf.parse(args, 0); err != nil {
		return err
	}
	ctx, cancel := rf.context()
	defer cancel()
	out := &output{w: stderr}
	p, c, info, err := rf.detectROM(ctx, out)
	if err != nil {
		return err
	}
	defer p.Close()
	defer c.Close()
	fmt.Fprintf(stdout, "chip        %s (%s)\n", info.Name, info.Chip)
	fmt.Fprintf(stdout, "revision    %s\n", info.RevString())
	fmt.Fprintf(stdout, "MAC         %s\n", info.MACString())
	fmt.Fprintf(stdout, "flash       %s (JEDEC ID 0x%06x)\n", sizeText(info.FlashSize), info.FlashID)
	bo, _ := install.BootloaderOffset(info.Chip)
	fmt.Fprintf(stdout, "bootloader  at 0x%x\n", bo)
	return nil
}

func sizeText(n int) string {
	if n == 0 {
		return "size unknown"
	}
	return fmt.Sprintf("%d MB", n>>20)
}

func runInstall(args []string) error { return romInstall(os.Stdout, os.Stderr, args) }

func romInstall(stdout, stderr io.Writer, args []string) error {
	rf := newROMFlags("install [--erase] --port PORT FILE|manifest.json|FILE@OFFSET...", stderr, 921600, "line rate for the transfer (the ROM starts at 115200)")
	erase := rf.fs.Bool("erase", false, "erase the whole flash first (NVS and all data are lost)")
	noReset := rf.fs.Bool("no-reset", false, "stay in the ROM loader afterwards")
	stub := rf.stubFlag()
	wait := rf.fs.Duration("wait-agent", 20*time.Second, "after the reset, show the console and wait this long for a Gota agent to answer (0 = do not wait)")
	pos, err := parseArgs(rf.fs, args, 1, -1)
	if err != nil {
		return err
	}
	if _, err := rf.parse(nil, 0); err != nil { // port and rate checks
		return err
	}
	resolve, err := resolver(pos)
	if err != nil {
		return err
	}
	ctx, cancel := rf.context()
	defer cancel()
	out := &output{w: stderr}
	p, c, err := rf.openROM(ctx, out)
	if err != nil {
		return err
	}
	start := time.Now()
	plan, err := install.Run(ctx, c, resolve, install.RunOptions{Baud: rf.baud, Erase: *erase, NoReset: *noReset, Event: installEvents(out), Stub: stubLoader(*stub)})
	c.Close()
	p.Close()
	if err != nil {
		return err
	}
	out.printf("installed %d bytes in %.1f s\n", plan.Size(), time.Since(start).Seconds())
	if *noReset || *wait <= 0 {
		return nil
	}
	return waitAgent(ctx, rf.remoteFlags, out, stdout, *wait)
}

// installEvents prints Run's steps, with a progress bar for writes on a
// terminal and quarter steps otherwise.
func installEvents(out *output) func(install.Event) {
	tty := false
	if f, ok := out.w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	lastQuarter := -1
	return func(e install.Event) {
		switch e.Step {
		case "write":
			if tty {
				out.progress(fmt.Sprintf("write 0x%06x", e.Offset), e.Done, e.Total)
				return
			}
			if q := e.Done * 4 / max(e.Total, 1); q != lastQuarter {
				lastQuarter = q
				out.printf("write 0x%06x: %d%%\n", e.Offset, q*25)
			}
		case "verified":
			out.endProgress()
			lastQuarter = -1
			out.printf("%s\n", e.Text)
		default:
			out.printf("%s\n", e.Text)
		}
	}
}

// waitAgent shows the console of the freshly reset chip until a Gota
// agent answers the handshake, then prints "agent ready".
func waitAgent(ctx context.Context, rf *remoteFlags, out *output, stdout io.Writer, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	s, p, err := rf.session(ctx, out, updater.Options{})
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			out.printf("the app runs, but no Gota agent answered within %v (an app without agent can only be updated through the ROM loader)\n", wait)
			return nil
		}
		return err
	}
	defer p.Close()
	defer s.Close()
	di, err := s.Info(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "agent ready: %s on %s, running %s\n", di.Agent, di.Chip, di.Running)
	return nil
}

// resolver makes the plan from the command line: one merged image or
// app, one manifest.json, or FILE@OFFSET parts.
func resolver(args []string) (install.Resolver, error) {
	if len(args) == 1 && isURL(args[0]) {
		return urlManifestResolver(args[0])
	}
	if len(args) == 1 && !strings.Contains(args[0], "@") {
		b, err := os.ReadFile(args[0])
		if err != nil {
			return nil, err
		}
		if install.LooksLikeManifest(b) {
			return manifestResolver(args[0], b)
		}
		return fileResolver(args[0], b)
	}
	var parts []install.Part
	for _, a := range args {
		name, off, err := install.ParsePartSpec(a)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		parts = append(parts, install.Classify(filepath.Base(name), off, b))
	}
	plan := install.FromParts("parts", parts)
	return func(*romloader.ChipInfo) (*install.Plan, error) { return plan, nil }, nil
}

func manifestResolver(name string, b []byte) (install.Resolver, error) {
	m, err := install.ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	dir := filepath.Dir(name)
	return buildResolver(name, m, func(path string) ([]byte, error) {
		if isURL(path) {
			return fetch(path)
		}
		return os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
	}), nil
}

// buildResolver picks the manifest's build for the chip found and reads
// its parts with load.
func buildResolver(name string, m *install.Manifest, load func(string) ([]byte, error)) install.Resolver {
	return func(info *romloader.ChipInfo) (*install.Plan, error) {
		bd, err := m.Build(info.Chip)
		if err != nil {
			return nil, fmt.Errorf("%s: %w; nothing written, the chip stays in download mode", name, err)
		}
		return bd.Plan(load)
	}
}

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

// urlManifestResolver fetches a manifest published on the web, as ESP
// Web Tools does; part paths are relative to it.
func urlManifestResolver(u string) (install.Resolver, error) {
	base, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	b, err := fetch(u)
	if err != nil {
		return nil, err
	}
	m, err := install.ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return buildResolver(u, m, func(path string) ([]byte, error) {
		ref, err := url.Parse(path)
		if err != nil {
			return nil, err
		}
		return fetch(base.ResolveReference(ref).String())
	}), nil
}

// fetch GETs a URL (a manifest or one of its parts).
func fetch(u string) ([]byte, error) {
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return b, nil
}

// fileResolver takes a merged image as it is, and a lone app or
// bootloader image at the offset its kind needs on the detected chip.
func fileResolver(name string, b []byte) (install.Resolver, error) {
	if plan, err := install.SplitMerged(filepath.Base(name), b); err == nil {
		return func(*romloader.ChipInfo) (*install.Plan, error) { return plan, nil }, nil
	}
	img, err := espimage.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s is neither a merged image, a manifest nor an ESP image (%v); give parts as FILE@OFFSET", name, err)
	}
	if img.Bootloader {
		return nil, fmt.Errorf("%s is a bootloader image: give its offset, e.g. %s@0x1000 (ESP32, S2) or @0x0 (S3, C3)", name, name)
	}
	return nil, fmt.Errorf("%s is an app image: give its offset, e.g. %s@0x10000, with the bootloader and partition table it needs, or use gota flash to update a device that runs an agent", name, name)
}

// progress shows a bar for desc, starting one when none runs.
func (o *output) progress(desc string, done, total int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.bar == nil {
		o.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(o.w), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription(desc), progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30), progressbar.OptionThrottle(100*time.Millisecond))
	}
	o.bar.Set(done)
}

// endProgress finishes the bar, if any.
func (o *output) endProgress() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.bar != nil {
		o.bar.Finish()
		fmt.Fprintln(o.w)
		o.bar = nil
	}
}

// portSignals returns the port's modem lines one at a time, as
// esptool's reset sequences set them; nil when it has none.
func portSignals(p port) romloader.Signals {
	if s, ok := p.(romloader.Signals); ok {
		return s
	}
	if s, ok := p.(signalPort); ok {
		return &pairSignals{p: s}
	}
	return nil
}

// pairSignals sets one line of a port that sets both at once, keeping
// the other as last set (both deasserted at first, as openSerial leaves
// them).
type pairSignals struct {
	p        signalPort
	dtr, rts bool
}

func (s *pairSignals) SetDTR(v bool) error { s.dtr = v; return s.p.SetSignals(s.dtr, s.rts) }
func (s *pairSignals) SetRTS(v bool) error { s.rts = v; return s.p.SetSignals(s.dtr, s.rts) }

// resetPort restarts the chip through the port's DTR/RTS.
func resetPort(p port, usbJTAG bool) error {
	s := portSignals(p)
	if s == nil {
		return errors.New("--reset: this port carries no DTR/RTS; press EN on the board")
	}
	if err := romloader.HardReset(s, usbJTAG, nil); err != nil {
		return fmt.Errorf("--reset: %w (a pseudo-terminal has no modem lines; press EN on the board)", err)
	}
	return nil
}
