package browsertest

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gota-dev/gota/internal/testenv"
	"github.com/gota-dev/gota/server"
)

// TestConnectDevicePicker goes through "Connect device": the page calls
// navigator.serial.requestPort from the click, as with Chrome's picker.
// Headless Chromium has no USB ports to pick, so the picker is replaced
// by one that returns the virtual port; everything after it (open with
// baud and bufferSize, reads, writes, baud changes) is the real path.
// Then the device is unplugged and the page must say so.
func TestConnectDevicePicker(t *testing.T) {
	ctx, s := startDemoSite(t)
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
		testenv.Missing(t, "this Chromium build has no navigator.serial")
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

	// Reboot: the boot log shows in the console; download and clear it.
	click(t, ctx, "#reboot")
	waitJS(t, ctx, "the boot log after Reboot", `document.getElementById("console").innerText.includes("boot: Loaded app from partition") && !document.getElementById("busy")`, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const create = URL.createObjectURL;
		URL.createObjectURL = (blob) => { window.gotaDownloaded = blob; return create(blob); };
	})()`)); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, "#console-download")
	waitJS(t, ctx, "the download", `!!window.gotaDownloaded`, 10*time.Second)
	saved, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.gotaDownloaded.text()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(saved, "boot: Loaded app from partition") {
		t.Errorf("downloaded log lacks the boot log: %q", saved)
	}
	shots.take(ctx, "rebooted")
	click(t, ctx, "#console-clear")
	waitJS(t, ctx, "an empty console", `document.getElementById("console").innerText.trim() === ""`, 10*time.Second)

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

// TestDropZone drops an image on the drop zone (a synthetic drop event
// carrying a File, as the browser builds for a dragged file) and checks
// the page describes it, at phone width with a device connected.
func TestDropZone(t *testing.T) {
	ctx, s := startDemoSite(t)
	shots := newShots(t)
	load(t, ctx, s.URL)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the virtual device button", `!!document.getElementById("connect-virtual")`, 10*time.Second)
	click(t, ctx, "#connect-virtual")
	waitJS(t, ctx, "the device panel", `!!document.getElementById("running") && !document.getElementById("busy")`, 60*time.Second)

	next, err := server.DemoApp("2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	drop := fmt.Sprintf(`(() => {
		const bytes = Uint8Array.from(atob(%q), (c) => c.charCodeAt(0));
		const dt = new DataTransfer();
		dt.items.add(new File([bytes], "demo-2.0.0.bin", { type: "application/octet-stream" }));
		const zone = document.getElementById("dropzone");
		zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
		return zone.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
	})()`, base64.StdEncoding.EncodeToString(next))
	if notCancelled, err := evalBool(ctx, drop); err != nil {
		t.Fatal(err)
	} else if notCancelled {
		t.Error("the drop event was not cancelled: the browser would open the file instead")
	}
	waitJS(t, ctx, "the dropped image's details", `!!document.getElementById("img-version") && document.getElementById("img-version").innerText === "2.0.0"`, 20*time.Second)
	if rel := text(t, ctx, `document.getElementById("relation").innerText`); !strings.HasPrefix(rel, "Upgrade") {
		t.Errorf("relation %q, want Upgrade…", rel)
	}
	if ok, _ := evalBool(ctx, `!document.getElementById("flash").disabled`); !ok {
		t.Error("Flash disabled for a valid upgrade")
	}
	if overflow, _ := evalBool(ctx, `document.documentElement.scrollWidth > window.innerWidth + 1`); overflow {
		t.Errorf("page wider than the phone screen with a device connected: %s px", text(t, ctx, `String(document.documentElement.scrollWidth)`))
	}
	shots.take(ctx, "phone-dropped")
}
