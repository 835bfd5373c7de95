//go:build js && wasm

package webserial

import (
	"strings"
	"syscall/js"
	"testing"
)

// TestSetSignals: SetDTR and SetRTS each call setSignals with one member,
// so the other line keeps its state (as pyserial's setDTR/setRTS do); a
// rejected promise (a closed port) comes back as an error.
func TestSetSignals(t *testing.T) {
	js.Global().Call("eval", `globalThis.makeSignalPort = function () {
		const p = { calls: [], open: true };
		p.setSignals = async function (s) {
			if (!p.open) throw new DOMException("The port is closed.", "InvalidStateError");
			p.calls.push(JSON.stringify(s));
		};
		return p;
	}`)
	fake := js.Global().Call("makeSignalPort")
	p := &Port{port: fake}
	for _, f := range []func() error{
		func() error { return p.SetDTR(false) },
		func() error { return p.SetRTS(true) },
		func() error { return p.SetDTR(true) },
		func() error { return p.SetRTS(false) },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	got := js.Global().Get("JSON").Call("stringify", fake.Get("calls")).String()
	want := `["{\"dataTerminalReady\":false}","{\"requestToSend\":true}","{\"dataTerminalReady\":true}","{\"requestToSend\":false}"]`
	if got != want {
		t.Errorf("setSignals calls %s, want %s", got, want)
	}
	fake.Set("open", false)
	if err := p.SetRTS(true); err == nil || !strings.Contains(err.Error(), "requestToSend") {
		t.Errorf("closed port: %v", err)
	}
}
