package device

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/gota-dev/gota/core/otadata"
	"github.com/gota-dev/gota/core/partition"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/internal/shareddata"
)

// validSectors counts the otadata sectors whose entry counts.
func validSectors(t *testing.T, f *flash.Flash, tb *partition.Table) int {
	t.Helper()
	d, err := otadata.Decode(otadataBytes(t, f, tb))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range d.Entries {
		if e.Valid() {
			n++
		}
	}
	return n
}

// powerCutCycle is one scenario for TestPowerCutEveryOperation.
type powerCutCycle struct {
	name string
	// setup brings a freshly opened device to the starting state, without
	// faults (nil = just Open).
	setup func(t *testing.T, d *Device)
	// steps run with the fault armed; Open is step 0 when openArmed.
	steps     []func(d *Device) error
	openArmed bool
	// want says which build must run after a cut after n operations
	// ("v1", "v2" or "" for either), given the op count commit at which
	// the cycle's decisive otadata entry is fully programmed and the
	// total number of operations.
	want func(n, commit, total int) string
	// commitStep is the index of the step whose last operation commits.
	commitStep int
}

// TestPowerCutEveryOperation cuts the power after every flash operation
// of an update cycle (commence, writes, complete with reboot, accept), a
// rollback cycle and a first boot on blank otadata, with the interrupted
// operation dropped or torn half-way. After each cut a fresh device
// boots the same flash: it must run one whole valid build, the old one
// before the commit point and the new one once the cycle completed, and
// otadata must never go from one valid sector to none.
func TestPowerCutEveryOperation(t *testing.T) {
	v1, v2 := synthApp(t, "v1"), synthApp(t, "v2")
	builds := map[[32]byte]string{digestOf(t, v1): "v1", digestOf(t, v2): "v2"}
	tb := smallTable(false, 2)
	blankBase := layout{table: tb, images: map[string][]byte{"ota_0": v1}}.build(t)
	base := blankBase.Clone()
	if _, err := Open(Config{Flash: base}); err != nil { // writes {seq 1, VALID}
		t.Fatal(err)
	}

	update := []func(d *Device) error{
		func(d *Device) error { return d.Commence() },
		func(d *Device) error { return d.Write(v2[:300]) },
		func(d *Device) error { return d.Write(v2[300:]) },
		func(d *Device) error { return d.Complete(true) },
		func(d *Device) error { return d.Accept() },
	}
	cycles := []powerCutCycle{
		{
			name:  "update",
			steps: update,
			// Before the set-boot entry is whole, the old build; after the
			// accept, the new one; between, a cut while the bootloader or
			// accept rewrites the entry may lose it (ESP-IDF erases, then
			// programs), so either.
			want: func(n, commit, total int) string {
				switch {
				case n < commit:
					return "v1"
				case n >= total:
					return "v2"
				}
				return ""
			},
			commitStep: 3,
		},
		{
			name: "rollback",
			setup: func(t *testing.T, d *Device) {
				must(t, otaUpdate(d, v2, 256, true)) // v2 on trial
			},
			steps: []func(d *Device) error{
				func(d *Device) error { return d.Rollback() },
				func(d *Device) error { return d.Reboot() },
			},
			// A fresh boot aborts the app on trial anyway.
			want: func(n, commit, total int) string { return "v1" },
		},
		{
			name:      "first boot on blank otadata",
			openArmed: true,
			want:      func(n, commit, total int) string { return "v1" },
		},
	}

	// Dropped, then torn (flash's random model: a torn program clears a
	// random subset of its bits, a torn erase leaves random bits) with
	// three seeds, each cut point drawing from its own.
	modes := []struct {
		torn bool
		seed uint64
	}{{false, 0}, {true, 1}, {true, 1000}, {true, 2000}}
	total := 0
	for _, m := range modes {
		torn := m.torn
		for _, c := range cycles {
			t.Run(fmt.Sprintf("%s/torn=%v/seed=%d", c.name, torn, m.seed), func(t *testing.T) {
				start := base
				if c.openArmed {
					start = blankBase
				}
				// A fault-free run gives the op counts.
				commit, ops := -1, 0
				{
					f := start.Clone()
					var d *Device
					if !c.openArmed {
						d = mustOpen(t, f)
						if c.setup != nil {
							c.setup(t, d)
						}
					}
					o0 := f.Ops()
					if c.openArmed {
						d = mustOpen(t, f)
					}
					for i, s := range c.steps {
						if i == c.commitStep && c.want(0, 0, 1) != "v1" {
							// Complete: verify (no ops), set-boot erase + program,
							// then the reboot's own writes. Commit = the program.
							commit = f.Ops() - o0 + 2
						}
						must(t, s(d))
					}
					ops = f.Ops() - o0
				}
				if commit < 0 {
					commit = ops + 1
				}
				cuts := 0
				for n := 0; ; n++ {
					f := start.Clone()
					var d *Device
					var err error
					if !c.openArmed {
						d = mustOpen(t, f)
						if c.setup != nil {
							c.setup(t, d)
						}
					}
					validBefore := validSectors(t, f, tb)
					f.SetTornSeed(m.seed + uint64(n))
					f.CutPowerAfter(n, torn)
					if c.openArmed {
						d, err = Open(Config{Flash: f})
					}
					for _, s := range c.steps {
						if err != nil {
							break
						}
						err = s(d)
					}
					if !f.PoweredOff() {
						if err != nil {
							t.Fatalf("n=%d: no cut, but error %v", n, err)
						}
						if n < ops {
							t.Fatalf("n=%d: no cut before op %d", n, ops)
						}
					} else {
						cuts++
						if !errors.Is(err, flash.ErrPowerCut) {
							t.Fatalf("n=%d: power cut surfaced as %v", n, err)
						}
					}
					f.PowerOn()
					if validBefore > 0 && validSectors(t, f, tb) == 0 {
						t.Fatalf("n=%d: otadata went from %d valid sectors to none: %s", n, validBefore, describeOtadata(otadataBytes(t, f, tb)))
					}
					d2, err := Open(Config{Flash: f})
					if err != nil {
						t.Fatalf("n=%d: reboot after the cut: %v", n, err)
					}
					build, ok := builds[d2.image.Digest]
					if !ok {
						t.Fatalf("n=%d: running an unknown image in %s", n, runningName(d2))
					}
					if w := c.want(n, commit, ops); w != "" && build != w {
						t.Fatalf("n=%d (commit at op %d of %d): running %s from %s, want %s; otadata %s",
							n, commit, ops, build, runningName(d2), w, describeOtadata(otadataBytes(t, f, tb)))
					}
					if validSectors(t, f, tb) == 0 && validBefore > 0 {
						t.Fatalf("n=%d: no valid otadata sector after reboot", n)
					}
					if !f.PoweredOff() && n >= ops {
						break
					}
				}
				t.Logf("%d operations, %d cut points tried", ops, cuts+1)
				total += cuts + 1
			})
		}
	}
	t.Logf("%d cut points in all", total)
}

func mustOpen(t *testing.T, f *flash.Flash) *Device {
	t.Helper()
	d, err := Open(Config{Flash: f})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestTornOtadataEntry tears the 32-byte entry program at every byte
// boundary for each otadata write the OTA cycle makes. A partial entry
// never counts (its CRC comes last), so the device boots the build it
// would have booted without that write; a whole entry takes effect.
func TestTornOtadataEntry(t *testing.T) {
	v1, v2 := synthApp(t, "v1"), synthApp(t, "v2")
	builds := map[[32]byte]string{digestOf(t, v1): "v1", digestOf(t, v2): "v2"}
	tb := smallTable(false, 2)
	cases := []struct {
		name        string
		setup       func(d *Device) error // before the torn write
		write       func(d *Device) error // makes the torn write
		whole, part string                // build after a reboot: entry whole, entry torn
	}{
		{"set boot (complete)",
			func(d *Device) error { return otaUpdateNoComplete(d, v2) },
			func(d *Device) error { return d.Complete(false) },
			"v2", "v1"},
		{"bootloader NEW -> PENDING_VERIFY",
			func(d *Device) error { return otaUpdate(d, v2, 1000, false) },
			func(d *Device) error { return d.Reboot() },
			"v1", "v1"}, // whole: the next boot aborts the untested app
		{"accept",
			func(d *Device) error { return otaUpdate(d, v2, 1000, true) },
			func(d *Device) error { return d.Accept() },
			"v2", "v1"},
		{"rollback",
			func(d *Device) error { return otaUpdate(d, v2, 1000, true) },
			func(d *Device) error { return d.Rollback() },
			"v1", "v1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k := 0; k <= otadata.EntrySize; k++ {
				f := layout{table: tb, images: map[string][]byte{"ota_0": v1}, od: [2]*otadata.Entry{entry(1, sValid), nil}}.build(t)
				d := mustOpen(t, f)
				must(t, c.setup(d))
				f.CutPowerPartial(1, k) // the sector erase completes, the program is torn
				// Complete(false) succeeds: otaupgrade.c ignores what
				// esp_ota_set_boot_partition returns. The cut happened all
				// the same.
				if err := c.write(d); err != nil && !errors.Is(err, flash.ErrPowerCut) || !f.PoweredOff() {
					t.Fatalf("k=%d: %v, powered off %v; want a power cut", k, err, f.PoweredOff())
				}
				f.PowerOn()
				if validSectors(t, f, tb) == 0 {
					t.Fatalf("k=%d: no valid otadata sector", k)
				}
				d2 := mustOpen(t, f)
				want := c.part
				if k == otadata.EntrySize {
					want = c.whole
				}
				if got := builds[d2.image.Digest]; got != want {
					t.Fatalf("k=%d: running %q, want %s; otadata %s", k, got, want, describeOtadata(otadataBytes(t, f, tb)))
				}
			}
		})
	}
}

// TestTornOtadataEntryRandom tears the set-boot entry program with the
// flash's random model (a random subset of its bits cleared), over many
// seeds. The entry's CRC (bootloader_common_ota_select_valid: CRC32 of
// ota_seq) decides: the device runs the new build only when the entry
// reads back exactly as written, else the old one, and a torn entry
// never counts as some other valid entry.
func TestTornOtadataEntryRandom(t *testing.T) {
	v1, v2 := synthApp(t, "v1"), synthApp(t, "v2")
	builds := map[[32]byte]string{digestOf(t, v1): "v1", digestOf(t, v2): "v2"}
	tb := smallTable(false, 2)
	od := tb.OTAData()
	// What Complete programs into sector 1: seq 2 (ota_1), NEW.
	intended := otadata.NewEntry(2, otadata.StateNew)
	whole := 0
	for seed := uint64(1); seed <= 200; seed++ {
		f := layout{table: tb, images: map[string][]byte{"ota_0": v1}, od: [2]*otadata.Entry{entry(1, sValid), nil}}.build(t)
		d := mustOpen(t, f)
		must(t, otaUpdateNoComplete(d, v2))
		f.SetTornSeed(seed)
		f.CutPowerAfter(1, true) // the sector erase completes, the program is torn
		if err := d.Complete(false); err != nil || !f.PoweredOff() {
			t.Fatalf("seed %d: %v, powered off %v", seed, err, f.PoweredOff())
		}
		f.PowerOn()
		raw := make([]byte, otadata.EntrySize)
		_, err := f.ReadAt(raw, int64(od.Offset)+otadata.SectorSize)
		must(t, err)
		got, err := otadata.Parse(raw)
		must(t, err)
		isWhole := bytes.Equal(raw, intended.Bytes())
		if got.Valid() && !isWhole {
			t.Fatalf("seed %d: torn entry %+v passes its CRC", seed, got)
		}
		want := "v1"
		if isWhole {
			want, whole = "v2", whole+1
		}
		d2 := mustOpen(t, f)
		if b := builds[d2.image.Digest]; b != want {
			t.Fatalf("seed %d: running %q, want %s; otadata %s", seed, b, want, describeOtadata(otadataBytes(t, f, tb)))
		}
	}
	t.Logf("%d of 200 torn programs left the entry whole", whole)
}

func otaUpdateNoComplete(d *Device, img []byte) error {
	if err := d.Commence(); err != nil {
		return err
	}
	return d.Write(img)
}

// TestPowerCutRealImage repeats the update cycle with the shared 310 KB
// Arduino app and the default 4 MiB layout (about 1,270 flash operations),
// cutting at a sample of points: the first few, every 97th, and every one
// of the otadata writes at the end, dropped and torn.
func TestPowerCutRealImage(t *testing.T) {
	v10 := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	builds := map[[32]byte]string{digestOf(t, v10): "v1.0", digestOf(t, v11): "v1.1"}
	content, err := Build(CreateOptions{App: v10})
	must(t, err)
	base := flash.FromBytes(content)
	mustOpen(t, base) // first boot writes {seq 1, VALID}
	tb := DefaultTable()

	cycle := func(d *Device) error {
		if err := otaUpdate(d, v11, 4096, true); err != nil {
			return err
		}
		return d.Accept()
	}
	probe := base.Clone()
	d := mustOpen(t, probe)
	o0 := probe.Ops()
	must(t, cycle(d))
	total := probe.Ops() - o0
	commit := total - 4 // set-boot erase+program, then boot and accept rewrites (2 ops each)

	var points []int
	for n := 0; n <= total; n++ {
		if n < 4 || n%97 == 0 || n >= commit-2 {
			points = append(points, n)
		}
	}
	tried := 0
	for _, torn := range []bool{false, true} {
		for _, n := range points {
			f := base.Clone()
			d := mustOpen(t, f)
			f.SetTornSeed(uint64(n) + 1)
			f.CutPowerAfter(n, torn)
			err := cycle(d)
			if f.PoweredOff() != (n < total) || (err != nil) != (n < total) {
				t.Fatalf("n=%d of %d: powered off %v, error %v", n, total, f.PoweredOff(), err)
			}
			f.PowerOn()
			if validSectors(t, f, tb) == 0 {
				t.Fatalf("n=%d: no valid otadata sector", n)
			}
			d2 := mustOpen(t, f)
			got := builds[d2.image.Digest]
			want := ""
			switch {
			case n < commit:
				want = "v1.0"
			case n >= total:
				want = "v1.1"
			}
			if got == "" || want != "" && got != want {
				t.Fatalf("n=%d (commit %d, total %d, torn %v): running %q, want %q", n, commit, total, torn, got, want)
			}
			tried++
		}
	}
	t.Logf("%d operations per cycle, %d cut points tried", total, tried)
}
