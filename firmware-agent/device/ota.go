package device

import (
	"fmt"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/otadata"
	"github.com/gota-dev/gota/core/partition"
	"github.com/gota-dev/gota/firmware-agent/flash"
)

// This file is esp_ota_ops.c (the app side of ESP-IDF's OTA) and, in the
// exported methods, NodeMCU's otaupgrade.c on top of it.

func same(a, b *partition.Partition) bool {
	return a != nil && b != nil && a.Offset == b.Offset && a.Name == b.Name
}

func isOTA(p *partition.Partition) bool {
	return p != nil && p.Type == partition.TypeApp && p.Subtype >= partition.SubtypeOTA0 && p.Subtype < partition.SubtypeTest
}

// findApp is esp_partition_find_first(ESP_PARTITION_TYPE_APP, sub, NULL).
func (d *Device) findApp(sub uint8) *partition.Partition {
	for i := range d.table.Partitions {
		p := &d.table.Partitions[i]
		if p.Type == partition.TypeApp && p.Subtype == sub {
			return p
		}
	}
	return nil
}

// otaCount is get_ota_partition_count: ota_0, ota_1, ... up to the first
// missing one.
func (d *Device) otaCount() int {
	n := 0
	for n < 16 && d.findApp(partition.SubtypeOTA0+uint8(n)) != nil {
		n++
	}
	return n
}

// nextUpdate is esp_ota_get_next_update_partition(NULL): the OTA slot
// after the running one, else the first OTA slot.
func (d *Device) nextUpdate() *partition.Partition {
	var first *partition.Partition
	nextIsResult := false
	for sub := partition.SubtypeOTA0; sub < partition.SubtypeTest; sub++ {
		p := d.findApp(sub)
		if p == nil {
			continue
		}
		if first == nil {
			first = p
		}
		if same(p, d.running) {
			nextIsResult = true
		} else if nextIsResult {
			return p
		}
	}
	return first
}

// readOtadata is esp_ota_ops.c's read_otadata; od is nil when the table
// has no otadata partition.
func (d *Device) readOtadata() (data otadata.Data, od *partition.Partition, err error) {
	od = d.table.OTAData()
	if od == nil {
		return data, nil, nil
	}
	data, err = ReadOtadata(d.fl, *od)
	return data, od, err
}

// stateOf is esp_ota_get_state_partition.
func (d *Device) stateOf(p *partition.Partition) (otadata.State, int) {
	if p == nil {
		return 0, ErrInvalidArg
	}
	if !isOTA(p) {
		return 0, ErrNotSupported
	}
	data, od, err := d.readOtadata()
	if od == nil || err != nil {
		return 0, ErrNotFound
	}
	n := d.otaCount()
	if st, _, ok := data.StateOf(int(p.Subtype-partition.SubtypeOTA0), n); ok {
		return st, 0
	}
	return 0, ErrNotFound
}

// bootPartition is esp_ota_get_boot_partition.
func (d *Device) bootPartition() *partition.Partition {
	data, od, err := d.readOtadata()
	if od == nil || err != nil {
		return nil
	}
	n := d.otaCount()
	if selectInvalid(data.Entries[0]) && selectInvalid(data.Entries[1]) || n == 0 {
		return d.defaultBoot()
	}
	if a := data.Active(); a >= 0 {
		return d.findApp(partition.SubtypeOTA0 + uint8(otadata.Slot(data.Entries[a].Seq, n)))
	}
	return d.defaultBoot()
}

// defaultBoot is find_default_boot_partition: factory, else the first
// OTA slot, else the test app.
func (d *Device) defaultBoot() *partition.Partition {
	if p := d.findApp(partition.SubtypeFactory); p != nil {
		return p
	}
	for sub := partition.SubtypeOTA0; sub <= partition.SubtypeTest; sub++ {
		if p := d.findApp(sub); p != nil {
			return p
		}
	}
	return nil
}

// verifyApp is esp_image_verify from the app: ESP_IMAGE_VERIFY logs the
// segments and any failure; ESP_IMAGE_VERIFY_SILENT (silent) logs only
// what ESP-IDF logs regardless (chip mismatch, bad SHA-256).
func (d *Device) verifyApp(p partition.Partition, silent bool) (*espimage.Image, error) {
	mode := modeVerify
	if silent {
		mode = modeVerifySilent
	}
	return loadImage(d.fl, p, d.cfg.bootConfig(), mode, d.log.line)
}

// flashErr maps a flash failure to the code esp_partition_* returns.
func flashErr(err error) (int, error) {
	return ErrFlashOpFail, err
}

// begin is esp_ota_begin; sequential selects OTA_WITH_SEQUENTIAL_WRITES.
func (d *Device) begin(p *partition.Partition, sequential bool) (uint32, int, error) {
	if !isOTA(p) {
		return 0, ErrInvalidArg, fmt.Errorf("partition %q is not an OTA app partition", p.Name)
	}
	if same(p, d.running) {
		return 0, ErrOTAPartitionConflict, fmt.Errorf("partition %q is the running app", p.Name)
	}
	if !d.cfg.NoRollback {
		if st, code := d.stateOf(d.running); code == 0 && st == otadata.StatePendingVerify {
			d.log.line('E', "esp_ota_ops", "Running app has not confirmed state (ESP_OTA_IMG_PENDING_VERIFY)")
			return 0, ErrOTARollbackInvalid, fmt.Errorf("running app %q is on trial (PENDING_VERIFY): accept it or roll back first", d.running.Name)
		}
	}
	if !sequential {
		if err := d.fl.EraseRange(p.Offset, p.Size); err != nil {
			code, err := flashErr(err)
			return 0, code, fmt.Errorf("erase partition %q: %w", p.Name, err)
		}
	}
	d.lastHandle++
	d.ota = &otaEntry{handle: d.lastHandle, part: *p, needErase: sequential}
	return d.lastHandle, 0, nil
}

func (d *Device) notRunning() error {
	if d.running == nil {
		return newErr(ErrInvalidState, MsgNotRunning, ErrNoBootableApp)
	}
	return nil
}

// Commence is otaupgrade.commence(): esp_ota_begin on the next update
// partition with OTA_SIZE_UNKNOWN (whole-partition erase, block erases
// where possible). A second Commence starts over on a fresh handle.
func (d *Device) Commence() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commence(false, 0)
}

// CommenceSequential is esp_ota_begin(image_size) with
// OTA_WITH_SEQUENTIAL_WRITES, the mode NodeMCU does not use but the Go
// agent does: instead of erasing the whole target partition up front
// (seconds on a real chip), each sector is erased just before its first
// write, so erasing overlaps with receiving. size must fit the partition.
// Errors carry the messages Commence would raise.
func (d *Device) CommenceSequential(size int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commence(true, size)
}

func (d *Device) commence(sequential bool, size int) error {
	if err := d.notRunning(); err != nil {
		return err
	}
	d.luaNext = d.nextUpdate()
	if d.luaNext == nil {
		return newErr(ErrNotFound, MsgNoOTAPartition, fmt.Errorf("the partition table has no OTA app partition"))
	}
	if sequential && (size < 0 || size > int(d.luaNext.Size)) {
		return newErr(ErrInvalidSize, MsgOTAError, fmt.Errorf("image of %d bytes does not fit partition %q (%d bytes)", size, d.luaNext.Name, d.luaNext.Size))
	}
	h, code, cause := d.begin(d.luaNext, sequential)
	switch code {
	case 0:
		d.luaHandle = h
		d.ota.imageSize = uint32(size)
		return nil
	case ErrNoMem:
		return newErr(code, MsgOutOfMemory, cause)
	case ErrOTAPartitionConflict:
		return newErr(code, MsgOverwriteRunning, cause)
	case ErrOTASelectInfoInvalid:
		return newErr(code, MsgOTADataInvalid, cause)
	case ErrOTARollbackInvalid:
		return newErr(code, MsgUnconfirmed, cause)
	}
	return newErr(code, MsgOTAError, cause)
}

// Target returns the partition the running OTA writes to and how many
// bytes have been written; ok is false when no OTA is in progress.
func (d *Device) Target() (p partition.Partition, written int, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.entry(d.luaHandle); e != nil {
		return e.part, e.written, true
	}
	return partition.Partition{}, 0, false
}

// entry finds the live ota_ops_entry_t for handle h.
func (d *Device) entry(h uint32) *otaEntry {
	if d.ota != nil && d.ota.handle == h {
		return d.ota
	}
	return nil
}

// Write is otaupgrade.write(data): esp_ota_write (sequential). The first
// byte of the image must be 0xE9; writing past the partition fails with
// ESP_ERR_INVALID_SIZE ("ota error").
func (d *Device) Write(p []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.notRunning(); err != nil {
		return err
	}
	// esp_ota_write (v5.1.3) returns ESP_OK for size 0 before it looks
	// the handle up, so otaupgrade.write("") succeeds even before
	// commence().
	if len(p) == 0 {
		return nil
	}
	e := d.entry(d.luaHandle)
	if e == nil {
		d.log.line('E', "esp_ota_ops", "not found the handle") // sic, esp_ota_write
		return newErr(ErrInvalidArg, MsgWriteNotPossible, nil)
	}
	size := uint32(e.part.Size)
	if e.needErase {
		if err := d.eraseAhead(e, uint32(e.written)+uint32(len(p))); err != nil {
			code, err := flashErr(err)
			return newErr(code, MsgOTAError, err)
		}
	}
	if e.written == 0 && len(p) > 0 && p[0] != espimage.Magic {
		d.log.line('E', "esp_ota_ops", fmt.Sprintf("OTA image has invalid magic byte (expected 0xE9, saw 0x%02x)", p[0]))
		return newErr(ErrOTAValidateFailed, MsgNotValidImage,
			fmt.Errorf("image byte 0 is 0x%02X, an ESP image starts with 0x%02X", p[0], espimage.Magic))
	}
	if uint64(e.written)+uint64(len(p)) > uint64(size) {
		return newErr(ErrInvalidSize, MsgOTAError,
			fmt.Errorf("%w: writing %d bytes at offset %d would pass the end of partition %q (%d bytes)",
				espimage.ErrTooBig, len(p), e.written, e.part.Name, size))
	}
	if err := d.fl.Program(e.part.Offset+uint32(e.written), p); err != nil {
		code, err := flashErr(err)
		return newErr(code, MsgOTAError, err)
	}
	e.written += len(p)
	return nil
}

// eraseAhead is the lazy erase of sequential writes: it clears the flash up
// to end (partition-relative, rounded up to a sector, clamped to the
// partition). ESP-IDF's esp_ota_write erases one 4 KiB sector at a time
// (45 ms each on typical NOR, slower than a 921600-baud line delivers
// data). Where a 64 KiB block lies inside the partition and the announced
// image covers at least a quarter of it, this erases the whole block in
// one operation instead (150 ms, the cost of 3⅓ sectors), as esp_ota_begin
// without a size erases the whole partition, so flash keeps ahead of the
// line up to the image's last byte.
func (d *Device) eraseAhead(e *otaEntry, end uint32) error {
	size := e.part.Size
	need := min(roundUp(end, flash.SectorSize), size)
	whole := min(roundUp(e.imageSize, flash.SectorSize), size)
	for e.erasedTo < need {
		n := uint32(flash.SectorSize)
		if (e.part.Offset+e.erasedTo)%flash.BlockSize == 0 && e.erasedTo+flash.BlockSize <= size &&
			whole >= e.erasedTo+flash.BlockSize/4 {
			n = flash.BlockSize
		}
		if err := d.fl.EraseRange(e.part.Offset+e.erasedTo, n); err != nil {
			return err
		}
		e.erasedTo += n
	}
	return nil
}

func roundUp(n, to uint32) uint32 { return (n + to - 1) / to * to }

// end is esp_ota_end: the handle is gone afterwards whatever the result.
func (d *Device) end(h uint32) (int, error) {
	e := d.entry(h)
	if e == nil {
		return ErrNotFound, fmt.Errorf("no OTA handle %d", h)
	}
	d.ota = nil
	if e.written == 0 {
		return ErrInvalidArg, fmt.Errorf("nothing was written to partition %q", e.part.Name)
	}
	// v5.1.3's esp_ota_end runs esp_image_verify(ESP_IMAGE_VERIFY) and
	// nothing more: an image without an app descriptor (a bootloader .bin)
	// passes here and is refused only at boot. The host refuses such
	// images before sending them (core/updater Check).
	if _, err := d.verifyApp(e.part, false); err != nil {
		return ErrOTAValidateFailed, err
	}
	return 0, nil
}

// setBoot is esp_ota_set_boot_partition.
func (d *Device) setBoot(p *partition.Partition) (int, error) {
	// image_validate(partition, ESP_IMAGE_VERIFY).
	if _, err := d.verifyApp(*p, false); err != nil {
		return ErrOTAValidateFailed, err
	}
	if p.Type != partition.TypeApp {
		return ErrInvalidArg, fmt.Errorf("partition %q is not an app", p.Name)
	}
	if p.Subtype == partition.SubtypeFactory {
		od := d.table.OTAData()
		if od == nil {
			return ErrNotFound, fmt.Errorf("no otadata partition")
		}
		if err := d.fl.EraseRange(od.Offset, od.Size); err != nil {
			return flashErr(err)
		}
		return 0, nil
	}
	return d.rewriteOtaData(p.Subtype)
}

// rewriteOtaData is esp_rewrite_ota_data: a new entry selecting the slot,
// in the sector that is not active.
func (d *Device) rewriteOtaData(subtype uint8) (int, error) {
	data, od, err := d.readOtadata()
	if od == nil {
		return ErrNotFound, fmt.Errorf("no otadata partition")
	}
	if err != nil {
		return flashErr(err)
	}
	n := d.otaCount()
	slot := int(subtype & 0x0F)
	if slot >= n {
		return ErrInvalidArg, fmt.Errorf("OTA slot %d, but only %d OTA partitions", slot, n)
	}
	state := otadata.StateNew
	if d.cfg.NoRollback {
		state = otadata.StateUndefined
	}
	sector := 0
	if a := data.Active(); a >= 0 {
		sector = 1 - a
	}
	if _, err := data.NextSeqErr(slot, n); err != nil {
		d.log.line('E', "esp_ota_ops", err.Error())
	}
	e := data.Entries[sector] // keeps the sector's seq_label, as the device does
	e.Seq = data.NextSeq(slot, n)
	e.State = state
	e.CRC = otadata.CRC(e.Seq)
	if err := d.writeOtadata(sector, e); err != nil {
		return flashErr(err)
	}
	return 0, nil
}

// Complete is otaupgrade.complete(reboot): esp_ota_end then
// esp_ota_set_boot_partition, then a reboot when reboot is true.
//
// Like NodeMCU's otaupgrade.c (lotaupgrade_complete) it ignores what
// esp_ota_set_boot_partition returns, a flash failure included: the
// device logs the failure, Complete succeeds, and the next boot shows
// which app otadata selects.
func (d *Device) Complete(reboot bool) error {
	d.mu.Lock()
	err := d.complete()
	if err == nil && reboot {
		err = d.boot(false)
		d.mu.Unlock()
		if err == nil {
			d.runCallbacks()
		}
		return err
	}
	d.mu.Unlock()
	return err
}

func (d *Device) complete() error {
	if err := d.notRunning(); err != nil {
		return err
	}
	if d.luaNext == nil {
		return newErr(ErrInvalidState, MsgNoUpgrade, nil)
	}
	code, cause := d.end(d.luaHandle)
	switch code {
	case 0:
	case ErrInvalidArg:
		return newErr(code, MsgEmptyImage, cause)
	case ErrOTAValidateFailed:
		return newErr(code, MsgValidationFailed, cause)
	default:
		return newErr(code, MsgOTAError, cause)
	}
	next := d.luaNext
	d.luaNext = nil
	// The result is dropped, as otaupgrade.c drops it; ESP-IDF logs
	// nothing of its own here beyond what image_validate printed.
	d.setBoot(next)
	return nil
}

// Accept is otaupgrade.accept(): esp_ota_mark_app_valid_cancel_rollback.
// It marks the active otadata entry VALID, which after Complete but
// before the reboot is the new, not yet booted image.
func (d *Device) Accept() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.notRunning(); err != nil {
		return err
	}
	data, od, err := d.readOtadata()
	if od == nil {
		return newErr(ErrNotFound, MsgAcceptFailed, fmt.Errorf("no otadata partition"))
	}
	if err != nil {
		code, err := flashErr(err)
		return newErr(code, MsgAcceptFailed, err)
	}
	a := data.Active()
	if a < 0 || d.otaCount() == 0 {
		d.log.line('E', "esp_ota_ops", "Running firmware is factory")
		return newErr(ErrFail, MsgAcceptFailed, fmt.Errorf("no valid otadata entry (running firmware is factory)"))
	}
	if e := data.Entries[a]; e.State != otadata.StateValid {
		e.State = otadata.StateValid
		e.CRC = otadata.CRC(e.Seq)
		if err := d.writeOtadata(a, e); err != nil {
			code, err := flashErr(err)
			return newErr(code, MsgAcceptFailed, err)
		}
	}
	return nil
}

// Rollback is otaupgrade.rollback(): esp_ota_mark_app_invalid_rollback_and_reboot.
// It needs another bootable image (the other sector's slot, or a factory
// app when the other sector is not valid), marks the active entry
// INVALID and reboots.
func (d *Device) Rollback() error {
	d.mu.Lock()
	err := d.rollback()
	d.mu.Unlock()
	if err == nil {
		d.runCallbacks()
	}
	return err
}

func (d *Device) rollback() error {
	if err := d.notRunning(); err != nil {
		return err
	}
	data, od, err := d.readOtadata()
	if od == nil {
		return newErr(ErrNotFound, MsgOTAError, fmt.Errorf("no otadata partition"))
	}
	if err != nil {
		code, err := flashErr(err)
		return newErr(code, MsgOTAError, err)
	}
	a := data.Active()
	if a < 0 || d.otaCount() == 0 {
		d.log.line('E', "esp_ota_ops", "Running firmware is factory")
		return newErr(ErrFail, MsgOTAError, fmt.Errorf("no valid otadata entry (running firmware is factory)"))
	}
	if why := d.rollbackImpossible(data, a); why != nil {
		d.log.line('E', "esp_ota_ops", "Rollback is not possible, do not have any suitable apps in slots")
		return newErr(ErrOTARollbackFailed, MsgNoRollbackFirmware, why)
	}
	e := data.Entries[a]
	e.State = otadata.StateInvalid
	e.CRC = otadata.CRC(e.Seq)
	if err := d.writeOtadata(a, e); err != nil {
		code, err := flashErr(err)
		return newErr(code, MsgOTAError, err)
	}
	d.log.line('I', "esp_ota_ops", "Rollback to previously worked partition. Restart.")
	return d.boot(false)
}

// rollbackImpossible is check_rollback_is_possible, returning why not
// (nil when a rollback can go ahead).
func (d *Device) rollbackImpossible(data otadata.Data, active int) error {
	n := d.otaCount()
	other := 1 - active
	if !data.Entries[other].Valid() {
		f := d.findApp(partition.SubtypeFactory)
		if f == nil {
			return fmt.Errorf("otadata sector %d holds no valid entry and there is no factory app", other)
		}
		if _, err := d.verifyApp(*f, true); err != nil {
			return fmt.Errorf("otadata sector %d holds no valid entry and the factory app does not verify: %w", other, err)
		}
		return nil
	}
	slot := otadata.Slot(data.Entries[other].Seq, n)
	p := d.findApp(partition.SubtypeOTA0 + uint8(slot))
	if p == nil {
		return fmt.Errorf("otadata sector %d selects OTA slot %d, which does not exist", other, slot)
	}
	if _, err := d.verifyApp(*p, true); err != nil {
		return fmt.Errorf("previous app in %q does not verify: %w", p.Name, err)
	}
	return nil
}
