package romclient

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/romloader"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/rom"
)

// resetBoard is a virtual chip behind the reset circuit: the host's DTR
// and RTS travel over the line to a rom.Board, which starts the ROM
// loader (download boot) or prints the flash boot's first lines and the
// blank-flash boot loop.
type resetBoard struct {
	line  *link.Line
	fl    *flash.Flash
	chip  *rom.Chip
	board *rom.Board

	mu      sync.Mutex
	session *io.PipeWriter // device input goes here while the ROM loader runs
	cancel  context.CancelFunc
	exits   chan error
}

// devPort is what one ROM loader session sees: its own input pipe, the
// shared device end for output and rate.
type devPort struct {
	io.Reader
	end *link.End
}

func (p devPort) Write(b []byte) (int, error) { return p.end.Write(b) }
func (p devPort) SetBaud(b int) error         { return p.end.SetBaud(b) }
func (p devPort) Baud() int                   { return p.end.Baud() }

func newResetBoard(t *testing.T, chip *rom.Chip, circuit rom.Circuit) *resetBoard {
	t.Helper()
	rb := &resetBoard{line: link.New(link.Config{}), fl: flash.NewMemory(4 << 20), chip: chip, exits: make(chan error, 16)}
	rb.board = rom.NewBoard(circuit, rb.hold, rb.start)
	rb.line.WatchSignals(func(s link.Signals) { rb.board.SetSignals(rom.Signals{DTR: s.DTR, RTS: s.RTS}) })
	go rb.pump()
	t.Cleanup(func() {
		rb.board.Close()
		rb.hold()
		rb.line.Close()
	})
	return rb
}

// pump hands device input to the running loader, dropping it otherwise.
func (rb *resetBoard) pump() {
	buf := make([]byte, 4096)
	for {
		n, err := rb.line.Device().Read(buf)
		if err != nil {
			return
		}
		rb.mu.Lock()
		w := rb.session
		rb.mu.Unlock()
		if w != nil {
			w.Write(buf[:n])
		}
	}
}

func (rb *resetBoard) hold() {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if rb.cancel != nil {
		rb.cancel()
		rb.cancel = nil
	}
	if rb.session != nil {
		rb.session.CloseWithError(errors.New("reset"))
		rb.session = nil
	}
}

func (rb *resetBoard) start(mode rom.BootMode) {
	rb.hold()
	ctx, cancel := context.WithCancel(context.Background())
	rb.mu.Lock()
	rb.cancel = cancel
	rb.mu.Unlock()
	dev := rb.line.Device()
	if mode == rom.FlashBoot {
		word, _ := rom.FlashBootHeader(rb.chip, rb.fl)
		go rom.BootLoop(ctx, dev, rb.chip, 300, word)
		return
	}
	pr, pw := io.Pipe()
	rb.mu.Lock()
	rb.session = pw
	rb.mu.Unlock()
	io.WriteString(dev, rom.DownloadBanner(rb.chip, 300))
	l := rom.New(rom.Config{Chip: rb.chip, Flash: rb.fl})
	go func() { rb.exits <- l.Serve(ctx, devPort{pr, dev}) }()
}

// lineSignals drives the line's DTR and RTS one at a time, as pyserial
// and Web Serial's setSignals with one member do.
type lineSignals struct{ l *link.Line }

func (s lineSignals) SetDTR(v bool) error {
	cur := s.l.Signals()
	cur.DTR = v
	s.l.SetSignals(cur)
	return nil
}

func (s lineSignals) SetRTS(v bool) error {
	cur := s.l.Signals()
	cur.RTS = v
	s.l.SetSignals(cur)
	return nil
}

func TestResetIntoDownloadMode(t *testing.T) {
	tests := []struct {
		name    string
		chip    *rom.Chip
		circuit rom.Circuit
		usb     bool
	}{
		{"esp32 auto-reset", rom.ESP32, rom.AutoReset, false},
		{"esp32s3 usb-serial-jtag", rom.ESP32S3, rom.USBSerialJTAG, true},
		{"esp32c3 usb-serial-jtag", rom.ESP32C3, rom.USBSerialJTAG, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rb := newResetBoard(t, tc.chip, tc.circuit)
			var logMu sync.Mutex
			var log []string
			c := romloader.New(rb.line.Host(), romloader.Options{
				Signals: lineSignals{rb.line}, USBJTAG: tc.usb,
				Log: func(l string) { logMu.Lock(); log = append(log, l); logMu.Unlock() },
			})
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := c.Connect(ctx); err != nil {
				t.Fatalf("Connect: %v", err)
			}
			info, err := c.Detect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.Name != tc.chip.Name {
				t.Errorf("chip %s, want %s", info.Name, tc.chip.Name)
			}
			data := []byte(strings.Repeat("gota", 3000))
			if err := c.WriteFlash(ctx, 0x10000, data, nil); err != nil {
				t.Fatal(err)
			}
			if err := c.HardReset(); err != nil {
				t.Fatal(err)
			}
			// A hard reset boots from flash: the ROM's loader ends and
			// the blank bootloader region gives the boot loop.
			deadline := time.Now().Add(3 * time.Second)
			for {
				logMu.Lock()
				all := strings.Join(log, "\n")
				logMu.Unlock()
				if strings.Contains(all, "invalid header") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no flash boot after HardReset; console:\n%s", all)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestHeldInFlashBoot: with the classic sequence on a USB-Serial-JTAG
// port or no circuit at all, the chip keeps booting from flash; Connect
// gives up with the hold-BOOT advice and the boot mode it saw.
func TestHeldInFlashBoot(t *testing.T) {
	rb := newResetBoard(t, rom.ESP32, rom.NoSignals)
	rb.board.Reset()
	c := romloader.New(rb.line.Host(), romloader.Options{Signals: lineSignals{rb.line}, Attempts: 2})
	defer c.Close()
	err := c.Connect(context.Background())
	var nd *romloader.NotInDownloadModeError
	if !errors.As(err, &nd) {
		t.Fatalf("Connect: %v", err)
	}
	if !strings.Contains(err.Error(), "hold BOOT") {
		t.Errorf("message %q lacks the advice", err)
	}
	t.Log(err)
}
