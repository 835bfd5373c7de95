package web

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/vugu/vugu"
)

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
	f.Overridable = overridable(err)
	if !f.Overridable {
		f.Force = false
	}
}

// pageReasons lists a refusal's reasons (the page offers its own way to
// override them).
func pageReasons(err error) []string {
	if r, ok := errors.AsType[*updater.RefusedError](err); ok {
		return r.Reasons()
	}
	return []string{err.Error()}
}

// overridable reports whether the only objection to an image is that it
// is the running build or older: the user may flash it anyway.
func overridable(err error) bool {
	r, ok := errors.AsType[*updater.RefusedError](err)
	if !ok || len(r.Refusals) != 1 {
		return false
	}
	k := r.Refusals[0].Kind
	return k == updater.RefusedSameBuild || k == updater.RefusedDowngrade
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
	c.Progress = &updater.Progress{Phase: updater.PhaseBegin, Total: len(data)}
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
		var phase updater.Phase
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
func flashFailureHint(phase updater.Phase) string {
	switch phase {
	case updater.PhaseVerify:
		return "The device may or may not have accepted the image. Connect again: the device panel shows which build boots next."
	case updater.PhaseReboot, updater.PhaseDone:
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
	if p.Phase != updater.PhaseSend || p.Sent == 0 || p.Sent == p.Total {
		trace(fmt.Sprintf("%s %d ms", p.Phase, time.Since(c.flashStart).Milliseconds()))
	}
	c.env.Lock()
	pp := p
	c.Progress = &pp
	c.Rebooting = p.Phase == updater.PhaseReboot
	if c.Rebooting {
		c.Busy = "Rebooting…"
	}
	// Even phase changes wait for the coalesced render: a render costs
	// about as much as a short request's round trip.
	c.renderSoon()
	c.env.UnlockOnly()
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

// Relation explains how the chosen image compares with the running build.
func (c *Root) Relation() string {
	f := c.File
	if f == nil || f.Plan == nil || f.CheckErr != nil && !f.Overridable {
		return "" // a broken image is not "the same build", whatever its digest says
	}
	switch f.Plan.Relation {
	case updater.RelationUpgrade:
		return "Upgrade: newer than the running build"
	case updater.RelationSameBuild:
		return "Same build as the one running (identical digest)"
	case updater.RelationOlder:
		return "Older than the running build"
	case updater.RelationDifferent:
		r := c.Running()
		if r != nil && r.SHA256 != "" && f.App().Version == r.Version {
			return "Different build with the same version string (digests differ)"
		}
		return "A different build from the running one (versions not comparable)"
	case updater.RelationSameVersion:
		return "Same version string as the running build; the device reports no digest, so whether the content differs is unknown"
	}
	return string(f.Plan.Relation)
}

// TargetLabel is the slot the chosen image would be written to.
func (c *Root) TargetLabel() string {
	if c.File == nil || c.File.Plan == nil {
		return ""
	}
	return c.File.Plan.Target
}
