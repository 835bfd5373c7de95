package server

import (
	"fmt"
	"os"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/firmware-agent/device"
)

// DemoApp builds a small valid ESP32 app image ("gota-demo") so that a
// virtual device can boot without any firmware file at hand.
func DemoApp(version string) ([]byte, error) {
	return espimage.Synth(espimage.SynthOptions{Version: version, ProjectName: "gota-demo"})
}

// EnsureFlash creates the flash file at path with app in ota_0 unless it
// exists already. app nil means DemoApp("1.0.0").
func EnsureFlash(path string, app []byte) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	if app == nil {
		if app, err = DemoApp("1.0.0"); err != nil {
			return false, err
		}
	}
	if err := device.Create(path, device.CreateOptions{App: app, Chip: espimage.ChipESP32}); err != nil {
		return false, fmt.Errorf("create flash %s: %w", path, err)
	}
	return true, nil
}
