package device

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/otadata"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/internal/shareddata"
)

// TestOTAEndAcceptsBootloaderImage follows esp_ota_ops.c (v5.1.3,
// esp_ota_end), which runs esp_image_verify and asks for no app
// descriptor: a bootloader .bin passes Complete, becomes the next boot
// target, and the bootloader refuses it at boot (its segments load over
// the bootloader's own RAM) and falls back to the running app.
func TestOTAEndAcceptsBootloaderImage(t *testing.T) {
	var log bytes.Buffer
	d, f := realDevice(t, nil, &log)
	boot := shareddata.File(t, "bootloader-esp32-arduino.bin")
	must(t, d.Commence())
	must(t, d.Write(boot))
	must(t, d.Complete(false))
	tb := d.Table()
	data, err := ReadOtadata(f, *tb.OTAData())
	must(t, err)
	if a := data.Active(); a < 0 || otadata.Slot(data.Entries[a].Seq, 2) != 1 || data.Entries[a].State != otadata.StateNew {
		t.Fatalf("otadata after Complete: %s, want app1 selected as NEW", describeOtadata(otadataBytes(t, f, tb)))
	}
	log.Reset()
	must(t, d.Reboot())
	if got := runningName(d); got != "app0" {
		t.Errorf("after reboot running %q, want app0 (fallback)", got)
	}
	out := log.String()
	for _, want := range []string{
		"E (", "esp_image: Segment 0 0x3fff0030-",
		"invalid: overlaps bootloader data",
		"boot: OTA app partition slot 1 is not bootable",
		"boot: Loaded app from partition at offset 0x10000",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("boot log lacks %q:\n%s", want, out)
		}
	}
}

// imageWith builds a synthetic app whose second segment loads at addr.
func imageWith(t *testing.T, addr uint32) []byte {
	t.Helper()
	b, err := espimage.Build(espimage.Header{Chip: espimage.ChipESP32, HashAppended: true},
		[]espimage.Segment{
			{LoadAddr: 0x3F400020, Data: make([]byte, 512)},
			{LoadAddr: addr, Data: make([]byte, 64)},
		}, &espimage.AppDesc{ProjectName: "addr", Version: fmt.Sprintf("%x", addr)})
	must(t, err)
	return b
}

// TestBootLoadAddressCheck: an image with a segment over the bootloader's
// RAM passes esp_ota_end (the app does not check load addresses) and is
// refused at boot by process_segment's verify_load_addresses
// (esp_image_format.c, v5.1.3, BOOTLOADER_BUILD only).
func TestBootLoadAddressCheck(t *testing.T) {
	for _, c := range []struct {
		addr uint32
		want string // "" = boots
	}{
		{0x3FFB0000, ""},
		{0x50000000, ""},
		{0x3FFF0100, "esp_image: Segment 1 0x3fff0100-0x3fff0140 invalid: overlaps bootloader data"},
		{0x3FFE3E00, "esp_image: Segment 1 0x3ffe3e00-0x3ffe3e40 invalid: overlaps bootloader stack"},
		{0x20000000, "esp_image: Segment 1 0x20000000-0x20000040 invalid: bad load address range"},
	} {
		t.Run(fmt.Sprintf("0x%08x", c.addr), func(t *testing.T) {
			var log bytes.Buffer
			f := layout{table: smallTable(false, 2), images: map[string][]byte{"ota_0": synthApp(t, "v1")}}.build(t)
			d, err := Open(Config{Flash: f, Log: &log})
			must(t, err)
			must(t, otaUpdate(d, imageWith(t, c.addr), 1000, false))
			log.Reset()
			must(t, d.Reboot())
			got := runningName(d)
			if c.want == "" {
				if got != "ota_1" {
					t.Errorf("running %q, want ota_1\n%s", got, log.String())
				}
				return
			}
			if got != "ota_0" {
				t.Errorf("running %q, want ota_0 (fallback)", got)
			}
			if !strings.Contains(log.String(), c.want) {
				t.Errorf("boot log lacks %q:\n%s", c.want, log.String())
			}
		})
	}
}

// TestBootErrorMessages checks the boot log against the messages
// esp_image_format.c and bootloader_common_loader.c (v5.1.3) print, and
// that the segment lines before a failure are printed
// (process_segment logs each segment as it meets it).
func TestBootErrorMessages(t *testing.T) {
	good := synthApp(t, "v2")
	img, err := espimage.Parse(good)
	must(t, err)
	corrupt := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	s2 := shareddata.File(t, "esp32s2-blink.bin")
	cases := []struct {
		name  string
		image []byte
		want  []string
	}{
		{"checksum", corrupt(func(b []byte) { b[img.Segments[1].Offset] ^= 1; rehash(b) }), []string{
			"I (", ") esp_image: segment 0: paddr=00020020 vaddr=3f400020 size=00200h (   512) map\n",
			") esp_image: segment 1: paddr=00020228 vaddr=3ffb0000 size=00040h (    64) load\n",
			fmt.Sprintf(") esp_image: Checksum failed. Calculated 0x%x read 0x%x\n", img.Checksum^1, img.Checksum),
			"boot: OTA app partition slot 1 is not bootable"}},
		{"digest", corrupt(func(b []byte) { b[len(b)-1] ^= 1 }), []string{
			") esp_image: segment 1: paddr=00020228", "E (", ") esp_image: Image hash failed - image is corrupt\n"}},
		{"chip", s2, []string{") boot_comm: mismatch chip ID, expected 0, found 2\n"}},
		{"min rev", corrupt(func(b []byte) { b[15] = 0x2D; b[16] = 1; rehash(b) }), []string{ // 301
			") boot_comm: Image requires chip rev >= v3.1, but chip is v3.0\n"}},
		{"padding segment", padded(t), []string{") esp_image: segment 2: paddr=00020270 vaddr=00000000 size=00010h (    16) \n"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var log bytes.Buffer
			f := layout{table: smallTable(false, 2), images: map[string][]byte{"ota_0": synthApp(t, "v1")}}.build(t)
			od := smallTable(false, 2).OTAData()
			// Select ota_1 directly; the image is not written through the
			// API, which would refuse most of these.
			must(t, f.Program(od.Offset, otadata.NewEntry(2, otadata.StateValid).Bytes()))
			must(t, f.Program(0x20000, c.image))
			d, err := Open(Config{Flash: f, Log: &log})
			must(t, err)
			for _, w := range c.want {
				if !strings.Contains(log.String(), w) {
					t.Errorf("boot log lacks %q:\n%s", w, log.String())
				}
			}
			if strings.Contains(log.String(), ": image at 0x") || strings.Contains(log.String(), "mismatch:") {
				t.Errorf("boot log has Go error text:\n%s", log.String())
			}
			_ = d
		})
	}
}

// rehash rewrites the appended SHA-256 after an edit.
func rehash(b []byte) {
	img, err := espimage.Parse(b)
	if err != nil || !img.HashAppended {
		return
	}
	copy(b[img.Length-32:], img.ComputedDigest[:])
}

// padded is a valid app with a padding segment (load address 0), which
// the bootloader neither loads nor maps: its line has an empty type.
func padded(t testing.TB) []byte {
	t.Helper()
	b, err := espimage.Build(espimage.Header{Chip: espimage.ChipESP32, HashAppended: true},
		[]espimage.Segment{
			{LoadAddr: 0x3F400020, Data: make([]byte, 512)},
			{LoadAddr: 0x3FFB0000, Data: make([]byte, 64)},
			{LoadAddr: 0, Data: make([]byte, 16)},
		}, &espimage.AppDesc{ProjectName: "padded"})
	must(t, err)
	return b
}

// TestBootTableChecks: the bootloader verifies the table with
// esp_partition_table_verify (flash_partitions.c, v5.1.3) against the
// flash size in its own header, logs its message under flash_parts and
// resets (bootloader_utility_load_partition_table, call_start_cpu0).
func TestBootTableChecks(t *testing.T) {
	v10 := shareddata.File(t, "esp32-ledcontroller-v1.0.bin")
	b, err := Build(CreateOptions{App: v10})
	must(t, err)
	// A bootloader header at 0x1000 that declares 2 MB (byte 3 high nibble 1).
	bootOff := BootloaderOffset(espimage.ChipESP32)
	boot := shareddata.File(t, "bootloader-esp32-arduino.bin")
	copy(b[bootOff:], boot)
	b[bootOff+3] = b[bootOff+3]&0x0F | 0x10
	var log bytes.Buffer
	_, err = Open(Config{Flash: flashFromBytes(b), Log: &log})
	if err == nil {
		t.Fatal("Open succeeded with a table past the 2 MB the bootloader header declares")
	}
	for _, want := range []string{
		") flash_parts: partition 3 invalid - offset 0x190000 size 0x180000 exceeds flash chip size 0x200000\n",
		") boot: Failed to verify partition table\n",
		") boot: load partition table error!\n",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	// The same flash with the header saying 4 MB boots.
	b[bootOff+3] = b[bootOff+3]&0x0F | 0x20
	if _, err := Open(Config{Flash: flashFromBytes(b)}); err != nil {
		t.Fatalf("4 MB header: %v", err)
	}
}

// TestOtadataTooSmall: bootloader_utility.c read_otadata (v5.1.3) refuses
// an otadata partition under 0x2000 bytes, so the bootloader resets
// before trying any app, forever.
func TestOtadataTooSmall(t *testing.T) {
	tb := smallTable(false, 2)
	tb.Find("otadata").Size = 0x1000
	var log bytes.Buffer
	f := layout{table: tb, images: map[string][]byte{"ota_0": synthApp(t, "v1")}}.build(t)
	d, err := Open(Config{Flash: f, Log: &log})
	if !errors.Is(err, ErrNoBootableApp) || !errors.Is(err, ErrOtadataTooSmall) || d.Running() != nil {
		t.Fatalf("Open: %v, want a reset for the small otadata", err)
	}
	want := ") boot: ota_info partition size 4096 is too small (minimum 8192 bytes)\n"
	if !strings.Contains(log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, log.String())
	}
	if strings.Contains(log.String(), "esp_image") {
		t.Errorf("the bootloader tried an app:\n%s", log.String())
	}
}

func flashFromBytes(b []byte) *flash.Flash { return flash.FromBytes(b) }

// FuzzLoadImage feeds arbitrary partition contents to the image loader
// (esp_image_format.c's image_load): it must not panic, must accept only
// what espimage's own verification accepts (both model esp_image_verify),
// and at boot must accept no more than the app-side verify does.
func FuzzLoadImage(f *testing.F) {
	f.Add(synthApp(f, "v1"))
	f.Add(padded(f))
	f.Add([]byte{0xE9, 1, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x3F, 4, 0, 0, 0})
	tb := smallTable(false, 2)
	p := *tb.Find("ota_1")
	cfg := BootConfig{Chip: espimage.ChipESP32, ChipRev: 300}
	f.Fuzz(func(t *testing.T, img []byte) {
		if len(img) > int(p.Size) {
			img = img[:p.Size]
		}
		fl := flash.NewMemory(smallFlash)
		if err := fl.Program(p.Offset, img); err != nil {
			t.Fatal(err)
		}
		got, verr := loadImage(fl, p, cfg, modeVerify, nil)
		_, boot := loadImage(fl, p, cfg, modeBoot, nil)
		_, ref := VerifyPartition(fl, p, cfg, false)
		if (verr == nil) != (ref == nil) {
			t.Fatalf("image_load verify: %v; espimage Verify: %v", verr, ref)
		}
		if boot == nil && verr != nil {
			t.Fatalf("boot accepts what verify refuses: %v", verr)
		}
		if verr == nil && (got == nil || got.Length > int(p.Size)) {
			t.Fatalf("accepted image %+v does not fit 0x%x", got, p.Size)
		}
	})
}
