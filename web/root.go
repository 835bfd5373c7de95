package web

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/protocol"
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

// OnTrial reports whether the running build waits to be accepted.
func (c *Root) OnTrial() bool {
	r := c.Running()
	return r != nil && r.State == protocol.OTATesting
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
	c.action("Accepting…", false, "Could not accept the build", func(ctx context.Context, s *updater.Session) error {
		return s.Accept(ctx)
	}, "Build accepted: it stays after the next reboot.")
}

// Rollback marks the running build invalid and boots the previous one.
func (c *Root) Rollback(e vugu.DOMEvent) {
	c.action("Rolling back…", true, "Rollback failed", func(ctx context.Context, s *updater.Session) error {
		return s.Rollback(ctx)
	}, "Rolled back: the previous build runs again.")
}

// Reboot restarts the device.
func (c *Root) Reboot(e vugu.DOMEvent) {
	c.action("Rebooting…", true, "Reboot failed", func(ctx context.Context, s *updater.Session) error {
		return s.Reboot(ctx)
	}, "Device rebooted.")
}

// action runs f on the session, showing busy meanwhile; reboots says
// that the device restarts during f (the page then expects it to drop off
// the line for a while).
func (c *Root) action(busy string, reboots bool, title string, f func(context.Context, *updater.Session) error, done string) {
	if c.sess == nil || c.Busy != "" {
		return
	}
	sess := c.sess
	c.Busy = busy
	c.Problem, c.Notice = nil, ""
	c.Rebooting = reboots
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
