package web

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/vugu/vugu"
)

// maxConsoleLines bounds the console pane; older lines scroll away.
const maxConsoleLines = 2000

// Baud rates offered in the connect bar. The session opens the line at
// updater.DefaultBaud and switches to the chosen one when the agent can.
var baudRates = []int{115200, 230400, 460800, 921600}

// Root is the page: connect bar, device panel, image panel, progress,
// trial actions and console.
type Root struct {
	env vugu.EventEnv

	SerialSupported  bool // navigator.serial exists
	VirtualAvailable bool // served with a virtual device
	Baud             int  // line rate to switch to after the handshake

	port    Port
	sess    *updater.Session
	cancel  context.CancelFunc // cancels the running operation
	Busy    string             // what runs now ("Connecting…", "Flashing…"), "" when idle
	Status  string             // connection state shown in the connect bar
	Info    *updater.DeviceInfo
	Notice  string // last success message
	Problem *Banner

	File     *ImageFile
	Dragging bool

	Progress   *updater.Progress
	Rebooting  bool
	flashStart time.Time

	// base is the image the device runs, when this browser flashed it
	// before (Cache Storage): the next update goes as deltas against it.
	base       []byte
	baseDigest string

	Console []string

	// Inst is the "Install or recover" panel (install.go).
	Inst InstallPanel

	renderPending bool // a coalesced render is scheduled

	// LastFlashMS is how long the last Flash took, click to rebooted
	// (shown as data-flash-ms on the notice for the benchmarks).
	LastFlashMS int64
}

// Banner is an error shown at the top with what to do next.
type Banner struct {
	Title string // what failed
	Cause string // the error text
	Next  string // what to do next
}

// ImageFile is the image chosen for flashing and what the checks said.
type ImageFile struct {
	Name     string
	Data     []byte
	Image    *espimage.Image // nil when it could not be parsed
	ParseErr error
	Plan     *updater.Plan // nil until checked against a device, or refused
	CheckErr error         // why the image cannot be flashed to this device
	Reasons  []string      // CheckErr split into its reasons, worded for the page
	// Overridable is true when the only objection is that the image is the
	// running build or older: the user may flash it anyway.
	Overridable bool
	Force       bool // the user chose to flash anyway
	// MergedNote says that the file was a merged image and only its app
	// part goes over the air (install.go).
	MergedNote string
}

// Port is an open serial line the session runs over.
type Port interface {
	updater.Port
	Close() error
	Describe() string
}

// Init runs once when the component is created.
func (c *Root) Init(ctx vugu.InitCtx) {
	c.env = ctx.EventEnv()
	c.Baud = 921600
	c.SerialSupported = serialSupported()
	c.Status = "Not connected"
	go func() {
		ok := virtualAvailable()
		c.env.Lock()
		c.VirtualAvailable = ok
		c.env.UnlockRender()
	}()
}

// BaudRates lists the rates the connect bar offers.
func (c *Root) BaudRates() []int { return baudRates }

// Connected reports whether a session is up.
func (c *Root) Connected() bool { return c.sess != nil }

// SetBaud handles the rate selector.
func (c *Root) SetBaud(e vugu.DOMEvent) {
	var n int
	if _, err := fmt.Sscan(e.PropString("target", "value"), &n); err == nil && n > 0 {
		c.Baud = n
	}
}

// ConnectSerial opens Chrome's port picker. The picker needs the click's
// user activation, so it is requested here and awaited in the background.
func (c *Root) ConnectSerial(e vugu.DOMEvent) {
	if c.Busy != "" {
		return
	}
	wait := requestSerialPort()
	c.startConnect("Waiting for a port to be chosen…", wait)
}

// ConnectVirtual attaches the virtual ESP32 served with the page.
func (c *Root) ConnectVirtual(e vugu.DOMEvent) {
	if c.Busy != "" {
		return
	}
	c.startConnect("Connecting to the virtual device…", virtualPort)
}

func (c *Root) startConnect(busy string, choose func() (any, error)) {
	c.Busy = busy
	c.Problem = nil
	c.Notice = ""
	c.closeSession()
	go func() {
		handle, err := choose()
		if err != nil {
			c.fail("No port chosen", err, "Press Connect device and pick the ESP32's serial port (often “USB JTAG/serial” or “CP210x”).")
			return
		}
		c.connectHandle(handle)
	}()
}

// connectHandle opens the chosen port and handshakes (called without the
// lock, in the background).
func (c *Root) connectHandle(handle any) {
	c.env.Lock()
	baud := c.Baud
	c.env.UnlockOnly()
	c.update(func() { c.Busy = "Opening the port…" })
	port, err := openPort(handle, updater.DefaultBaud, c.lost)
	if err != nil {
		c.fail("Could not open the port", err, "Close other programs that use the port (serial monitors, esptool), then connect again.")
		return
	}
	c.update(func() {
		c.port = port
		c.Busy = "Waiting for the Gota agent…"
		c.Status = "Port open: " + port.Describe()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sess, err := updater.Connect(ctx, port, updater.Options{Log: c.logLine, Baud: baud, Compression: true})
	if err != nil {
		port.Close()
		c.update(func() { c.port = nil; c.Status = "Not connected" })
		c.fail("The device did not answer", err, "Check that the device runs the Gota agent (flash it once with the CLI), press its reset button, then connect again.")
		return
	}
	c.update(func() {
		c.sess = sess
		c.Status = "Connected: " + port.Describe()
		if sess.Baud() != baud {
			// The line stays where it is (NodeMCU's console module cannot
			// change its rate; gota.lua refuses rates its console path
			// cannot keep up with): say so next to the rate.
			c.Status += fmt.Sprintf(" (the agent cannot switch to %d baud)", baud)
		}
	})
	c.refresh("Reading the device…")
}

// refresh reads the device state and rechecks the chosen image.
func (c *Root) refresh(busy string) {
	c.update(func() { c.Busy = busy })
	sess := c.session()
	if sess == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t0 := time.Now()
	info, err := sess.Info(ctx)
	trace(fmt.Sprintf("info %v", time.Since(t0).Round(time.Millisecond)))
	if err != nil {
		c.fail("Could not read the device state", err, "Press Connect again; if it keeps failing, reset the device.")
		return
	}
	c.update(func() {
		c.Info = info
		c.Busy = ""
		c.Rebooting = false
		c.check()
	})
	c.findBase(info)
}

// findBase looks up the running build in the image cache, off the flash
// path (Cache Storage takes tens of milliseconds).
func (c *Root) findBase(info *updater.DeviceInfo) {
	r := info.Find(info.Running)
	if r == nil || r.SHA256 == "" {
		return
	}
	c.env.RLock()
	have := c.baseDigest == r.SHA256
	c.env.RUnlock()
	if have {
		return
	}
	if b := cachedImage(r.SHA256); b != nil {
		c.env.Lock()
		c.base, c.baseDigest = b, r.SHA256
		c.env.UnlockOnly()
	}
}

func (c *Root) session() *updater.Session {
	c.env.RLock()
	defer c.env.RUnlock()
	return c.sess
}

// Disconnect closes the session and the port.
func (c *Root) Disconnect(e vugu.DOMEvent) {
	c.closeSession()
	c.Status = "Not connected"
	c.Info = nil
	c.check()
}

// closeSession drops the session and port (lock held). Closing blocks on
// promises, so it runs in the background.
func (c *Root) closeSession() {
	sess, port := c.sess, c.port
	c.sess, c.port = nil, nil
	if c.cancel != nil {
		c.cancel()
		c.cancel = nil
	}
	if sess == nil && port == nil {
		return
	}
	go func() {
		if sess != nil {
			sess.Close()
		}
		if port != nil {
			port.Close()
		}
	}()
}

const lostTitle = "The device was disconnected"

// lost runs when the port reports a disconnect.
func (c *Root) lost() {
	c.env.Lock()
	defer c.env.UnlockRender()
	if c.port == nil {
		return
	}
	c.closeSession()
	c.Status = "Not connected"
	c.Info = nil
	c.Busy = ""
	c.Progress = nil
	c.Rebooting = false
	c.Problem = &Banner{
		Title: lostTitle,
		Cause: "the serial port went away",
		Next:  "Plug the device back in (or restart the virtual device) and press Connect. An interrupted update leaves the running firmware untouched.",
	}
	c.check()
}

// logLine receives a device log line (protocol frames never reach it).
func (c *Root) logLine(line string) {
	c.env.Lock()
	c.Console = append(c.Console, line)
	if n := len(c.Console) - maxConsoleLines; n > 0 {
		c.Console = append(c.Console[:0:0], c.Console[n:]...)
	}
	c.renderSoon()
	c.env.UnlockOnly()
}

// renderInterval is how often bursts of log lines and progress reports
// re-render the page. Rendering runs on the one thread that also moves the
// serial data, so rendering per line (a boot log is a burst of them) or per
// acknowledgement would slow the update itself.
const renderInterval = 200 * time.Millisecond

// renderSoon (lock held) schedules one render for everything that changes
// within renderInterval.
func (c *Root) renderSoon() {
	if c.renderPending {
		return
	}
	c.renderPending = true
	time.AfterFunc(renderInterval, func() {
		c.env.Lock()
		c.renderPending = false
		c.env.UnlockRender()
	})
}

// ClearConsole empties the console pane.
func (c *Root) ClearConsole(e vugu.DOMEvent) { c.Console = nil }

// DownloadConsole saves the console as a text file.
func (c *Root) DownloadConsole(e vugu.DOMEvent) {
	download("gota-device-log.txt", strings.Join(c.Console, "\n")+"\n")
}

// ConsoleText is the console pane's content.
func (c *Root) ConsoleText() string { return strings.Join(c.Console, "\n") }

// DragOver keeps the browser from opening a dragged file.
func (c *Root) DragOver(e vugu.DOMEvent) {
	e.PreventDefault()
	c.Dragging = true
}

// DragLeave ends the drop-zone highlight.
func (c *Root) DragLeave(e vugu.DOMEvent) { c.Dragging = false }

// Drop takes the first dropped file.
func (c *Root) Drop(e vugu.DOMEvent) {
	e.PreventDefault()
	c.Dragging = false
	c.loadFile(droppedFile(e))
}

// FileChosen takes the file from the file picker.
func (c *Root) FileChosen(e vugu.DOMEvent) { c.loadFile(pickedFile(e)) }

func (c *Root) loadFile(read func() (string, []byte, error)) {
	if read == nil {
		return
	}
	c.Problem = nil
	c.Notice = ""
	go func() {
		name, data, err := read()
		if err != nil {
			c.fail("Could not read the file", err, "Choose the .bin file again.")
			return
		}
		c.update(func() {
			f := &ImageFile{Name: name, Data: data}
			if app, note := mergedApp(name, data); app != nil {
				f.Data, f.MergedNote = app, note
			}
			f.Image, f.ParseErr = espimage.Parse(f.Data)
			c.File = f
			c.check()
		})
	}()
}

// check (lock held) runs the host-side checks of the chosen image
// against the connected device.
func (c *Root) check() {
	f := c.File
	if f == nil {
		return
	}
	f.Plan, f.CheckErr, f.Reasons, f.Overridable = nil, nil, nil, false
	if f.ParseErr != nil {
		f.CheckErr = f.ParseErr
		f.Reasons = []string{"image: " + f.ParseErr.Error()}
		return
	}
	if c.Info == nil {
		return
	}
	plan, err := updater.Check(c.Info, f.Data, updater.CheckOptions{})
	f.Plan = plan
	if err == nil {
		f.Force = false
		return
	}
	f.CheckErr = err
	f.Reasons = pageReasons(err)
	f.Overridable = errors.Is(err, updater.ErrRefused) && plan != nil && len(f.Reasons) == 1 &&
		(plan.Relation == "same build" || plan.Relation == "older")
	if !f.Overridable {
		f.Force = false
	}
}

// pageReasons lists a refusal's reasons without the hints meant for the
// command line (the page offers its own way to override).
func pageReasons(err error) []string {
	if r, ok := errors.AsType[*updater.RefusedError](err); ok {
		return r.Reasons
	}
	return []string{err.Error()}
}

// ToggleForce handles the "flash anyway" checkbox.
func (c *Root) ToggleForce(e vugu.DOMEvent) {
	if c.File != nil && c.File.Overridable {
		c.File.Force = e.PropBool("target", "checked")
	}
}

// CanFlash reports whether the Flash button is enabled.
func (c *Root) CanFlash() bool {
	f := c.File
	return c.sess != nil && c.Busy == "" && f != nil && f.Plan != nil && (f.CheckErr == nil || f.Overridable && f.Force)
}

// Flash writes the chosen image, waits for the reboot and refreshes.
func (c *Root) Flash(e vugu.DOMEvent) {
	if !c.CanFlash() {
		return
	}
	sess, data, force := c.sess, c.File.Data, c.File.Force
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.Busy = "Flashing…"
	c.Problem, c.Notice = nil, ""
	c.Progress = &updater.Progress{Phase: "begin", Total: len(data)}
	c.flashStart = time.Now()
	name := c.File.Name
	var runningDigest, newDigest string
	if r := c.Running(); r != nil {
		runningDigest = r.SHA256
	}
	if img := c.File.Image; img != nil && img.HashAppended {
		newDigest = hex.EncodeToString(img.Digest[:])
	}
	// A build flashed from this browser before is kept in its Cache
	// Storage: if the device runs one, send deltas against it.
	var base []byte
	if c.baseDigest == runningDigest && sess.Caps().Delta {
		base = c.base
	}
	go func() {
		defer cancel()
		before := sess.Stats() // the session's counters add up over its flashes
		err := sess.Flash(ctx, data, updater.FlashOptions{
			Progress: c.progress, Force: force, AllowDowngrade: force, Base: base,
			// The image panel already lists the check's warnings; keep
			// them out of the device console.
			Warning: func(string) {},
		})
		var phase string
		c.update(func() {
			if c.Progress != nil {
				phase = c.Progress.Phase
			}
			c.Progress = nil
			c.Rebooting = false
			c.cancel = nil
		})
		if err != nil {
			c.fail("Flashing failed", err, flashFailureHint(phase))
			return
		}
		elapsed := time.Since(c.flashStart)
		if newDigest != "" {
			// The device runs it now: the next update's base.
			c.env.Lock()
			c.base, c.baseDigest = data, newDigest
			c.env.UnlockOnly()
			go storeImage(newDigest, data)
		}
		c.update(func() {
			c.LastFlashMS = elapsed.Milliseconds()
			c.Notice = fmt.Sprintf("Flashed %s (%d bytes) in %.1f s.", name, len(data), elapsed.Seconds())
			if st := sess.Stats(); st.DeltaFrames > before.DeltaFrames {
				c.Notice = fmt.Sprintf("Flashed %s (%d bytes; %d on the wire as changes against the running build) in %.1f s.",
					name, len(data), st.WireBytes-before.WireBytes, elapsed.Seconds())
			}
			// The file is the running build now: comparing it with
			// itself would only show a refusal. The drop zone is free
			// for the next one.
			c.File = nil
		})
		c.refresh("Reading the device…")
	}()
}

// flashFailureHint says what a failure in phase means for the device and
// what to do next.
func flashFailureHint(phase string) string {
	switch phase {
	case "verify":
		return "The device may or may not have accepted the image. Connect again: the device panel shows which build boots next."
	case "reboot", "done":
		return "The image was written and set to boot; the device did not come back in time. Connect again to see what it runs, then accept or roll back."
	}
	return "The running firmware is untouched. Check the cable, then connect and flash again."
}

// CancelFlash aborts a running transfer.
func (c *Root) CancelFlash(e vugu.DOMEvent) {
	if c.cancel != nil {
		c.cancel()
	}
}

func (c *Root) progress(p updater.Progress) {
	if p.Phase != "send" || p.Sent == 0 || p.Sent == p.Total {
		trace(fmt.Sprintf("%s %d ms", p.Phase, time.Since(c.flashStart).Milliseconds()))
	}
	c.env.Lock()
	pp := p
	c.Progress = &pp
	c.Rebooting = p.Phase == "reboot"
	if c.Rebooting {
		c.Busy = "Rebooting…"
	}
	// Even phase changes wait for the coalesced render: a render costs
	// about as much as a short request's round trip.
	c.renderSoon()
	c.env.UnlockOnly()
}

// OnTrial reports whether the running build waits to be accepted.
func (c *Root) OnTrial() bool {
	r := c.Running()
	return r != nil && r.State == "testing"
}

// Running returns the running partition.
func (c *Root) Running() *updater.Partition {
	if c.Info == nil {
		return nil
	}
	return find(c.Info, c.Info.Running)
}

func find(info *updater.DeviceInfo, label string) *updater.Partition {
	for i := range info.Partitions {
		if info.Partitions[i].Label == label {
			return &info.Partitions[i]
		}
	}
	return nil
}

// Accept marks the running build valid.
func (c *Root) Accept(e vugu.DOMEvent) {
	c.action("Accepting…", "Could not accept the build", func(ctx context.Context, s *updater.Session) error {
		return s.Accept(ctx)
	}, "Build accepted: it stays after the next reboot.")
}

// Rollback marks the running build invalid and boots the previous one.
func (c *Root) Rollback(e vugu.DOMEvent) {
	c.action("Rolling back…", "Rollback failed", func(ctx context.Context, s *updater.Session) error {
		return s.Rollback(ctx)
	}, "Rolled back: the previous build runs again.")
}

// Reboot restarts the device.
func (c *Root) Reboot(e vugu.DOMEvent) {
	c.action("Rebooting…", "Reboot failed", func(ctx context.Context, s *updater.Session) error {
		return s.Reboot(ctx)
	}, "Device rebooted.")
}

func (c *Root) action(busy, title string, f func(context.Context, *updater.Session) error, done string) {
	if c.sess == nil || c.Busy != "" {
		return
	}
	sess := c.sess
	c.Busy = busy
	c.Problem, c.Notice = nil, ""
	c.Rebooting = busy == "Rebooting…" || busy == "Rolling back…"
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := f(ctx, sess); err != nil {
			c.fail(title, err, "Reset the device, connect again and retry.")
			return
		}
		c.update(func() { c.Notice = done })
		c.refresh("Reading the device…")
	}()
}

// DismissProblem hides the error banner.
func (c *Root) DismissProblem(e vugu.DOMEvent) { c.Problem = nil }

// fail shows an error banner (called without the lock). When the port
// went away, the disconnect banner stays: it says what to do next, and the
// failure of the operation in flight is its consequence.
func (c *Root) fail(title string, err error, next string) {
	c.update(func() {
		c.Busy = ""
		c.Rebooting = false
		c.Progress = nil
		if c.Problem != nil && c.Problem.Title == lostTitle && c.port == nil {
			c.Problem.Cause += "; " + strings.ToLower(title[:1]) + title[1:] + ": " + err.Error()
			return
		}
		c.Problem = &Banner{Title: title, Cause: err.Error(), Next: next}
	})
}

// update runs f under the render lock and re-renders.
func (c *Root) update(f func()) {
	c.env.Lock()
	f()
	c.env.UnlockRender()
}

// Presentation helpers used by the markup.

// ShortHex abbreviates a digest for tables; the title attribute holds all of it.
func ShortHex(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// Digest returns the image's digest in hex: the appended SHA-256 when
// present, else "".
func (f *ImageFile) Digest() string {
	if f.Image == nil || !f.Image.HashAppended {
		return ""
	}
	return hex.EncodeToString(f.Image.Digest[:])
}

// DigestNote says when the stored digest does not match the content.
func (f *ImageFile) DigestNote() string {
	if f.Image == nil || !f.Image.HashAppended {
		return "none appended"
	}
	if !f.Image.DigestOK {
		return "stored; does not match the content"
	}
	return ""
}

// App returns the image's app descriptor, or an empty one.
func (f *ImageFile) App() espimage.AppDesc {
	if f.Image == nil || f.Image.App == nil {
		return espimage.AppDesc{}
	}
	return *f.Image.App
}

// Fits describes whether the image fits the slot it would be written to.
func (c *Root) Fits() string {
	f := c.File
	if f == nil || c.Info == nil {
		return "connect a device to check"
	}
	if f.Plan == nil || f.Plan.Target == "" {
		return "—"
	}
	p := find(c.Info, f.Plan.Target)
	if p == nil || p.Size == 0 {
		return "—"
	}
	if len(f.Data) > int(p.Size) {
		return fmt.Sprintf("no: %s, but %s holds %s", Bytes(len(f.Data)), p.Label, Bytes(int(p.Size)))
	}
	return fmt.Sprintf("yes: %s of %s in %s", Bytes(len(f.Data)), Bytes(int(p.Size)), p.Label)
}

// Bytes formats a size for people.
func Bytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Percent is the transfer progress in percent.
func (c *Root) Percent() int {
	p := c.Progress
	if p == nil || p.Total == 0 {
		return 0
	}
	return p.Sent * 100 / p.Total
}

// ProgressText is "bytes of total · rate · time left".
func (c *Root) ProgressText() string {
	p := c.Progress
	if p == nil {
		return ""
	}
	if c.Rebooting {
		return "Rebooting…"
	}
	s := fmt.Sprintf("%s of %s", Bytes(p.Sent), Bytes(p.Total))
	if p.Rate > 0 {
		s += fmt.Sprintf(" · %s/s", Bytes(int(p.Rate)))
	}
	if p.ETA > 0 {
		s += fmt.Sprintf(" · %s left", p.ETA.Round(time.Second))
	}
	return s
}

// StateText names a partition state for the badge.
func StateText(state string) string {
	switch state {
	case "":
		return "no entry"
	case "testing":
		return "testing (on trial)"
	}
	return state
}

// Relation explains how the chosen image compares with the running build.
func (c *Root) Relation() string {
	f := c.File
	if f == nil || f.Plan == nil || f.CheckErr != nil && !f.Overridable {
		return "" // a broken image is not "the same build", whatever its digest says
	}
	switch f.Plan.Relation {
	case "upgrade":
		return "Upgrade: newer than the running build"
	case "same build":
		return "Same build as the one running (identical digest)"
	case "older":
		return "Older than the running build"
	case "different build":
		r := c.Running()
		if r != nil && r.SHA256 != "" && f.App().Version == r.Version {
			return "Different build with the same version string (digests differ)"
		}
		return "A different build from the running one (versions not comparable)"
	case "same version":
		return "Same version string as the running build; the device reports no digest, so whether the content differs is unknown"
	}
	return f.Plan.Relation
}

// TargetLabel is the slot the chosen image would be written to.
func (c *Root) TargetLabel() string {
	if c.File == nil || c.File.Plan == nil {
		return ""
	}
	return c.File.Plan.Target
}
