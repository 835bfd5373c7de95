package e2e

import (
	"os"
	"strings"
	"testing"
)

// TestLuaAgentOverPTY updates a virtual ESP32 running NodeMCU with
// gota.lua (--agent lua) through the same pseudo-terminal and commands, on
// a custom build with rollback support and a uart-owned console (BAUD
// works there): the new build boots on trial and is accepted.
func TestLuaAgentOverPTY(t *testing.T) {
	u := startUpgrade(t, "--agent", "lua", "--rollback", "--nodemcu", "uart-start")
	dev, flashPath, v2img, v2 := u.dev, u.flashPath, u.v2img, u.v2

	mustGota(t, "flash", v2, "--port", dev.port, "--baud", highBaud)
	in := deviceInfo(t, dev.port)
	if st, ver, _ := in.slot(t, "app1"); in.Running != "app1" || st != "testing" || ver != "2.0.0" {
		t.Fatalf("after flashing through the Lua agent: running %s, app1 %s %s\n%s", in.Running, st, ver, gotaLines(dev.output()))
	}
	mustGota(t, "accept", "--port", dev.port)
	dev.stop()
	if got := slotBytes(t, flashPath, "app1", len(v2img)); sum(got) != sum(v2img) {
		t.Fatal("app1 does not hold the image byte for byte")
	}
	for _, a := range inspectFlash(t, flashPath).Apps {
		if a.Name == "app1" && a.State != "valid" {
			t.Fatalf("app1 state %q after accept, want valid", a.State)
		}
	}
}

// TestLuaAgentStockNodeMCU: the default Lua board is a stock NodeMCU
// build (console module, bootloader without rollback): the new build is
// final at once (not on trial), and rolling back still works
// (esp_ota_mark_app_invalid_rollback_and_reboot needs no bootloader
// support).
func TestLuaAgentStockNodeMCU(t *testing.T) {
	if testing.Short() {
		t.Skip("the console module stays at 115200: seconds of line time")
	}
	u := startUpgrade(t, "--agent", "lua")
	dev, v2 := u.dev, u.v2
	mustGota(t, "flash", v2, "--port", dev.port)
	in := deviceInfo(t, dev.port)
	if st, ver, _ := in.slot(t, "app1"); in.Running != "app1" || st == "testing" || ver != "2.0.0" {
		t.Fatalf("after flashing a stock NodeMCU board: running %s, app1 %s %s\n%s", in.Running, st, ver, gotaLines(dev.output()))
	}
	mustGota(t, "rollback", "--port", dev.port)
	in = deviceInfo(t, dev.port)
	if st, _, _ := in.slot(t, "app1"); in.Running != "app0" || st != "invalid" {
		t.Fatalf("after rollback: running %s, app1 %s\n%s", in.Running, st, gotaLines(dev.output()))
	}
}

// TestNodeMCUInstall: a board with NodeMCU's REPL and the owner's
// init.lua but no agent gets gota.lua with `gota nodemcu install`, then
// answers gota info; a port with the Go agent (not a NodeMCU REPL) is
// refused and its flash is left as it was.
func TestNodeMCUInstall(t *testing.T) {
	u := startUpgrade(t, "--agent", "lua", "--repl-only")
	r := mustGota(t, "nodemcu", "install", "--port", u.dev.port)
	if !strings.Contains(r.stdout, "installed gota.lua") || !strings.Contains(r.stdout, "init-user.lua") {
		t.Errorf("install output: %s", r)
	}
	in := deviceInfo(t, u.dev.port)
	if in.Running != "app0" {
		t.Errorf("after the install: running %s", in.Running)
	}
	if !strings.Contains(u.dev.output(), "hello from init.lua") {
		t.Errorf("the owner's init.lua did not run after the install:\n%s", u.dev.output())
	}

	g := startUpgrade(t) // the Go agent
	before := sum(mustRead(t, g.flashPath))
	bad := gota(t, "nodemcu", "install", "--port", g.dev.port)
	if bad.code == 0 || !strings.Contains(bad.stderr, "not a NodeMCU REPL") || !strings.Contains(bad.stderr, "nothing was written") {
		t.Fatalf("install on a port without a NodeMCU REPL: %s", bad)
	}
	g.dev.stop()
	if sum(mustRead(t, g.flashPath)) != before {
		t.Error("the refused install changed the device's flash")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
