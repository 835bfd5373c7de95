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
	drom := make([]byte, 1024) // app descriptor first, then rodata
	for i := espimage.AppDescSize; i < len(drom); i++ {
		drom[i] = byte(i * 7)
	}
	iram := make([]byte, 512)
	for i := range iram {
		iram[i] = byte(i * 13)
	}
	h := espimage.Header{
		SPIMode:      2, // DIO
		FlashSize:    2, // 4MB
		Entry:        0x40080000,
		WPPin:        0xEE,
		Chip:         espimage.ChipESP32,
		HashAppended: true,
	}
	segs := []espimage.Segment{
		{LoadAddr: 0x3F400020, Data: drom}, // flash-mapped: data at image offset 0x20
		{LoadAddr: 0x40080000, Data: iram},
	}
	app := &espimage.AppDesc{
		Version:     version,
		ProjectName: "gota-demo",
		Time:        "00:00:00",
		Date:        "Jan  1 2026",
		IDFVer:      "v5.3.2",
	}
	b, err := espimage.Build(h, segs, app)
	if err != nil {
		return nil, fmt.Errorf("build demo app: %w", err)
	}
	return b, nil
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
