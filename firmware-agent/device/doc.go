// Package device is a virtual ESP32: emulated flash, partition table,
// second-stage bootloader rules and ESP-IDF's OTA API as NodeMCU's
// otaupgrade module exposes it.
//
// The behaviour follows ESP-IDF v5.1.3 (bootloader_utility.c,
// esp_ota_ops.c) and NodeMCU's otaupgrade.c call for call, including
// their quirks: see the comments at each method. The agent (issue 4) and
// the Lua harness (issue 6) use these names.
//
// # Boot time
//
// A boot takes as long as on a real ESP32 running ESP-IDF v5.1.3 with
// its defaults, and depends on what the boot does: how many lines it
// logs, how large the image it reads and hashes is, which of its segments
// it copies to RAM, the flash mode and clock. Every log line carries the
// milliseconds since reset at which a real chip prints it ("I (NNN)";
// esp_log_early_timestamp counts CPU cycles since reset, log_freertos.c).
// When the flash has a timing model (flash.Timing not zero: `gota device
// run`, `gota serve` and `gota bench` use flash.RealisticTiming), each
// line is held back until the wall clock reaches the time it claims, so
// a host sees the lines arrive as from a board, and Open and Reboot
// return (and the agent starts) only at app_main. With a zero timing, or
// Config.InstantBoot, the boot is instant and only the timestamps tell.
// Device.BootTime returns the modelled time from reset to app_main.
//
// The model (boottime.go), in the order of the boot; file names are
// ESP-IDF v5.1.3's:
//
//   - The console is UART0 at 115200 8N1 with a 128-byte TX FIFO (ESP32
//     Technical Reference Manual, UART). esp_rom_printf waits for room in
//     the FIFO, so once it is full the CPU runs at line speed. Each line
//     costs the bytes a default build sends: the text, the ANSI colour
//     codes LOG_FORMAT adds (CONFIG_LOG_COLORS defaults to y,
//     components/log/Kconfig and esp_log.h) and CRLF.
//   - The ROM prints its banner and each bootloader segment it loads
//     (CONFIG_BOOT_ROM_LOG_ALWAYS_ON, the default). The second stage's
//     bootloader_console_init waits for the FIFO to empty
//     (esp_rom_uart_tx_wait_idle, bootloader_console.c); 1 ms of
//     bootloader_init later comes the banner: at 29 ms, as in real logs.
//   - The bootloader logs at INFO (CONFIG_BOOTLOADER_LOG_LEVEL_INFO, the
//     default). It maps the partition table and checks its MD5, reads both
//     otadata sectors, and erases and programs a sector for each otadata
//     write (the flash's Timing).
//   - bootloader_load_image is image_load(ESP_IMAGE_LOAD), which verifies
//     (CONFIG_BOOTLOADER_SKIP_VALIDATE_* are off by default):
//     process_segment_data reads every segment through the flash cache,
//     XORs each word into the checksum, feeds 1 KiB chunks to the SHA-256
//     engine and, for a segment loaded to IRAM/DRAM, writes each word
//     there (esp_image_format.c). Per byte this costs the flash read at
//     the SPI mode and clock of the bootloader's image header (clock ×
//     data lines / 8: DIO at 40 MHz, esptool's default, reads 10 MB/s,
//     100 ns a byte) plus 265 ns of CPU for a flash-mapped segment or
//     315 ns for a loaded one; finishing the image (process_checksum,
//     process_appended_hash, verify_simple_hash) costs 11 ms.
//   - The app: 12 ms from "Disabling RNG early entropy source..." to
//     "Multicore app" (unpack_load_app, call_start_cpu0); esp_clk_init
//     waits for the FIFO to empty before it switches the CPU to 160 MHz
//     (port/soc/esp32/clk.c), then 3 ms to "Pro cpu start user code".
//     The start-up lines follow (startup.c, heap_init, spi_flash,
//     app_startup.c; CPU1's "Starting scheduler on CPU1" does not hold
//     CPU0). Once the scheduler runs, timestamps count FreeRTOS ticks
//     (10 ms, CONFIG_FREERTOS_HZ = 100) and main_task calls app_main one
//     tick after "Started on CPU0".
//
// The CPU costs are fitted to the timestamps of published boot logs of
// ESP32s reading flash in DIO at 40 MHz; TestBootTimeMatchesRealLogs
// boots images laid out like theirs and compares:
//
//   - espressif/esp-self-reflasher,
//     examples/boot_swap_embedded_example/README.md (ESP-IDF v5.1.4, chip
//     v3.0; segments 1149424 map, 8484 load, 21716 load, 79992 map, 29248
//     load): segment 0 at 114 ms, "Loaded app" at 600, app_main at 739.
//     The model: 112, 608, 749.
//   - An ESP-IDF v5.1 http-client example's README (chip v3.0; 233952
//     map, 14340 load, 13828 load, 659220 map, 73776 load): 94, 481, 619.
//     The model: 93, 483, 623.
//   - An ESP-IDF v6.0.2 log (chip v3.1; 107944 map, 17704 load, 5400
//     load, 549360 map, 82160 load, 40 load): 298 ms from segment 0 to
//     "Loaded app"; the model: 307.
//
// (The code index found the last two in READMEs without naming their
// repositories.) The model is within 3% of the v5.1 logs and slower
// than each, never faster. An older log at 80 MHz (ESP-IDF v4.2.2, 742328
// bytes mapped in 250 ms; the model: 234) suggests it is about 6% fast
// there.
//
// Figures for the shared LEDController v1.1 image (316944 bytes: 237576
// mapped, 79264 loaded) in ota_0 of DefaultTable: at power-on with blank
// otadata the banner is at 29 ms, segment 0 at 113 ms, "Loaded app" at
// 252 ms and app_main at 400 ms; after a reboot app_main is at 389 ms.
// With flash.RealisticTiming the first boot also erases an otadata
// sector for its initial entry (45 ms): app_main at 440 ms.
//
// Not modelled: secure boot and flash encryption, deep-sleep wake-ups,
// the skip-validation options, what an app does after app_main (the
// agents model their own start), and the heap regions heap_init prints
// (they depend on the app's .bss; the lines show the v5.1 log's).
// CPU1's own "I (0) cpu_start: App cpu up." is printed with CPU0's time.
package device
