package device

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/otadata"
	"github.com/gota-dev/gota/core/partition"
	"github.com/gota-dev/gota/firmware-agent/flash"
)

// Small layouts keep flash copies and operation counts small.
const smallFlash = 0x50000

// smallTable returns a table with nOTA OTA slots of 64 KiB, and a factory
// app before them when factory is set.
func smallTable(factory bool, nOTA int) *partition.Table {
	t := &partition.Table{Partitions: []partition.Partition{
		{Name: "nvs", Type: partition.TypeData, Subtype: partition.SubtypeNVS, Offset: 0x9000, Size: 0x4000},
		{Name: "otadata", Type: partition.TypeData, Subtype: partition.SubtypeOTAData, Offset: 0xD000, Size: 0x2000},
		{Name: "phy_init", Type: partition.TypeData, Subtype: partition.SubtypePHY, Offset: 0xF000, Size: 0x1000},
	}}
	off := uint32(0x10000)
	if factory {
		t.Partitions = append(t.Partitions, partition.Partition{Name: "factory", Type: partition.TypeApp, Subtype: partition.SubtypeFactory, Offset: off, Size: 0x10000})
		off += 0x10000
	}
	for i := 0; i < nOTA; i++ {
		t.Partitions = append(t.Partitions, partition.Partition{Name: fmt.Sprintf("ota_%d", i), Type: partition.TypeApp, Subtype: partition.SubtypeOTA0 + uint8(i), Offset: off, Size: 0x10000})
		off += 0x10000
	}
	return t
}

// synthApp builds a small valid ESP32 app image whose flash-mapped
// segment is aligned for any 64 KiB-aligned partition.
func synthApp(t testing.TB, version string) []byte {
	t.Helper()
	b, err := espimage.Synth(espimage.SynthOptions{Version: version, ProjectName: "synth"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// digestOf returns the appended SHA-256 of an image.
func digestOf(t testing.TB, b []byte) [32]byte {
	t.Helper()
	img, err := espimage.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return img.Digest
}

// layout describes a flash to build for a test: table, images per
// partition name, and the two otadata entries (nil = erased sector).
type layout struct {
	table  *partition.Table
	images map[string][]byte
	od     [2]*otadata.Entry
	rawOD  []byte // when set, the whole otadata partition content
}

func (l layout) build(t testing.TB) *flash.Flash {
	t.Helper()
	f := flash.NewMemory(smallFlash)
	tb, err := l.table.Encode()
	if err != nil {
		t.Fatal(err)
	}
	must(t, f.Program(partition.DefaultTableOffset, tb))
	for name, img := range l.images {
		p := l.table.Find(name)
		if p == nil {
			t.Fatalf("no partition %q", name)
		}
		must(t, f.Program(p.Offset, img))
	}
	od := l.table.OTAData()
	if l.rawOD != nil {
		must(t, f.Program(od.Offset, l.rawOD))
	}
	for i, e := range l.od {
		if e != nil {
			must(t, f.Program(od.Offset+uint32(i)*otadata.SectorSize, e.Bytes()))
		}
	}
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func entry(seq uint32, st otadata.State) *otadata.Entry {
	e := otadata.NewEntry(seq, st)
	return &e
}

// otadataBytes returns the whole otadata partition.
func otadataBytes(t testing.TB, r io.ReaderAt, tb *partition.Table) []byte {
	t.Helper()
	od := tb.OTAData()
	b := make([]byte, od.Size)
	if _, err := r.ReadAt(b, int64(od.Offset)); err != nil {
		t.Fatal(err)
	}
	return b
}

// wantOtadata is the otadata partition content for two entries (nil =
// erased sector).
func wantOtadata(es [2]*otadata.Entry) []byte {
	b := bytes.Repeat([]byte{0xFF}, otadata.PartitionSize)
	for i, e := range es {
		if e != nil {
			copy(b[i*otadata.SectorSize:], e.Bytes())
		}
	}
	return b
}

func describeOtadata(b []byte) string {
	d, err := otadata.Decode(b)
	if err != nil {
		return err.Error()
	}
	var s []string
	for i, e := range d.Entries {
		if bytes.Equal(b[i*otadata.SectorSize:(i+1)*otadata.SectorSize], bytes.Repeat([]byte{0xFF}, otadata.SectorSize)) {
			s = append(s, "blank")
			continue
		}
		s = append(s, fmt.Sprintf("{seq=0x%x %v crc ok=%v}", e.Seq, e.State, e.CRCOK()))
	}
	return fmt.Sprint(s)
}

// otaUpdate runs commence, writes img in chunks, and complete.
func otaUpdate(d *Device, img []byte, chunk int, reboot bool) error {
	if err := d.Commence(); err != nil {
		return err
	}
	for i := 0; i < len(img); i += chunk {
		if err := d.Write(img[i:min(i+chunk, len(img))]); err != nil {
			return err
		}
	}
	return d.Complete(reboot)
}

func wantDeviceErr(t *testing.T, err error, code int, msg string) {
	t.Helper()
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("got %v (%T), want *device.Error %s %q", err, err, ErrName(code), msg)
	}
	if de.Code != code || de.Message != msg {
		t.Fatalf("got %s %q (%v), want %s %q", ErrName(de.Code), de.Message, de, ErrName(code), msg)
	}
}

func runningName(d *Device) string {
	if p := d.Running(); p != nil {
		return p.Name
	}
	return ""
}
