package rom

import (
	"crypto/sha256"
	"encoding/hex"
)

// Segment is one part of a flasher stub as a host uploads it with
// MEM_BEGIN/MEM_DATA: its load address and the SHA-256 of its bytes.
type Segment struct {
	Addr   uint32
	SHA256 string // hex
}

// Stub is a published flasher stub the emulator recognises. Only these
// digests are kept here, never the stub images: the emulator does not run
// Xtensa or RISC-V code, it behaves as the stub would once one of these
// has been uploaded and started.
type Stub struct {
	Name  string // origin and version
	Chip  *Chip
	Entry uint32
	Text  Segment
	Data  Segment
}

// esp-flasher-stub v1.2.2 (Apache-2.0 OR MIT,
// github.com/espressif/esp-flasher-stub/releases/tag/v1.2.2): the stubs
// esptool-js 0.7.0 ships in lib/targets/stub_flasher/*.json, and the same
// files esptool 5.3.1 carries in esptool/targets/stub_flasher/2/.
//
// esptool-legacy-flasher-stub v1.11.1 (GPL-2.0-or-later): the stubs
// esptool 5.3.1 carries in esptool/targets/stub_flasher/1/.
var KnownStubs = []Stub{
	{"esp-flasher-stub v1.2.2 (esptool-js 0.7.0, esptool 5.3.1 stub 2)", ESP32, 0x400A902C,
		Segment{0x400A8000, "fc5fb606754d152b9b9e4f20c72fdad83d1d99b1b139744bc53cc160b1edd570"},
		Segment{0x3FFDED6C, "580837cfef9d57b223a4d30cf634dad72f1fdcc19b499ca62b514b487a0c3438"}},
	{"esp-flasher-stub v1.2.2 (esptool-js 0.7.0, esptool 5.3.1 stub 2)", ESP32S2, 0x400290A4,
		Segment{0x40028000, "2f9d78912aabf158d013c6162becdd85967dd4794032012f3600228cddec5ef9"},
		Segment{0x3FFE2DC0, "bb9dd2ee4821aad523bc3cd52a150d69e560d30244c45b5aff3d19b06faf5d32"}},
	{"esp-flasher-stub v1.2.2 (esptool-js 0.7.0, esptool 5.3.1 stub 2)", ESP32S3, 0x40379524,
		Segment{0x40378000, "c37a7d12d52633fd629fbed13f3a7418216af368d8e80f17853ce6de29741374"},
		Segment{0x3FCB2DC0, "75be8e20e5c91b2b92cd02be9abe2462436648780e4878ea173598c5ed14df93"}},
	{"esp-flasher-stub v1.2.2 (esptool-js 0.7.0, esptool 5.3.1 stub 2)", ESP32C3, 0x40380E9A,
		Segment{0x40380000, "c06cc1a34a02d8f8755692cf89843b388978d19a255b0d9c26b10a0f41a90ffb"},
		Segment{0x3FC96D68, "2cb1bc0835895d6818c8c2c6a32dacd248f8b78b0cd0a8dc500c7f1c300ec979"}},
	{"esptool-legacy-flasher-stub v1.11.1 (esptool 5.3.1 stub 1)", ESP32, 0x400BE658,
		Segment{0x400BE000, "b2dff40d626d2e83234ba17f79ab968cf5505cf989d15f9954ed477777eeddad"},
		Segment{0x3FFDEBAC, "67e2e29deda649edc6921f9c7149f2c18f0497b94828553ec743873aea219c73"}},
	{"esptool-legacy-flasher-stub v1.11.1 (esptool 5.3.1 stub 1)", ESP32S2, 0x400288AC,
		Segment{0x40028000, "e9ceeffe0ef179759c797aaffbc2eb63fc6926adea980ad1d295b8652b2278f3"},
		Segment{0x3FFE2C00, "49197c9c135afafc73b03f4ab8213119bedf4b1453d9b9f69ad15f3533704296"}},
	{"esptool-legacy-flasher-stub v1.11.1 (esptool 5.3.1 stub 1)", ESP32S3, 0x40378C94,
		Segment{0x40378000, "4f2db4cfaa9938d03537519d95081372f8b833dfcf2ae8fb47fc90425cb853d3"},
		Segment{0x3FCB2C00, "9c9afe914bfbc69aa663ed70c2abd574e6a16699ef7150a9bb625dd9b8453d8a"}},
	{"esptool-legacy-flasher-stub v1.11.1 (esptool 5.3.1 stub 1)", ESP32C3, 0x403806D2,
		Segment{0x40380000, "857660860ee353699c11c6dfc82d3bfd0bcfa7890c8c9b5fc84f1a551f1f5003"},
		Segment{0x3FC96BB8, "32d5ee4107d87cb20b0778b0d307648ff5c47e2bc001616010d73d92de8cb8aa"}},
}

// memUpload collects what MEM_BEGIN/MEM_DATA put into RAM.
type memUpload struct {
	segs []memSeg
	cur  int // index of the segment MEM_DATA fills, -1 before MEM_BEGIN
}

type memSeg struct {
	addr      uint32
	size      uint32
	blockSize uint32
	data      []byte
}

// memCommand handles MEM_BEGIN (size, blocks, block size, address),
// MEM_DATA (like FLASH_DATA, checksummed) and MEM_END (execute flag: 0
// to jump to the entry; entry address). The ROM answers MEM_END, then
// jumps: to a recognised stub, which greets with the unsolicited "OHAI"
// packet (serial-protocol.rst, "Initialization"), or to unknown code,
// after which the chip never answers again until reset.
func (l *Loader) memCommand(c command) error {
	bad := l.errCode(ErrROMInvalidMsg, ErrStubBadDataLen)
	switch c.op {
	case OpMemBegin:
		w, ok := c.words(4)
		if !ok || w[0] > 1<<20 {
			return l.reply(c.op, nil, bad)
		}
		if len(l.mem.segs) == 0 {
			l.mem.cur = -1
		}
		l.mem.segs = append(l.mem.segs, memSeg{addr: w[3], size: w[0], blockSize: w[2], data: make([]byte, w[0])})
		l.mem.cur = len(l.mem.segs) - 1
		return l.reply(c.op, nil, 0)
	case OpMemData:
		h, ok := c.words(4)
		if !ok || uint32(len(c.data)-16) != h[0] || l.mem.cur < 0 || len(l.mem.segs) == 0 {
			return l.reply(c.op, nil, bad)
		}
		data := c.data[16:]
		if Checksum(data) != c.chk&0xFF {
			return l.reply(c.op, nil, l.errCode(ErrROMChecksum, ErrStubBadDataChecksum))
		}
		s := &l.mem.segs[l.mem.cur]
		off := int64(h[1]) * int64(s.blockSize)
		if off+int64(len(data)) > int64(s.size) {
			return l.reply(c.op, nil, l.errCode(ErrROMInvalidRAMSz, ErrStubTooMuchData))
		}
		copy(s.data[off:], data)
		return l.reply(c.op, nil, 0)
	}
	w, ok := c.words(2)
	if !ok {
		return l.reply(c.op, nil, bad)
	}
	if err := l.reply(c.op, nil, 0); err != nil {
		return err
	}
	if w[0] != 0 {
		return nil // loaded, not started
	}
	segs := l.mem.segs
	l.mem = memUpload{}
	st := l.recognise(segs, w[1])
	if st == nil || l.stub != nil {
		return ErrHung
	}
	l.stub = st
	l.val = 0
	if l.cfg.OnStub != nil {
		l.cfg.OnStub(st)
	}
	return l.send([]byte("OHAI"))
}

// recognise finds the stub whose text and data segments were uploaded,
// in any order, with entry as its entry point.
func (l *Loader) recognise(segs []memSeg, entry uint32) *Stub {
	digest := map[uint32]string{}
	for _, s := range segs {
		sum := sha256.Sum256(s.data)
		digest[s.addr] = hex.EncodeToString(sum[:])
	}
	for i := range l.cfg.Stubs {
		st := &l.cfg.Stubs[i]
		if st.Chip != l.cfg.Chip || st.Entry != entry || len(segs) != 2 {
			continue
		}
		if digest[st.Text.Addr] == st.Text.SHA256 && digest[st.Data.Addr] == st.Data.SHA256 {
			return st
		}
	}
	return nil
}
