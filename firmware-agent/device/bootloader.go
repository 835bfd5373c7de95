package device

import (
	"fmt"

	"github.com/gota-dev/gota/core/espimage"
)

// BootloaderOffset returns where the ROM looks for the second-stage
// bootloader: 0x1000 on ESP32 and ESP32-S2, 0x0 on later chips (esptool
// targets' BOOTLOADER_FLASH_OFFSET).
func BootloaderOffset(chip espimage.Chip) uint32 {
	switch chip {
	case espimage.ChipESP32, espimage.ChipESP32S2:
		return 0x1000
	}
	return 0
}

// StandInBootloader returns a small valid image that Build puts where the
// second-stage bootloader goes. The ROM model (package rom) only boots a
// flash whose bootloader slot starts with an image header; what the
// bootloader then does is this package's PlanBoot, not this image's code.
// A real bootloader written there (by an install) works the same way.
func StandInBootloader(chip espimage.Chip) ([]byte, error) {
	h := espimage.Header{SPIMode: 2, SPISpeed: 0, FlashSize: 2, Entry: 0x40080400, Chip: chip, MaxChipRevFull: 0xFFFF}
	code := []byte("gota stand-in 2nd stage bootloader, see package device")
	for len(code)%4 != 0 {
		code = append(code, 0)
	}
	b, err := espimage.Build(h, []espimage.Segment{{LoadAddr: 0x40080400, Data: code}}, nil)
	if err != nil {
		return nil, fmt.Errorf("stand-in bootloader: %w", err)
	}
	return b, nil
}
