package flash

import "time"

// Guard is told when each erase or program starts and ends, as ESP-IDF's
// flash guard is: on a real ESP32 the SPI1 start hook
// (spi_flash_disable_interrupts_caches_and_other_cpu) disables the cache,
// stalls the other CPU and every interrupt that is not IRAM-safe for as
// long as one operation lasts. The emulated line (link.FlashGuard) uses it
// to stop the device's tasks and, unless it is in IRAM, its UART ISR.
type Guard interface {
	// Start is called as an operation that takes d begins.
	Start(d time.Duration)
	// End is called once it is over.
	End()
}

// MaxWriteChunk is the most esp_flash_write programs with interrupts off:
// it splits a write into chunks of MAX_WRITE_CHUNK = 8192 bytes and ends
// the guarded window between them (components/spi_flash/esp_flash_api.c,
// ESP-IDF v5.1.3). Erases are guarded one sector or block at a time
// (esp_flash_erase_region); CONFIG_SPI_FLASH_YIELD_DURING_ERASE only adds
// a task yield after every 20 ms (CONFIG_SPI_FLASH_ERASE_YIELD_DURATION_MS)
// of erasing, between those windows, so it does not shorten them.
const MaxWriteChunk = 8192

// SetGuard sets the guard told of every operation; nil removes it.
func (f *Flash) SetGuard(g Guard) {
	f.mu.Lock()
	f.guard = g
	f.mu.Unlock()
}

// busy spends d on one guarded operation.
func (f *Flash) busy(d time.Duration) {
	f.mu.Lock()
	g := f.guard
	f.mu.Unlock()
	if d <= 0 {
		return // an instant operation (zero Timing) opens no window
	}
	if g == nil {
		sleep(d)
		return
	}
	g.Start(d)
	sleep(d)
	g.End()
}

// busyProgram spends the time of programming pages pages, in windows of
// at most MaxWriteChunk bytes.
func (f *Flash) busyProgram(pages int) {
	const perWindow = MaxWriteChunk / PageSize
	for pages > 0 {
		n := min(pages, perWindow)
		f.busy(time.Duration(n) * f.pageTime())
		pages -= n
	}
}

func (f *Flash) pageTime() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.timing.PageProgram
}
