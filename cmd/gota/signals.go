package main

import (
	"context"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/virtual"
)

// signalPort is a port whose modem lines the host can drive: DTR and RTS
// reach EN and GPIO0 through a board's auto-reset circuit (esptool's
// reset sequences need them).
type signalPort interface {
	SetSignals(dtr, rts bool) error
}

// SetSignals sets DTR and RTS (true = asserted). A pseudo-terminal has no
// modem lines: the error says so.
func (p *serialLine) SetSignals(dtr, rts bool) error {
	if err := p.Port.SetDTR(dtr); err != nil {
		return fmt.Errorf("%s: set DTR (no modem lines? hold BOOT and press EN instead): %w", p.name, err)
	}
	if err := p.Port.SetRTS(rts); err != nil {
		return fmt.Errorf("%s: set RTS: %w", p.name, err)
	}
	return nil
}

// SetSignals sends the virtual device's control message (a text message,
// firmware-agent/virtual signals.go), in order with the bytes written
// before it.
func (p *wsLine) SetSignals(dtr, rts bool) error {
	p.mu.Lock()
	c := p.ws
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, virtual.EncodeSignals(link.Signals{DTR: dtr, RTS: rts})); err != nil {
		return fmt.Errorf("%s: set DTR/RTS: %w", p.url, err)
	}
	return nil
}

var (
	_ signalPort = (*serialLine)(nil)
	_ signalPort = (*wsLine)(nil)
)
