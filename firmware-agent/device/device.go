// Package device is a virtual ESP32: emulated flash, partition table,
// second-stage bootloader rules and ESP-IDF's OTA API as NodeMCU's
// otaupgrade module exposes it.
//
// API CONTRACT (stub; bodies filled in by the issue-3 work). The agent
// (issue 4) and the Lua harness (issue 6) use exactly these names.
package device

import (
	"io"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/partition"
	"github.com/gota-dev/gota/firmware-agent/flash"
)

// ESP-IDF error codes.
const (
	ErrNoMem                = 0x101
	ErrInvalidArg           = 0x102
	ErrInvalidState         = 0x103
	ErrInvalidSize          = 0x104
	ErrNotFound             = 0x105
	ErrNotSupported         = 0x106
	ErrImageInvalid         = 0x2002
	ErrOTAPartitionConflict = 0x1501
	ErrOTASelectInfoInvalid = 0x1502
	ErrOTAValidateFailed    = 0x1503
	ErrOTASmallSecVer       = 0x1504
	ErrOTARollbackFailed    = 0x1505
	ErrOTARollbackInvalid   = 0x1506
)

// Error is an OTA failure: the esp_err_t ESP-IDF returns, the message
// NodeMCU's otaupgrade raises, and the underlying cause.
type Error struct {
	Code    int    // esp_err_t
	Message string // NodeMCU's string, e.g. "validation failed"
	Err     error  // detail (e.g. an espimage error), may be nil
}

func (e *Error) Error() string { panic("TODO") }
func (e *Error) Unwrap() error { return e.Err }

// Config describes a device.
type Config struct {
	Flash       *flash.Flash
	TableOffset uint32 // 0 = partition.DefaultTableOffset
	Chip        espimage.Chip
	ChipRev     uint16    // major*100+minor, default 300 (ESP32 v3.0)
	NoRollback  bool      // CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE off
	Log         io.Writer // boot and app log lines, ESP-IDF style; may be nil
}

// CreateOptions for Create.
type CreateOptions struct {
	FlashSize   int              // bytes; default 4 MiB
	Table       *partition.Table // nil = default two-OTA table
	TableOffset uint32
	App         []byte // image written to ota_0 (or factory when present)
	Chip        espimage.Chip
}

// Create writes a new flash file ready to boot.
func Create(path string, opt CreateOptions) error { panic("TODO") }

// DefaultTable returns the default partition table: nvs, otadata, phy,
// and two OTA slots large enough for the shared test images.
func DefaultTable() *partition.Table { panic("TODO") }

// Device is a running virtual ESP32.
type Device struct{}

// Open boots the device on cfg.Flash (reads the table, applies the
// bootloader rules, logs like ESP-IDF).
func Open(cfg Config) (*Device, error) { panic("TODO") }

// Reboot restarts the device: any OTA in progress is dropped and the boot
// rules are applied again. OnReboot callbacks run after the boot log.
func (d *Device) Reboot() error { panic("TODO") }

// OnReboot registers f to run after every reboot (the agent reappears).
func (d *Device) OnReboot(f func()) { panic("TODO") }

// Chip returns the chip and revision.
func (d *Device) Chip() (espimage.Chip, uint16) { panic("TODO") }

// Table returns the partition table in use.
func (d *Device) Table() *partition.Table { panic("TODO") }

// Commence is otaupgrade.commence(): esp_ota_begin on the next update
// partition with OTA_SIZE_UNKNOWN (whole-partition erase).
func (d *Device) Commence() error { panic("TODO") }

// Target returns the partition the running OTA writes to and how many
// bytes have been written; ok is false when no OTA is in progress.
func (d *Device) Target() (p partition.Partition, written int, ok bool) { panic("TODO") }

// Write is otaupgrade.write(data): esp_ota_write (sequential).
func (d *Device) Write(p []byte) error { panic("TODO") }

// Complete is otaupgrade.complete(reboot): esp_ota_end then
// esp_ota_set_boot_partition, then a reboot when reboot is true.
func (d *Device) Complete(reboot bool) error { panic("TODO") }

// Accept is otaupgrade.accept(): esp_ota_mark_app_valid_cancel_rollback.
func (d *Device) Accept() error { panic("TODO") }

// Rollback is otaupgrade.rollback(): esp_ota_mark_app_invalid_rollback_and_reboot.
func (d *Device) Rollback() error { panic("TODO") }

// Info is what otaupgrade.info() returns, plus chip and digests.
type Info struct {
	Running    string // label of the running partition
	Next       string // label of the next boot partition
	Chip       espimage.Chip
	ChipRev    uint16
	Partitions []PartitionInfo // every app partition, table order
}

// PartitionInfo describes one app partition.
type PartitionInfo struct {
	Label    string
	Subtype  uint8
	Offset   uint32
	Size     uint32
	State    string            // "new","testing","valid","invalid","aborted","undefined" or "" (no entry)
	App      *espimage.AppDesc // nil when the descriptor is unreadable
	SHA256   []byte            // appended digest of the image there, nil if none
	ImageLen int               // 0 when no valid image
}

// Info is otaupgrade.info().
func (d *Device) Info() (Info, error) { panic("TODO") }
