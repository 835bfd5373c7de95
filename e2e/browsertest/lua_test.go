package browsertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gota-dev/gota/firmware-agent/virtual"
	"github.com/gota-dev/gota/server"
)

// demoFile writes the demo app of version v to a file for the file input.
func demoFile(t *testing.T, v string) string {
	t.Helper()
	b, err := server.DemoApp(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo-"+v+".bin")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// slotJS is true when the partition row for label shows state and the
// version (the Lua agent reports no digest after a reboot).
func slotJS(label, state, version string) string {
	return fmt.Sprintf(`(() => { const r = document.getElementById("part-%s");
		return !!r && r.dataset.state === %q && r.innerText.includes(%q); })()`, label, state, version)
}

// TestLuaAgentRollbackBootloader: the page with gota.lua on a NodeMCU
// build whose bootloader has rollback support: flash (on trial), accept,
// flash again, roll back.
func TestLuaAgentRollbackBootloader(t *testing.T) {
	ctx := newBrowser(t)
	app, err := server.DemoApp("1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	s := startSiteWith(t, app, virtual.Config{Agent: "lua", Rollback: true, Profile: "uart-start"})
	shots := newShots(t)
	load(t, ctx, s.URL)
	click(t, ctx, "#connect-virtual")
	waitJS(t, ctx, "v1.0.0 running in app0", runningJS("app0")+" && "+slotJS("app0", "valid", "1.0.0"), 60*time.Second)
	if agent := text(t, ctx, `document.getElementById("agent").innerText`); agent != "gota-lua/1" {
		t.Fatalf("agent shows %q", agent)
	}
	if st := text(t, ctx, `document.getElementById("status").innerText`); !strings.Contains(st, "at 115200 baud (the agent cannot switch to 921600 baud)") {
		t.Errorf("status %q: gota.lua refuses 921600 (its console path cannot keep up) and the page must say the line stays at 115200", st)
	}

	upload(t, ctx, demoFile(t, "1.1.0"))
	waitJS(t, ctx, "the Flash button", `!!document.getElementById("flash") && !document.getElementById("flash").disabled`, 20*time.Second)
	click(t, ctx, "#flash")
	waitJS(t, ctx, "1.1.0 on trial in app1", runningJS("app1")+" && "+slotJS("app1", "testing", "1.1.0"), 120*time.Second)
	waitJS(t, ctx, "the trial buttons", `!!document.getElementById("accept") && !!document.getElementById("rollback") && !document.getElementById("final")`, 10*time.Second)
	accept, rollback := text(t, ctx, `document.getElementById("accept").innerText`), text(t, ctx, `document.getElementById("rollback").innerText`)
	if accept != "Accept: keep app1 (1.1.0) for good" || !strings.Contains(rollback, "reboot into app0 (1.0.0)") {
		t.Errorf("trial buttons: %q / %q", accept, rollback)
	}
	if d, _ := evalBool(ctx, `document.getElementById("rollback").disabled`); d {
		t.Error("Roll back is disabled although app0 holds a valid build")
	}
	shots.take(ctx, "on-trial")
	click(t, ctx, "#accept")
	waitJS(t, ctx, "1.1.0 valid", runningJS("app1")+" && "+slotJS("app1", "valid", "1.1.0")+` && !document.getElementById("trial")`, 60*time.Second)

	upload(t, ctx, demoFile(t, "1.2.0"))
	waitJS(t, ctx, "the Flash button", `!!document.getElementById("flash") && !document.getElementById("flash").disabled`, 20*time.Second)
	if rel := text(t, ctx, `document.getElementById("relation") ? document.getElementById("relation").innerText : ""`); strings.Contains(rel, "differ") {
		t.Errorf("relation %q claims a difference the page cannot see", rel)
	}
	click(t, ctx, "#flash")
	waitJS(t, ctx, "1.2.0 on trial in app0", runningJS("app0")+" && "+slotJS("app0", "testing", "1.2.0"), 120*time.Second)
	click(t, ctx, "#rollback")
	waitJS(t, ctx, "1.1.0 running again", runningJS("app1")+" && "+slotJS("app1", "valid", "1.1.0")+" && "+slotJS("app0", "invalid", "1.2.0"), 60*time.Second)
	shots.take(ctx, "rolled-back")
}

// TestLuaAgentStockBootloader: a stock NodeMCU build (console module, no
// rollback support): after a flash there is no on-trial banner, the page
// says the build is final, and Roll back returns to the other build.
func TestLuaAgentStockBootloader(t *testing.T) {
	ctx := newBrowser(t)
	app, err := server.DemoApp("1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	s := startSiteWith(t, app, virtual.Config{Agent: "lua"})
	shots := newShots(t)
	load(t, ctx, s.URL)
	click(t, ctx, "#connect-virtual")
	waitJS(t, ctx, "v1.0.0 running in app0", runningJS("app0")+" && "+slotJS("app0", "valid", "1.0.0"), 60*time.Second)
	if st := text(t, ctx, `document.getElementById("status").innerText`); !strings.Contains(st, "115200 baud") || strings.Contains(st, "at 921600") {
		t.Errorf("status %q: the console module stays at 115200 and the page must say so", st)
	}
	if d := text(t, ctx, `document.getElementById("part-app0").innerText`); !strings.Contains(d, "unknown") {
		t.Errorf("app0 row %q: the digest NodeMCU does not report should read unknown", d)
	}

	upload(t, ctx, demoFile(t, "1.1.0"))
	waitJS(t, ctx, "the Flash button", `!!document.getElementById("flash") && !document.getElementById("flash").disabled`, 20*time.Second)
	click(t, ctx, "#flash")
	waitJS(t, ctx, "1.1.0 final in app1", runningJS("app1")+" && "+slotJS("app1", "undefined", "1.1.0"), 120*time.Second)
	waitJS(t, ctx, "the final panel", `!!document.getElementById("final") && !document.getElementById("trial") && !document.getElementById("accept")`, 10*time.Second)
	if fin := text(t, ctx, `document.getElementById("final").innerText`); !strings.Contains(fin, "final") || !strings.Contains(fin, "reboot into app0 (1.0.0)") {
		t.Errorf("final panel: %q", fin)
	}
	shots.take(ctx, "final")
	click(t, ctx, "#rollback")
	waitJS(t, ctx, "1.0.0 running again", runningJS("app0")+" && "+slotJS("app1", "invalid", "1.1.0"), 60*time.Second)
	shots.take(ctx, "rolled-back")
}

// TestInstallAgentFromPage: the virtual board has NodeMCU's REPL and the
// owner's init.lua but no agent; "Install the agent" writes gota.lua
// through the REPL, restarts the board and connects to the agent. On a
// device with the Go agent (no NodeMCU REPL) the page says so and writes
// nothing.
func TestInstallAgentFromPage(t *testing.T) {
	ctx := newBrowser(t)
	app, err := server.DemoApp("1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	s := startSiteWith(t, app, virtual.Config{Agent: "lua", REPLOnly: true})
	shots := newShots(t)
	load(t, ctx, s.URL)
	waitJS(t, ctx, "the install button", `!!document.getElementById("lua-install-virtual")`, 10*time.Second)
	click(t, ctx, "#lua-install-virtual")
	waitJS(t, ctx, "the agent connected after the install", runningJS("app0")+
		` && document.getElementById("agent").innerText === "gota-lua/1" && !!document.getElementById("notice")`, 180*time.Second)
	notice := text(t, ctx, `document.getElementById("notice").innerText`)
	if !strings.Contains(notice, "Installed gota.lua") || !strings.Contains(notice, "init-user.lua") {
		t.Errorf("notice %q", notice)
	}
	shots.take(ctx, "installed")
	found := false
	for _, l := range s.Log.snapshot() {
		found = found || strings.Contains(l, "hello from init.lua")
	}
	if !found {
		t.Error("the owner's init.lua did not run after the install")
	}

	// The Go agent's device: not a NodeMCU REPL.
	ctx2 := newBrowser(t)
	g := startSite(t, app)
	ops := g.Device.Flash().Ops()
	load(t, ctx2, g.URL)
	waitJS(t, ctx2, "the install button", `!!document.getElementById("lua-install-virtual")`, 10*time.Second)
	click(t, ctx2, "#lua-install-virtual")
	waitJS(t, ctx2, "the refusal", `!!document.getElementById("problem") && document.getElementById("problem").innerText.includes("not a NodeMCU REPL")`, 60*time.Second)
	if got := g.Device.Flash().Ops(); got != ops {
		t.Errorf("flash operations went from %d to %d: the refused install touched the device", ops, got)
	}
}
