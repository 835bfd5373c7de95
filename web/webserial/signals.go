//go:build js && wasm

package webserial

import (
	"fmt"
	"syscall/js"
)

// SetDTR sets Data Terminal Ready (SerialPort.setSignals with only
// dataTerminalReady, so RTS keeps its state). On ESP32 dev boards it
// drives GPIO0 through the auto-reset circuit.
func (p *Port) SetDTR(v bool) error { return p.setSignal("dataTerminalReady", v) }

// SetRTS sets Request To Send; on ESP32 dev boards it drives EN.
func (p *Port) SetRTS(v bool) error { return p.setSignal("requestToSend", v) }

func (p *Port) setSignal(name string, v bool) error {
	opts := js.Global().Get("Object").New()
	opts.Set(name, v)
	pr, err := try(func() js.Value { return p.port.Call("setSignals", opts) })
	if err == nil {
		_, err = Await(pr)
	}
	if err != nil {
		return fmt.Errorf("setSignals(%s: %v): %w", name, v, err)
	}
	return nil
}
