package device

import (
	"fmt"
	"io"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/partition"
)

// logger writes ESP-IDF style lines, "I (31) boot: ...", with a
// millisecond counter that restarts at every boot. The counter is the
// time since boot plus a nominal cost per line, so logs look like a real
// chip's even when the emulation runs in microseconds.
type logger struct {
	w      io.Writer
	start  time.Time
	nLines int
}

func newLogger(w io.Writer) *logger { return &logger{w: w} }

func (l *logger) ms() int64 {
	return 31 + int64(l.nLines)*4 + time.Since(l.start).Milliseconds()
}

func (l *logger) raw(format string, args ...any) {
	if l.w != nil {
		fmt.Fprintf(l.w, format+"\n", args...)
	}
}

func (l *logger) line(level byte, tag, text string) {
	if l.w != nil {
		fmt.Fprintf(l.w, "%c (%d) %s: %s\n", level, l.ms(), tag, text)
	}
	l.nLines++
}

// rom prints the first-stage (ROM) bootloader's banner and restarts the
// counter.
func (l *logger) rom(powerOn bool, chipRev uint16) {
	l.start, l.nLines = time.Now(), 0
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
	l.raw("mode:DIO, clock div:2")
	l.raw("load:0x3fff0030,len:7112")
	l.raw("load:0x40078000,len:15624")
	l.raw("load:0x40080400,len:4")
	l.raw("load:0x40080404,len:3876")
	l.raw("entry 0x4008064c")
}

func (l *logger) bootHeader(d *Device) {
	l.line('I', "boot", "ESP-IDF v5.1.3 2nd stage bootloader")
	l.line('I', "boot", "compile time Mar  1 2024 12:00:00")
	l.line('I', "boot", "Multicore bootloader")
	l.line('I', "boot", "chip revision: "+espimage.RevString(d.cfg.ChipRev))
	l.line('I', "boot.esp32", "SPI Speed      : 40MHz")
	l.line('I', "boot.esp32", "SPI Mode       : DIO")
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
	img := d.image
	l.line('I', "cpu_start", "Multicore app")
	l.line('I', "cpu_start", "Pro cpu up.")
	l.line('I', "cpu_start", fmt.Sprintf("Starting app cpu, entry point is 0x%08x", img.Entry))
	l.line('I', "cpu_start", "App cpu up.")
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
	l.line('I', "app_start", "Starting scheduler on CPU0")
	l.line('I', "main_task", "Started on CPU0")
	l.line('I', "main_task", "Calling app_main()")
}
