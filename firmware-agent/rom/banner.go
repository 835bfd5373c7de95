package rom

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"
)

// The ROM's messages after a reset. ESP32 prints "ets <date>" and the
// reset reason with ESP32 names; the later chips an "ESP-ROM:" build line.
// The download-mode lines are the ones esptool and esptool-js look for
// ("boot:0x.. ... waiting for download", esptool-js _connectAttempt); the
// texts are those real chips print in reports on the esptool and ESP-IDF
// trackers (e.g. esptool issue 1123 for "invalid header: 0xffffffff").

func (c *Chip) banner(rev uint16) []string {
	if c == ESP32 && rev < 300 {
		return []string{"ets Jun  8 2016 00:22:57", ""}
	}
	return c.romBanner
}

// resetLine is the "rst:...,boot:..." line for a power-on (EN) reset.
func (c *Chip) resetLine(mode BootMode, watchdog bool) string {
	if c == ESP32 {
		rst := "rst:0x1 (POWERON_RESET)"
		if watchdog {
			rst = "rst:0x10 (RTCWDT_RTC_RESET)"
		}
		if mode == DownloadBoot {
			return rst + ",boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))"
		}
		return rst + ",boot:0x13 (SPI_FAST_FLASH_BOOT)"
	}
	rst := "rst:0x1 (POWERON)"
	if watchdog {
		rst = "rst:0x7 (TG0WDT_SYS_RST)"
	}
	if mode == DownloadBoot {
		switch c {
		case ESP32C3:
			return rst + ",boot:0x7 (DOWNLOAD(USB/UART0/1))"
		case ESP32S3:
			return rst + ",boot:0x0 (DOWNLOAD(USB/UART0))"
		}
		return rst + ",boot:0x0 (DOWNLOAD(USB/UART0/1))"
	}
	switch c {
	case ESP32S3:
		return rst + ",boot:0x8 (SPI_FAST_FLASH_BOOT)"
	case ESP32C3:
		return rst + ",boot:0xc (SPI_FAST_FLASH_BOOT)"
	}
	return rst + ",boot:0x8 (SPI_FAST_FLASH_BOOT)"
}

func crlf(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n" }

// DownloadBanner is what the ROM prints when it starts in download mode.
func DownloadBanner(c *Chip, rev uint16) string {
	return crlf(append(append([]string(nil), c.banner(rev)...), c.resetLine(DownloadBoot, false), "waiting for download")...)
}

// FlashBootHeader reads the first word of the second-stage bootloader
// and reports whether it starts with the image magic 0xE9 (the ROM
// checks it before loading; esp_image_format.h ESP_IMAGE_HEADER_MAGIC).
func FlashBootHeader(c *Chip, fl io.ReaderAt) (word uint32, ok bool) {
	var b [4]byte
	if fl == nil {
		return 0xFFFFFFFF, false
	}
	if _, err := fl.ReadAt(b[:], int64(c.BootloaderOffset)); err != nil {
		return 0xFFFFFFFF, false
	}
	word = binary.LittleEndian.Uint32(b[:])
	return word, b[0] == 0xE9
}

// Boot-loop pacing: the ROM retries the header a few times a second and
// the RTC watchdog resets the chip after a few seconds (approximate: the
// real rates have not been measured).
const (
	bootLoopLine = 100 * time.Millisecond
	bootLoopWDT  = 3 * time.Second
)

// BootLoop prints what a chip whose flash holds no valid bootloader
// prints forever: the banner, "invalid header: 0x<first word>" again and
// again, then a watchdog reset and the same again, until ctx ends (the
// chip is reset) or w fails.
func BootLoop(ctx context.Context, w io.Writer, c *Chip, rev uint16, word uint32) error {
	watchdog := false
	for {
		if _, err := io.WriteString(w, crlf(append(append([]string(nil), c.banner(rev)...), c.resetLine(FlashBoot, watchdog))...)); err != nil {
			return err
		}
		watchdog = true
		deadline := time.Now().Add(bootLoopWDT)
		for time.Now().Before(deadline) {
			if _, err := fmt.Fprintf(w, "invalid header: 0x%08x\r\n", word); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(bootLoopLine):
			}
		}
	}
}
