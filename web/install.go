package web

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gota-dev/gota/core/install"
	"github.com/gota-dev/gota/core/romloader"
	"github.com/gota-dev/gota/core/updater"
	"github.com/vugu/vugu"
)

// InstallPanel is the "Install or recover" card: a merged image written
// through the chip's ROM bootloader, for a blank board or one whose app
// no longer starts an agent.
type InstallPanel struct {
	File    *InstallFile
	Erase   bool
	Chip    string   // what the ROM loader reported
	Steps   []string // plan and progress lines
	Offset  uint32   // region being written
	Done    int
	Total   int
	Running bool
	Result  string // last outcome
}

// InstallFile is the image chosen for installing: a merged image, or an
// ESP Web Tools manifest whose build is picked once the chip is known.
type InstallFile struct {
	Name     string
	Size     int
	Plan     *install.Plan
	Manifest *install.Manifest
	URL      string // the manifest's address; parts are relative to it
	Err      error
}

// What names the kind of input for the plan heading.
func (f *InstallFile) What() string {
	if f.Manifest != nil {
		return "an ESP Web Tools manifest"
	}
	return "a " + f.Plan.Source
}

// PlanLines says what goes where, and what gets erased.
func (f *InstallFile) PlanLines(erase bool) []string {
	if f.Manifest != nil {
		var out []string
		if erase {
			out = append(out, "erase the whole flash first (NVS, otadata and all data are lost)")
		}
		for _, b := range f.Manifest.Builds {
			for _, p := range b.Parts {
				out = append(out, fmt.Sprintf("%s: write %s at 0x%06x", b.ChipFamily, p.Path, uint32(p.Offset)))
			}
		}
		return append(out, "the build for the chip found is installed; its parts are checked before anything is written")
	}
	if f.Plan == nil {
		return nil
	}
	return f.Plan.Describe(erase, 0)
}

// LoadManifest reads the manifest at the address typed in the panel.
func (c *Root) LoadManifest(e vugu.DOMEvent) {
	u := strings.TrimSpace(inputValue("install-url"))
	if u == "" {
		return
	}
	go func() {
		f := &InstallFile{Name: u, URL: u}
		b, err := fetchURL(u)
		if err == nil {
			f.Size = len(b)
			f.Manifest, err = install.ParseManifest(b)
		}
		f.Err = err
		c.update(func() { c.Inst.File = f; c.Inst.Result = "" })
	}()
}

// resolver returns the plan of f for the chip found.
func (f *InstallFile) resolver() install.Resolver {
	if f.Manifest == nil {
		plan := f.Plan
		return func(*romloader.ChipInfo) (*install.Plan, error) { return plan, nil }
	}
	m, base := f.Manifest, f.URL
	return func(info *romloader.ChipInfo) (*install.Plan, error) {
		b, err := m.Build(info.Chip)
		if err != nil {
			return nil, err
		}
		return b.Plan(func(path string) ([]byte, error) { return fetchURL(resolveURL(base, path)) })
	}
}

// InstallFileChosen reads the image picked in the install panel.
func (c *Root) InstallFileChosen(e vugu.DOMEvent) {
	read := pickedFile(e)
	if read == nil {
		return
	}
	go func() {
		name, data, err := read()
		f := &InstallFile{Name: name, Size: len(data), Err: err}
		if err == nil {
			f.Plan, f.Err = planFor(name, data)
		}
		c.update(func() { c.Inst.File = f; c.Inst.Result = "" })
	}()
}

// planFor makes the install plan of a file: a merged image as it is.
func planFor(name string, data []byte) (*install.Plan, error) {
	if install.LooksLikeManifest(data) {
		return nil, errors.New("a manifest names its parts by address: give the manifest's URL below instead of the file")
	}
	p, err := install.SplitMerged(name, data)
	if err != nil {
		return nil, fmt.Errorf("%w: the page installs merged images (bootloader, partition table and app at their offsets); an app alone goes through the OTA panel once an agent runs", err)
	}
	return p, nil
}

// ToggleErase handles the "erase everything first" box.
func (c *Root) ToggleErase(e vugu.DOMEvent) { c.Inst.Erase = !c.Inst.Erase }

// CanInstall reports whether the install buttons work.
func (c *Root) CanInstall() bool {
	f := c.Inst.File
	return c.Busy == "" && !c.Inst.Running && f != nil && f.Err == nil && (f.Plan != nil || f.Manifest != nil)
}

// InstallPercent is the progress of the region being written.
func (c *Root) InstallPercent() int {
	if c.Inst.Total == 0 {
		return 0
	}
	return c.Inst.Done * 100 / c.Inst.Total
}

// InstallSerial installs through a port the user picks.
func (c *Root) InstallSerial(e vugu.DOMEvent) {
	if c.CanInstall() {
		c.startInstall(requestSerialPort())
	}
}

// InstallVirtual installs on the virtual device.
func (c *Root) InstallVirtual(e vugu.DOMEvent) {
	if c.CanInstall() {
		c.startInstall(virtualPort)
	}
}

func (c *Root) startInstall(choose func() (any, error)) {
	c.closeSession()
	c.Info = nil
	c.Problem, c.Notice = nil, ""
	c.Inst.Running, c.Inst.Steps, c.Inst.Chip, c.Inst.Result = true, nil, "", ""
	c.Inst.Done, c.Inst.Total = 0, 0
	resolve, erase, baud := c.Inst.File.resolver(), c.Inst.Erase, c.Baud
	c.Busy = "Installing…"
	go func() {
		handle, err := choose()
		if err != nil {
			c.installFailed("No port chosen", err)
			return
		}
		port, err := openPort(handle, updater.DefaultBaud, nil)
		if err != nil {
			c.installFailed("Could not open the port", err)
			return
		}
		err = c.runInstall(port, resolve, erase, baud)
		port.Close()
		if err != nil {
			c.installFailed("Install failed", err)
			return
		}
		c.update(func() {
			c.Inst.Running = false
			c.Inst.Result = "Installed and verified; the chip was reset into the app. Waiting for its Gota agent…"
		})
		c.handover(handle)
	}()
}

// runInstall drives the ROM loader through install.Run.
func (c *Root) runInstall(port Port, resolve install.Resolver, erase bool, baud int) error {
	// Espressif's USB-Serial-JTAG (S3, C3 native USB) enumerates as
	// 303a:1001 and needs its own reset sequence (esptool picks it by
	// that PID, loader.py USB_JTAG_SERIAL_PID).
	opt := romloader.Options{Log: c.logLine, USBJTAG: strings.Contains(port.Describe(), "USB 303a:1001")}
	if s, ok := port.(romloader.Signals); ok {
		opt.Signals = s
	}
	cl := romloader.New(port, opt)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, err := install.Run(ctx, cl, func(info *romloader.ChipInfo) (*install.Plan, error) {
		c.update(func() {
			c.Inst.Chip = fmt.Sprintf("%s %s, MAC %s, flash %d MB", info.Name, info.RevString(), info.MACString(), info.FlashSize>>20)
		})
		return resolve(info)
	}, install.RunOptions{Baud: baud, Erase: erase, Event: c.installEvent, Stub: c.servedStub})
	return err
}

// servedStub fetches the flasher stub for the chip from the server
// (gota serve --stub); without one the install talks to the ROM only.
func (c *Root) servedStub(info *romloader.ChipInfo) (*romloader.Stub, error) {
	b, err := fetchURL("stub/" + info.Chip.String() + ".json")
	if err != nil {
		c.installEvent(install.Event{Step: "stub", Text: "no flasher stub served: writing through the ROM loader"})
		return nil, nil
	}
	return romloader.ParseStub(b)
}

// installEvent shows Run's steps; writes update the bar.
func (c *Root) installEvent(e install.Event) {
	c.env.Lock()
	defer c.env.UnlockOnly()
	if e.Step == "write" {
		c.Inst.Offset, c.Inst.Done, c.Inst.Total = e.Offset, e.Done, e.Total
		c.renderSoon()
		return
	}
	if e.Text != "" {
		c.Inst.Steps = append(c.Inst.Steps, e.Text)
	}
	c.renderSoon()
}

func (c *Root) installFailed(title string, err error) {
	c.update(func() { c.Inst.Running = false; c.Inst.Result = "" })
	c.fail(title, err, "The chip stays in download mode (or untouched): fix the cause and press Install again. Without auto-reset, hold BOOT and press EN first.")
}

// handover reopens the port and connects the OTA panel to the agent the
// new app runs, retrying while it boots.
func (c *Root) handover(handle any) {
	c.update(func() { c.Busy = "Waiting for the Gota agent…" })
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.connectAgent(handle)
		if err == nil {
			c.update(func() { c.Inst.Result = "Installed; the agent answers. Further updates go over the air below." })
			c.refresh("Reading the device…")
			return
		}
		if time.Now().After(deadline) {
			c.fail("The new app did not answer", err, "The app runs but no Gota agent answered; watch the console below. Apps without an agent can only be updated through Install.")
			return
		}
		time.Sleep(time.Second)
	}
}

func (c *Root) connectAgent(handle any) error {
	port, err := openPort(handle, updater.DefaultBaud, c.lost)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := updater.Connect(ctx, port, updater.Options{Log: c.logLine, Baud: c.Baud, Compression: true})
	if err != nil {
		port.Close()
		return err
	}
	c.update(func() {
		c.port, c.sess = port, sess
		c.Status = "Connected: " + port.Describe()
	})
	return nil
}

// mergedApp returns the app part of a merged image dropped on the OTA
// panel, with a note saying so; nil when data is not a merged image.
func mergedApp(name string, data []byte) ([]byte, string) {
	p, err := install.SplitMerged(name, data)
	if err != nil {
		return nil, ""
	}
	a := p.App()
	if a == nil {
		return nil, ""
	}
	return a.Data, fmt.Sprintf("%s is a merged image: its app part (%s, 0x%x in the image, %d bytes) goes over the air; bootloader and partition table stay as they are. Use Install or recover to write them all.",
		name, a.Label, a.Offset, len(a.Data))
}
