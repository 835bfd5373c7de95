package virtual

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/rom"
)

// The WebSocket port carries the host's modem lines out of band: binary
// messages are line bytes, text messages are control requests, JSON
// objects such as
//
//	{"dtr": true, "rts": false}
//
// which set DTR and/or RTS (true = asserted) the way Web Serial's
// SerialPort.setSignals({dataTerminalReady, requestToSend}) does: a field
// left out keeps its value. They take effect in order with the bytes
// around them. The server does not answer; closing the connection
// deasserts both, as closing a tty does (HUPCL). A page's SerialPort shim
// (web/static/virtual-serial.js) and the CLI's ws:// ports send them.

// SignalsMessage is a text message of the WebSocket port.
type SignalsMessage struct {
	DTR *bool `json:"dtr,omitempty"`
	RTS *bool `json:"rts,omitempty"`
}

// ParseSignals decodes a control request and applies it to cur.
func ParseSignals(msg []byte, cur link.Signals) (link.Signals, error) {
	var m SignalsMessage
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return cur, fmt.Errorf("control message %.64q: want {\"dtr\": bool, \"rts\": bool}: %w", msg, err)
	}
	if dec.More() {
		return cur, fmt.Errorf("control message %.64q: one JSON object per message", msg)
	}
	if m.DTR != nil {
		cur.DTR = *m.DTR
	}
	if m.RTS != nil {
		cur.RTS = *m.RTS
	}
	return cur, nil
}

// EncodeSignals is the control request that sets both lines to s.
func EncodeSignals(s link.Signals) []byte {
	b, _ := json.Marshal(SignalsMessage{DTR: &s.DTR, RTS: &s.RTS})
	return b
}

// USB ids the virtual port reports as SerialPort.getInfo() would: a
// CP210x bridge (Silicon Labs 10C4:EA60, as on ESP32-DevKitC) for the
// auto-reset circuit, Espressif's USB-Serial-JTAG (303A:1001, esptool-js
// USB_JTAG_SERIAL_PID) for the built-in one. esptool-js chooses its reset
// sequence by them.
func (d *Device) USBIDs() (vid, pid uint16) {
	if d.chip.cfg.Reset == rom.USBSerialJTAG {
		return 0x303A, 0x1001
	}
	return 0x10C4, 0xEA60
}
