package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/gota-dev/gota/core/updater"
)

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
