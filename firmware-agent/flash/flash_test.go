package flash

import (
	"bytes"
	"errors"
	"math/bits"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func read(t *testing.T, f *Flash, off, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, int64(off)); err != nil {
		t.Fatalf("ReadAt(0x%x, %d): %v", off, n, err)
	}
	return b
}

func TestProgramOnlyClearsBits(t *testing.T) {
	f := NewMemory(BlockSize)
	if err := f.Program(0x10, []byte{0xF0, 0x0F, 0xAA}); err != nil {
		t.Fatal(err)
	}
	if err := f.Program(0x10, []byte{0xCC, 0xFF, 0x55}); err != nil {
		t.Fatal(err)
	}
	if got, want := read(t, f, 0x10, 3), []byte{0xC0, 0x0F, 0x00}; !bytes.Equal(got, want) {
		t.Errorf("after two programs: got % x, want % x (AND of both)", got, want)
	}
	if err := f.EraseSector(0); err != nil {
		t.Fatal(err)
	}
	if got := read(t, f, 0x10, 3); !bytes.Equal(got, []byte{0xFF, 0xFF, 0xFF}) {
		t.Errorf("after erase: got % x, want ff ff ff", got)
	}
}

func TestProgramCountsPages(t *testing.T) {
	tests := []struct {
		off, n int
		pages  int
	}{
		{0, 1, 1},
		{0, 256, 1},
		{0, 257, 2},
		{255, 2, 2},
		{100, 1000, 5}, // 100..1100 touches pages 0-4: 156+256+256+256+76 bytes
	}
	for _, tt := range tests {
		f := NewMemory(BlockSize)
		if err := f.Program(uint32(tt.off), make([]byte, tt.n)); err != nil {
			t.Fatal(err)
		}
		if got := f.Ops(); got != tt.pages {
			t.Errorf("Program(%d, %d bytes): %d ops, want %d", tt.off, tt.n, got, tt.pages)
		}
	}
}

func TestEraseRangeUsesBlocks(t *testing.T) {
	f := NewMemory(4 * BlockSize)
	if err := f.Program(0, bytes.Repeat([]byte{0}, 4*BlockSize)); err != nil {
		t.Fatal(err)
	}
	before := f.Ops()
	// 0xF000..0x31000: one sector, two blocks, one sector.
	if err := f.EraseRange(0xF000, 0x22000); err != nil {
		t.Fatal(err)
	}
	if got := f.Ops() - before; got != 4 {
		t.Errorf("EraseRange: %d ops, want 4 (sector, block, block, sector)", got)
	}
	b := f.Bytes()
	for i, c := range b {
		inside := i >= 0xF000 && i < 0x31000
		if inside && c != 0xFF || !inside && c != 0 {
			t.Fatalf("byte 0x%x = 0x%02x after EraseRange(0xF000, 0x22000)", i, c)
		}
	}
}

func TestBadAddresses(t *testing.T) {
	f := NewMemory(BlockSize)
	for name, err := range map[string]error{
		"unaligned sector": f.EraseSector(0x800),
		"unaligned block":  f.EraseBlock(0x1000),
		"block past end":   f.EraseBlock(BlockSize),
		"program past end": f.Program(BlockSize-1, []byte{0, 0}),
		"range unaligned":  f.EraseRange(0, 0x800),
	} {
		if !errors.Is(err, ErrRange) {
			t.Errorf("%s: got %v, want ErrRange", name, err)
		}
	}
	if f.Ops() != 0 {
		t.Errorf("refused operations counted: %d ops", f.Ops())
	}
}

func TestFilePersistsEveryOperation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flash.bin")
	f, err := Create(path, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Program(0x1234, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	// Without Close or Sync: the file must already hold the data, as it
	// would if the process were killed now.
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(disk) != 2<<20 || !bytes.Equal(disk[0x1234:0x1239], []byte("hello")) || disk[0] != 0xFF {
		t.Fatalf("file after Program: len %d, bytes % x", len(disk), disk[0x1234:0x1239])
	}
	if err := f.EraseSector(0x1000); err != nil {
		t.Fatal(err)
	}
	g, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got := read(t, g, 0x1234, 5); !bytes.Equal(got, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF}) {
		t.Errorf("reopened after erase: % x", got)
	}
}

func TestCreateOpenSizes(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(filepath.Join(dir, "a"), 3<<20); err == nil {
		t.Error("Create with 3 MiB: no error")
	}
	p := filepath.Join(dir, "b")
	if err := os.WriteFile(p, make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p); err == nil {
		t.Error("Open of a 1000-byte file: no error")
	}
}

func TestPowerCut(t *testing.T) {
	f := NewMemory(BlockSize)
	f.CutPowerAfter(2, false)
	if err := f.Program(0, []byte{0}); err != nil {
		t.Fatal(err)
	}
	if err := f.EraseSector(0x1000); err != nil {
		t.Fatal(err)
	}
	if err := f.Program(0x10, []byte{0}); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("third op: %v, want ErrPowerCut", err)
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrPowerCut) {
		t.Errorf("read while off: %v, want ErrPowerCut", err)
	}
	if err := f.EraseSector(0); !errors.Is(err, ErrPowerCut) {
		t.Errorf("erase while off: %v", err)
	}
	f.PowerOn()
	if got := read(t, f, 0, 1); got[0] != 0 {
		t.Errorf("op before the cut lost: 0x%02x", got[0])
	}
	if got := read(t, f, 0x10, 1); got[0] != 0xFF {
		t.Errorf("op after the cut applied: 0x%02x", got[0])
	}
	if f.Ops() != 2 {
		t.Errorf("Ops = %d, want 2", f.Ops())
	}
}

// TestTornProgram: an interrupted page program has cleared some of the
// bits it was clearing and not others (NOR: the written words are
// undefined, the rest of the page unchanged); pages before it are whole,
// pages after it untouched. The outcome repeats for a seed.
func TestTornProgram(t *testing.T) {
	run := func(seed uint64) []byte {
		f := NewMemory(BlockSize)
		// Bits that are already 0, and bits the program leaves at 1, do
		// not change: byte 0x0F programmed with 0x3C clears bits 0-1
		// only, so it becomes 0x0C..0x0F.
		if err := f.Program(PageSize, bytes.Repeat([]byte{0x0F}, PageSize)); err != nil {
			t.Fatal(err)
		}
		f.SetTornSeed(seed)
		f.CutPowerAfter(1, true) // page 0 whole, page 1 torn
		data := append(make([]byte, PageSize), bytes.Repeat([]byte{0x3C}, PageSize)...)
		data = append(data, make([]byte, PageSize)...)
		if err := f.Program(0, data); !errors.Is(err, ErrPowerCut) {
			t.Fatalf("program: %v", err)
		}
		f.PowerOn()
		return f.Bytes()[:3*PageSize]
	}
	b := run(1)
	if !bytes.Equal(b[:PageSize], make([]byte, PageSize)) {
		t.Error("the page before the torn one is not whole")
	}
	if !bytes.Equal(b[2*PageSize:], bytes.Repeat([]byte{0xFF}, PageSize)) {
		t.Error("the page after the torn one was programmed")
	}
	torn := b[PageSize : 2*PageSize]
	seen := map[byte]bool{}
	for i, c := range torn {
		if c&^0x0F != 0 || c&0x0C != 0x0C {
			t.Fatalf("byte %d = 0x%02x: only bits 0-1 (cleared by 0x3C over 0x0F) may change", i, c)
		}
		seen[c] = true
	}
	if len(seen) < 3 {
		t.Errorf("torn page took only %d distinct values: %v, want a mix", len(seen), seen)
	}
	if !bytes.Equal(run(1), b) {
		t.Error("the same seed gave a different torn page")
	}
	if bytes.Equal(run(2), b) {
		t.Error("another seed gave the same torn page")
	}
}

// TestTornErase: an interrupted erase leaves the sector's bits at random
// (NOR: "contents of the page are undefined"), the next sector untouched.
func TestTornErase(t *testing.T) {
	f := NewMemory(BlockSize)
	if err := f.Program(0, make([]byte, 2*SectorSize)); err != nil {
		t.Fatal(err)
	}
	f.CutPowerAfter(0, true)
	if err := f.EraseSector(0); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("erase: %v", err)
	}
	f.PowerOn()
	b := f.Bytes()
	ones := 0
	for _, c := range b[:SectorSize] {
		ones += bits.OnesCount8(c)
	}
	// 32768 bits at random: far from all 0 (not erased) and all 1 (erased).
	if ones < SectorSize*8/4 || ones > SectorSize*8*3/4 {
		t.Errorf("torn sector has %d of %d bits set, want about half", ones, SectorSize*8)
	}
	if !bytes.Equal(b[SectorSize:2*SectorSize], make([]byte, SectorSize)) {
		t.Error("the next sector changed")
	}
}

func TestTornOperations(t *testing.T) {
	// A torn erase leaves part of the sector erased.
	g := NewMemory(BlockSize)
	if err := g.Program(0, make([]byte, SectorSize)); err != nil {
		t.Fatal(err)
	}
	g.CutPowerPartial(0, 100)
	if err := g.EraseSector(0); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("erase: %v", err)
	}
	g.PowerOn()
	b := g.Bytes()
	if b[99] != 0xFF || b[100] != 0 {
		t.Errorf("torn erase keep=100: byte 99 = 0x%02x, byte 100 = 0x%02x", b[99], b[100])
	}
}

func TestCloneIsIndependent(t *testing.T) {
	f := NewMemory(BlockSize)
	f.CutPowerAfter(0, false)
	c := f.Clone()
	if err := c.Program(0, []byte{1}); err != nil {
		t.Fatalf("clone inherited the fault: %v", err)
	}
	f.PowerOn()
	if read(t, f, 0, 1)[0] != 0xFF {
		t.Error("program on clone changed the original")
	}
}

func TestTimingModel(t *testing.T) {
	f := NewMemory(BlockSize)
	f.SetTiming(Timing{SectorErase: 3 * time.Millisecond, PageProgram: time.Millisecond})
	start := time.Now()
	if err := f.Program(0, make([]byte, 4*PageSize)); err != nil {
		t.Fatal(err)
	}
	if err := f.EraseSector(0); err != nil {
		t.Fatal(err)
	}
	// A lower bound only: sleeping never takes less than asked.
	if d := time.Since(start); d < 7*time.Millisecond {
		t.Errorf("4 pages + 1 sector erase took %v, model says at least 7ms", d)
	}
}

// BenchmarkRealisticErase reports what the timing model charges for
// erasing a 1.25 MiB OTA slot with block erases versus sector erases.
func BenchmarkRealisticErase(b *testing.B) {
	const slot = 0x140000
	for _, mode := range []string{"blocks", "sectors"} {
		b.Run(mode, func(b *testing.B) {
			f := NewMemory(slot)
			f.SetTiming(Timing{SectorErase: RealisticTiming.SectorErase / 100, BlockErase: RealisticTiming.BlockErase / 100})
			for i := 0; i < b.N; i++ {
				if mode == "blocks" {
					f.EraseRange(0, slot)
				} else {
					for off := uint32(0); off < slot; off += SectorSize {
						f.EraseSector(off)
					}
				}
			}
		})
	}
}

func TestClosedFlashRefusesWrites(t *testing.T) {
	f, err := Create(filepath.Join(t.TempDir(), "f"), 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := f.Program(0, []byte{0}); !errors.Is(err, ErrClosed) {
		t.Errorf("program after Close: %v", err)
	}
	if err := f.EraseSector(0); !errors.Is(err, ErrClosed) {
		t.Errorf("erase after Close: %v", err)
	}
}
