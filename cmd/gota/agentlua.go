package main

import (
	"context"
	"fmt"
	"io"

	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/nodemcu"
)

// The NodeMCU Lua agent: `gota device run --agent lua` runs gota.lua in
// the virtual device's Lua VM (package nodemcu), as a board running
// NodeMCU with gota.lua started from init.lua would.
func init() { agentRunners["lua"] = runLuaAgent }

// runLuaAgent boots the device and runs the embedded gota.lua on it. The
// board (Lua state, transfer in progress) lives as long as the device:
// every time the line comes back it is attached again.
func runLuaAgent(ctx context.Context, env agentEnv) error {
	con := nodemcu.NewConsole()
	dev, err := device.Open(device.Config{
		Flash:      env.Flash,
		Log:        io.MultiWriter(env.Log, con),
		NoRollback: env.NoRollback,
	})
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	uart := env.Line.Device()
	board := nodemcu.NewBoard(dev, nodemcu.AgentScript, nodemcu.Options{
		Console:     con,
		Log:         env.Log,
		SetBaud:     uart.SetBaud,
		ConsoleBaud: env.ConsoleBaud,
		// NodeMCU's console takes in only its UART FIFO and ring while Lua
		// is stuck erasing or programming flash.
		RxBuffer: 128 + 256,
	})
	defer board.Close()
	serveLoop(ctx, env.Line, func(ctx context.Context) error { return board.Run(ctx, uart) })
	return nil
}
