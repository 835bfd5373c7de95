// Package flash emulates an SPI NOR flash chip kept in a file.
//
// Erased flash reads 0xFF. Erases work on 4 KiB sectors or 64 KiB blocks;
// a page program can only clear bits (the new content is old AND data), so
// writing over data without erasing it first corrupts it, as on the chip.
//
// Every erase and program reaches the backing file (pwrite) before the
// call returns, so killing the process at any moment leaves the file as a
// power cut leaves a real chip. For tests, CutPowerAfter injects a power
// cut after a given number of operations, optionally tearing the
// interrupted operation.
//
// A torn operation leaves what real NOR leaves: the content of the
// interrupted unit is undefined ("If power is lost during erase, contents
// of the page are undefined"; "if power is lost during write, the
// contents of the written words are undefined, but the rest of the page
// is guaranteed to be unchanged": the embedded-storage NorFlash contract,
// docs.rs/embedded-storage 0.3; Microchip's flash controller chapters,
// "Reset During Operation": "The content of a block or a page is
// unpredictable"). The model, drawn from a seeded generator so every run
// is repeatable:
//   - an interrupted page program has cleared a random subset of the bits
//     it was clearing; bits it was not clearing keep their value;
//   - an interrupted erase leaves every bit of the sector or block at
//     random.
//
// ESP-IDF's protections are what survive this: otadata entries carry a
// CRC and images a SHA-256 (bootloader_common_ota_select_valid,
// esp_image_format.c verify_simple_hash).
package flash

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"
)

// Geometry of the emulated chip.
const (
	SectorSize = 0x1000
	BlockSize  = 0x10000
	PageSize   = 256
)

// ErrPowerCut is returned by every operation once the injected power cut
// has happened.
var ErrPowerCut = errors.New("flash: power cut")

// ErrClosed is returned by operations on a file-backed flash after Close.
var ErrClosed = errors.New("flash: closed")

// ErrRange reports an address outside the chip or a misaligned erase.
var ErrRange = errors.New("flash: bad address")

// Timing is the cost model applied to operations (zero = instant).
type Timing struct {
	SectorErase time.Duration
	BlockErase  time.Duration
	PageProgram time.Duration
}

// RealisticTiming is typical SPI NOR: 45 ms sector, 150 ms block, 0.7 ms page.
var RealisticTiming = Timing{45 * time.Millisecond, 150 * time.Millisecond, 700 * time.Microsecond}

// ValidSize reports whether size is a chip size Create accepts
// (2, 4, 8 or 16 MiB).
func ValidSize(size int) bool {
	switch size {
	case 2 << 20, 4 << 20, 8 << 20, 16 << 20:
		return true
	}
	return false
}

// Flash is an emulated NOR flash. Methods are safe for concurrent use.
type Flash struct {
	mu     sync.Mutex
	data   []byte   // current content; the file mirrors it
	file   *os.File // nil for a memory flash
	timing Timing
	guard  Guard
	ops    int

	// Fault injection.
	cutArmed bool
	cutLeft  int  // operations still allowed before the cut
	torn     bool // the interrupted operation takes partial effect
	tornKeep int  // with torn: bytes applied cleanly (-1: random model)
	off      bool // power is cut
	closed   bool
	seed     uint64
	rng      *rand.Rand // draws the torn operation's content
}

// DefaultTornSeed seeds the torn-operation model until SetTornSeed.
const DefaultTornSeed = 1

// Create makes a new flash file of size bytes (2, 4, 8 or 16 MiB), all 0xFF.
// An existing file is replaced.
func Create(path string, size int) (*Flash, error) {
	if !ValidSize(size) {
		return nil, fmt.Errorf("flash: size %d bytes: want 2, 4, 8 or 16 MiB", size)
	}
	fl, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	f := &Flash{data: blank(size), file: fl}
	if _, err := fl.WriteAt(f.data, 0); err != nil {
		fl.Close()
		return nil, fmt.Errorf("flash: initialise %s: %w", path, err)
	}
	return f, nil
}

// Open opens an existing flash file.
func Open(path string) (*Flash, error) {
	fl, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	st, err := fl.Stat()
	if err != nil {
		fl.Close()
		return nil, err
	}
	if !ValidSize(int(st.Size())) {
		fl.Close()
		return nil, fmt.Errorf("flash: %s is %d bytes: a flash file is 2, 4, 8 or 16 MiB", path, st.Size())
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(io.NewSectionReader(fl, 0, st.Size()), data); err != nil {
		fl.Close()
		return nil, fmt.Errorf("flash: read %s: %w", path, err)
	}
	return &Flash{data: data, file: fl}, nil
}

// NewMemory returns a flash held only in memory (for unit tests). size
// must be a positive multiple of BlockSize; tests may use chips smaller
// than real ones to keep copies cheap.
func NewMemory(size int) *Flash {
	if size <= 0 || size%BlockSize != 0 {
		panic(fmt.Sprintf("flash.NewMemory: size %d is not a positive multiple of 0x%x", size, BlockSize))
	}
	return &Flash{data: blank(size)}
}

// FromBytes returns a memory flash holding a copy of b (len(b) a positive
// multiple of BlockSize).
func FromBytes(b []byte) *Flash {
	f := NewMemory(len(b))
	copy(f.data, b)
	return f
}

// Clone returns a memory flash with a copy of f's content and timing, but
// no fault injection and power on.
func (f *Flash) Clone() *Flash {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := FromBytes(f.data)
	c.timing = f.timing
	return c
}

// Bytes returns a copy of the whole content, whatever the power state.
func (f *Flash) Bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.data...)
}

func blank(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xFF
	}
	return b
}

// Size returns the chip size in bytes.
func (f *Flash) Size() int { return len(f.data) }

// ReadAt reads len(p) bytes at off. Reads fail with ErrPowerCut while the
// power is cut.
func (f *Flash) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.off {
		return 0, ErrPowerCut
	}
	if off < 0 || off > int64(len(f.data)) {
		return 0, fmt.Errorf("%w: read at 0x%x outside the 0x%x-byte chip", ErrRange, off, len(f.data))
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// EraseSector sets the 4 KiB sector at off (aligned) to 0xFF.
func (f *Flash) EraseSector(off uint32) error { return f.erase(off, SectorSize) }

// EraseBlock sets the 64 KiB block at off (aligned) to 0xFF.
func (f *Flash) EraseBlock(off uint32) error { return f.erase(off, BlockSize) }

func (f *Flash) erase(off uint32, unit int) error {
	f.mu.Lock()
	if off%uint32(unit) != 0 || int64(off)+int64(unit) > int64(len(f.data)) {
		f.mu.Unlock()
		return fmt.Errorf("%w: erase of 0x%x bytes at 0x%x (must be aligned and inside the 0x%x-byte chip)",
			ErrRange, unit, off, len(f.data))
	}
	cost := f.timing.SectorErase
	if unit == BlockSize {
		cost = f.timing.BlockErase
	}
	region := f.data[off : int(off)+unit]
	torn, err := f.begin()
	switch {
	case err == nil:
		for i := range region {
			region[i] = 0xFF
		}
	case torn:
		f.tearErase(region)
	}
	if err == nil || torn {
		if werr := f.persist(int(off), region); werr != nil {
			err = werr
		}
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	f.busy(cost)
	return nil
}

// begin accounts for one operation. err is nil when it takes full
// effect; it is ErrPowerCut when the power is off or goes off now, and
// then torn says whether this operation takes partial effect.
func (f *Flash) begin() (torn bool, err error) {
	if f.closed {
		return false, ErrClosed
	}
	if f.off {
		return false, ErrPowerCut
	}
	if f.cutArmed {
		if f.cutLeft == 0 {
			f.off = true
			f.cutArmed = false
			return f.torn, ErrPowerCut
		}
		f.cutLeft--
	}
	f.ops++
	return false, nil
}

func (f *Flash) random() *rand.Rand {
	if f.rng == nil {
		if f.seed == 0 {
			f.seed = DefaultTornSeed
		}
		f.rng = rand.New(rand.NewPCG(f.seed, 0))
	}
	return f.rng
}

// tearErase leaves an interrupted erase's region: with CutPowerPartial,
// its first keep bytes erased and the rest untouched; otherwise every
// bit at random.
func (f *Flash) tearErase(region []byte) {
	if f.tornKeep >= 0 {
		for i := range region[:min(f.tornKeep, len(region))] {
			region[i] = 0xFF
		}
		return
	}
	r := f.random()
	for i := range region {
		region[i] = byte(r.Uint32())
	}
}

// tearProgram leaves an interrupted page program of p over dst: with
// CutPowerPartial, its first keep bytes programmed and the rest
// untouched; otherwise a random subset of the bits it was clearing
// cleared.
func (f *Flash) tearProgram(dst, p []byte) {
	if f.tornKeep >= 0 {
		for i := range dst[:min(f.tornKeep, len(dst))] {
			dst[i] &= p[i]
		}
		return
	}
	r := f.random()
	for i := range dst {
		clearing := dst[i] &^ p[i]
		dst[i] &^= clearing & byte(r.Uint32())
	}
}

// persist mirrors data[off:off+len(b)] (b aliases it) to the file.
func (f *Flash) persist(off int, b []byte) error {
	if f.file == nil {
		return nil
	}
	if _, err := f.file.WriteAt(b, int64(off)); err != nil {
		return fmt.Errorf("flash: write backing file at 0x%x: %w", off, err)
	}
	return nil
}

// EraseRange erases [off, off+n), both sector-aligned, using block erases
// where a whole aligned block is covered (as esp_flash_erase_region does).
func (f *Flash) EraseRange(off, n uint32) error {
	if off%SectorSize != 0 || n%SectorSize != 0 || int64(off)+int64(n) > int64(f.Size()) {
		return fmt.Errorf("%w: erase range 0x%x+0x%x (must be sector-aligned and inside the 0x%x-byte chip)",
			ErrRange, off, n, f.Size())
	}
	end := off + n
	for off < end {
		var err error
		if off%BlockSize == 0 && end-off >= BlockSize {
			err = f.EraseBlock(off)
			off += BlockSize
		} else {
			err = f.EraseSector(off)
			off += SectorSize
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Program writes p at off as page programs (split at 256-byte pages):
// bits can only be cleared (new = old AND p). Each page counts as one
// operation; the timing model charges one PageProgram per page touched.
func (f *Flash) Program(off uint32, p []byte) error {
	if int64(off)+int64(len(p)) > int64(f.Size()) {
		return fmt.Errorf("%w: program of %d bytes at 0x%x runs past the 0x%x-byte chip",
			ErrRange, len(p), off, f.Size())
	}
	f.mu.Lock()
	pages := 0
	var err error
	for len(p) > 0 {
		n := PageSize - int(off%PageSize)
		if n > len(p) {
			n = len(p)
		}
		dst := f.data[off : int(off)+n]
		var torn bool
		torn, err = f.begin()
		switch {
		case err == nil:
			for i := range dst {
				dst[i] &= p[i]
			}
		case torn:
			f.tearProgram(dst, p[:n])
		}
		if err == nil || torn {
			if werr := f.persist(int(off), dst); werr != nil {
				err = werr
			}
		}
		if err != nil {
			break
		}
		pages++
		off += uint32(n)
		p = p[n:]
	}
	f.mu.Unlock()
	f.busyProgram(pages)
	return err
}

func sleep(d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}

// SetTiming sets the cost model.
func (f *Flash) SetTiming(t Timing) {
	f.mu.Lock()
	f.timing = t
	f.mu.Unlock()
}

// Timing returns the cost model.
func (f *Flash) Timing() Timing {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.timing
}

// Ops returns the number of erase/program operations performed so far
// (each page of a program counts once; an interrupted one does not).
func (f *Flash) Ops() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ops
}

// CutPowerAfter makes the flash fail with ErrPowerCut after n more
// operations; when torn is true, operation n+1 is torn: it leaves the
// undefined content of the package comment, drawn from the seeded
// generator (SetTornSeed), instead of not happening at all.
func (f *Flash) CutPowerAfter(n int, torn bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cutArmed, f.cutLeft, f.torn, f.tornKeep = true, n, torn, -1
}

// CutPowerPartial is CutPowerAfter with one chosen outcome of the torn
// operation instead of a random one: its first keep bytes take effect
// (erased to 0xFF, or programmed), the rest are untouched. This is one of
// the states the random model can leave for a program (a subset of the
// bits cleared); tests use it to reach every byte boundary. keep < 0
// means the random model.
func (f *Flash) CutPowerPartial(n, keep int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cutArmed, f.cutLeft, f.torn, f.tornKeep = true, n, true, keep
}

// SetTornSeed seeds the generator that decides what a torn operation
// leaves, so a run can be repeated (and varied) at will; 0 means
// DefaultTornSeed.
func (f *Flash) SetTornSeed(seed uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seed, f.rng = seed, nil
}

// PoweredOff reports whether an injected power cut has happened.
func (f *Flash) PoweredOff() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.off
}

// PowerOn restores power after a cut (and disarms a pending one), so a
// fresh device can boot from what the cut left behind.
func (f *Flash) PowerOn() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.off = false
	f.cutArmed = false
}

// Close closes the backing file; later erases and programs fail with
// ErrClosed (reads still work). Closing a memory flash does nothing.
func (f *Flash) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.file == nil {
		return nil
	}
	err := f.file.Close()
	f.file, f.closed = nil, true
	return err
}
