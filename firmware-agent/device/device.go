package device

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/otadata"
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
//
// Where NodeMCU fails without calling ESP-IDF ("no upgrade in progress"),
// Code is ErrInvalidState. A flash failure (injected power cut) has Code
// ErrFlashOpFail and Err wrapping flash.ErrPowerCut.
type Error struct {
	Code    int    // esp_err_t
	Message string // NodeMCU's string, e.g. "validation failed"
	Err     error  // detail (e.g. an espimage error), may be nil
}

// Unwrap returns the cause, so errors.Is(err, espimage.ErrChecksum) and
// errors.Is(err, flash.ErrPowerCut) see through an *Error.
func (e *Error) Unwrap() error { return e.Err }

// DefaultChipRev is the chip revision a Config without one gets (v3.0).
const DefaultChipRev = 300

// Config describes a device.
type Config struct {
	Flash       *flash.Flash
	TableOffset uint32 // 0 = partition.DefaultTableOffset
	Chip        espimage.Chip
	ChipRev     uint16    // major*100+minor, default 300 (ESP32 v3.0)
	NoRollback  bool      // CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE off
	Log         io.Writer // boot and app log lines, ESP-IDF style; may be nil
	// InstantBoot returns from Open and Reboot as soon as the boot is
	// computed, without waiting the modelled boot time (the log keeps its
	// modelled timestamps). A flash with zero Timing boots instantly too;
	// otherwise a boot lasts as long as on a real ESP32 (see the package
	// doc).
	InstantBoot bool
}

func (c *Config) bootConfig() BootConfig {
	return BootConfig{Chip: c.Chip, ChipRev: c.ChipRev, NoRollback: c.NoRollback}
}

// otaEntry is esp_ota_ops.c's ota_ops_entry_t.
type otaEntry struct {
	handle    uint32
	part      partition.Partition
	needErase bool   // OTA_WITH_SEQUENTIAL_WRITES: erase as writes reach the flash
	imageSize uint32 // announced by CommenceSequential; blocks inside it are erased whole
	erasedTo  uint32 // partition-relative end of what the lazy erase has cleared
	written   int
}

// Device is a running virtual ESP32.
type Device struct {
	mu    sync.Mutex
	cfg   Config
	fl    *flash.Flash
	table *partition.Table
	log   *logger

	flashCfg flashConfig          // the bootloader's SPI mode and clock
	bootTime time.Duration        // reset to app_main, last boot
	running  *partition.Partition // nil when nothing booted
	image    *espimage.Image      // the running image
	boots    int

	// esp_ota_ops.c state.
	ota        *otaEntry // the one live entry (older ones are unreachable in NodeMCU)
	lastHandle uint32
	// otaupgrade.c's statics.
	luaHandle uint32
	luaNext   *partition.Partition

	onReboot []func()
	onReset  []func()
}

// ReadTable reads the partition table at off as the second-stage
// bootloader does (partition.DecodeAsBootloader, esp_partition_table_verify):
// flashSize is the flash size the bootloader believes in, see
// BootFlashSize.
func ReadTable(r io.ReaderAt, off, flashSize uint32) (*partition.Table, error) {
	buf := make([]byte, partition.MaxTableSize)
	if _, err := r.ReadAt(buf, int64(off)); err != nil {
		return nil, fmt.Errorf("read partition table at 0x%x: %w", off, err)
	}
	t, err := partition.DecodeAsBootloader(buf, flashSize)
	if err != nil {
		return nil, fmt.Errorf("partition table at 0x%x: %w", off, err)
	}
	return t, nil
}

// BootFlashSize returns the flash size the second-stage bootloader uses
// as g_rom_flashchip.chip_size: the size in its own image header, set by
// update_flash_config through esp_rom_spiflash_config_param (ESP-IDF
// v5.1.3 bootloader_flash_config_esp32.c; an unknown code means 2 MB). A
// virtual flash usually holds no bootloader; then the bootloader is taken
// to be built for the chip, chipSize.
func BootFlashSize(r io.ReaderAt, chipSize int) uint32 {
	var h [4]byte
	if _, err := r.ReadAt(h[:], int64(BootloaderOffset(espimage.ChipESP32))); err != nil || h[0] != espimage.Magic {
		return uint32(chipSize)
	}
	hdr := espimage.Header{FlashSize: h[3] >> 4}
	if n := hdr.FlashSizeBytes(); n > 0 && n <= 16<<20 {
		return uint32(n)
	}
	return 2 << 20 // update_flash_config's default case
}

// Open boots the device on cfg.Flash (reads the table, applies the
// bootloader rules, logs like ESP-IDF). When nothing is bootable Open
// returns the Device together with an error wrapping ErrNoBootableApp:
// OTA calls then fail, and Reboot tries again.
func Open(cfg Config) (*Device, error) {
	if cfg.Flash == nil {
		return nil, errors.New("device: Config.Flash is nil")
	}
	if cfg.TableOffset == 0 {
		cfg.TableOffset = partition.DefaultTableOffset
	}
	if cfg.ChipRev == 0 {
		cfg.ChipRev = DefaultChipRev
	}
	d := &Device{cfg: cfg, fl: cfg.Flash, log: newLogger(cfg.Log), flashCfg: readFlashConfig(cfg.Flash, cfg.Chip)}
	t, err := ReadTable(cfg.Flash, cfg.TableOffset, BootFlashSize(cfg.Flash, cfg.Flash.Size()))
	if err != nil {
		// bootloader_utility_load_partition_table, then call_start_cpu0
		// resets: the chip loops here.
		d.log.rom(true, d.cfg.ChipRev, d.realtime(), d.flashCfg)
		d.log.bootHeader(d, d.flashCfg)
		if cause := errors.Unwrap(err); cause != nil && !strings.HasPrefix(err.Error(), "read ") {
			d.log.line('E', "flash_parts", cause.Error())
		}
		d.log.line('E', "boot", "Failed to verify partition table")
		d.log.line('E', "boot", "load partition table error!")
		return nil, fmt.Errorf("device: %w", err)
	}
	d.table = t
	d.mu.Lock()
	err = d.boot(true)
	d.mu.Unlock()
	if err != nil {
		return d, err
	}
	d.runCallbacks()
	return d, nil
}

// Reboot restarts the device: any OTA in progress is dropped and the boot
// rules are applied again. OnReboot callbacks run after the boot log.
func (d *Device) Reboot() error {
	d.mu.Lock()
	err := d.boot(false)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	d.runCallbacks()
	return nil
}

func (d *Device) runCallbacks() {
	d.mu.Lock()
	cbs := append([]func(){}, d.onReboot...)
	d.mu.Unlock()
	for _, f := range cbs {
		f()
	}
}

// boot runs the second-stage bootloader and starts the app. Called with
// d.mu held.
func (d *Device) boot(powerOn bool) error {
	d.ota, d.lastHandle, d.luaHandle, d.luaNext = nil, 0, 0, nil
	d.running, d.image = nil, nil
	d.boots++
	if !powerOn {
		for _, f := range d.onReset {
			f()
		}
	}
	d.log.rom(powerOn, d.cfg.ChipRev, d.realtime(), d.flashCfg)
	d.log.bootHeader(d, d.flashCfg)
	// bootloader_utility_load_partition_table maps the table and checks
	// its MD5 before printing it.
	d.log.clock.work(d.flashCfg.verify(partition.MaxTableSize))
	d.log.table(d.table)

	pl, err := PlanBoot(d.fl, d.table, d.cfg.bootConfig())
	if err != nil {
		d.log.line('E', "boot", err.Error())
		return fmt.Errorf("device: boot: %w", err)
	}
	if pl.HasOtadata {
		d.log.clock.work(d.flashCfg.read(otadata.PartitionSize)) // read_otadata
	}
	// The bootloader's otadata writes happen before it loads the app,
	// except the initial-entry one, which follows a successful load: the
	// log line that follows it says how many it makes first.
	late := 0
	for _, l := range pl.Log {
		late += l.writes
	}
	for _, w := range pl.Writes[:len(pl.Writes)-late] {
		if err := d.bootWrite(w); err != nil {
			return err
		}
	}
	next := len(pl.Writes) - late
	for _, l := range pl.Log {
		for ; l.writes > 0; l.writes-- {
			if err := d.bootWrite(pl.Writes[next]); err != nil {
				return err
			}
			next++
		}
		d.log.line(l.Level, l.Tag, l.Text)
		d.log.clock.work(d.flashCfg.image(l.work))
	}
	if pl.Reset != nil {
		return fmt.Errorf("device: boot: %w: %w", ErrNoBootableApp, pl.Reset)
	}
	if pl.Boot == nil {
		return fmt.Errorf("device: boot: %w", ErrNoBootableApp)
	}
	p := *pl.Boot
	d.running, d.image = &p, pl.Image
	d.log.app(d)
	d.bootTime = d.log.clock.appMain
	return nil
}

// bootWrite makes one of the bootloader's otadata writes, charging the
// boot clock what the flash takes for it.
func (d *Device) bootWrite(w OtadataWrite) error {
	if err := d.writeOtadata(w.Sector, w.Entry); err != nil {
		return fmt.Errorf("device: boot: otadata sector %d (%s): %w", w.Sector, w.Reason, err)
	}
	t := d.fl.Timing()
	d.log.clock.work(t.SectorErase + t.PageProgram)
	return nil
}

// realtime reports whether boots take the modelled time on the wall
// clock.
func (d *Device) realtime() bool {
	return !d.cfg.InstantBoot && d.fl.Timing() != (flash.Timing{})
}

// BootTime returns the modelled time from the last reset to app_main
// (what the "Calling app_main()" timestamp says), 0 when nothing booted.
func (d *Device) BootTime() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running == nil {
		return 0
	}
	return d.bootTime
}

// writeOtadata erases an otadata sector and programs entry at its start,
// as both the bootloader's write_otadata and the app's rewrite_ota_seq do.
func (d *Device) writeOtadata(sector int, e otadata.Entry) error {
	od := d.table.OTAData()
	if od == nil {
		return errors.New("no otadata partition")
	}
	off := od.Offset + uint32(sector)*flash.SectorSize
	if err := d.fl.EraseRange(off, flash.SectorSize); err != nil {
		return err
	}
	return d.fl.Program(off, e.Bytes())
}

// OnReboot registers f to run after every reboot (the agent reappears).
func (d *Device) OnReboot(f func()) {
	d.mu.Lock()
	d.onReboot = append(d.onReboot, f)
	d.mu.Unlock()
}

// OnReset registers f to run at every reset of Reboot, before the ROM
// prints anything: the ROM sets up the console UART afresh (its own
// rate, 115200), so whatever rate the app had switched to is gone. f runs
// with the device locked and must not call the Device.
func (d *Device) OnReset(f func()) {
	d.mu.Lock()
	d.onReset = append(d.onReset, f)
	d.mu.Unlock()
}

// Chip returns the chip and revision.
func (d *Device) Chip() (espimage.Chip, uint16) { return d.cfg.Chip, d.cfg.ChipRev }

// Table returns the partition table in use.
func (d *Device) Table() *partition.Table { return d.table }

// Flash returns the device's flash.
func (d *Device) Flash() *flash.Flash { return d.fl }

// Running returns the partition the app runs from, or nil when nothing
// booted.
func (d *Device) Running() *partition.Partition {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running == nil {
		return nil
	}
	p := *d.running
	return &p
}

// Boots returns how many times the device has booted (Open counts as 1).
func (d *Device) Boots() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.boots
}
