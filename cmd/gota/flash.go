package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/protocol"
)

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
		return fmt.Errorf("%s: %w", pos[0], wordRefusal(err))
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

	progress := flashProgress(out, stderr)
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
		return wordRefusal(err)
	}
	cache.put(image) // the device holds it now: the next update's base
	printFlashed(stdout, s, pos[0], plan.Target, len(image), time.Since(start), *noReboot)
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

// flashProgress returns the progress callback of gota flash: a progress
// bar on a terminal, otherwise a line per phase and per tenth sent.
func flashProgress(out *output, stderr io.Writer) func(updater.Progress) {
	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	lastPhase, lastTenth := updater.Phase(""), -1
	return func(pr updater.Progress) {
		if tty && pr.Phase == updater.PhaseSend {
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
		if pr.Phase != updater.PhaseSend {
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
			if pr.Phase != updater.PhaseSend && pr.Phase != updater.PhaseDone {
				out.printf("gota: %s\n", pr.Phase)
			}
		}
		if pr.Phase == updater.PhaseSend && pr.Total > 0 {
			if tenth := pr.Sent * 10 / pr.Total; tenth != lastTenth {
				lastTenth = tenth
				out.printf("gota: sent %d of %d bytes (%d%%), %.1f KiB/s, %s left\n", pr.Sent, pr.Total, pr.Sent*100/pr.Total, pr.Rate/1024, pr.ETA.Round(time.Second))
			}
		}
	}
}

// printFlashed reports a finished flash on stdout: what went where, how
// long it took, what the line carried and what the device runs now.
func printFlashed(stdout io.Writer, s *updater.Session, file, target string, size int, took time.Duration, noReboot bool) {
	st := s.Stats()
	after := s.LastInfo()
	fmt.Fprintf(stdout, "flashed %s to %s in %.1fs (%d bytes", file, target, took.Seconds(), size)
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
	if noReboot {
		fmt.Fprintf(stdout, "%s boots next; still running %s\n", after.Next, after.Running)
		return
	}
	state := protocol.OTANone
	if rp := after.Find(after.Running); rp != nil {
		state = rp.State
	}
	fmt.Fprintf(stdout, "running %s (%s)\n", after.Running, state)
	switch state {
	case protocol.OTATesting:
		fmt.Fprintln(stdout, "the new build is on trial: `gota accept` keeps it; a reboot without accepting rolls back")
	case protocol.OTAUndefined:
		// esp_ota_set_boot_partition without CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE.
		fmt.Fprintln(stdout, "the bootloader has no rollback support: the new build is final; `gota rollback` returns to the previous one")
	}
}
