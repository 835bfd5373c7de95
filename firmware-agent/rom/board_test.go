package rom

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gota-dev/gota/firmware-agent/flash"
)

type step struct {
	dtr, rts bool
	wait     time.Duration
}

// TestBoardResets plays the reset sequences of esptool/esptool-js
// (reset.py, reset.js) and a few wrong ones on each circuit.
func TestBoardResets(t *testing.T) {
	classic := func(delay time.Duration) []step {
		return []step{{false, true, 100 * time.Millisecond}, {true, false, delay}, {false, false, 30 * time.Millisecond}}
	}
	// UsbJtagSerialReset, with its separate setRTS/setDTR calls.
	usbJTAG := []step{
		{false, false, 0}, {false, false, 100 * time.Millisecond},
		{true, false, 0}, {true, false, 100 * time.Millisecond},
		{true, true, 0}, {false, true, 0}, {false, true, 100 * time.Millisecond},
		{false, false, 0}, {false, false, 30 * time.Millisecond},
	}
	hard := []step{{false, true, 100 * time.Millisecond}, {false, false, 30 * time.Millisecond}}
	cases := []struct {
		name    string
		circuit Circuit
		boot    bool // BOOT button held
		steps   []step
		want    string
	}{
		{"classic 50 ms", AutoReset, false, classic(50 * time.Millisecond), "hold start:download"},
		{"classic, DTR released before EN rises", AutoReset, false, classic(0), "hold start:flash"},
		{"hard reset", AutoReset, false, hard, "hold start:flash"},
		{"both lines asserted on open", AutoReset, false, []step{{true, true, 50 * time.Millisecond}}, ""},
		{"DTR glitch while in reset", AutoReset, false, []step{{false, true, 50 * time.Millisecond}, {true, true, 0}, {false, true, 50 * time.Millisecond}, {false, false, 30 * time.Millisecond}}, "hold start:flash"},
		{"USB-JTAG sequence", USBSerialJTAG, false, usbJTAG, "hold start:download"},
		{"USB-JTAG hard reset", USBSerialJTAG, false, hard, "hold start:flash"},
		// pyserial sets DTR then RTS: the chip leaves reset at (1,1), before
		// DTR alone asks for download, which is why esptool needs its own
		// USB-JTAG sequence.
		{"esptool classic on USB-JTAG", USBSerialJTAG, false, []step{{false, true, 100 * time.Millisecond}, {true, true, 0}, {true, false, 50 * time.Millisecond}, {false, false, 30 * time.Millisecond}}, "hold start:flash"},
		{"pty: signals do nothing", NoSignals, false, classic(50 * time.Millisecond), ""},
		{"hard reset with BOOT held", AutoReset, true, hard, "hold start:download"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var ev []string
			b := NewBoard(c.circuit, func() {
				mu.Lock()
				ev = append(ev, "hold")
				mu.Unlock()
			}, func(m BootMode) {
				mu.Lock()
				ev = append(ev, "start:"+m.String())
				mu.Unlock()
			})
			defer b.Close()
			b.HoldBoot(c.boot)
			for _, s := range c.steps {
				b.SetSignals(Signals{DTR: s.dtr, RTS: s.rts})
				time.Sleep(s.wait)
			}
			time.Sleep(2 * ENRiseTime)
			mu.Lock()
			got := strings.Join(ev, " ")
			mu.Unlock()
			if got != c.want {
				t.Errorf("events %q, want %q", got, c.want)
			}
		})
	}
}

// TestBoardButtons: on a pseudo-terminal (no modem lines) the BOOT and EN
// buttons still work, as `gota device run --boot download` uses them.
func TestBoardButtons(t *testing.T) {
	starts := make(chan BootMode, 4)
	b := NewBoard(NoSignals, func() {}, func(m BootMode) { starts <- m })
	defer b.Close()
	b.HoldBoot(true)
	b.Reset()
	if m := <-starts; m != DownloadBoot {
		t.Fatalf("EN with BOOT held: %v", m)
	}
	b.HoldBoot(false)
	b.Reset()
	if m := <-starts; m != FlashBoot {
		t.Fatalf("EN: %v", m)
	}
}

func TestBanners(t *testing.T) {
	if got := DownloadBanner(ESP32, 300); !strings.Contains(got, "rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n") {
		t.Errorf("ESP32 download banner:\n%s", got)
	}
	for _, c := range Chips {
		if got := DownloadBanner(c, 0); !strings.Contains(got, "waiting for download") || !strings.Contains(got, "boot:0x") {
			t.Errorf("%s: download banner lacks what esptool-js looks for:\n%s", c, got)
		}
	}
	fl := flash.NewMemory(1 << 20)
	word, ok := FlashBootHeader(ESP32, fl)
	if ok || word != 0xFFFFFFFF {
		t.Fatalf("blank flash: header 0x%x ok %v", word, ok)
	}
	fl.Program(0x1000, []byte{0xE9, 3, 2, 0x20})
	if _, ok := FlashBootHeader(ESP32, fl); !ok {
		t.Fatal("a bootloader magic at 0x1000 is not accepted")
	}
	if _, ok := FlashBootHeader(ESP32S3, fl); ok {
		t.Fatal("ESP32-S3 looks at 0x1000, want 0x0")
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer cancel()
	BootLoop(ctx, &out, ESP32, 300, 0xFFFFFFFF)
	if s := out.String(); !strings.Contains(s, "boot:0x13 (SPI_FAST_FLASH_BOOT)\r\ninvalid header: 0xffffffff\r\ninvalid header: 0xffffffff\r\n") {
		t.Errorf("boot loop output:\n%s", s)
	}
}
