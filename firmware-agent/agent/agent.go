// Package agent is the device side of the Gota wire protocol: the loop an
// ESP32 application runs on its console to take over-the-air updates. It
// drives a virtual ESP32 (package device) the way a C agent drives ESP-IDF's
// OTA API, and shares the line with the application's log text.
package agent

import (
	"context"
	"io"
	"sync"

	"github.com/gota-dev/gota/firmware-agent/device"
)

// Console is the device's log output (the app's printf/ESP_LOG stream). It
// writes to the connection attached by Serve, never in the middle of a
// frame; text written while nothing is attached is dropped, as a UART drops
// what no one listens to. It is safe for concurrent use.
type Console struct {
	mu sync.Mutex
	w  io.Writer
}

// NewConsole returns a Console with nothing attached.
func NewConsole() *Console { return &Console{} }

// Write sends p as log text to the attached connection.
func (c *Console) Write(p []byte) (int, error) { panic("TODO") }

// Options tune the agent. The zero value is the full Go agent.
type Options struct {
	MaxFrame      int  // largest payload accepted; 0 = protocol.DefaultMaxPayload of the Go agent
	Window        int  // bytes buffered ahead of flash; 0 = 64 KiB
	NoCompression bool // do not offer DEFLATE
	NoResume      bool // do not offer resume
	NoBaudChange  bool // do not offer baud-rate change
	// SetBaud is called when the agent switches its line rate (after
	// acknowledging a BAUD request, on revert, and back to 115200 on
	// reboot). nil means the rate is not modelled.
	SetBaud func(baud int) error
}

// Agent serves the protocol for one device.
type Agent struct{}

// New returns an agent for dev, writing its frames through con. It
// registers a reboot hook on dev: after a reboot the agent drops its session
// and announces itself again.
func New(dev *device.Device, con *Console, opt Options) *Agent { panic("TODO") }

// Serve attaches conn to the console, announces the agent (log banner and
// READY frame) and answers requests until ctx is done or reading conn
// fails. OTA state (a transfer in progress) survives across Serve calls so
// a later session can resume it.
func (a *Agent) Serve(ctx context.Context, conn io.ReadWriter) error { panic("TODO") }
