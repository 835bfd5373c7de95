package updater

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// Phase is the step of Flash that a Progress reports.
type Phase string

// The phases of Flash, in order. Their values are stable (the page and
// logs show them as they are).
const (
	PhaseCheck  Phase = "check"  // reading the device and checking the image
	PhaseBegin  Phase = "begin"  // BEGIN: the device erases the target slot
	PhaseSend   Phase = "send"   // DATA: the image is on the line
	PhaseVerify Phase = "verify" // END: the device verifies and completes
	PhaseReboot Phase = "reboot" // waiting for the new build to boot
	PhaseDone   Phase = "done"   // the new build runs (or is set to boot)
)

// Progress reports transfer progress.
type Progress struct {
	Phase Phase
	Sent  int           // image bytes acknowledged as received by the device
	Total int           // image bytes
	Rate  float64       // bytes per second (image bytes, this session)
	ETA   time.Duration // estimate of the time left in this phase
}

// FlashOptions control Flash.
type FlashOptions struct {
	Force          bool // turn host-side refusals into warnings
	AllowDowngrade bool
	NoReboot       bool // complete without rebooting into the new build
	Progress       func(Progress)
	Warning        func(string) // Check's warnings; nil logs them through Options.Log
	// Base is the image the device runs, if the caller has it: with an
	// agent that offers DELTA, frames are compressed against it (SPEC.md
	// 6.7), which shrinks a new build of the same project to a fraction.
	// It is used only when its appended SHA-256 is the running build's.
	Base []byte
}

// Flash checks image against the device (refusals become warnings with
// Force), streams it (continuing a transfer the device holds for the same
// SHA-256), completes the update and, unless NoReboot, waits for the device
// to reboot, handshakes again and re-reads its state (LastInfo).
func (s *Session) Flash(ctx context.Context, image []byte, opt FlashOptions) error {
	report := func(p Progress) {
		if opt.Progress != nil {
			p.Total = len(image)
			opt.Progress(p)
		}
	}
	report(Progress{Phase: PhaseCheck})
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	plan, err := Check(info, image, CheckOptions{Force: opt.Force, AllowDowngrade: opt.AllowDowngrade})
	if err != nil {
		return err
	}
	warn := func(w string) {
		if opt.Warning != nil {
			opt.Warning(w)
		} else {
			s.log("gota: warning: " + w)
		}
	}
	for _, w := range plan.Warnings {
		warn(w)
	}
	base, warning := deltaBase(info, s.Caps(), opt.Base)
	if warning != "" {
		warn(warning)
	}

	report(Progress{Phase: PhaseBegin})
	start, target, err := s.begin(ctx, image, plan)
	if err != nil {
		return err
	}
	if err := s.stream(ctx, image, base, start, report); err != nil {
		return fmt.Errorf("sending image: %w", err)
	}
	report(Progress{Phase: PhaseVerify, Sent: len(image)})
	if !opt.NoReboot && s.Baud() != DefaultBaud {
		// complete switches to 115200 first (SPEC.md 7.6, 7.7).
		if err := s.awaitWritten(ctx, len(image)); err != nil {
			return err
		}
	}
	endErr, err := s.complete(ctx, opt.NoReboot, func() { report(Progress{Phase: PhaseReboot, Sent: len(image)}) })
	if err != nil {
		return err
	}
	after, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if err := booted(after, target, opt.NoReboot, endErr); err != nil {
		return err
	}
	report(Progress{Phase: PhaseDone, Sent: len(image)})
	return nil
}

// begin sends BEGIN and returns the offset the agent continues from (0,
// or where a transfer of the same image stopped) and the partition it
// writes to.
func (s *Session) begin(ctx context.Context, image []byte, plan *Plan) (start int, target string, err error) {
	var flags uint8
	if s.Caps().Resume && !s.opt.NoResume {
		flags |= protocol.BeginResume
	}
	begin := protocol.Begin{Size: uint32(len(image)), SHA256: plan.SHA256, Flags: flags}
	f, err := s.requestSlow(ctx, protocol.TypeBegin, begin.Encode(), beginTimeout)
	if err != nil {
		return 0, "", fmt.Errorf("begin: %w", err)
	}
	br, err := protocol.DecodeBeginReply(f.Payload)
	if err != nil {
		return 0, "", fmt.Errorf("begin: %w", err)
	}
	if int(br.Offset) > len(image) {
		return 0, "", fmt.Errorf("begin: device holds %d bytes of a %d-byte image", br.Offset, len(image))
	}
	if br.Label != "" && plan.Target != "" && br.Label != plan.Target {
		s.log(fmt.Sprintf("gota: warning: the device writes to %s, not %s", br.Label, plan.Target))
	}
	target = br.Label
	if target == "" {
		target = plan.Target
	}
	return int(br.Offset), target, nil
}

// complete sends END and, unless noReboot, waits for the device to
// reboot (calling rebooting first) and handshakes again. endErr is END's
// failure when its reply was lost but the device rebooted: whether it
// runs the new build is for the caller to check.
func (s *Session) complete(ctx context.Context, noReboot bool, rebooting func()) (endErr, err error) {
	if noReboot {
		if _, err := s.requestSlow(ctx, protocol.TypeEnd, []byte{0}, endTimeout); err != nil {
			return nil, fmt.Errorf("complete: %w", err)
		}
		return nil, nil
	}
	if err := s.prepareReboot(ctx); err != nil {
		return nil, fmt.Errorf("complete: %w", err)
	}
	rebooted, err := s.completeAndReboot(ctx)
	if err != nil {
		// The reply can be lost while the device completes and reboots
		// (it reboots only after a successful complete; a retried END
		// then finds no transfer).
		if ctx.Err() != nil || !(rebooted || isInvalidState(err)) {
			return nil, fmt.Errorf("complete: %w", err)
		}
		endErr = err
	}
	rebooting()
	if rebooted || endErr != nil {
		err = s.rejoin(ctx)
	} else {
		err = s.waitReboot(ctx)
	}
	if err != nil {
		return endErr, fmt.Errorf("reboot: %w", err)
	}
	return endErr, nil
}

// awaitWritten waits up to writtenWait for the ACK that counts all n
// image bytes as written. An agent sends it when its last write ends; if
// a BAUD switched its rate before that, the ACK would reach the host at
// the wrong rate, as bytes no decoder can read (SPEC.md 7.7). A lost ACK
// costs only the wait.
func (s *Session) awaitWritten(ctx context.Context, n int) error {
	deadline := s.clock.After(writtenWait)
	for {
		s.mu.Lock()
		written := int(s.ack.Written)
		s.mu.Unlock()
		if written >= n {
			return nil
		}
		select {
		case <-s.ackTick:
		case <-deadline:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-s.dead:
			return s.deadErr
		}
	}
}

// booted checks that the device runs (or, with noReboot, boots next) the
// partition the image went to.
func booted(after *DeviceInfo, target string, noReboot bool, endErr error) error {
	if target == "" {
		return nil
	}
	want := after.Next
	if !noReboot {
		want = after.Running
	}
	if want == target {
		return nil
	}
	what := "is set to boot"
	if !noReboot {
		what = "booted"
	}
	if endErr != nil {
		return fmt.Errorf("complete: %w (the device rebooted into %s, not %s)", endErr, want, target)
	}
	return fmt.Errorf("the device %s %s, not the new build in %s", what, want, target)
}

// completeAndReboot sends END with reboot. On a lossy line the device can
// complete and reboot while END's reply is lost: READY (boot) then
// arrives instead, and booted reports it (END's wait is cut short, so err
// may be context.Canceled).
func (s *Session) completeAndReboot(ctx context.Context) (booted bool, err error) {
	endCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	watched := make(chan bool, 1)
	go func() {
		for {
			select {
			case r := <-s.ready:
				if r.Reason == protocol.ReadyBoot {
					cancel()
					watched <- true
					return
				}
			case <-endCtx.Done():
				watched <- false
				return
			}
		}
	}()
	_, err = s.requestSlow(endCtx, protocol.TypeEnd, []byte{protocol.EndReboot}, endTimeout)
	cancel()
	return <-watched, err
}

// espErrInvalidState is ESP_ERR_INVALID_STATE: for END, no transfer in
// progress.
const espErrInvalidState = 0x103

func isInvalidState(err error) bool {
	var e *protocol.Error
	return errors.As(err, &e) && e.Code == espErrInvalidState
}
