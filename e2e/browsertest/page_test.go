package browsertest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestPageLoads checks that the page starts, loads nothing from other
// origins, offers both connect buttons with labels, and fits a phone.
func TestPageLoads(t *testing.T) {
	ctx, s := startDemoSite(t)
	shots := newShots(t)
	tti := load(t, ctx, s.URL)
	t.Logf("time to interactive: %v", tti)

	waitJS(t, ctx, "the virtual device button", `!!document.getElementById("connect-virtual")`, 10*time.Second)
	shots.take(ctx, "desktop")

	if got := text(t, ctx, `document.getElementById("connect-serial").innerText`); got != "Connect device" {
		t.Errorf("serial button says %q, want %q", got, "Connect device")
	}
	if got := text(t, ctx, `document.getElementById("connect-virtual").innerText`); got != "Connect virtual device" {
		t.Errorf("virtual button says %q, want %q", got, "Connect virtual device")
	}
	// Every resource comes from the page's own origin.
	foreign := text(t, ctx, `performance.getEntriesByType("resource").map(e => e.name).filter(u => !u.startsWith(location.origin)).join(" ")`)
	if foreign != "" {
		t.Errorf("page loaded resources from other origins: %s", foreign)
	}
	// The WebAssembly arrived compressed.
	sizes := text(t, ctx, `(() => { const e = performance.getEntriesByName(location.origin + "/main.wasm")[0];
		return e ? e.encodedBodySize + " " + e.decodedBodySize : ""; })()`)
	var enc, dec int
	if _, err := fmt.Sscan(sizes, &enc, &dec); err != nil || enc <= 0 || enc >= dec {
		t.Errorf("main.wasm transfer %q (encoded, decoded bytes): want it gzip-compressed", sizes)
	} else {
		t.Logf("main.wasm: %d bytes on the wire, %d decoded", enc, dec)
	}
	// Controls have accessible names: labelled inputs and text buttons.
	unlabelled := text(t, ctx, `[...document.querySelectorAll("input,select")].filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")).map(e => e.id || e.outerHTML).join(" ")`)
	if unlabelled != "" {
		t.Errorf("controls without a label: %s", unlabelled)
	}

	// Phone width: nothing wider than the screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the phone layout", `window.innerWidth === 390`, 5*time.Second)
	overflow, err := evalBool(ctx, `document.documentElement.scrollWidth > window.innerWidth + 1`)
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Errorf("page is wider than a 390 px phone screen: scrollWidth %s", text(t, ctx, `String(document.documentElement.scrollWidth)`))
	}
	shots.take(ctx, "phone")
	chromedp.Do(ctx, chromedp.ResetViewport())
}

// TestNoWebSerial loads the page as Firefox or Safari see it (no
// navigator.serial): the page names the browsers that work and the
// virtual device still connects.
func TestNoWebSerial(t *testing.T) {
	ctx, s := startDemoSite(t)
	shots := newShots(t)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `delete Navigator.prototype.serial;`,
	}); err != nil {
		t.Fatal(err)
	}
	load(t, ctx, s.URL)
	waitJS(t, ctx, "the no-Web-Serial notice", `!!document.getElementById("no-serial")`, 10*time.Second)
	msg := text(t, ctx, `document.getElementById("no-serial").innerText`)
	for _, want := range []string{"Chrome", "Edge"} {
		if !strings.Contains(msg, want) {
			t.Errorf("notice %q does not name %s", msg, want)
		}
	}
	if disabled, _ := evalBool(ctx, `document.getElementById("connect-serial").disabled`); !disabled {
		t.Error("Connect device is enabled without Web Serial")
	}
	waitJS(t, ctx, "the virtual device button", `!!document.getElementById("connect-virtual")`, 10*time.Second)
	shots.take(ctx, "no-web-serial")
	// Choose 460800 baud, then connect: the session switches to it.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("baud");
		s.value = "460800"; s.dispatchEvent(new Event("change", { bubbles: true })); })()`)); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, "#connect-virtual")
	waitJS(t, ctx, "the device panel", `!!document.getElementById("running") && document.getElementById("running").innerText !== ""`, 60*time.Second)
	if status := text(t, ctx, `document.getElementById("status").innerText`); !strings.Contains(status, "460800 baud") {
		t.Errorf("status %q, want the line at 460800 baud", status)
	}
	shots.take(ctx, "virtual-connected")
}

// TestKeyboard walks the page with Tab and connects the virtual device
// with Enter: every control is reachable and works without a mouse.
func TestKeyboard(t *testing.T) {
	ctx, s := startDemoSite(t)
	load(t, ctx, s.URL)
	waitJS(t, ctx, "the virtual device button", `!!document.getElementById("connect-virtual")`, 10*time.Second)

	tabOrder := func() []string {
		var ids []string
		chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
		for i := 0; i < 20; i++ {
			if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
				t.Fatal(err)
			}
			id := text(t, ctx, `document.activeElement ? (document.activeElement.id || document.activeElement.tagName) : ""`)
			if len(ids) > 0 && id == ids[0] {
				break
			}
			ids = append(ids, id)
		}
		return ids
	}
	order := strings.Join(tabOrder(), " ")
	t.Logf("tab order: %s", order)
	for _, want := range []string{"connect-virtual", "baud", "file", "console", "console-clear"} {
		if !strings.Contains(" "+order+" ", " "+want+" ") {
			t.Errorf("Tab never reaches #%s; order: %s", want, order)
		}
	}

	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#connect-virtual")), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the device panel after Enter", `!!document.getElementById("running") && !document.getElementById("busy")`, 60*time.Second)
	order = strings.Join(tabOrder(), " ")
	for _, want := range []string{"disconnect", "reboot"} {
		if !strings.Contains(" "+order+" ", " "+want+" ") {
			t.Errorf("Tab never reaches #%s once connected; order: %s", want, order)
		}
	}
}
