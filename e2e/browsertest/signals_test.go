package browsertest

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestShimSignals drives the virtual board's reset circuit from the page
// through the SerialPort shim, with the classic reset of esptool-js
// (reset.js ClassicReset: setSignals(DTR off, RTS on), 100 ms, (on, off),
// 50 ms, (off, off)), then a hard reset; and checks the closed-port and
// empty-dictionary errors a real SerialPort gives.
func TestShimSignals(t *testing.T) {
	ctx, s := startDemoSite(t)
	load(t, ctx, s.URL)
	waitJS(t, ctx, "the shim", `!!globalThis.gotaVirtual`, 10*time.Second)
	run := func(js string) string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return out
	}
	if id := run(`(async () => { await gotaVirtual.available(); const i = gotaVirtual.port().getInfo(); return i.usbVendorId + ":" + i.usbProductId; })()`); id != "4292:60000" {
		t.Errorf("getInfo USB ids %s, want the CP210x bridge's 4292:60000", id)
	}
	got := run(`(async () => {
		const p = gotaVirtual.port();
		let closedErr = "";
		try { await p.setSignals({ dataTerminalReady: true }); } catch (e) { closedErr = e.name; }
		await p.open({ baudRate: 115200 });
		let emptyErr = "";
		try { await p.setSignals({}); } catch (e) { emptyErr = e.name; }
		const sig = await p.getSignals();
		await p.setSignals({ dataTerminalReady: false, requestToSend: true });
		await new Promise((r) => setTimeout(r, 100));
		await p.setSignals({ dataTerminalReady: true, requestToSend: false });
		await new Promise((r) => setTimeout(r, 50));
		await p.setSignals({ dataTerminalReady: false, requestToSend: false });
		globalThis.testPort = p;
		return closedErr + " " + emptyErr + " " + sig.clearToSend;
	})()`)
	if got != "InvalidStateError TypeError false" {
		t.Errorf("errors and getSignals: %q", got)
	}
	waitState(t, s, "download")
	run(`(async () => {
		const p = globalThis.testPort;
		await p.setSignals({ requestToSend: true });
		await new Promise((r) => setTimeout(r, 100));
		await p.setSignals({ requestToSend: false });
		return "";
	})()`)
	waitState(t, s, "app")
}

func waitState(t *testing.T, s *site, want string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); s.Device.State() != want; {
		if time.Now().After(end) {
			t.Fatalf("device state %q, want %q", s.Device.State(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
