package browsertest

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gota-dev/gota/web/server"
)

// TestConnectDevicePicker goes through "Connect device": the page calls
// navigator.serial.requestPort from the click, as with Chrome's picker.
// Headless Chromium has no USB ports to pick, so the picker is replaced
// by one that returns the virtual port; everything after it (open with
// baud and bufferSize, reads, writes, baud changes) is the real path.
// Then the device is unplugged and the page must say so.
func TestConnectDevicePicker(t *testing.T) {
	ctx := newBrowser(t)
	app, err := server.DemoApp("1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	s := startSite(t, app)
	shots := newShots(t)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `if (navigator.serial) {
			window.gotaPickerCalls = 0;
			navigator.serial.requestPort = async (opts) => {
				window.gotaPickerCalls++;
				window.gotaPickerActivation = navigator.userActivation ? navigator.userActivation.isActive : null;
				return gotaVirtual.port();
			};
		}`,
	}); err != nil {
		t.Fatal(err)
	}
	load(t, ctx, s.URL)
	if ok, _ := evalBool(ctx, `!!navigator.serial`); !ok {
		t.Skip("this Chromium build has no navigator.serial")
	}
	waitJS(t, ctx, "Connect device enabled", `!document.getElementById("connect-serial").disabled`, 10*time.Second)
	click(t, ctx, "#connect-serial")
	waitJS(t, ctx, "the device panel", `!!document.getElementById("running") && !document.getElementById("busy")`, 60*time.Second)
	if got := text(t, ctx, `String(window.gotaPickerCalls)`); got != "1" {
		t.Errorf("requestPort called %s times, want 1", got)
	}
	if got := text(t, ctx, `String(window.gotaPickerActivation)`); got == "false" {
		t.Error("requestPort was called without user activation (Chrome would refuse to show the picker)")
	}
	status := text(t, ctx, `document.getElementById("status").innerText`)
	if !strings.Contains(status, "Connected") {
		t.Errorf("status %q, want Connected…", status)
	}
	shots.take(ctx, "connected-through-picker")

	// Unplug: the port's disconnect event reaches the page.
	s.Device.Unplug()
	waitJS(t, ctx, "the disconnect banner", `!!document.getElementById("problem") && document.getElementById("problem").innerText.includes("disconnected")`, 20*time.Second)
	if ok, _ := evalBool(ctx, `!document.getElementById("device")`); !ok {
		t.Error("device panel still shown after the device went away")
	}
	shots.take(ctx, "unplugged")

	// And it connects again.
	click(t, ctx, "#connect-serial")
	waitJS(t, ctx, "the device panel again", `!!document.getElementById("running") && !document.getElementById("busy")`, 60*time.Second)
	shots.take(ctx, "reconnected")
}
