// Package rom emulates the first-stage (ROM) bootloader of an ESP32,
// ESP32-S2, ESP32-S3 or ESP32-C3 in download mode, the flasher stubs
// hosts upload to it, and the reset circuit that gets a board there.
//
// # API
//
//   - New(Config) returns a Loader; Loader.Serve answers the serial
//     protocol on a Port (a *link.End) until the host makes the chip leave
//     download mode (*Exit), starts a program the emulator does not know
//     (ErrHung; the Loader stays deaf from then on), or the port fails.
//     A Loader keeps its state across Serve calls (line cuts); Close ends
//     it at the chip's reset. Config.OnStub reports a stub starting.
//   - Board models EN and GPIO0 driven by DTR/RTS (auto-reset circuit or
//     USB-Serial-JTAG) and says when the chip resets and in which boot
//     mode; DownloadBanner and BootLoop are the text the ROM prints.
//   - Chips, ChipByName, KnownStubs describe what is emulated.
//
// # Sources
//
// The protocol follows esptool's docs/en/advanced-topics/serial-protocol.rst
// and what esptool (esptool/loader.py, esptool/targets/*.py, v5.3.1) and
// esptool-js 0.7.0 (lib/esploader.js, lib/targets/*.js) send and expect:
//
//   - SLIP framing; request header direction 0, opcode, 16-bit size,
//     32-bit checksum (XOR of the _DATA payload, seed 0xEF); reply header
//     direction 1, opcode, size, 32-bit value.
//   - The ROM's status trailer is 4 bytes (status, error, 2 reserved) on
//     all four chips; the stub's is 2. Error codes: ROM 0x01..0x0F, stub
//     0xC0..0xC9 and 0xFF (stub_flasher.h).
//   - SYNC is answered 8 times by the ROM with value 0x20120707, once by
//     the stub with value 0 (esptool's sync_stub_detected). The ROM keeps
//     the last value in later replies' value field (ESP32-C6 trace in
//     esptool issue 1160).
//   - Chip detection: CHIP_DETECT_MAGIC_REG 0x40001000, GET_SECURITY_INFO
//     (absent on ESP32, 12 bytes on S2, 20 with the chip id on S3/C3).
//     MAC and revision come from the eFuse words esptool reads (chip.go).
//   - Flash id: esptool runs RDID (0x9F) through the SPI0 user-command
//     registers; the emulated controller answers with a Winbond id whose
//     capacity byte gives the flash size.
//   - FLASH_BEGIN/FLASH_DEFL_BEGIN: four words to the ESP32 ROM (a fifth,
//     the encrypted-write flag, is refused with 0x05), four or five to
//     later ROMs and the stub (esptool loader.py flash_begin).
//   - FLASH_BEGIN: the ROM erases the whole region before it answers;
//     each FLASH_DATA is programmed and read back before the answer
//     (0x08 "flash write error" on a mismatch, e.g. over unerased data).
//     The stub erases just in time (64 KiB blocks where a whole block lies
//     ahead, else 4 KiB sectors) and answers each block before it writes
//     it, so the host's next block travels while it writes (its
//     pipelining); a write failure shows on a later reply. All flash time
//     is the emulated flash's own timing model (package flash).
//   - SPI_FLASH_MD5: 32 hex characters from the ROM, 16 raw bytes from
//     the stub. READ_FLASH (stub) sends raw packets under the host's
//     acknowledgements, then the MD5.
//   - FLASH_END/FLASH_DEFL_END: 0 reboots, 1 runs the user code; the ROM
//     leaves the loader either way, the stub stays on 1.
//   - CHANGE_BAUDRATE: answered at the old rate, then the chip switches.
//
// # Flasher stubs: a simplification
//
// The emulator does not execute Xtensa or RISC-V code. When a host
// uploads code with MEM_BEGIN/MEM_DATA and starts it with MEM_END, the
// emulator compares the SHA-256 of the two uploaded segments, their load
// addresses and the entry point against KnownStubs (the esp-flasher-stub
// v1.2.2 images that esptool-js 0.7.0 and esptool 5.3.1 ship, and
// esptool's legacy stub v1.11.1). A match makes the chip send "OHAI" and
// answer as that stub does from then on. Anything else makes it stop
// answering until reset, as unknown code would: a host can never get stub
// behaviour by uploading something that is not a published stub. Only the
// digests are kept here, not the stub images.
//
// # Not modelled (yet)
//
//   - Baud-rate autodetection on SYNC: the ROM listens at 115200 only.
//   - Secure download mode, flash encryption, and SPI_ATTACH being
//     required before flash commands (the emulator accepts them without).
//   - Unknown commands (GET_SECURITY_INFO on ESP32 among them): the ROM
//     answers status 1, error 0x05, 8 times, under another opcode than the
//     request's, as esptool, esptool-js and tinygo's espflasher expect
//     (their UnsupportedCommandError path; esptool loader.py counts the 8
//     replies). Which opcode a real ROM uses is not documented: the
//     emulator uses the last command it understood.
//   - A repeated _DATA sequence number (a host's retry after a lost reply)
//     is written again at the same place for plain data and acknowledged
//     without re-feeding for compressed data; what the real ROM does there
//     has not been checked.
//   - MD5 and RAM loads take no time beyond the line.
package rom
