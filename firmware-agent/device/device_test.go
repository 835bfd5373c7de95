package device

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/otadata"
	"github.com/gota-dev/gota/core/partition"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/internal/shareddata"
)

// realDevice returns a 4 MiB device built by Build with the default
// table and v1.0 of the shared Arduino app in app0, booted.
func realDevice(t *testing.T, table *partition.Table, log *bytes.Buffer) (*Device, *flash.Flash) {
	t.Helper()
	v10 := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	b, err := Build(CreateOptions{App: v10, Table: table})
	must(t, err)
	f := flash.FromBytes(b)
	cfg := Config{Flash: f}
	if log != nil {
		cfg.Log = log
	}
	d, err := Open(cfg)
	must(t, err)
	return d, f
}

func partBytes(t *testing.T, f *flash.Flash, p *partition.Partition) []byte {
	t.Helper()
	b := make([]byte, p.Size)
	if _, err := f.ReadAt(b, int64(p.Offset)); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadImagesRefused writes bad images through the API: each is refused
// at the call ESP-IDF refuses it at (the first byte at Write, size at the
// Write that passes the partition end, the rest at Complete), and the
// running app and otadata stay byte for byte as they were.
func TestBadImagesRefused(t *testing.T) {
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	flip := func(b []byte, off int) []byte {
		c := append([]byte(nil), b...)
		c[off] ^= 0x55
		return c
	}
	img11, err := espimage.Parse(v11)
	must(t, err)
	misaligned := func() []byte {
		b, err := espimage.Build(espimage.Header{Chip: espimage.ChipESP32, HashAppended: true},
			[]espimage.Segment{{LoadAddr: 0x3F400000, Data: make([]byte, 512)}},
			&espimage.AppDesc{ProjectName: "misaligned"})
		must(t, err)
		return b
	}()
	newRev := func() []byte {
		b, err := espimage.Build(espimage.Header{Chip: espimage.ChipESP32, HashAppended: true, MinChipRevFull: 301},
			[]espimage.Segment{{LoadAddr: 0x3F400020, Data: make([]byte, 512)}},
			&espimage.AppDesc{ProjectName: "needs v3.1"})
		must(t, err)
		return b
	}()
	smallSlot := &partition.Table{Partitions: []partition.Partition{
		{Name: "nvs", Type: partition.TypeData, Subtype: partition.SubtypeNVS, Offset: 0x9000, Size: 0x5000},
		{Name: "otadata", Type: partition.TypeData, Subtype: partition.SubtypeOTAData, Offset: 0xE000, Size: 0x2000},
		{Name: "app0", Type: partition.TypeApp, Subtype: partition.SubtypeOTA0, Offset: 0x10000, Size: 0x60000},
		{Name: "app1", Type: partition.TypeApp, Subtype: partition.SubtypeOTA0 + 1, Offset: 0x70000, Size: 0x40000},
	}}
	cases := []struct {
		name      string
		table     *partition.Table
		image     []byte
		atWrite   bool // refused by Write (else by Complete)
		code      int
		msg       string
		cause     error
		failAtOff int // for refusals at Write: offset of the refused chunk
	}{
		{name: "first byte not 0xE9", image: flip(v11, 0), atWrite: true, code: ErrOTAValidateFailed, msg: MsgNotValidImage},
		{name: "wrong chip (ESP32-S2 app)", image: shareddata.File(t, "esp32s2-blink.bin"), code: ErrOTAValidateFailed, msg: MsgValidationFailed, cause: espimage.ErrChip},
		{name: "chip revision below the image minimum", image: newRev, code: ErrOTAValidateFailed, msg: MsgValidationFailed, cause: espimage.ErrChipRev},
		{name: "bad checksum", image: flip(v11, img11.Segments[1].Offset+8), code: ErrOTAValidateFailed, msg: MsgValidationFailed, cause: espimage.ErrChecksum},
		{name: "bad digest", image: flip(v11, len(v11)-1), code: ErrOTAValidateFailed, msg: MsgValidationFailed, cause: espimage.ErrDigest},
		// A bootloader image passes esp_ota_end: TestOTAEndAcceptsBootloaderImage.
		{name: "flash-mapped segment misaligned", image: misaligned, code: ErrOTAValidateFailed, msg: MsgValidationFailed, cause: espimage.ErrAlignment},
		// Erased flash follows a truncated image: its next segment header reads 0xFFFFFFFF.
		{name: "truncated image", image: v11[:len(v11)/2], code: ErrOTAValidateFailed, msg: MsgValidationFailed, cause: espimage.ErrSegments},
		{name: "too big for the partition", table: smallSlot, image: v11, atWrite: true, code: ErrInvalidSize, msg: MsgOTAError, cause: espimage.ErrTooBig, failAtOff: 0x40000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, f := realDevice(t, c.table, nil)
			running := d.Running()
			od := d.Table().OTAData()
			appBefore, odBefore := partBytes(t, f, running), partBytes(t, f, od)

			must(t, d.Commence())
			const chunk = 4096
			var err error
			failedAt := -1
			for i := 0; i < len(c.image); i += chunk {
				if err = d.Write(c.image[i:min(i+chunk, len(c.image))]); err != nil {
					failedAt = i
					break
				}
			}
			if c.atWrite {
				wantDeviceErr(t, err, c.code, c.msg)
				if failedAt != c.failAtOff {
					t.Errorf("refused at offset 0x%x, want 0x%x", failedAt, c.failAtOff)
				}
			} else {
				if err != nil {
					t.Fatalf("Write: %v", err)
				}
				err = d.Complete(true)
				wantDeviceErr(t, err, c.code, c.msg)
			}
			if c.cause != nil && !errors.Is(err, c.cause) {
				t.Errorf("error %v does not wrap %v", err, c.cause)
			}
			t.Logf("%v", err)
			if !bytes.Equal(partBytes(t, f, running), appBefore) {
				t.Error("running app's partition changed")
			}
			if !bytes.Equal(partBytes(t, f, od), odBefore) {
				t.Errorf("otadata changed: %s", describeOtadata(partBytes(t, f, od)))
			}
			must(t, d.Reboot())
			if got := d.Running(); got == nil || got.Name != running.Name {
				t.Errorf("after reboot running %v, want %s", got, running.Name)
			}
		})
	}
}

func TestInfoAndTarget(t *testing.T) {
	v10 := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	d, _ := realDevice(t, nil, nil)

	check := func(step, running, next string, states map[string]string, digests map[string][]byte) {
		t.Helper()
		info, err := d.Info()
		must(t, err)
		if info.Running != running || info.Next != next || info.Chip != espimage.ChipESP32 || info.ChipRev != 300 {
			t.Errorf("%s: running %q next %q chip %v rev %d", step, info.Running, info.Next, info.Chip, info.ChipRev)
		}
		if len(info.Partitions) != 2 {
			t.Fatalf("%s: %d partitions", step, len(info.Partitions))
		}
		for _, p := range info.Partitions {
			if p.State != states[p.Label] {
				t.Errorf("%s: %s state %q, want %q", step, p.Label, p.State, states[p.Label])
			}
			want := digests[p.Label]
			if !bytes.Equal(p.SHA256, want) {
				t.Errorf("%s: %s digest %x, want %x", step, p.Label, p.SHA256, want)
			}
			if want != nil && (p.ImageLen != 316944 || p.App == nil || p.App.ProjectName != "arduino-lib-builder") {
				t.Errorf("%s: %s image length %d, descriptor %+v", step, p.Label, p.ImageLen, p.App)
			}
			if want == nil && (p.ImageLen != 0 || p.App != nil) {
				t.Errorf("%s: %s empty slot has length %d, descriptor %+v", step, p.Label, p.ImageLen, p.App)
			}
			if !p.Listed || p.Running != (p.Label == running) {
				t.Errorf("%s: %s listed %v running %v", step, p.Label, p.Listed, p.Running)
			}
		}
	}
	d10, d11 := digestOf(t, v10), digestOf(t, v11)
	check("fresh", "app0", "app0", map[string]string{"app0": "valid"}, map[string][]byte{"app0": d10[:]})

	if _, _, ok := d.Target(); ok {
		t.Error("Target reports an OTA before Commence")
	}
	must(t, d.Commence())
	must(t, d.Write(v11[:1000]))
	must(t, d.Write(v11[1000:5000]))
	if p, n, ok := d.Target(); !ok || p.Name != "app1" || n != 5000 {
		t.Errorf("Target = %v %d %v, want app1 5000 true", p.Name, n, ok)
	}
	must(t, d.Write(v11[5000:]))
	must(t, d.Complete(false))
	if _, _, ok := d.Target(); ok {
		t.Error("Target reports an OTA after Complete")
	}
	check("completed", "app0", "app1", map[string]string{"app0": "valid", "app1": "new"}, map[string][]byte{"app0": d10[:], "app1": d11[:]})
	must(t, d.Reboot())
	check("rebooted", "app1", "app1", map[string]string{"app0": "valid", "app1": "testing"}, map[string][]byte{"app0": d10[:], "app1": d11[:]})
	must(t, d.Accept())
	check("accepted", "app1", "app1", map[string]string{"app0": "valid", "app1": "valid"}, map[string][]byte{"app0": d10[:], "app1": d11[:]})
}

func TestCommenceSequentialErasesLazily(t *testing.T) {
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	d, f := realDevice(t, nil, nil)
	app1 := d.Table().Find("app1")
	must(t, f.Program(app1.Offset, make([]byte, app1.Size))) // stale content everywhere

	wantDeviceErr(t, d.CommenceSequential(int(app1.Size)+1), ErrInvalidSize, MsgOTAError)
	ops := f.Ops()
	must(t, d.CommenceSequential(len(v11)))
	if f.Ops() != ops {
		t.Errorf("CommenceSequential erased up front (%d ops)", f.Ops()-ops)
	}
	for i := 0; i < len(v11); i += 1000 {
		must(t, d.Write(v11[i:min(i+1000, len(v11))]))
	}
	must(t, d.Complete(true))
	if d.Running().Name != "app1" {
		t.Fatalf("running %s after sequential update", d.Running().Name)
	}
	// The erase may round up to the 64 KiB block holding the image's
	// end, no further.
	rest := partBytes(t, f, app1)[(len(v11)+flash.BlockSize-1)/flash.BlockSize*flash.BlockSize:]
	if !bytes.Equal(rest, make([]byte, len(rest))) {
		t.Error("sectors past the image's last block were erased")
	}
}

func TestFileSurvivesProcessRestart(t *testing.T) {
	v10 := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	path := filepath.Join(t.TempDir(), "esp32.flash")
	must(t, Create(path, CreateOptions{App: v10}))
	f, err := flash.Open(path)
	must(t, err)
	d, err := Open(Config{Flash: f})
	must(t, err)
	must(t, otaUpdate(d, v11, 4096, true))
	must(t, d.Accept())
	// No Close: as if the process were killed here.
	g, err := flash.Open(path)
	must(t, err)
	defer g.Close()
	d2, err := Open(Config{Flash: g})
	must(t, err)
	if d2.Running().Name != "app1" || d2.image.Digest != digestOf(t, v11) {
		t.Errorf("after restart running %s", d2.Running().Name)
	}
	f.Close()
}

// TestBootLogAndOnReboot checks the log against ESP-IDF v5.1.3: the app
// information lines are under cpu_start with a 16-hex-digit ELF SHA
// (startup.c start_cpu0_default, esp_app_get_elf_sha256 into buf[17]).
func TestBootLogAndOnReboot(t *testing.T) {
	var log bytes.Buffer
	d, _ := realDevice(t, nil, &log)
	v10, err := espimage.Parse(shareddata.File(t, "esp32-ledcontroller-v1.0.bin"))
	must(t, err)
	elf := fmt.Sprintf(") cpu_start: ELF file SHA256:  %x...\n", v10.App.ELFSHA256[:8])
	for _, s := range []string{"app_init:", "efuse_init:"} {
		if strings.Contains(log.String(), s) {
			t.Errorf("boot log has the v5.3 tag %q", s)
		}
	}
	for _, want := range []string{
		"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\n",
		") boot: ESP-IDF v5.1.3 2nd stage bootloader\n",
		") boot: Partition Table:\n",
		") boot: ## Label            Usage          Type ST Offset   Length\n",
		") boot:  0 nvs              WiFi data        01 02 00009000 00005000\n",
		") boot:  2 app0             OTA app          00 10 00010000 00180000\n",
		") boot: End of partition table\n",
		") boot: No factory image, trying OTA 0\n",
		") esp_image: segment 0: paddr=00010020 vaddr=3f400020 size=126ach ( 75436) map\n",
		") esp_image: segment 1: paddr=000226d4 vaddr=3ffbdb60 size=03c18h ( 15384) load\n",
		") boot: Loaded app from partition at offset 0x10000\n",
		") boot: Set actual ota_seq=1 in otadata[0]\n",
		") cpu_start: Project name:     arduino-lib-builder\n",
		") cpu_start: App version:      37d69ca\n",
		elf,
		") cpu_start: ESP-IDF:          v5.3.2-584-g489d7a2b3a-dirty\n",
		") cpu_start: Min chip rev:     v0.0\n",
		") cpu_start: Chip rev:         v3.0\n",
		") main_task: Calling app_main()\n",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("boot log lacks %q", want)
		}
	}
	if !strings.HasPrefix(strings.Split(log.String(), "\n")[11], "I (") {
		t.Errorf("line 12 is not an ESP-IDF log line: %q", strings.Split(log.String(), "\n")[11])
	}

	var seen []string
	d.OnReboot(func() {
		// The callback runs after the boot log and may use the device.
		info, err := d.Info()
		must(t, err)
		seen = append(seen, info.Running)
		if !strings.HasSuffix(log.String(), "Calling app_main()\n") {
			t.Error("OnReboot ran before the boot log was complete")
		}
	})
	log.Reset()
	must(t, d.Reboot())
	if !strings.Contains(log.String(), "rst:0xc (SW_CPU_RESET)") {
		t.Error("software reset not logged")
	}
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	must(t, otaUpdate(d, v11, 8192, true))
	must(t, d.Rollback())
	if strings.Join(seen, ",") != "app0,app1,app0" {
		t.Errorf("OnReboot saw %v, want app0,app1,app0", seen)
	}
	if !strings.Contains(log.String(), "Rollback to previously worked partition. Restart.") {
		t.Error("rollback not logged")
	}
}

func TestCreate(t *testing.T) {
	v10 := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	dir := t.TempDir()
	factoryTable, err := partition.ParseCSV([]byte("nvs,data,nvs,,0x4000\notadata,data,ota,,0x2000\nphy_init,data,phy,,0x1000\nfactory,app,factory,,1M\nota_0,app,ota_0,,1M\nota_1,app,ota_1,,1M\n"), partition.DefaultTableOffset)
	must(t, err)
	cases := []struct {
		name    string
		opt     CreateOptions
		errWant string
		boot    string
	}{
		{name: "default table", opt: CreateOptions{App: v10}, boot: "app0"},
		{name: "factory table", opt: CreateOptions{App: v10, Table: factoryTable}, boot: "factory"},
		{name: "8 MiB", opt: CreateOptions{App: v10, FlashSize: 8 << 20}, boot: "app0"},
		{name: "default table on 2 MiB", opt: CreateOptions{App: v10, FlashSize: 2 << 20}, errWant: "does not fit a 2 MiB flash"},
		{name: "3 MiB", opt: CreateOptions{App: v10, FlashSize: 3 << 20}, errWant: "want 2, 4, 8 or 16 MiB"},
		{name: "no app", opt: CreateOptions{}, errWant: "no app image"},
		{name: "wrong chip", opt: CreateOptions{App: shareddata.File(t, "esp32s2-blink.bin")}, errWant: "wrong chip"},
		{name: "bootloader", opt: CreateOptions{App: shareddata.File(t, "bootloader-esp32-arduino.bin")}, errWant: "not an app image"},
		{name: "app for another chip asked for", opt: CreateOptions{App: v10, Chip: espimage.ChipESP32C3}, errWant: "wrong chip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			err := Create(path, c.opt)
			if c.errWant != "" {
				if err == nil || !strings.Contains(err.Error(), c.errWant) {
					t.Fatalf("error %v, want one containing %q", err, c.errWant)
				}
				return
			}
			must(t, err)
			f, err := flash.Open(path)
			must(t, err)
			defer f.Close()
			d, err := Open(Config{Flash: f})
			must(t, err)
			if d.Running().Name != c.boot {
				t.Errorf("boots %s, want %s", d.Running().Name, c.boot)
			}
			od := d.Table().OTAData()
			b := partBytes(t, f, od)
			if c.boot == "factory" && !bytes.Equal(b, bytes.Repeat([]byte{0xFF}, len(b))) {
				t.Error("otadata not blank after booting factory")
			}
		})
	}
}

// TestPlanBootIsPure checks that PlanBoot changes nothing and that booting
// does exactly what the plan says.
func TestPlanBootIsPure(t *testing.T) {
	v1 := synthApp(t, "v1")
	l := layout{table: smallTable(false, 2), images: map[string][]byte{"ota_0": v1, "ota_1": v1},
		od: [2]*otadata.Entry{entry(1, sValid), entry(2, sPending)}}
	f := l.build(t)
	before, ops := f.Bytes(), f.Ops()
	pl, err := PlanBoot(f, l.table, BootConfig{Chip: espimage.ChipESP32, ChipRev: 300})
	must(t, err)
	if !bytes.Equal(f.Bytes(), before) || f.Ops() != ops {
		t.Fatal("PlanBoot changed the flash")
	}
	if pl.Boot == nil || pl.Boot.Name != "ota_0" || len(pl.Writes) != 1 || pl.Writes[0].Entry.State != sAborted {
		t.Fatalf("plan: boot %v, writes %+v", pl.Boot, pl.Writes)
	}
	d := mustOpen(t, f)
	if runningName(d) != pl.Boot.Name {
		t.Errorf("booted %s, plan said %s", runningName(d), pl.Boot.Name)
	}
}

// FuzzBoot boots arbitrary otadata contents: the plan never changes the
// flash, booting follows it, and what runs is a verified app.
func FuzzBoot(f *testing.F) {
	seed := func(e0, e1 *otadata.Entry) []byte { return wantOtadata([2]*otadata.Entry{e0, e1}) }
	f.Add(seed(nil, nil)[:64], byte(3), false, false)
	f.Add(append(entry(1, sValid).Bytes(), entry(2, sNew).Bytes()...), byte(3), false, false)
	f.Add(append(entry(1, sValid).Bytes(), entry(2, sPending).Bytes()...), byte(1), true, false)
	f.Add(append(entry(0xFFFFFFFE, sValid).Bytes(), badCRC(3, sValid).Bytes()...), byte(6), false, true)
	v1 := synthApp(f, "v1")
	bad := append([]byte(nil), v1...)
	bad[0x100] ^= 1
	f.Fuzz(func(t *testing.T, entries []byte, goodMask byte, factory, noRollback bool) {
		if len(entries) < 2*otadata.EntrySize {
			return
		}
		l := layout{table: smallTable(factory, 2), images: map[string][]byte{}}
		for i, name := range []string{"factory", "ota_0", "ota_1"} {
			if l.table.Find(name) == nil {
				continue
			}
			if goodMask&(1<<i) != 0 {
				l.images[name] = v1
			} else if goodMask&(8<<i) != 0 {
				l.images[name] = bad
			}
		}
		raw := bytes.Repeat([]byte{0xFF}, otadata.PartitionSize)
		copy(raw, entries[:otadata.EntrySize])
		copy(raw[otadata.SectorSize:], entries[otadata.EntrySize:2*otadata.EntrySize])
		l.rawOD = raw
		fl := l.build(t)
		before := fl.Bytes()
		cfg := BootConfig{Chip: espimage.ChipESP32, ChipRev: 300, NoRollback: noRollback}
		pl, err := PlanBoot(fl, l.table, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fl.Bytes(), before) {
			t.Fatal("PlanBoot changed the flash")
		}
		d, err := Open(Config{Flash: fl, NoRollback: noRollback})
		if pl.Boot == nil {
			if !errors.Is(err, ErrNoBootableApp) {
				t.Fatalf("plan boots nothing, Open: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if runningName(d) != pl.Boot.Name {
			t.Fatalf("booted %s, plan said %s", runningName(d), pl.Boot.Name)
		}
		if _, err := VerifyPartition(fl, *d.Running(), cfg, false); err != nil {
			t.Fatalf("running an image that does not verify: %v", err)
		}
		// Applying the plan's writes to the old otadata gives the new one.
		want := append([]byte(nil), raw...)
		for _, w := range pl.Writes {
			sec := want[w.Sector*otadata.SectorSize : (w.Sector+1)*otadata.SectorSize]
			for i := range sec {
				sec[i] = 0xFF
			}
			copy(sec, w.Entry.Bytes())
		}
		if got := otadataBytes(t, fl, l.table); !bytes.Equal(got, want) {
			t.Fatalf("otadata after boot %s, plan gives %s", describeOtadata(got), describeOtadata(want))
		}
	})
}

// TestConcurrentUse runs Info and Target from other goroutines while an
// update streams in (run with -race).
func TestConcurrentUse(t *testing.T) {
	v2 := synthApp(t, "v2")
	l := layout{table: smallTable(false, 2), images: map[string][]byte{"ota_0": synthApp(t, "v1")}}
	d := mustOpen(t, l.build(t))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			if _, err := d.Info(); err != nil {
				t.Error(err)
				return
			}
			d.Target()
		}
	}()
	for i := 0; i < 20; i++ {
		must(t, otaUpdate(d, v2, 64, true))
		must(t, d.Accept())
	}
	<-done
}

// BenchmarkStreamUpdate streams the shared v1.1 app through Commence,
// Write (4 KiB chunks) and Complete, without the flash timing model, for
// whole-partition erase and sequential (lazy) erase; bytes/s is the
// emulation's own overhead.
func BenchmarkStreamUpdate(b *testing.B) {
	v10 := shareddata.File(b, "esp32-ledcontroller-v1.0.bin")
	v11 := shareddata.File(b, "esp32-ledcontroller-v1.1.bin")
	content, err := Build(CreateOptions{App: v10})
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"commence", "sequential"} {
		b.Run(mode, func(b *testing.B) {
			d, err := Open(Config{Flash: flash.FromBytes(content)})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(v11)))
			for i := 0; i < b.N; i++ {
				if mode == "commence" {
					err = d.Commence()
				} else {
					err = d.CommenceSequential(len(v11))
				}
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < len(v11); off += 4096 {
					if err := d.Write(v11[off:min(off+4096, len(v11))]); err != nil {
						b.Fatal(err)
					}
				}
				if err := d.Complete(false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The lazy erase of sequential writes uses one 64 KiB block erase where the
// announced image covers at least a quarter of the block, 4 KiB sectors
// for a shorter tail.
func TestCommenceSequentialErasesBlocks(t *testing.T) {
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	const block, sector = flash.BlockSize, flash.SectorSize
	tests := []struct {
		name            string
		size            int
		blocks, sectors int
	}{
		{"LEDController v1.1 (4 blocks + 14 sectors)", len(v11), 5, 0},
		{"tail of 3 sectors", 4*block + 3*sector, 4, 3},
		{"tail of 4 sectors", 4*block + 4*sector, 5, 0},
		{"tail of 1 byte", 2*block + 1, 2, 1},
		{"less than a quarter block", 3 * sector, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, f := realDevice(t, nil, nil)
			image := make([]byte, tt.size)
			copy(image, v11)
			must(t, d.CommenceSequential(len(image)))
			ops := f.Ops()
			const chunk = 4096 // page-aligned, so each chunk is chunk/256 page programs
			pages := 0
			for i := 0; i < len(image); i += chunk {
				p := image[i:min(i+chunk, len(image))]
				must(t, d.Write(p))
				pages += (len(p) + flash.PageSize - 1) / flash.PageSize
			}
			if got, want := f.Ops()-ops-pages, tt.blocks+tt.sectors; got != want {
				t.Errorf("%d erase operations for a %d-byte image, want %d blocks + %d sectors", got, len(image), tt.blocks, tt.sectors)
			}
			if len(image) == len(v11) {
				must(t, d.Complete(false))
			}
		})
	}
}
