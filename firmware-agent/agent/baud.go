package agent

import (
	"fmt"
	"time"

	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/protocol"
)

// setBaud answers BAUD at the old rate, then switches (SPEC.md 7).
func (a *Agent) setBaud(f protocol.Frame) {
	rate, err := protocol.DecodeU32(f.Type, f.Payload)
	if err != nil {
		a.fail(f, perr(device.ErrInvalidArg, "%v", err))
		return
	}
	if a.caps&protocol.CapBaud == 0 {
		a.fail(f, perr(device.ErrNotSupported, "baud-rate change not supported"))
		return
	}
	if rate < MinBaud || int64(rate) > int64(MaxBaud) {
		a.fail(f, perr(device.ErrInvalidArg, "baud rate %d out of range %d..%d (above it the %d-byte receive ring overruns during a %v flash erase)",
			rate, MinBaud, MaxBaud, UART.RingBuffer, LongestFlashStall))
		return
	}
	a.reply(f, f.Type.Reply(), protocol.EncodeU32(rate))
	a.mu.Lock()
	a.prevBaud, a.baud = a.baud, int(rate)
	a.switchAt, a.checking = time.Now(), true
	a.armWatch()
	a.mu.Unlock()
	if a.opt.SetBaud != nil {
		if err := a.opt.SetBaud(int(rate)); err != nil {
			fmt.Fprintf(a.con, "gota-agent: set baud %d: %v\n", rate, err)
		}
	}
}

// armWatch (re)starts the rate watch. Called with a.mu held.
func (a *Agent) armWatch() {
	if a.watch != nil {
		a.watch.Stop()
	}
	a.watch = time.AfterFunc(baudPoll, a.checkBaud)
}

// checkBaud applies the rate rules of SPEC.md 7: back to the previous rate
// when no valid frame arrives within baudCheckTime of a switch, back to
// 115200 after idleRevert without frames (a host that crashed or exited
// without switching back must find the agent at 115200).
func (a *Agent) checkBaud() {
	a.mu.Lock()
	now := time.Now()
	to := 0
	if a.checking {
		switch {
		case a.lastFrame.After(a.switchAt):
			a.checking = false
		case now.Sub(a.switchAt) >= baudCheckTime:
			to = a.prevBaud
		}
	}
	if to == 0 && !a.checking && a.baud != DefaultBaud && a.busy == 0 && now.Sub(a.lastFrame) >= idleRevert && now.Sub(a.lastDone) >= idleRevert {
		to = DefaultBaud
	}
	if to == 0 {
		if a.checking || a.baud != DefaultBaud {
			a.armWatch()
		} else {
			a.watch = nil
		}
		a.mu.Unlock()
		return
	}
	from := a.baud
	a.baud, a.checking = to, false
	if to != DefaultBaud {
		a.armWatch()
	} else {
		a.watch = nil
	}
	a.mu.Unlock()
	if a.opt.SetBaud != nil {
		a.opt.SetBaud(to)
	}
	fmt.Fprintf(a.con, "gota-agent: line quiet at %d baud, back to %d\n", from, to)
}

// Baud returns the agent's current line rate.
func (a *Agent) Baud() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.baud
}
