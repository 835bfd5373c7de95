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
	"context"
	"io"
	"time"
)

// DefaultBaud is the line rate an ESP32 console starts at.
const DefaultBaud = 115200

// Port is the host end of the line to the device.
type Port interface {
	io.ReadWriter
	// SetBaud reopens or reconfigures the host side of the line at the
	// given rate. Transports without a rate (pipes) may do nothing.
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
	// Resume lets Flash continue a transfer the device already holds part
	// of (same image SHA-256). It is on unless NoResume is set.
	NoResume bool
	// Timeout is the base request timeout; 0 means 2 s.
	Timeout time.Duration
}

// Caps is what the agent announced in its handshake reply.
type Caps struct {
	Version     int  // protocol version
	MaxFrame    int  // largest payload the agent accepts, bytes
	Window      int  // bytes the agent buffers ahead of flash
	Compression bool // DEFLATE data frames
	Resume      bool // keeps a partial transfer across sessions
	BaudChange  bool // BAUD request supported
	SHA256      bool // agent verifies the announced SHA-256 before complete
}

// Partition is one app partition as the device reports it.
type Partition struct {
	Label         string `json:"label"`
	Offset        uint32 `json:"offset"`
	Size          uint32 `json:"size"`
	State         string `json:"state"` // "new","testing","valid","invalid","aborted","undefined" or "" (no otadata entry)
	Name          string `json:"name,omitempty"`
	Version       string `json:"version,omitempty"`
	Date          string `json:"date,omitempty"`
	Time          string `json:"time,omitempty"`
	IDFVersion    string `json:"idf_version,omitempty"`
	SecureVersion uint32 `json:"secure_version"`
	SHA256        string `json:"sha256,omitempty"` // hex of the appended digest, "" if unknown
	ImageLen      int    `json:"image_len,omitempty"`
}

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
func (d *DeviceInfo) Find(label string) *Partition { panic("TODO") }

// Session is a connected, handshaken line to a device agent.
type Session struct{}

// Connect synchronises with the agent on p (tolerating log text and
// noise), performs the version/capability handshake and, when opt.Baud is
// set and offered, switches the line rate.
func Connect(ctx context.Context, p Port, opt Options) (*Session, error) { panic("TODO") }

// Caps returns the capabilities negotiated with the agent.
func (s *Session) Caps() Caps { panic("TODO") }

// Info reads the device's OTA state.
func (s *Session) Info(ctx context.Context) (*DeviceInfo, error) { panic("TODO") }

// CheckOptions relax the host-side checks.
type CheckOptions struct {
	Force          bool // skip the refusals (the device still verifies)
	AllowDowngrade bool // allow an older semantic version
}

// Plan is the outcome of Check: what Flash will do.
type Plan struct {
	Target   string   // label of the partition the image will be written to
	Relation string   // "upgrade", "same build", "older", "different build"
	Warnings []string // e.g. "version string equals the running build's"
	Size     int      // image length in bytes
	SHA256   [32]byte // digest of the whole image as sent
}

// Check decides, before a byte is sent, whether image may be flashed to
// the device described by info: chip and revision, app image with valid
// digest, fits the target slot, running build confirmed, and how it
// compares with the running build.
func Check(info *DeviceInfo, image []byte, opt CheckOptions) (*Plan, error) { panic("TODO") }

// Progress reports transfer progress.
type Progress struct {
	Phase string        // "check", "begin", "send", "verify", "reboot", "done"
	Sent  int           // image bytes acknowledged as received by the device
	Total int           // image bytes
	Rate  float64       // bytes per second (image bytes)
	ETA   time.Duration // estimate of the time left in this phase
}

// FlashOptions control Flash.
type FlashOptions struct {
	Force          bool // skip host-side refusals
	AllowDowngrade bool
	NoReboot       bool // complete without rebooting into the new build
	Progress       func(Progress)
}

// Flash checks image against the device (unless Force), streams it,
// completes the update and, unless NoReboot, waits for the device to
// reboot, handshakes again and re-reads its state.
func (s *Session) Flash(ctx context.Context, image []byte, opt FlashOptions) error { panic("TODO") }

// Accept marks the running (or just completed) build valid.
func (s *Session) Accept(ctx context.Context) error { panic("TODO") }

// Rollback marks the running build invalid and reboots into the previous
// one; it returns once the device is back and handshaken.
func (s *Session) Rollback(ctx context.Context) error { panic("TODO") }

// Reboot restarts the device and handshakes again.
func (s *Session) Reboot(ctx context.Context) error { panic("TODO") }

// Close stops the reader. It does not close the Port.
func (s *Session) Close() error { panic("TODO") }

// Monitor copies device log lines from p to log until ctx is done or p
// fails. Frames on the line are skipped.
func Monitor(ctx context.Context, p io.Reader, log func(line string)) error { panic("TODO") }
