package device

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/otadata"
	"github.com/gota-dev/gota/core/partition"
)

// Shorthands for otadata states in the table below.
const (
	sNew     = otadata.StateNew
	sPending = otadata.StatePendingVerify
	sValid   = otadata.StateValid
	sInvalid = otadata.StateInvalid
	sAborted = otadata.StateAborted
	sUndef   = otadata.StateUndefined
)

// badCRC returns an entry whose CRC does not match its seq.
func badCRC(seq uint32, st otadata.State) *otadata.Entry {
	e := otadata.NewEntry(seq, st)
	e.CRC = 0
	return &e
}

// behaviourImages name the images of a behaviourRow.
const good, bad = "good", "bad"

// behaviourRow is one row of TestBehaviours.
type behaviourRow struct {
	name       string
	factory    bool
	nOTA       int
	images     map[string]string // partition -> good/bad image
	od         [2]*otadata.Entry
	noRollback bool
	actions    string // comma-separated; a leading "!" ignores that action's error
	wantRun    string // running partition at the end ("" = nothing booted)
	wantOD     [2]*otadata.Entry
	wantCode   int // 0 = no error
	wantMsg    string
	wantErr    error // for non-OTA errors (boot)
}

var (
	g0  = map[string]string{"ota_0": good}
	g01 = map[string]string{"ota_0": good, "ota_1": good}
	f01 = map[string]string{"factory": good, "ota_0": good, "ota_1": good}
)

// behaviourRows is the table of ESP-IDF v5.1.3 behaviours: a starting
// partition table, images and otadata, a sequence of actions (the device
// boots first, on Open), and the expected otadata bytes, running app and
// error.
var behaviourRows = []behaviourRow{
	// Boot.
	{name: "blank otadata, no factory: ota_0 runs and sector 0 gets seq 1 VALID", nOTA: 2, images: g0,
		actions: "boot", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), nil}},
	{name: "blank otadata with factory: factory runs, otadata untouched", factory: true, nOTA: 2, images: f01,
		actions: "boot", wantRun: "factory"},
	{name: "blank otadata, ota_0 empty: ota_1 runs and sector 0 gets seq 2", nOTA: 2, images: map[string]string{"ota_1": good},
		actions: "boot", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(2, sValid), nil}},
	{name: "NEW becomes PENDING_VERIFY", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), entry(2, sNew)},
		actions: "boot", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sPending)}},
	{name: "NEW stays NEW without rollback support", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), entry(2, sNew)},
		noRollback: true, actions: "boot", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sNew)}},
	{name: "PENDING_VERIFY becomes ABORTED and the previous app runs", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), entry(2, sPending)},
		actions: "boot", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sAborted)}},
	{name: "PENDING_VERIFY untouched without rollback support", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), entry(2, sPending)},
		noRollback: true, actions: "boot", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sPending)}},
	{name: "equal seqs: sector 0 wins (its VALID entry, sector 1 NEW untouched)", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), entry(1, sNew)},
		actions: "boot", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(1, sNew)}},
	{name: "higher seq in sector 0 wins", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(3, sValid), entry(2, sValid)},
		actions: "boot", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(3, sValid), entry(2, sValid)}},
	{name: "wrap-around: seq 0xFFFFFFFE beats seq 1 (plain uint32 compare)", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(0xFFFFFFFE, sValid), entry(1, sValid)},
		actions: "boot", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(0xFFFFFFFE, sValid), entry(1, sValid)}},
	{name: "seq 0 maps to slot (2^32-1) mod 2 = 1", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(0, sValid), nil},
		actions: "boot", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(0, sValid), nil}},
	{name: "bad CRC in both sectors, no factory: tries all partitions, writes nothing", nOTA: 2, images: g01, od: [2]*otadata.Entry{badCRC(1, sValid), badCRC(2, sValid)},
		actions: "boot", wantRun: "ota_0", wantOD: [2]*otadata.Entry{badCRC(1, sValid), badCRC(2, sValid)}},
	{name: "bad CRC in both sectors with factory: factory", factory: true, nOTA: 2, images: f01, od: [2]*otadata.Entry{badCRC(1, sValid), badCRC(2, sValid)},
		actions: "boot", wantRun: "factory", wantOD: [2]*otadata.Entry{badCRC(1, sValid), badCRC(2, sValid)}},
	{name: "blank sector 0, bad-CRC ABORTED sector 1, no factory: initial seq written for ota_0", nOTA: 2, images: g01, od: [2]*otadata.Entry{nil, badCRC(2, sAborted)},
		actions: "boot", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), badCRC(2, sAborted)}},
	// ota_select_invalid ignores the CRC, so a bad-CRC VALID entry is not
	// "invalid": no initial write, the bootloader tries every slot.
	{name: "blank sector 0, bad-CRC VALID sector 1, no factory: no write", nOTA: 2, images: g01, od: [2]*otadata.Entry{nil, badCRC(2, sValid)},
		actions: "boot", wantRun: "ota_0", wantOD: [2]*otadata.Entry{nil, badCRC(2, sValid)}},
	{name: "selected slot corrupt: falls back to the lower slot", nOTA: 2, images: map[string]string{"ota_0": good, "ota_1": bad}, od: [2]*otadata.Entry{entry(1, sValid), entry(2, sValid)},
		actions: "boot", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sValid)}},
	{name: "three slots, slot 2 corrupt: slot 1 before slot 0", nOTA: 3, images: map[string]string{"ota_0": good, "ota_1": good, "ota_2": bad}, od: [2]*otadata.Entry{entry(3, sValid), nil},
		actions: "boot", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(3, sValid), nil}},
	{name: "three slots, slots 1 and 0 corrupt: then the higher slot 2", nOTA: 3, images: map[string]string{"ota_0": bad, "ota_1": bad, "ota_2": good}, od: [2]*otadata.Entry{entry(2, sValid), nil},
		actions: "boot", wantRun: "ota_2", wantOD: [2]*otadata.Entry{entry(2, sValid), nil}},
	{name: "all OTA slots corrupt: factory", factory: true, nOTA: 2, images: map[string]string{"factory": good, "ota_0": bad, "ota_1": bad}, od: [2]*otadata.Entry{entry(2, sValid), nil},
		actions: "boot", wantRun: "factory", wantOD: [2]*otadata.Entry{entry(2, sValid), nil}},
	{name: "nothing bootable", nOTA: 2, images: map[string]string{"ota_1": bad},
		actions: "boot", wantErr: ErrNoBootableApp},
	{name: "both entries INVALID/ABORTED, no factory: ota_0, no write", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sInvalid), entry(2, sAborted)},
		actions: "boot", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sInvalid), entry(2, sAborted)}},
	{name: "both entries INVALID with factory: factory", factory: true, nOTA: 2, images: f01, od: [2]*otadata.Entry{entry(1, sInvalid), entry(2, sInvalid)},
		actions: "boot", wantRun: "factory", wantOD: [2]*otadata.Entry{entry(1, sInvalid), entry(2, sInvalid)}},

	// Set boot partition (complete).
	{name: "update from seq 1 writes seq 2 NEW to sector 1", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "update", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sNew)}},
	{name: "update from seq 2 writes seq 3 NEW to sector 0", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), entry(2, sValid)},
		actions: "update", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(3, sNew), entry(2, sValid)}},
	{name: "update without rollback support writes UNDEFINED", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil}, noRollback: true,
		actions: "update", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sUndef)}},
	{name: "update from factory with blank otadata: seq 1 in sector 0", factory: true, nOTA: 2, images: map[string]string{"factory": good},
		actions: "update", wantRun: "factory", wantOD: [2]*otadata.Entry{entry(1, sNew), nil}},
	{name: "three slots: smallest seq >= active selecting the slot", nOTA: 3, images: g0, od: [2]*otadata.Entry{entry(4, sValid), nil},
		actions: "update", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(4, sValid), entry(5, sNew)}},
	{name: "seq at the top: 0xFFFFFFFF is written and never counts", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(0xFFFFFFFE, sValid), nil},
		actions: "update,reboot", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(0xFFFFFFFE, sValid), entry(0xFFFFFFFF, sNew)}},
	{name: "update and reboot: the new app is on trial", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "update,reboot", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sPending)}},
	{name: "update, reboot, reboot without accept: rolled back", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "update,reboot,reboot", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sAborted)}},
	{name: "accept after complete, before reboot: the new entry becomes VALID", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "update,accept,reboot", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sValid)}},

	// Accept.
	{name: "accept the app on trial", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), entry(2, sNew)},
		actions: "accept", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sValid)}},
	{name: "accept on factory fails", factory: true, nOTA: 2, images: f01,
		actions: "accept", wantRun: "factory", wantCode: ErrFail, wantMsg: MsgAcceptFailed},
	{name: "accept when already VALID changes nothing", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "accept", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), nil}},
	{name: "accept without rollback support marks UNDEFINED VALID", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), entry(2, sUndef)}, noRollback: true,
		actions: "accept", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sValid)}},

	// Rollback.
	{name: "rollback from trial to the previous app", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), entry(2, sNew)},
		actions: "rollback", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sInvalid)}},
	{name: "rollback with no other image", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "rollback", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), nil}, wantCode: ErrOTARollbackFailed, wantMsg: MsgNoRollbackFirmware},
	{name: "rollback when the previous image is corrupt", nOTA: 2, images: map[string]string{"ota_0": bad, "ota_1": good}, od: [2]*otadata.Entry{entry(1, sValid), entry(2, sNew)},
		actions: "rollback", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sPending)}, wantCode: ErrOTARollbackFailed, wantMsg: MsgNoRollbackFirmware},
	{name: "rollback to factory when the other sector is blank", factory: true, nOTA: 2, images: f01, od: [2]*otadata.Entry{entry(1, sNew), nil},
		actions: "rollback", wantRun: "factory", wantOD: [2]*otadata.Entry{entry(1, sInvalid), nil}},
	{name: "rollback on factory: ota error", factory: true, nOTA: 2, images: f01,
		actions: "rollback", wantRun: "factory", wantCode: ErrFail, wantMsg: MsgOTAError},

	// Commence.
	{name: "commence while on trial is refused", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), entry(2, sNew)},
		actions: "commence", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sPending)}, wantCode: ErrOTARollbackInvalid, wantMsg: MsgUnconfirmed},
	{name: "commence while on trial without rollback support", nOTA: 2, images: g01, od: [2]*otadata.Entry{entry(1, sValid), entry(2, sPending)}, noRollback: true,
		actions: "commence", wantRun: "ota_1", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sPending)}},
	{name: "commence when the only OTA slot runs: conflict", factory: true, nOTA: 1, images: map[string]string{"factory": good, "ota_0": good}, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "commence", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), nil}, wantCode: ErrOTAPartitionConflict, wantMsg: MsgOverwriteRunning},
	{name: "commence without OTA slots", factory: true, nOTA: 0, images: map[string]string{"factory": good},
		actions: "commence", wantRun: "factory", wantCode: ErrNotFound, wantMsg: MsgNoOTAPartition},

	// Write and complete.
	{name: "write before commence", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "write", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), nil}, wantCode: ErrInvalidArg, wantMsg: MsgWriteNotPossible},
	{name: "complete before commence", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "complete", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), nil}, wantCode: ErrInvalidState, wantMsg: MsgNoUpgrade},
	{name: "complete with nothing written", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "commence,complete", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), nil}, wantCode: ErrInvalidArg, wantMsg: MsgEmptyImage},
	{name: "first byte not 0xE9", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "commence,writebad", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), nil}, wantCode: ErrOTAValidateFailed, wantMsg: MsgNotValidImage},
	{name: "corrupt image fails validation at complete", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "commence,writecorrupt,complete", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), nil}, wantCode: ErrOTAValidateFailed, wantMsg: MsgValidationFailed},
	{name: "complete again after a failed validation: the handle is gone", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "commence,writecorrupt,!complete,complete", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), nil}, wantCode: ErrNotFound, wantMsg: MsgOTAError},
	{name: "write after complete", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "update,write", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sNew)}, wantCode: ErrInvalidArg, wantMsg: MsgWriteNotPossible},
	{name: "complete after a successful complete", nOTA: 2, images: g0, od: [2]*otadata.Entry{entry(1, sValid), nil},
		actions: "update,complete", wantRun: "ota_0", wantOD: [2]*otadata.Entry{entry(1, sValid), entry(2, sNew)}, wantCode: ErrInvalidState, wantMsg: MsgNoUpgrade},
}

// TestBehaviours runs behaviourRows.
func TestBehaviours(t *testing.T) {

	goodImg := synthApp(t, "v1")
	newImg := synthApp(t, "v2")
	badImg := append([]byte(nil), goodImg...)
	badImg[0x200] ^= 0x01 // segment 0 data: checksum mismatch
	for _, r := range behaviourRows {
		t.Run(r.name, func(t *testing.T) {
			l := layout{table: smallTable(r.factory, r.nOTA), images: map[string][]byte{}, od: r.od}
			for name, kind := range r.images {
				l.images[name] = map[string][]byte{good: goodImg, bad: badImg}[kind]
			}
			f := l.build(t)
			d, err := Open(Config{Flash: f, NoRollback: r.noRollback})
			var actErr error
			if err != nil {
				actErr = err
			} else {
				actErr = runActions(t, d, r.actions, newImg, badImg)
			}
			switch {
			case r.wantErr != nil:
				if !errors.Is(actErr, r.wantErr) {
					t.Fatalf("error %v, want %v", actErr, r.wantErr)
				}
			case r.wantCode != 0:
				wantDeviceErr(t, actErr, r.wantCode, r.wantMsg)
			case actErr != nil:
				t.Fatalf("unexpected error: %v", actErr)
			}
			if d != nil {
				if got := runningName(d); got != r.wantRun {
					t.Errorf("running %q, want %q", got, r.wantRun)
				}
			}
			got := otadataBytes(t, f, l.table)
			if want := wantOtadata(r.wantOD); !bytes.Equal(got, want) {
				t.Errorf("otadata\n got  %s\n want %s", describeOtadata(got), describeOtadata(want))
			}
		})
	}
}

// runActions runs a behaviourRow's actions on d and returns the first
// error not ignored.
func runActions(t *testing.T, d *Device, actions string, newImg, badImg []byte) error {
	t.Helper()
	for _, a := range strings.Split(actions, ",") {
		ignore := strings.HasPrefix(a, "!")
		a = strings.TrimPrefix(a, "!")
		var err error
		switch a {
		case "boot":
		case "reboot":
			err = d.Reboot()
		case "update":
			err = otaUpdate(d, newImg, 100, false)
		case "commence":
			err = d.Commence()
		case "write":
			err = d.Write(newImg)
		case "writebad":
			err = d.Write([]byte{0x00, 0xE9})
		case "writecorrupt":
			err = d.Write(badImg)
		case "complete":
			err = d.Complete(false)
		case "accept":
			err = d.Accept()
		case "rollback":
			err = d.Rollback()
		default:
			t.Fatalf("unknown action %q", a)
		}
		if err != nil && !ignore {
			return err
		}
	}
	return nil
}

// TestSequenceExamples checks the reference's worked examples through
// the public API: with two slots, an update from seq 1 writes seq 2, and
// the next one seq 3, each to the sector that is not active.
func TestSequenceExamples(t *testing.T) {
	l := layout{table: smallTable(false, 2), images: map[string][]byte{"ota_0": synthApp(t, "v1")}}
	f := l.build(t)
	d, err := Open(Config{Flash: f})
	must(t, err)
	want := []struct {
		run string
		od  [2]*otadata.Entry
	}{
		{"ota_1", [2]*otadata.Entry{entry(1, sValid), entry(2, sValid)}},
		{"ota_0", [2]*otadata.Entry{entry(3, sValid), entry(2, sValid)}},
		{"ota_1", [2]*otadata.Entry{entry(3, sValid), entry(4, sValid)}},
	}
	for i, w := range want {
		must(t, otaUpdate(d, synthApp(t, "v"+string(rune('2'+i))), 333, true))
		must(t, d.Accept())
		if runningName(d) != w.run {
			t.Fatalf("update %d: running %s, want %s", i+1, runningName(d), w.run)
		}
		if got := otadataBytes(t, f, l.table); !bytes.Equal(got, wantOtadata(w.od)) {
			t.Fatalf("update %d: otadata %s, want %s", i+1, describeOtadata(got), describeOtadata(wantOtadata(w.od)))
		}
	}
}

var _ = partition.DefaultTableOffset

// TestInfoNext checks otaupgrade.info()'s second value
// (esp_ota_get_boot_partition) and which partitions it lists.
func TestInfoNext(t *testing.T) {
	v1 := synthApp(t, "v1")
	for _, c := range []struct {
		name     string
		factory  bool
		od       [2]*otadata.Entry
		next     string
		states   map[string]string
		unlisted string
	}{
		{"bad CRCs, no factory: first OTA slot", false, [2]*otadata.Entry{badCRC(1, sValid), badCRC(2, sValid)}, "ota_0",
			map[string]string{"ota_0": "", "ota_1": ""}, ""},
		{"bad CRCs with factory: factory", true, [2]*otadata.Entry{badCRC(1, sValid), badCRC(2, sValid)}, "factory",
			map[string]string{"factory": "", "ota_0": "", "ota_1": ""}, "factory"},
		{"new image on trial", false, [2]*otadata.Entry{entry(1, sValid), entry(2, sNew)}, "ota_1",
			map[string]string{"ota_0": "valid", "ota_1": "testing"}, ""},
		{"aborted image: state kept although it does not count", false, [2]*otadata.Entry{entry(1, sValid), entry(2, sAborted)}, "ota_0",
			map[string]string{"ota_0": "valid", "ota_1": "aborted"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			imgs := map[string][]byte{"ota_0": v1, "ota_1": v1}
			if c.factory {
				imgs["factory"] = v1
			}
			d := mustOpen(t, layout{table: smallTable(c.factory, 2), images: imgs, od: c.od}.build(t))
			info, err := d.Info()
			must(t, err)
			if info.Next != c.next {
				t.Errorf("next %q, want %q", info.Next, c.next)
			}
			for _, p := range info.Partitions {
				if string(p.State) != c.states[p.Label] {
					t.Errorf("%s state %q, want %q", p.Label, p.State, c.states[p.Label])
				}
				if p.Listed != (p.Label != c.unlisted) {
					t.Errorf("%s listed %v", p.Label, p.Listed)
				}
				if p.App == nil || p.App.ProjectName != "synth" || p.ImageLen == 0 {
					t.Errorf("%s: descriptor %+v length %d", p.Label, p.App, p.ImageLen)
				}
			}
		})
	}
}
