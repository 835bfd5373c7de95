package agent_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/gota-dev/gota/firmware-agent/agent"
	"github.com/gota-dev/gota/firmware-agent/cagent"
	"github.com/gota-dev/gota/firmware-agent/device"
)

// server is a device agent serving a connection: the Go agent, or the C
// agent of firmware-agent/esp-idf built for the host (package cagent).
type server interface {
	Serve(ctx context.Context, conn io.ReadWriter) error
	Baud() int
}

// agentKind makes one kind of agent for a device. Every test of this
// package runs over both (forAgents).
type agentKind struct {
	name string
	// console returns the device's log writer, for device.Config.Log.
	console func() io.Writer
	// start starts the agent on dev, whose log goes to con; the rate
	// timers are SPEC.md 7's unless check/idle are set.
	start func(t *testing.T, dev *device.Device, con io.Writer, opt agent.Options, check, idle time.Duration) server
	// maxFrame, window are what HELLO_R announces with default options.
	maxFrame, window int
	agentName        string
	// windowOf is the window the agent grants with opt.
	windowOf func(opt agent.Options) int
	// held is the most image bytes it holds received but not written
	// with default options.
	held int
}

var agentKinds = []agentKind{
	{
		name:    "go",
		console: func() io.Writer { return agent.NewConsole() },
		start: func(t *testing.T, dev *device.Device, con io.Writer, opt agent.Options, check, idle time.Duration) server {
			if check > 0 {
				t.Cleanup(agent.SetRateTimers(check, idle))
			}
			return agent.New(dev, con.(*agent.Console), opt)
		},
		maxFrame: agent.DefaultMaxFrame, window: agent.DefaultWindow, agentName: agent.Name,
		windowOf: func(opt agent.Options) int { return opt.Window },
		held:     agent.DefaultWindow,
	},
	{
		name:    "c",
		console: func() io.Writer { return cagent.NewConsole() },
		start: func(t *testing.T, dev *device.Device, con io.Writer, opt agent.Options, check, idle time.Duration) server {
			a := cagent.New(dev, con.(*cagent.Console), cOptions(opt, check, idle))
			t.Cleanup(a.Close)
			return a
		},
		maxFrame: cagent.DefaultMaxFrame, window: cagent.DefaultWindow, agentName: cagent.Name,
		windowOf: func(opt agent.Options) int { return cagent.Window(cOptions(opt, 0, 0)) },
		held:     cagent.Held(0),
	},
}

// cOptions maps the Go agent's options to the C app's configuration.
func cOptions(opt agent.Options, check, idle time.Duration) cagent.Options {
	c := cagent.Options{
		MaxFrame: opt.MaxFrame, NoCompression: opt.NoCompression, NoResume: opt.NoResume,
		NoBaudChange: opt.NoBaudChange, NoReorder: opt.NoReorder, NoDelta: opt.NoDelta,
		SetBaud: opt.SetBaud, RateCheck: check, RateIdle: idle,
	}
	if opt.Window > 0 {
		c.RxBuffer = cagent.RxBufferFor(opt.Window, opt.MaxFrame)
	}
	return c
}

// forAgents runs test once per kind of agent.
func forAgents(t *testing.T, test func(t *testing.T, k agentKind)) {
	for _, k := range agentKinds {
		t.Run(k.name, func(t *testing.T) { test(t, k) })
	}
}
