package device

import (
	"bytes"
	"encoding/binary"
	"io"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/partition"
)

// This file is otaupgrade.info() and esp_ota_get_partition_description.

// Info is what otaupgrade.info() returns, plus chip and digests.
type Info struct {
	Running    string // label of the running partition
	Next       string // label of the next boot partition
	Chip       espimage.Chip
	ChipRev    uint16
	Partitions []PartitionInfo // every app partition, table order
}

// PartitionInfo describes one app partition.
//
// otaupgrade.info() lists only partitions with Listed set, and for those
// with State "" it gives an empty table: a faithful Lua emulation shows
// App fields only when State is not "".
type PartitionInfo struct {
	Label    string
	Subtype  uint8
	Offset   uint32
	Size     uint32
	State    string            // "new","testing","valid","invalid","aborted","undefined" or "" (no entry)
	App      *espimage.AppDesc // nil when the descriptor is unreadable
	SHA256   []byte            // appended digest of the image there, nil if none
	ImageLen int               // 0 when no valid image
	Listed   bool              // subtype ota_0..test: a key of otaupgrade.info()'s table
	Running  bool              // the app running now
}

// Info is otaupgrade.info().
func (d *Device) Info() (Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.notRunning(); err != nil {
		return Info{}, err
	}
	info := Info{Running: d.running.Name, Chip: d.cfg.Chip, ChipRev: d.cfg.ChipRev}
	if b := d.bootPartition(); b != nil {
		info.Next = b.Name
	}
	for i := range d.table.Partitions {
		p := &d.table.Partitions[i]
		if p.Type != partition.TypeApp {
			continue
		}
		pi := PartitionInfo{
			Label: p.Name, Subtype: p.Subtype, Offset: p.Offset, Size: p.Size,
			Listed:  p.Subtype >= partition.SubtypeOTA0 && p.Subtype <= partition.SubtypeTest,
			Running: same(p, d.running),
		}
		if st, code := d.stateOf(p); code == 0 {
			pi.State = st.String()
		}
		pi.App = ReadAppDesc(d.fl, *p)
		if img, err := loadImage(d.fl, *p, d.cfg.bootConfig(), modeVerifySilent, nil); err == nil {
			pi.ImageLen = img.Length
			if img.HashAppended {
				pi.SHA256 = append([]byte(nil), img.Digest[:]...)
			}
		}
		info.Partitions = append(info.Partitions, pi)
	}
	return info, nil
}

// ReadAppDesc is esp_ota_get_partition_description: the 256 bytes after
// the image and first segment headers, if they carry the magic word, or
// nil. It does not verify the image.
func ReadAppDesc(r io.ReaderAt, p partition.Partition) *espimage.AppDesc {
	b := make([]byte, espimage.AppDescSize)
	if _, err := r.ReadAt(b, int64(p.Offset)+espimage.AppDescOffset); err != nil {
		return nil
	}
	if binary.LittleEndian.Uint32(b) != espimage.AppDescMagic {
		return nil
	}
	cstr := func(f []byte) string {
		if i := bytes.IndexByte(f, 0); i >= 0 {
			f = f[:i]
		}
		return string(f)
	}
	a := &espimage.AppDesc{
		SecureVersion: binary.LittleEndian.Uint32(b[4:]),
		Version:       cstr(b[16:48]),
		ProjectName:   cstr(b[48:80]),
		Time:          cstr(b[80:96]),
		Date:          cstr(b[96:112]),
		IDFVer:        cstr(b[112:144]),
	}
	copy(a.ELFSHA256[:], b[144:176])
	return a
}
