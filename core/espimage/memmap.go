package espimage

// The ESP32 memory map that the second-stage bootloader checks a segment's
// load address against before copying it to RAM: esp_image_format.c
// (v5.1.3) verify_load_addresses, with the address ranges of
// components/soc/esp32/include/soc/soc.h, the pointer tests of
// bootloader_support/include/bootloader_memory_utils.h and the
// bootloader's own memory from components/bootloader/subproject/main/ld/
// esp32/bootloader.ld.
const (
	socDRAMLow       = 0x3FFAE000 // SOC_DRAM_LOW
	socDRAMHigh      = 0x40000000 // SOC_DRAM_HIGH
	socIRAMLow       = 0x40080000 // SOC_IRAM_LOW
	socIRAMHigh      = 0x400AA000 // SOC_IRAM_HIGH
	socDIRAMIRAMLow  = 0x400A0000 // SOC_DIRAM_IRAM_LOW
	socDIRAMIRAMHigh = 0x400C0000 // SOC_DIRAM_IRAM_HIGH
	socDIRAMDRAMLow  = 0x3FFE0000 // SOC_DIRAM_DRAM_LOW
	socDIRAMDRAMHigh = 0x40000000 // SOC_DIRAM_DRAM_HIGH
	socRTCIRAMLow    = 0x400C0000 // SOC_RTC_IRAM_LOW
	socRTCIRAMHigh   = 0x400C2000 // SOC_RTC_IRAM_HIGH
	socRTCDRAMLow    = 0x3FF80000 // SOC_RTC_DRAM_LOW
	socRTCDRAMHigh   = 0x3FF82000 // SOC_RTC_DRAM_HIGH
	socRTCDataLow    = 0x50000000 // SOC_RTC_DATA_LOW
	socRTCDataHigh   = 0x50002000 // SOC_RTC_DATA_HIGH
	socROMStackStart = 0x3FFE3F20 // SOC_ROM_STACK_START

	// stackLoadHeadroom is STACK_LOAD_HEADROOM in esp_image_format.c.
	stackLoadHeadroom = 32768

	// The bootloader's own memory. bootloader.ld puts .dram0.bss at the
	// start of dram_seg (0x3FFF0000, so _dram_start is there) and data and
	// rodata after it; .iram_loader.text starts iram_loader_seg
	// (0x40078000). The ends are those of the v5.1.3 bootloader whose ROM
	// banner logger.rom prints ("load:0x3fff0030,len:7112",
	// "load:0x40078000,len:15624").
	bootDRAMStart       = 0x3FFF0000         // _dram_start
	bootDRAMEnd         = 0x3FFF0030 + 7112  // _dram_end
	bootLoaderTextStart = 0x40078000         // _loader_text_start
	bootLoaderTextEnd   = 0x40078000 + 15624 // _loader_text_end

	// bootSP is the bootloader's stack pointer when it loads the app
	// (esp_cpu_get_sp()): it runs on the ROM's stack, which grows down
	// from SOC_ROM_STACK_START; 1 KiB in use is an estimate. Only
	// sp - STACK_LOAD_HEADROOM matters, so a few hundred bytes either way
	// move the refused range by as much.
	bootSP = socROMStackStart - 0x400
)

// regionsOverlap is bootloader_util_regions_overlap (bootloader_util.h):
// half-open [start1,end1) and [start2,end2).
func regionsOverlap(start1, end1, start2, end2 int64) bool {
	return end1 > start2 && end2 > start1
}

func inRange(p, lo, hi int64) bool { return p >= lo && p < hi }

// diramDRAMToIRAM and diramIRAMToDRAM are esp_ptr_diram_dram_to_iram and
// esp_ptr_diram_iram_to_dram with SOC_DIRAM_INVERTED (ESP32's D/IRAM is
// word-reversed between its two buses).
func diramDRAMToIRAM(p int64) int64 { return socDIRAMIRAMLow + (socDIRAMDRAMHigh - p) - 4 }
func diramIRAMToDRAM(p int64) int64 { return socDIRAMDRAMLow + (socDIRAMIRAMHigh - p) - 4 }

// LoadRefusal returns why the second-stage bootloader of chip c refuses
// to load segment data of n bytes at addr ("" when it loads it, or does
// not load it at all: flash-mapped and reserved addresses below
// 0x10000000, should_load in esp_image_format.c). Only ESP32's memory map
// is modelled; other chips get "".
func (c Chip) LoadRefusal(addr, n uint32) string {
	if c != ChipESP32 || n == 0 || c.MappedRegion(addr) != "" || addr < 0x10000000 {
		return ""
	}
	return verifyLoadAddresses(int64(addr), int64(addr)+int64(n), false)
}

// verifyLoadAddresses is esp_image_format.c's verify_load_addresses
// (v5.1.3, BOOTLOADER_BUILD) for ESP32, multicore: it returns "" when
// [addr, end) may be loaded, else the reason ESP-IDF logs ("overlaps
// bootloader stack", "overlaps bootloader data", "overlaps loader IRAM",
// "bad load address range").
func verifyLoadAddresses(addr, end int64, noRecurse bool) string {
	if end == addr {
		return "" // zero-length segments are fine
	}
	last := end - 1
	switch {
	case inRange(addr, socDRAMLow, socDRAMHigh) && inRange(last, socDRAMLow, socDRAMHigh):
		if regionsOverlap(bootSP-stackLoadHeadroom, socROMStackStart, addr, end) {
			return "overlaps bootloader stack"
		}
		if regionsOverlap(bootDRAMStart, bootDRAMEnd, addr, end) {
			return "overlaps bootloader data"
		}
		if !noRecurse && regionsOverlap(socDIRAMDRAMLow, socDIRAMDRAMHigh, addr, end) {
			ia := diramDRAMToIRAM(socDIRAMDRAMLow)
			if inRange(addr, socDIRAMDRAMLow, socDIRAMDRAMHigh) {
				ia = diramDRAMToIRAM(addr)
			}
			ie := diramDRAMToIRAM(socDIRAMDRAMHigh)
			if inRange(last, socDIRAMDRAMLow, socDIRAMDRAMHigh) {
				ie = diramDRAMToIRAM(end)
			}
			return verifyLoadAddresses(min(ia, ie), max(ia, ie), true)
		}
	case inRange(addr, socIRAMLow, socIRAMHigh) && inRange(last, socIRAMLow, socIRAMHigh):
		if regionsOverlap(bootLoaderTextStart, bootLoaderTextEnd, addr, end) {
			return "overlaps loader IRAM"
		}
		if !noRecurse && regionsOverlap(socDIRAMIRAMLow, socDIRAMIRAMHigh, addr, end) {
			da := diramIRAMToDRAM(socDIRAMIRAMLow)
			if inRange(addr, socDIRAMIRAMLow, socDIRAMIRAMHigh) {
				da = diramIRAMToDRAM(addr)
			}
			de := diramIRAMToDRAM(socDIRAMIRAMHigh)
			if inRange(last, socDIRAMIRAMLow, socDIRAMIRAMHigh) {
				de = diramIRAMToDRAM(end)
			}
			return verifyLoadAddresses(min(da, de), max(da, de), true)
		}
	case inRange(addr, socRTCIRAMLow, socRTCIRAMHigh) && inRange(last, socRTCIRAMLow, socRTCIRAMHigh),
		inRange(addr, socRTCDRAMLow, socRTCDRAMHigh) && inRange(last, socRTCDRAMLow, socRTCDRAMHigh),
		inRange(addr, socRTCDataLow, socRTCDataHigh) && inRange(last, socRTCDataLow, socRTCDataHigh):
		// Entirely in RTC memory: a vanilla bootloader does not live there.
	default:
		return "bad load address range"
	}
	return ""
}
