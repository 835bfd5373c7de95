// Package flash emulates an SPI NOR flash chip kept in a file.
//
// API CONTRACT (stub; bodies filled in by the issue-3 work).
package flash

import (
	"errors"
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

// Timing is the cost model applied to operations (zero = instant).
type Timing struct {
	SectorErase time.Duration
	BlockErase  time.Duration
	PageProgram time.Duration
}

// RealisticTiming is typical SPI NOR: 45 ms sector, 150 ms block, 0.7 ms page.
var RealisticTiming = Timing{45 * time.Millisecond, 150 * time.Millisecond, 700 * time.Microsecond}

// Flash is an emulated NOR flash. Methods are safe for concurrent use.
type Flash struct{}

// Create makes a new flash file of size bytes (2, 4, 8 or 16 MiB), all 0xFF.
func Create(path string, size int) (*Flash, error) { panic("TODO") }

// Open opens an existing flash file.
func Open(path string) (*Flash, error) { panic("TODO") }

// NewMemory returns a flash held only in memory (for unit tests).
func NewMemory(size int) *Flash { panic("TODO") }

// Size returns the chip size in bytes.
func (f *Flash) Size() int { panic("TODO") }

// ReadAt reads len(p) bytes at off.
func (f *Flash) ReadAt(p []byte, off int64) (int, error) { panic("TODO") }

// EraseSector sets the 4 KiB sector at off (aligned) to 0xFF.
func (f *Flash) EraseSector(off uint32) error { panic("TODO") }

// EraseBlock sets the 64 KiB block at off (aligned) to 0xFF.
func (f *Flash) EraseBlock(off uint32) error { panic("TODO") }

// EraseRange erases [off, off+n), both sector-aligned, using block erases
// where a whole aligned block is covered.
func (f *Flash) EraseRange(off, n uint32) error { panic("TODO") }

// Program writes p at off as page programs (split at 256-byte pages):
// bits can only be cleared (new = old AND p).
func (f *Flash) Program(off uint32, p []byte) error { panic("TODO") }

// SetTiming sets the cost model.
func (f *Flash) SetTiming(t Timing) { panic("TODO") }

// Ops returns the number of erase/program operations performed so far.
func (f *Flash) Ops() int { panic("TODO") }

// CutPowerAfter makes the flash fail with ErrPowerCut after n more
// operations; when torn is true, operation n+1 is applied half-way first.
func (f *Flash) CutPowerAfter(n int, torn bool) { panic("TODO") }

// Close closes the backing file.
func (f *Flash) Close() error { panic("TODO") }
