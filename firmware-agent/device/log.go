package device

import (
	"fmt"
	"io"
	"strings"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/partition"
)

// logger writes ESP-IDF style lines, "I (31) boot: ...", stamped with
// the emulated time since reset (bootClock): each line costs its bytes
// at the console's rate, and the work between lines (flash reads,
// hashing, start-up) costs what the boot-time model says.
type logger struct {
	w     io.Writer
	clock bootClock
}

func newLogger(w io.Writer) *logger { return &logger{w: w} }

// write sends s to the console at the time the clock says, then charges
// the UART for it and for extra bytes a real build sends with it. The
// bytes go out even when nobody listens.
func (l *logger) write(s string, extra int) {
	l.clock.wait()
	if l.w != nil {
		io.WriteString(l.w, s)
	}
	l.clock.print(len(s) + extra)
}

func (l *logger) raw(format string, args ...any) {
	l.write(fmt.Sprintf(format+"\n", args...), rawLineExtra)
}

func (l *logger) line(level byte, tag, text string) {
	ms := l.clock.now().Milliseconds()
	l.write(fmt.Sprintf("%c (%d) %s: %s\n", level, ms, tag, text), logLineExtra)
}

// lineOther logs a line from the APP CPU, which runs beside the PRO CPU
// the clock follows: it takes line time but does not hold the PRO CPU.
func (l *logger) lineOther(level byte, tag, text string) {
	s := fmt.Sprintf("%c (%d) %s: %s\n", level, l.clock.now().Milliseconds(), tag, text)
	l.clock.wait()
	if l.w != nil {
		io.WriteString(l.w, s)
	}
	l.clock.printOther(len(s) + logLineExtra)
}

// romLoads are the second-stage bootloader's segments as the ROM loads
// and logs them (ESP-IDF v5.1.3's bootloader for ESP32).
var romLoads = [...]struct{ addr, n uint32 }{
	{0x3fff0030, 7112}, {0x40078000, 15624}, {0x40080400, 4}, {0x40080404, 3876},
}

// rom resets the clock and prints the first-stage (ROM) bootloader's
// banner; it loads each segment of the second-stage bootloader after
// logging it. The second stage starts once the ROM's output has left the
// FIFO (bootloader_console_init waits for it).
func (l *logger) rom(powerOn bool, chipRev uint16, realtime bool, fc flashConfig) {
	l.clock.start(realtime)
	// The ROM's build date: ESP32 v3 (ECO3) has a newer ROM.
	if chipRev >= 300 {
		l.raw("ets Jul 29 2019 12:21:46")
	} else {
		l.raw("ets Jun  8 2016 00:22:57")
	}
	l.raw("")
	if powerOn {
		l.raw("rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)")
	} else {
		l.raw("rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)")
	}
	l.raw("configsip: 0, SPIWP:0xee")
	l.raw("clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00")
	l.raw("mode:%s, clock div:%d", fc.header().SPIModeName(), fc.clockDiv())
	for _, s := range romLoads {
		l.raw("load:0x%08x,len:%d", s.addr, s.n)
		l.clock.work(fc.verify(int(s.n)))
	}
	l.raw("entry 0x4008064c")
	l.clock.waitIdle()
	l.clock.work(bootloaderInit)
}

func (l *logger) bootHeader(d *Device, fc flashConfig) {
	h := fc.header()
	l.line('I', "boot", "ESP-IDF v5.1.3 2nd stage bootloader")
	l.line('I', "boot", "compile time Mar  1 2024 12:00:00")
	l.line('I', "boot", "Multicore bootloader")
	l.line('I', "boot", "chip revision: "+espimage.RevString(d.cfg.ChipRev))
	l.line('I', "boot.esp32", "SPI Speed      : "+h.SPISpeedName())
	l.line('I', "boot.esp32", "SPI Mode       : "+h.SPIModeName())
	l.line('I', "boot.esp32", fmt.Sprintf("SPI Flash Size : %dMB", BootFlashSize(d.fl, d.fl.Size())>>20))
	l.line('I', "boot", "Enabling RNG early entropy source...")
}

// usage is the "Usage" column of the bootloader's partition table dump.
func usage(p partition.Partition) string {
	switch p.Type {
	case partition.TypeApp:
		switch {
		case p.Subtype == partition.SubtypeFactory:
			return "factory app"
		case p.Subtype == partition.SubtypeTest:
			return "test app"
		case p.Subtype&0xF0 == partition.SubtypeOTA0:
			return "OTA app"
		}
		return "Unknown app"
	case partition.TypeData:
		switch p.Subtype {
		case partition.SubtypeOTAData:
			return "OTA data"
		case partition.SubtypePHY:
			return "RF data"
		case partition.SubtypeNVS:
			return "WiFi data"
		case partition.SubtypeNVSKeys:
			return "NVS keys"
		case partition.SubtypeEFuse:
			return "efuse"
		}
		return "Unknown data"
	}
	return "unknown"
}

func (l *logger) table(t *partition.Table) {
	l.line('I', "boot", "Partition Table:")
	l.line('I', "boot", "## Label            Usage          Type ST Offset   Length")
	for i, p := range t.Partitions {
		l.line('I', "boot", fmt.Sprintf("%2d %-16s %-16s %02x %02x %08x %08x",
			i, p.Name, usage(p), uint8(p.Type), p.Subtype, p.Offset, p.Size))
	}
	l.line('I', "boot", "End of partition table")
}

// app prints what the app's startup code logs before app_main, as
// ESP-IDF v5.1.3 does: everything under the cpu_start tag
// (esp_system/port/cpu_start.c call_start_cpu0 and startup.c
// start_cpu0_default; the app_init and efuse_init tags arrived in v5.3),
// the ELF SHA-256 cut to CONFIG_APP_RETRIEVE_LEN_ELF_SHA = 16 hex digits
// (esp_app_get_elf_sha256 into char buf[17]), then freertos/app_startup.c.
func (l *logger) app(d *Device) {
	l.line('I', "boot", "Disabling RNG early entropy source...")
	l.clock.work(appHandoff)
	img := d.image
	l.line('I', "cpu_start", "Multicore app")
	l.line('I', "cpu_start", "Pro cpu up.")
	l.line('I', "cpu_start", fmt.Sprintf("Starting app cpu, entry point is 0x%08x", img.Entry))
	l.line('I', "cpu_start", "App cpu up.")
	// esp_clk_init waits for the console before switching to 160 MHz.
	l.clock.waitIdle()
	l.clock.work(appClockInit)
	l.line('I', "cpu_start", "Pro cpu start user code")
	l.line('I', "cpu_start", "cpu freq: 160000000 Hz")
	if a := img.App; a != nil {
		l.line('I', "cpu_start", "Application information:")
		l.line('I', "cpu_start", "Project name:     "+a.ProjectName)
		l.line('I', "cpu_start", "App version:      "+a.Version)
		l.line('I', "cpu_start", "Compile time:     "+a.Date+" "+a.Time)
		l.line('I', "cpu_start", "ELF file SHA256:  "+fmt.Sprintf("%x", a.ELFSHA256[:8])+"...")
		l.line('I', "cpu_start", "ESP-IDF:          "+a.IDFVer)
	}
	// CONFIG_ESP_REV_MIN_FULL / CONFIG_ESP_REV_MAX_FULL are what esptool
	// wrote into the header; v5.1.3's ESP32 maximum is v3.99.
	maxRev := img.MaxChipRevFull
	if maxRev == 0 || maxRev == 0xFFFF {
		maxRev = 399
	}
	l.line('I', "cpu_start", "Min chip rev:     "+espimage.RevString(img.MinChipRevFull))
	l.line('I', "cpu_start", "Max chip rev:     "+espimage.RevString(maxRev)+" ")
	l.line('I', "cpu_start", "Chip rev:         "+espimage.RevString(d.cfg.ChipRev))
	// heap_init and spi_flash log these before the scheduler starts. The
	// heap regions depend on the app's .bss, which the image does not
	// carry: these are the regions of the ESP-IDF v5.1 ESP32 log the
	// package doc cites.
	for _, s := range heapLog {
		l.line('I', "heap_init", s)
	}
	l.line('I', "spi_flash", "detected chip: generic")
	l.line('I', "spi_flash", "flash io: "+strings.ToLower(d.flashCfg.header().SPIModeName()))
	l.line('I', "app_start", "Starting scheduler on CPU0")
	l.lineOther('I', "app_start", "Starting scheduler on CPU1")
	l.line('I', "main_task", "Started on CPU0")
	// main_task waits for CPU1's start-up and the task watchdog: the
	// next timestamp is a tick later.
	l.clock.tick()
	l.line('I', "main_task", "Calling app_main()")
	l.clock.appStarted()
}

var heapLog = [...]string{
	"Initializing. RAM available for dynamic allocation:",
	"At 3FFAE6E0 len 00001920 (6 KiB): DRAM",
	"At 3FFB8448 len 00027BB8 (158 KiB): DRAM",
	"At 3FFE0440 len 00003AE0 (14 KiB): D/IRAM",
	"At 3FFE4350 len 0001BCB0 (111 KiB): D/IRAM",
	"At 40095634 len 0000A9CC (42 KiB): IRAM",
}
