// Package updater is the host side of an over-the-air update session: it
// talks the Gota wire protocol (package protocol) to a device agent over
// any byte stream, reads the device's OTA state, checks an image against
// it, streams the image with a sliding window, and drives complete,
// accept, rollback and reboot.
//
// It does no I/O of its own beyond the Port it is given and imports
// neither os nor net, so it builds for GOOS=js (the browser uses it over
// Web Serial) as well as for the CLI.
package updater

import (
	"errors"
	"io"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// DefaultBaud is the line rate an ESP32 console starts at.
const DefaultBaud = 115200

// hostMaxPayload is the largest payload the host accepts.
const hostMaxPayload = protocol.LimitMaxPayload

// Timeouts of SPEC.md 4.2. Options.Timeout and Options.Keepalive set
// the ones a caller may want to change; the transfer's timeouts follow the
// session's clock (Options.Clock).
const (
	lineFlushTimeout = 500 * time.Millisecond
	beginTimeout     = 60 * time.Second
	endTimeout       = 30 * time.Second
	rebootTimeout    = 15 * time.Second
	readyWait        = 3 * time.Second // then HELLO without READY (SPEC.md 4.2)
	helloAttempt     = 500 * time.Millisecond
	helloAttempts    = 14 // 7 s: covers an agent's 5 s return to 115200 after a host crash
	keepaliveEvery   = 2 * time.Second
	rttDefault       = 50 * time.Millisecond // round trip assumed until measured
	rtoMin           = 25 * time.Millisecond
	infoAttempt      = 250 * time.Millisecond // floor of an INFO attempt's timeout
	infoStartMax     = 512                    // INFO_R payload asked for at first
	dataMaxRTOs      = 8
	// flashStall is how long an agent may be silent with the host's
	// bytes safely in its ring: while ESP-IDF erases or programs flash no
	// task runs (a 64 KiB block erase takes 150 ms on typical SPI NOR,
	// and the program window after it up to 8 KiB of pages). A DATA
	// timeout shorter than that resends what was never lost.
	flashStall     = 200 * time.Millisecond
	windowStallMax = 30 * time.Second
	baudRevertWait = 3 * time.Second
	baudSettle     = 20 * time.Millisecond
	writtenWait    = 2 * time.Second // for the last ACK before BAUD (SPEC.md 7.7)
)

// Port is the host end of the line to the device.
type Port interface {
	io.ReadWriter
	// SetBaud reopens or reconfigures the host side of the line at the
	// given rate. Transports without a rate (pipes) may do nothing. Read
	// must keep working across SetBaud: a Read blocked on the old line
	// continues on the reopened one rather than failing.
	SetBaud(baud int) error
}

// Options configure a Session.
type Options struct {
	// Log receives every line of device log text (text outside frames),
	// without the line terminator. nil discards it.
	Log func(line string)
	// Baud is the rate to switch to after the handshake when the agent
	// offers baud-rate change; 0 stays at the current rate.
	Baud int
	// Compression enables DEFLATE for image data when the agent offers it.
	Compression bool
	// NoResume makes Flash start over even when the device holds part of
	// the same image.
	NoResume bool
	// Timeout is the base request timeout; 0 means 2 s.
	Timeout time.Duration
	// Keepalive is how long the session lets the line idle at a
	// negotiated rate before it PINGs; 0 means 2 s. It must stay below
	// the agent's 5 s return to 115200.
	Keepalive time.Duration
	// Clock times the image transfer (retransmission timeouts, window
	// probes, rate); nil means the system clock.
	Clock Clock
}

// Caps is what the agent announced in its handshake reply.
type Caps struct {
	Version     int    // protocol version
	MaxFrame    int    // largest payload the agent accepts, bytes
	Window      int    // bytes the agent buffers ahead of flash: image bytes, or frame bytes with WireWindow
	Compression bool   // DEFLATE data frames
	Resume      bool   // keeps a partial transfer across sessions
	BaudChange  bool   // BAUD request supported
	SHA256      bool   // agent verifies the announced SHA-256 before complete
	Reorder     bool   // agent keeps frames after a gap: resend only the missing one
	Delta       bool   // DEFLATE frames may use the running build as dictionary
	WireWindow  bool   // Window counts DATA frames' bytes on the line (SPEC.md 6.8)
	Agent       string // agent name, e.g. "gota-go/1"
}

// Partition is one app partition as the device reports it.
type Partition = protocol.Partition

// DeviceInfo is the device's OTA state (otaupgrade.info() plus chip).
type DeviceInfo struct {
	Chip       string      // esptool name, e.g. "esp32"
	ChipRev    int         // major*100+minor
	Running    string      // label of the running partition
	Next       string      // label of the partition that boots next
	Partitions []Partition // app partitions, table order
	Agent      string      // agent name and version from the handshake
	Caps       Caps
}

// Find returns the partition with the given label, or nil.
func (d *DeviceInfo) Find(label string) *Partition {
	for i := range d.Partitions {
		if d.Partitions[i].Label == label {
			return &d.Partitions[i]
		}
	}
	return nil
}

// Stats counts what a Session sent.
type Stats struct {
	DataFrames  int // DATA frames written
	DataBytes   int // image bytes carried by them (before compression)
	WireBytes   int // DATA payload bytes on the wire (after compression)
	Rewinds     int // go-back-N rewinds (GAP or timeout)
	Resent      int // frames resent alone after a GAP (agents with Reorder)
	ResumedFrom int // offset the last transfer started at (non-zero: resumed)
	DeltaFrames int // DATA frames compressed against the running build
}

// Errors callers tell apart with errors.Is.
var (
	ErrTimeout = errors.New("no reply from the device")
	ErrClosed  = errors.New("session closed")
	ErrRefused = errors.New("refused") // Check refusals
)
