//go:build cgo

package virtual

import (
	"context"
	"fmt"

	"github.com/gota-dev/gota/firmware-agent/cagent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
)

func init() { agents["c"] = bootC }

// bootC boots the device with the C agent of firmware-agent/esp-idf,
// built for the host (package cagent): the app runs for the device's
// lifetime, and every time the line comes back it is attached again.
func bootC(fl *flash.Flash, cfg Config, uart chipPort) (*device.Device, func(context.Context) error, func(), error) {
	con := cagent.NewConsole()
	boot := newBootLog(uart)
	defer boot.use(con)
	dev, err := device.Open(deviceConfig(fl, cfg, withLog(boot, cfg.Log)))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("boot: %w", err)
	}
	consoleAtReset(dev, uart)
	// The app's uart_driver_install declares its receive path to the
	// line: ring size and whether its ISR runs during flash operations.
	install := func(u cagent.UART) { uart.InstallDriver(link.Receiver{RingBuffer: u.RxBuffer, ISRInIRAM: u.ISRInIRAM}) }
	a := cagent.New(dev, con, cagent.Options{SetBaud: uart.SetBaud, InstallDriver: install, QuietAttach: quietAttach(cfg)})
	return dev, func(ctx context.Context) error { boot.wait(ctx); return a.Serve(ctx, uart) }, a.Close, nil
}
