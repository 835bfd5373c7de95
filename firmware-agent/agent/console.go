package agent

import (
	"bytes"
	"io"
	"sync"

	"github.com/gota-dev/gota/protocol"
)

// Console is the device's log output (the app's printf/ESP_LOG stream). It
// writes to the connection attached by Serve, never in the middle of a
// frame: frames and log text go out under one lock. Text written while
// nothing is attached is dropped, as a UART drops what no one listens to.
// It is safe for concurrent use.
type Console struct {
	mu sync.Mutex
	w  io.Writer
}

// NewConsole returns a Console with nothing attached.
func NewConsole() *Console { return &Console{} }

// Write sends p as log text to the attached connection. The byte 0x01
// (the frame start) is replaced by '?': log text must never contain it.
// It always reports success; a dead connection loses the text.
func (c *Console) Write(p []byte) (int, error) {
	n := len(p)
	if bytes.IndexByte(p, protocol.SOF) >= 0 {
		p = bytes.ReplaceAll(p, []byte{protocol.SOF}, []byte{'?'})
	}
	c.writeRaw(p)
	return n, nil
}

func (c *Console) writeRaw(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w != nil {
		c.w.Write(b)
	}
}

func (c *Console) writeFrame(f protocol.Frame) { c.writeRaw(f.Encode()) }

// attach makes w the console's output.
func (c *Console) attach(w io.Writer) {
	c.mu.Lock()
	c.w = w
	c.mu.Unlock()
}

// detach removes w if it is still the output.
func (c *Console) detach(w io.Writer) {
	c.mu.Lock()
	if c.w == w {
		c.w = nil
	}
	c.mu.Unlock()
}
