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
// interrupted operation half-way.
package flash

import (
	"errors"
	"fmt"
	"io"
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
	tornKeep int  // bytes of the interrupted op applied (-1: half, 0: none)
	off      bool // power is cut
	closed   bool
}

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
	n, err := f.begin(unit)
	if n > 0 {
		region := f.data[off : int(off)+n]
		for i := range region {
			region[i] = 0xFF
		}
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

// begin accounts for one operation of size bytes and says how many of its
// bytes take effect: all of them normally, part when this is the
// operation the power cut interrupts (then err is ErrPowerCut).
func (f *Flash) begin(size int) (apply int, err error) {
	if f.closed {
		return 0, ErrClosed
	}
	if f.off {
		return 0, ErrPowerCut
	}
	if f.cutArmed {
		if f.cutLeft == 0 {
			f.off = true
			f.cutArmed = false
			keep := f.tornKeep
			if keep < 0 {
				keep = size / 2
			}
			if keep > size {
				keep = size
			}
			return keep, ErrPowerCut
		}
		f.cutLeft--
	}
	f.ops++
	return size, nil
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
		var apply int
		apply, err = f.begin(n)
		if apply > 0 {
			dst := f.data[off : int(off)+apply]
			for i := range dst {
				dst[i] &= p[i]
			}
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

// Ops returns the number of erase/program operations performed so far
// (each page of a program counts once; an interrupted one does not).
func (f *Flash) Ops() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ops
}

// CutPowerAfter makes the flash fail with ErrPowerCut after n more
// operations; when torn is true, operation n+1 is applied half-way first.
func (f *Flash) CutPowerAfter(n int, torn bool) {
	keep := 0
	if torn {
		keep = -1
	}
	f.CutPowerPartial(n, keep)
}

// CutPowerPartial is CutPowerAfter with control over the interrupted
// operation: its first keep bytes take effect (erased to 0xFF, or
// programmed), the rest do not. keep < 0 means half.
func (f *Flash) CutPowerPartial(n, keep int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cutArmed = true
	f.cutLeft = n
	f.tornKeep = keep
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
