package main

import (
	"fmt"
	"io"
	"os"

	"github.com/gota-dev/gota/core/luainstall"
	"github.com/gota-dev/gota/firmware-agent/nodemcu"
)

func init() {
	register(&command{
		name: "nodemcu install",
		usage: "--port PORT [--timeout D]\n" +
			"                       write gota.lua and an init.lua that starts it through a NodeMCU board's Lua REPL",
		run: runNodeMCUInstall,
	})
}

func runNodeMCUInstall(args []string) error { return nodemcuInstall(os.Stdout, os.Stderr, args) }

// nodemcuInstall installs the Lua agent on the NodeMCU board at --port
// through its REPL (package luainstall) and waits for the agent's READY.
func nodemcuInstall(stdout, stderr io.Writer, args []string) error {
	rf := newRemoteFlags("nodemcu install --port PORT [flags]", stderr, 0, "unused: the REPL runs at the console's rate (115200)")
	if _, err := rf.parse(args, 0); err != nil {
		return err
	}
	ctx, cancel := rf.context()
	defer cancel()
	p, err := openPort(ctx, rf.port)
	if err != nil {
		return err
	}
	defer p.Close()
	out := &output{w: stderr}
	res, err := luainstall.Install(ctx, p, luainstall.Options{
		Agent: nodemcu.AgentScript,
		Log:   func(s string) { out.printf("gota: %s\n", s) },
	})
	if err != nil {
		return fmt.Errorf("nodemcu install: %w", err)
	}
	fmt.Fprintf(stdout, "installed gota.lua (%d bytes) and init.lua on a %s board", res.Bytes, res.Lua)
	if res.KeptUserInit {
		fmt.Fprintf(stdout, "; your init.lua is now %s and runs after the agent", luainstall.UserInitFile)
	}
	fmt.Fprintln(stdout, "; the agent answers: try gota info --port", rf.port)
	return nil
}
