package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/schollz/progressbar/v3"
	"go.bug.st/serial"
	"golang.org/x/term"

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

// openPort opens a serial device or a WebSocket URL at 115200 baud.
func openPort(ctx context.Context, name string) (port, error) {
	if strings.HasPrefix(name, "ws://") || strings.HasPrefix(name, "wss://") {
		return dialWSLine(ctx, name)
	}
	return openSerial(name)
}

// port is an updater.Port that can be closed.
type port interface {
	updater.Port
	Close() error
}

// serialLine is a local serial device.
type serialLine struct {
	serial.Port
	name string
}

func openSerial(name string) (*serialLine, error) {
	// DTR and RTS low: on boards with the auto-reset circuit, asserted
	// lines would hold the chip in reset or in the ROM bootloader.
	p, err := serial.Open(name, &serial.Mode{BaudRate: updater.DefaultBaud, InitialStatusBits: &serial.ModemOutputBits{}})
	if err != nil {
		// Pseudo-terminals (the virtual device) have no modem lines.
		p, err = serial.Open(name, &serial.Mode{BaudRate: updater.DefaultBaud})
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	// What the driver holds from before the open was meant for an earlier
	// host (esptool flushes it too); the session would only skip it.
	if err := p.ResetInputBuffer(); err != nil {
		p.Close()
		return nil, fmt.Errorf("open %s: discard stale input: %w", name, err)
	}
	return &serialLine{Port: p, name: name}, nil
}

// SetBaud reconfigures the open port.
func (p *serialLine) SetBaud(baud int) error {
	if err := p.Port.SetMode(&serial.Mode{BaudRate: baud}); err != nil {
		return fmt.Errorf("%s: set %d baud: %w", p.name, baud, err)
	}
	return nil
}

// wsLine is the virtual device's WebSocket line. A rate change reconnects
// with ?baud=N (the server reads the host's rate from each connection,
// as a browser reopens a Web Serial port); Read carries on over the new
// connection.
type wsLine struct {
	url       string
	mu        sync.Mutex
	cond      *sync.Cond
	conn      net.Conn
	ws        *websocket.Conn // conn's WebSocket, for control messages (signals.go)
	switching bool
	closed    bool
}

func dialWSLine(ctx context.Context, u string) (*wsLine, error) {
	p := &wsLine{url: u}
	p.cond = sync.NewCond(&p.mu)
	if err := p.dial(ctx, updater.DefaultBaud); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *wsLine) dial(ctx context.Context, baud int) error {
	u, err := url.Parse(p.url)
	if err != nil {
		return fmt.Errorf("port %q: %w", p.url, err)
	}
	q := u.Query()
	q.Set("baud", strconv.Itoa(baud))
	u.RawQuery = q.Encode()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, u.String(), nil)
	if err != nil {
		return fmt.Errorf("connect %s: %w", p.url, err)
	}
	c.SetReadLimit(1 << 20)
	nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	p.mu.Lock()
	old := p.conn
	p.conn, p.ws = nc, c
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (p *wsLine) current() net.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn
}

func (p *wsLine) Read(b []byte) (int, error) {
	for {
		c := p.current()
		n, err := c.Read(b)
		if err == nil || n > 0 {
			return n, err
		}
		p.mu.Lock()
		for p.switching {
			p.cond.Wait()
		}
		replaced := p.conn != c && !p.closed
		p.mu.Unlock()
		if !replaced {
			return n, err
		}
	}
}

func (p *wsLine) Write(b []byte) (int, error) { return p.current().Write(b) }

// SetBaud reconnects at the new rate.
func (p *wsLine) SetBaud(baud int) error {
	p.mu.Lock()
	p.switching = true
	p.mu.Unlock()
	err := p.dial(context.Background(), baud)
	p.mu.Lock()
	p.switching = false
	p.cond.Broadcast()
	p.mu.Unlock()
	return err
}

func (p *wsLine) Close() error {
	p.mu.Lock()
	p.closed = true
	c := p.conn
	p.mu.Unlock()
	return c.Close()
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

func runInfo(args []string) error { return remoteInfo(os.Stdout, os.Stderr, args) }

func remoteInfo(stdout, stderr io.Writer, args []string) error {
	rf := newRemoteFlags("info --port PORT [flags]", stderr, 0, switchBaudUsage)
	asJSON := rf.fs.Bool("json", false, "print JSON")
	if _, err := rf.parse(args, 0); err != nil {
		return err
	}
	ctx, cancel := rf.context()
	defer cancel()
	out := &output{w: stderr}
	// Offer everything so the capabilities shown are the agent's.
	s, p, err := rf.session(ctx, out, updater.Options{Baud: rf.baud, Compression: true})
	if err != nil {
		return err
	}
	defer p.Close()
	defer s.Close()
	di, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printRemoteInfoJSON(stdout, di)
	}
	printRemoteInfo(stdout, di)
	return nil
}

// remoteInfoJSON is the --json form of info.
type remoteInfoJSON struct {
	Chip       string                         `json:"chip,omitempty"`
	ChipRev    int                            `json:"chip_rev,omitempty"`
	Agent      string                         `json:"agent,omitempty"`
	Running    string                         `json:"running"`
	Next       string                         `json:"next"`
	Partitions map[string]remotePartitionJSON `json:"partitions"`
}

type remotePartitionJSON struct {
	State         string  `json:"state,omitempty"`
	Name          string  `json:"name,omitempty"`
	Version       string  `json:"version,omitempty"`
	Date          string  `json:"date,omitempty"`
	Time          string  `json:"time,omitempty"`
	IDFVersion    string  `json:"idf_version,omitempty"`
	SecureVersion *uint32 `json:"secure_version,omitempty"`
	SHA256        string  `json:"sha256,omitempty"`
}

func printRemoteInfoJSON(w io.Writer, di *updater.DeviceInfo) error {
	j := remoteInfoJSON{Chip: di.Chip, ChipRev: di.ChipRev, Agent: di.Agent, Running: di.Running, Next: di.Next, Partitions: map[string]remotePartitionJSON{}}
	for _, p := range di.Partitions {
		pj := remotePartitionJSON{State: p.State, Name: p.Name, Version: p.Version, Date: p.Date, Time: p.Time, IDFVersion: p.IDFVersion, SHA256: p.SHA256}
		if p.Name != "" {
			sv := p.SecureVersion
			pj.SecureVersion = &sv
		}
		j.Partitions[p.Label] = pj
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}

func remoteSubtypeName(st int) string {
	switch {
	case st == 0:
		return "factory"
	case st >= 0x10 && st < 0x20:
		return fmt.Sprintf("ota_%d", st-0x10)
	case st == 0x20:
		return "test"
	case st < 0:
		return "?"
	}
	return fmt.Sprintf("0x%02x", st)
}

func printRemoteInfo(w io.Writer, di *updater.DeviceInfo) {
	c := di.Caps
	var caps []string
	for _, f := range []struct {
		on   bool
		name string
	}{{c.Compression, "deflate"}, {c.Resume, "resume"}, {c.BaudChange, "baud"}, {c.SHA256, "sha256"}, {c.Reorder, "reorder"}} {
		if f.on {
			caps = append(caps, f.name)
		}
	}
	if len(caps) == 0 {
		caps = []string{"core only"}
	}
	fmt.Fprintf(w, "device   %s rev v%d.%d\n", di.Chip, di.ChipRev/100, di.ChipRev%100)
	fmt.Fprintf(w, "agent    %s, protocol %d (%s; frames %d B, window %d B)\n", di.Agent, c.Version, strings.Join(caps, ", "), c.MaxFrame, c.Window)
	fmt.Fprintf(w, "running  %s\nnext     %s\n\n", di.Running, di.Next)
	for _, p := range di.Partitions {
		mark := "  "
		if p.Label == di.Running {
			mark = "* "
		}
		state := p.State
		if state == "" {
			state = "-"
		}
		fmt.Fprintf(w, "%s%-8s %-7s", mark, p.Label, remoteSubtypeName(p.Subtype))
		if p.Size > 0 {
			fmt.Fprintf(w, " 0x%06x %9d", p.Offset, p.Size)
		}
		fmt.Fprintf(w, "  %-9s", state)
		if p.Name != "" {
			fmt.Fprintf(w, " %s %s (%s %s, IDF %s, secure version %d)", p.Name, p.Version, p.Date, p.Time, p.IDFVersion, p.SecureVersion)
		} else {
			fmt.Fprint(w, " (no app)")
		}
		fmt.Fprintln(w)
		if p.SHA256 != "" {
			fmt.Fprintf(w, "  %-16s sha256 %s, %d bytes\n", "", p.SHA256, p.ImageLen)
		}
	}
}

func runFlash(args []string) error { return remoteFlash(os.Stdout, os.Stderr, args) }

func remoteFlash(stdout, stderr io.Writer, args []string) error {
	rf := newRemoteFlags("flash FILE --port PORT [flags]", stderr, 921600, "line rate for the transfer if the agent offers baud change (0 = stay at 115200)")
	force := rf.fs.Bool("force", false, "flash even what the host would refuse (same build, wrong chip, too big, ...); the device still verifies")
	downgrade := rf.fs.Bool("allow-downgrade", false, "allow an older version")
	noReboot := rf.fs.Bool("no-reboot", false, "complete the update without rebooting into it")
	noCompress := rf.fs.Bool("no-compress", false, "do not use DEFLATE even if the agent offers it")
	noResume := rf.fs.Bool("no-resume", false, "start over even if the device holds part of this image")
	baseFile := rf.fs.String("base", "", "the image the device runs now (e.g. the previous release): frames are compressed against it, so mostly what changed is sent (default: the copy in the image cache, $GOTA_CACHE or the user cache directory, of every image gota flashed; GOTA_CACHE=off disables it)")
	pos, err := rf.parse(args, 1)
	if err != nil {
		return err
	}
	image, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	if image, err = appOfMerged(stderr, pos[0], image); err != nil {
		return err
	}
	var base []byte
	if *baseFile != "" {
		if base, err = os.ReadFile(*baseFile); err != nil {
			return fmt.Errorf("--base: %w", err)
		}
	}
	baud := rf.baud
	ctx, cancel := rf.context()
	defer cancel()
	out := &output{w: stderr}
	s, p, err := rf.session(ctx, out, updater.Options{Baud: baud, Compression: !*noCompress, NoResume: *noResume})
	if err != nil {
		return err
	}
	defer p.Close()
	defer s.Close()

	di, err := s.Info(ctx)
	if err != nil {
		return err
	}
	plan, err := updater.Check(di, image, updater.CheckOptions{Force: *force, AllowDowngrade: *downgrade})
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	describeFlashPlan(out, pos[0], di, plan, s)
	cache := openImageCache()
	if base == nil && s.Caps().Delta {
		if rp := di.Find(di.Running); rp != nil {
			if base = cache.get(rp.SHA256); base != nil {
				out.printf("gota: the running build is in the image cache (%s): sending deltas against it\n", cache.dir)
			}
		}
	}

	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	lastPhase, lastTenth := "", -1
	progress := func(pr updater.Progress) {
		if tty && pr.Phase == "send" {
			out.mu.Lock()
			if out.bar == nil {
				out.bar = progressbar.NewOptions(pr.Total,
					progressbar.OptionSetWriter(stderr), progressbar.OptionShowBytes(true),
					progressbar.OptionSetDescription("sending"), progressbar.OptionSetPredictTime(true),
					progressbar.OptionSetWidth(30), progressbar.OptionThrottle(100*time.Millisecond))
			}
			out.bar.Set(pr.Sent)
			out.mu.Unlock()
			return
		}
		if pr.Phase != "send" {
			out.mu.Lock()
			if out.bar != nil {
				out.bar.Finish()
				fmt.Fprintln(stderr)
				out.bar = nil
			}
			out.mu.Unlock()
		}
		if pr.Phase != lastPhase {
			lastPhase = pr.Phase
			if pr.Phase != "send" && pr.Phase != "done" {
				out.printf("gota: %s\n", pr.Phase)
			}
		}
		if pr.Phase == "send" && pr.Total > 0 {
			if tenth := pr.Sent * 10 / pr.Total; tenth != lastTenth {
				lastTenth = tenth
				out.printf("gota: sent %d of %d bytes (%d%%), %.1f KiB/s, %s left\n", pr.Sent, pr.Total, pr.Sent*100/pr.Total, pr.Rate/1024, pr.ETA.Round(time.Second))
			}
		}
	}
	start := time.Now()
	shown := map[string]bool{} // the plan's warnings, printed by describeFlashPlan
	for _, w := range plan.Warnings {
		shown[w] = true
	}
	err = s.Flash(ctx, image, updater.FlashOptions{
		Force: *force, AllowDowngrade: *downgrade, NoReboot: *noReboot, Base: base,
		Progress: progress,
		Warning: func(w string) {
			if !shown[w] {
				out.printf("gota: warning: %s\n", w)
			}
		},
	})
	if err != nil {
		return err
	}
	cache.put(image) // the device holds it now: the next update's base
	st := s.Stats()
	after := s.LastInfo()
	fmt.Fprintf(stdout, "flashed %s to %s in %.1fs (%d bytes", pos[0], plan.Target, time.Since(start).Seconds(), len(image))
	if st.WireBytes != st.DataBytes {
		fmt.Fprintf(stdout, ", %d on the wire", st.WireBytes)
	}
	if st.DeltaFrames > 0 {
		fmt.Fprintf(stdout, ", %d of %d frames against the base", st.DeltaFrames, st.DataFrames)
	}
	if st.ResumedFrom > 0 {
		fmt.Fprintf(stdout, ", resumed at %d", st.ResumedFrom)
	}
	fmt.Fprintln(stdout, ")")
	if *noReboot {
		fmt.Fprintf(stdout, "%s boots next; still running %s\n", after.Next, after.Running)
		return nil
	}
	state := ""
	if rp := after.Find(after.Running); rp != nil {
		state = rp.State
	}
	fmt.Fprintf(stdout, "running %s (%s)\n", after.Running, state)
	switch state {
	case "testing":
		fmt.Fprintln(stdout, "the new build is on trial: `gota accept` keeps it; a reboot without accepting rolls back")
	case "undefined":
		// esp_ota_set_boot_partition without CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE.
		fmt.Fprintln(stdout, "the bootloader has no rollback support: the new build is final; `gota rollback` returns to the previous one")
	}
	return nil
}

func describeFlashPlan(out *output, file string, di *updater.DeviceInfo, plan *updater.Plan, s *updater.Session) {
	desc := ""
	if plan.Image != nil && plan.Image.App != nil {
		desc = fmt.Sprintf(" %s %s", plan.Image.App.ProjectName, plan.Image.App.Version)
	}
	target := plan.Target
	if target == "" {
		target = "the next OTA slot"
	}
	out.printf("gota: %s:%s, %d bytes, sha256 %x\n", file, desc, plan.Size, plan.SHA256)
	rel := plan.Relation
	if rel == "" {
		rel = "update"
	}
	c := s.Caps()
	out.printf("gota: %s to %s (running %s) via %s at %d baud\n", rel, target, di.Running, c.Agent, s.Baud())
	for _, w := range plan.Warnings {
		out.printf("gota: warning: %s\n", w)
	}
}

func acceptFn(ctx context.Context, s *updater.Session) error   { return s.Accept(ctx) }
func rollbackFn(ctx context.Context, s *updater.Session) error { return s.Rollback(ctx) }
func rebootFn(ctx context.Context, s *updater.Session) error   { return s.Reboot(ctx) }

func runAccept(args []string) error {
	return remoteSimple(os.Stdout, os.Stderr, "accept", args, acceptFn)
}

func runRollback(args []string) error {
	return remoteSimple(os.Stdout, os.Stderr, "rollback", args, rollbackFn)
}

func runReboot(args []string) error {
	return remoteSimple(os.Stdout, os.Stderr, "reboot", args, rebootFn)
}

// remoteSimple connects, runs do and prints the resulting state.
func remoteSimple(stdout, stderr io.Writer, name string, args []string, do func(context.Context, *updater.Session) error) error {
	rf := newRemoteFlags(name+" --port PORT [flags]", stderr, 0, switchBaudUsage)
	if _, err := rf.parse(args, 0); err != nil {
		return err
	}
	ctx, cancel := rf.context()
	defer cancel()
	out := &output{w: stderr}
	s, p, err := rf.session(ctx, out, updater.Options{Baud: rf.baud})
	if err != nil {
		return err
	}
	defer p.Close()
	defer s.Close()
	if err := do(ctx, s); err != nil {
		return err
	}
	di, err := s.Info(ctx)
	if err != nil {
		return err
	}
	state := ""
	if rp := di.Find(di.Running); rp != nil {
		state = rp.State
	}
	fmt.Fprintf(stdout, "%s: running %s (%s), next boot %s\n", name, di.Running, state, di.Next)
	return nil
}

func runMonitor(args []string) error { return remoteMonitor(os.Stdout, os.Stderr, args) }

func remoteMonitor(stdout, stderr io.Writer, args []string) error {
	rf := newRemoteFlags("monitor --port PORT [flags]", stderr, updater.DefaultBaud, "rate the device console runs at")
	reset := rf.fs.Bool("reset", false, "reset the chip through DTR/RTS first (EN pulse, GPIO0 released), to see its boot")
	usbJTAG := rf.fs.Bool("usb-jtag", false, "with --reset: the port is the chip's USB-Serial-JTAG")
	if _, err := rf.parse(args, 0); err != nil {
		return err
	}
	ctx, cancel := rf.context()
	defer cancel()
	p, err := openPort(ctx, rf.port)
	if err != nil {
		return err
	}
	defer p.Close()
	if rf.baud != updater.DefaultBaud {
		// Monitor does not talk to the agent: --baud is the rate the
		// device's console already runs at.
		if err := p.SetBaud(rf.baud); err != nil {
			return err
		}
	}
	if *reset {
		if err := resetPort(p, *usbJTAG); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	err = updater.Monitor(ctx, p, func(line string) {
		mu.Lock()
		fmt.Fprintln(stdout, line)
		mu.Unlock()
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}
