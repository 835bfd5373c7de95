package web

import (
	"context"
	"fmt"
	"time"

	"github.com/vugu/vugu"

	"github.com/gota-dev/gota/core/luainstall"
	"github.com/gota-dev/gota/core/updater"
)

// agentURL is where the page finds gota.lua: next to itself (build.sh
// copies it into dist/).
const agentURL = "gota.lua"

// InstallLuaSerial installs the Lua agent on a NodeMCU board on a serial
// port (Chrome's port picker needs the click's user activation).
func (c *Root) InstallLuaSerial(e vugu.DOMEvent) {
	if c.Busy != "" {
		return
	}
	c.startLuaInstall(requestSerialPort())
}

// InstallLuaVirtual installs the Lua agent on the virtual device.
func (c *Root) InstallLuaVirtual(e vugu.DOMEvent) {
	if c.Busy != "" {
		return
	}
	c.startLuaInstall(virtualPort)
}

// startLuaInstall runs the installer (package luainstall) on a port of its
// own, then connects as usual. A port that is not a NodeMCU REPL gets the
// installer's error and nothing is written.
func (c *Root) startLuaInstall(choose func() (any, error)) {
	c.Busy = "Choosing the port…"
	c.Problem = nil
	c.Notice = ""
	c.closeSession()
	c.Info = nil
	c.Status = "Not connected"
	go func() {
		agent, err := fetchURL(agentURL)
		if err != nil {
			c.fail("Could not load gota.lua", err, "Reload the page; gota.lua is served next to it (dist/gota.lua).")
			return
		}
		handle, err := choose()
		if err != nil {
			c.fail("No port chosen", err, "Press Install again and pick the board's serial port.")
			return
		}
		port, err := openPort(handle, updater.DefaultBaud, func() {})
		if err != nil {
			c.fail("Could not open the port", err, "Close other programs that use the port (serial monitors, ESPlorer), then try again.")
			return
		}
		c.update(func() { c.Busy = "Looking for NodeMCU's Lua prompt…" })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		res, err := luainstall.Install(ctx, port, luainstall.Options{
			Agent: agent,
			Log:   func(s string) { c.logLine("gota: " + s) },
			Progress: func(done, total int) {
				c.update(func() { c.Busy = fmt.Sprintf("Writing gota.lua: %d of %d bytes…", done, total) })
			},
		})
		port.Close()
		if err != nil {
			c.fail("Could not install the agent", err, "Check that the board runs NodeMCU (dev-esp32) and shows its Lua prompt at 115200 baud, then try again.")
			return
		}
		note := fmt.Sprintf("Installed gota.lua (%d bytes) and init.lua on the %s board; the agent runs.", res.Bytes, res.Lua)
		if res.KeptUserInit {
			note += " Your init.lua is now " + luainstall.UserInitFile + " and runs after the agent."
		}
		c.update(func() { c.Notice = note })
		c.connectHandle(handle)
	}()
}
