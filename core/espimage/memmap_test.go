package espimage

import (
	"errors"
	"testing"
)

// TestVerifyLoadAddresses checks the ESP32 memory map of esp_image_format.c
// (v5.1.3, verify_load_addresses) with soc.h's ranges and bootloader.ld's
// bootloader memory.
func TestVerifyLoadAddresses(t *testing.T) {
	cases := []struct {
		addr, end int64
		want      string
	}{
		{0x3FFB0000, 0x3FFB0040, ""},                          // app DRAM
		{0x3FFBDB60, 0x3FFBDB60 + 0x3C18, ""},                 // Arduino app's DRAM segment
		{0x40080000, 0x40080400, ""},                          // IRAM vectors
		{0x40080400, 0x40093000, ""},                          // app IRAM
		{0x400C0000, 0x400C0100, ""},                          // RTC fast IRAM
		{0x3FF80000, 0x3FF80100, ""},                          // RTC fast DRAM
		{0x50000000, 0x50000200, ""},                          // RTC slow
		{0x3FFF0030, 0x3FFF0100, "overlaps bootloader data"},  // bootloader .data
		{0x3FFE3000, 0x3FFE3100, "overlaps bootloader stack"}, // ROM stack
		{0x3FFD0000, 0x3FFDC000, "overlaps bootloader stack"}, // within 32 KiB headroom below sp
		{0x40078000, 0x40078100, "bad load address range"},    // APP CPU cache: not IRAM when multicore
		{0x3FFFF000, 0x40001000, "bad load address range"},    // crosses the end of DRAM
		{0x60000000, 0x60000100, "bad load address range"},    // peripherals
		{0x400A8000, 0x400A9000, ""},                          // D/IRAM: its DRAM alias 0x3fff6ffc-0x3fff7ffc is free
		{0x400BE000, 0x400BF000, "bad load address range"},    // past SOC_IRAM_HIGH
		{0x3FFE8000, 0x3FFE9000, "bad load address range"},    // D/IRAM DRAM whose IRAM alias is past SOC_IRAM_HIGH
		{0x3FFB0000, 0x3FFB0000, ""},                          // zero length
	}
	for _, c := range cases {
		if got := verifyLoadAddresses(c.addr, c.end, false); got != c.want {
			t.Errorf("0x%08x-0x%08x: %q, want %q", c.addr, c.end, got, c.want)
		}
	}
}

// TestVerifyLoadAddressesOption: Verify with LoadAddresses refuses what
// the ESP32 bootloader refuses to load, names the segment and range, and
// leaves flash-mapped, padding and other chips' segments alone.
func TestVerifyLoadAddressesOption(t *testing.T) {
	build := func(chip Chip, addr uint32) *Image {
		b, err := Build(Header{Chip: chip, HashAppended: true},
			[]Segment{{LoadAddr: 0x3F400020, Data: make([]byte, 512)}, {LoadAddr: addr, Data: make([]byte, 64)}},
			&AppDesc{ProjectName: "x"})
		if err != nil {
			t.Fatal(err)
		}
		img, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	for _, c := range []struct {
		chip Chip
		addr uint32
		want string
	}{
		{ChipESP32, 0x3FFB0000, ""},
		{ChipESP32, 0x00000000, ""}, // padding: not loaded
		{ChipESP32, 0x3FFF0100, "segment 1: the bootloader refuses to load 0x3fff0100-0x3fff0140: overlaps bootloader data"},
		{ChipESP32, 0x20000000, "segment 1: the bootloader refuses to load 0x20000000-0x20000040: bad load address range"},
		{ChipESP32C3, 0x3FFF0100, ""}, // map not modelled
	} {
		err := build(c.chip, c.addr).Verify(VerifyOptions{LoadAddresses: true})
		if c.want == "" {
			if err != nil {
				t.Errorf("%s 0x%08x: %v", c.chip, c.addr, err)
			}
			continue
		}
		if !errors.Is(err, ErrLoadAddress) || err.Error() != c.want+": "+ErrLoadAddress.Error() {
			t.Errorf("%s 0x%08x: %v, want %q", c.chip, c.addr, err, c.want)
		}
		if err := build(c.chip, c.addr).Verify(VerifyOptions{}); err != nil {
			t.Errorf("%s 0x%08x without LoadAddresses: %v (esp_image_verify in an app does not check)", c.chip, c.addr, err)
		}
	}
}
