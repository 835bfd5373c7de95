package device

import (
	"io"
	"time"

	"github.com/gota-dev/gota/core/espimage"
)

// The boot-time model. The package documentation says where each figure
// comes from; the comments here say which step of the boot it stands for.

const (
	// consoleBaud is UART0's rate for the ROM, the bootloader and the
	// app's start-up (the ROM's default, CONFIG_ESP_CONSOLE_UART_BAUDRATE).
	consoleBaud = 115200
	// txFIFO is UART0's transmit FIFO (ESP32 TRM, UART: 128 bytes). The
	// ROM's and the bootloader's printf (esp_rom_printf) waits for room
	// in it, so a CPU that logs faster than the line runs at line speed.
	txFIFO = 128
	// byteTime is one 8N1 character at consoleBaud.
	byteTime = time.Second * 10 / consoleBaud
	// logLineExtra is what a default v5.1.3 build sends with each log
	// line beyond the text this emulator writes: the ANSI colour codes
	// (CONFIG_LOG_COLORS defaults to y; LOG_FORMAT wraps the line in
	// "\033[0;32m" and "\033[0m") and the CR of the CRLF line end
	// (esp_rom_uart_putc turns '\n' into "\r\n", esp_rom_uart.h; the
	// app's stdout defaults to CRLF, CONFIG_NEWLIB_STDOUT_LINE_ENDING_CRLF).
	// The model charges them so lines are as far apart as a real board's.
	logLineExtra = 7 + 4 + 1
	// rawLineExtra is the CR the ROM sends before each LF.
	rawLineExtra = 1

	// mapCPUPerByte and loadCPUPerByte are what the bootloader's CPU
	// (80 MHz) spends per image byte on top of reading it through the
	// flash cache: process_segment_data XORs each word into the checksum
	// and feeds 1 KiB chunks to the SHA-256 engine; for a load segment it
	// also writes each word, obfuscated, to IRAM/DRAM. Fitted to real
	// ESP32 logs (see the package doc), as are the fixed costs below.
	mapCPUPerByte  = 265 * time.Nanosecond
	loadCPUPerByte = 315 * time.Nanosecond
	// imageEndCost is that of finishing an image (process_checksum,
	// process_appended_hash, verify_simple_hash; each maps flash again).
	imageEndCost = 11 * time.Millisecond
	// bootloaderInit is bootloader_init after bootloader_console_init has
	// waited for the ROM's output to leave the FIFO: up to the banner.
	bootloaderInit = time.Millisecond
	// appHandoff runs from "Disabling RNG early entropy source..." to the
	// app's "Multicore app": unpack_load_app maps the flash segments and
	// jumps, then call_start_cpu0 sets up memory, caches and interrupts.
	appHandoff = 12 * time.Millisecond
	// appClockInit is what call_start_cpu0 does after esp_clk_init has
	// waited for the console to drain (to switch the CPU to 160 MHz)
	// until start_cpu0_default prints "Pro cpu start user code".
	appClockInit = 3 * time.Millisecond
	// schedulerTick is one FreeRTOS tick (CONFIG_FREERTOS_HZ = 100): once
	// the scheduler runs, esp_log_timestamp counts in ticks, and
	// main_task reaches app_main one tick after "Started on CPU0".
	schedulerTick = 10 * time.Millisecond
)

// flashConfig is the SPI mode and clock the bootloader reads flash with:
// those of its own image header (bootloader_flash_config_esp32.c
// update_flash_config, print_flash_info).
type flashConfig struct {
	mode, speed uint8 // espimage.Header SPIMode, SPISpeed
}

// defaultFlashConfig is esptool's default for ESP32: DIO at 40 MHz.
var defaultFlashConfig = flashConfig{mode: 2, speed: 0}

// readFlashConfig returns the bootloader's flash settings: from the
// bootloader image if there is one, else the default.
func readFlashConfig(r io.ReaderAt, chip espimage.Chip) flashConfig {
	var h [4]byte
	if _, err := r.ReadAt(h[:], int64(BootloaderOffset(chip))); err != nil || h[0] != espimage.Magic {
		return defaultFlashConfig
	}
	fc := flashConfig{mode: h[2], speed: h[3] & 0x0F}
	if fc.bytesPerSecond() == 0 {
		return defaultFlashConfig
	}
	return fc
}

func (fc flashConfig) header() *espimage.Header {
	return &espimage.Header{SPIMode: fc.mode, SPISpeed: fc.speed}
}

// bytesPerSecond is the SPI read rate: the clock times the data lines
// (4 for QIO/QOUT, 2 for DIO/DOUT, 1 for FAST_READ/SLOW_READ) over 8;
// DIO at 40 MHz gives 10 MB/s. 0 for codes the ESP32 does not know.
func (fc flashConfig) bytesPerSecond() int64 {
	var hz int64
	switch fc.speed {
	case 0:
		hz = 40e6
	case 1:
		hz = 80000000 / 3 // 26.7 MHz
	case 2:
		hz = 20e6
	case 0xF:
		hz = 80e6
	default:
		return 0
	}
	lanes := int64(1)
	switch fc.mode {
	case 0, 1:
		lanes = 4
	case 2, 3:
		lanes = 2
	case 4, 5:
	default:
		return 0
	}
	return hz * lanes / 8
}

// clockDiv is the divider of the 80 MHz SPI clock the ROM prints
// ("clock div:2" for 40 MHz).
func (fc flashConfig) clockDiv() int {
	switch fc.speed {
	case 1:
		return 3
	case 2:
		return 4
	case 0xF:
		return 1
	}
	return 2
}

// read is the time to read n bytes of flash.
func (fc flashConfig) read(n int) time.Duration {
	return time.Duration(int64(n) * int64(time.Second) / fc.bytesPerSecond())
}

// verify is the time the bootloader takes to read, checksum and hash n
// bytes of flash that it does not copy to RAM.
func (fc flashConfig) verify(n int) time.Duration {
	return fc.read(n) + time.Duration(n)*mapCPUPerByte
}

// imageWork is what esp_image_format.c's image_load does between two log
// lines, in the units the model charges.
type imageWork struct {
	loaded int // bytes of load segments (and their headers)
	mapped int // bytes of other segments (and their headers)
	ends   int // images finished (checksum and digest checked)
}

func (w *imageWork) add(o imageWork) {
	w.loaded += o.loaded
	w.mapped += o.mapped
	w.ends += o.ends
}

// image is the time w takes.
func (fc flashConfig) image(w imageWork) time.Duration {
	return fc.read(w.loaded+w.mapped) +
		time.Duration(w.loaded)*loadCPUPerByte +
		time.Duration(w.mapped)*mapCPUPerByte +
		time.Duration(w.ends)*imageEndCost
}

// bootClock is the emulated time since the last reset: what the CPU has
// done (t) and when UART0 will have sent what it holds (txEnd). With
// realtime set, the logger holds each line back until the wall clock
// reaches the time the line claims, so a host sees the boot as long as
// a real one; without it the boot is instant and only the timestamps
// tell the modelled time.
type bootClock struct {
	realtime bool
	reset    time.Time     // wall time of the reset
	t        time.Duration // CPU time since reset
	txEnd    time.Duration // when the UART's FIFO is empty
	booted   bool          // app_main reached: time runs on the wall clock
	appMain  time.Duration // t at app_main
	bootedAt time.Time     // wall time at app_main
	last     time.Duration // last timestamp handed out (kept monotonic)
}

// start is a reset: the ROM starts at time zero with an empty FIFO.
func (c *bootClock) start(realtime bool) {
	*c = bootClock{realtime: realtime, reset: time.Now()}
}

// work advances the CPU by d.
func (c *bootClock) work(d time.Duration) { c.t += d }

// now is the timestamp of a line logged now.
func (c *bootClock) now() time.Duration {
	ts := c.t
	if c.booted {
		ts = c.appMain + time.Since(c.bootedAt)
	}
	c.last = max(c.last, ts)
	return c.last
}

// wait holds the caller until the wall clock reaches the CPU time, in
// realtime mode and before app_main (after it, time is the wall clock).
func (c *bootClock) wait() {
	if c.realtime && !c.booted {
		if d := time.Until(c.reset.Add(c.t)); d > 0 {
			time.Sleep(d)
		}
	}
}

// print puts n bytes into the TX FIFO: the CPU goes on once all but a
// FIFO's worth are on the line.
func (c *bootClock) print(n int) {
	c.txEnd = max(c.txEnd, c.t) + time.Duration(n)*byteTime
	c.t = max(c.t, c.txEnd-txFIFO*byteTime)
}

// printOther puts n bytes into the FIFO from the other CPU: they take
// line time, but this CPU does not wait for them.
func (c *bootClock) printOther(n int) {
	c.txEnd = max(c.txEnd, c.t) + time.Duration(n)*byteTime
}

// waitIdle is esp_rom_uart_tx_wait_idle: the CPU waits until the FIFO is
// empty.
func (c *bootClock) waitIdle() { c.t = max(c.t, c.txEnd) }

// tick waits for the next scheduler tick after the last timestamp.
func (c *bootClock) tick() {
	c.t = max(c.t, c.last+schedulerTick)
}

// appStarted marks app_main: the rest of the log runs on the wall clock.
func (c *bootClock) appStarted() {
	c.wait()
	c.booted, c.appMain, c.bootedAt = true, c.t, time.Now()
	c.last = max(c.last, c.t)
}
