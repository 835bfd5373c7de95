package nodemcu

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/agent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/internal/shareddata"
	"github.com/gota-dev/gota/protocol"
)

// flashOver updates a fresh virtual ESP32 over an emulated line at baud
// with the given agent ("lua" or "go") and returns the wall time of
// Session.Flash (no reboot).
func flashOver(b *testing.B, which string, baud int, image []byte, base []byte) time.Duration {
	b.Helper()
	content, err := device.Build(device.CreateOptions{App: base})
	if err != nil {
		b.Fatal(err)
	}
	fl := flash.FromBytes(content)
	line := link.New(link.Config{Baud: link.DefaultBaud})
	defer line.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	uart := line.Device()
	switch which {
	case "lua":
		con := NewConsole()
		dev, err := device.Open(device.Config{Flash: fl, Log: con})
		if err != nil {
			b.Fatal(err)
		}
		// A firmware whose uart.setup can change the console's rate.
		// gota.lua offers up to 230400 unless told otherwise.
		script := append([]byte("gota_config = { max_baud = 2000000 }\n"), AgentScript...)
		board := NewBoard(dev, script, Options{Firmware: UARTStartFirmware, Console: con, SetBaud: uart.SetBaud})
		defer board.Close()
		go board.Run(ctx, uart)
	case "go":
		con := agent.NewConsole()
		dev, err := device.Open(device.Config{Flash: fl, Log: con})
		if err != nil {
			b.Fatal(err)
		}
		a := agent.New(dev, con, agent.Options{SetBaud: uart.SetBaud, NoCompression: true})
		go a.Serve(ctx, uart)
	}
	s, err := updater.Connect(ctx, line.Host(), updater.Options{Baud: baud})
	if err != nil {
		b.Fatalf("%s: connect: %v", which, err)
	}
	defer s.Close()
	start := time.Now()
	if err := s.Flash(ctx, image, updater.FlashOptions{NoReboot: true, Force: true}); err != nil {
		b.Fatalf("%s: flash: %v", which, err)
	}
	return time.Since(start)
}

// BenchmarkLuaAgentVsGoAgent flashes the shared 317 KB image at 921600
// baud through gota.lua and through the Go agent (no compression, so both
// move the same bytes) in the same process, and reports the Lua agent's
// time relative to the Go agent's and to the bare wire time of the image.
// The Lua agent keeps one frame in flight; the Go agent a 64 KiB window.
func BenchmarkLuaAgentVsGoAgent(b *testing.B) {
	base := shareddata.File(b, "esp32-ledcontroller-v1.1.bin")
	image, err := espimage.SetVersion(base, "9.9.9")
	if err != nil {
		b.Fatal(err)
	}
	const baud = 921600
	raw := time.Duration(int64(len(image)) * 10 * int64(time.Second) / baud)
	var lua, goa time.Duration
	for i := 0; i < b.N; i++ {
		lua += flashOver(b, "lua", baud, image, base)
		goa += flashOver(b, "go", baud, image, base)
	}
	b.ReportMetric(float64(lua)/float64(goa), "lua/go")
	b.ReportMetric(float64(lua)/float64(b.N)/float64(raw), "lua/raw")
	b.ReportMetric(float64(goa)/float64(b.N)/float64(raw), "go/raw")
}

// TestLuaAgentNoisyLine flashes through gota.lua over an emulated line that
// drops and corrupts bytes: the agent's resynchronisation and the host's
// go-back-N must still deliver the image intact.
func TestLuaAgentNoisyLine(t *testing.T) {
	if testing.Short() {
		t.Skip("several seconds of emulated line time")
	}
	base := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	image, err := espimage.SetVersion(base, "9.9.8")
	if err != nil {
		t.Fatal(err)
	}
	content, err := device.Build(device.CreateOptions{App: base})
	if err != nil {
		t.Fatal(err)
	}
	fl := flash.FromBytes(content)
	line := link.New(link.Config{DropRate: 1.5e-5, FlipRate: 1.5e-5, Seed: 7})
	defer line.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	uart := line.Device()
	con := NewConsole()
	dev, err := device.Open(device.Config{Flash: fl, Log: con})
	if err != nil {
		t.Fatal(err)
	}
	board := NewBoard(dev, AgentScript, Options{Console: con, SetBaud: uart.SetBaud})
	defer board.Close()
	go board.Run(ctx, uart)
	s, err := updater.Connect(ctx, line.Host(), updater.Options{Baud: 2000000})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer s.Close()
	if err := s.Flash(ctx, image, updater.FlashOptions{NoReboot: true}); err != nil {
		t.Fatalf("flash: %v", err)
	}
	st := line.Stats()
	t.Logf("line: %+v; session: %+v", st, s.Stats())
	if st.Dropped+st.Flipped == 0 {
		t.Errorf("the line injected no fault: the test proves nothing")
	}
	info, err := dev.Info()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range info.Partitions {
		if p.Label == info.Next {
			got := make([]byte, len(image))
			fl.ReadAt(got, int64(p.Offset))
			if string(got) != string(image) {
				t.Fatalf("slot %s does not hold the image", p.Label)
			}
			return
		}
	}
	t.Fatalf("next partition %q not found", info.Next)
}

// TestLuaAgentSmallRxBufferRealisticFlash models NodeMCU's console
// receive path (a 384-byte FIFO and ring: bytes beyond it are lost while
// Lua is stuck in otaupgrade) and real SPI NOR timing (commence erases the
// whole slot for seconds, write programs pages): with gota.lua's one-frame
// window no byte is lost at 921600 baud. The control case advertises a
// 16 KiB window, as an agent that overrates its buffering would: bytes are
// lost and the host has to rewind, which shows the model can tell.
func TestLuaAgentSmallRxBufferRealisticFlash(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of emulated erase and line time")
	}
	base := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	image, err := espimage.SetVersion(base, "9.9.7")
	if err != nil {
		t.Fatal(err)
	}
	// This older model (RxBuffer, no line-level UART model) runs at
	// 921600: gota.lua is told it may.
	fast := append([]byte("gota_config = { max_baud = 921600 }\n"), AgentScript...)
	overrated := bytes.Replace(fast, []byte("local WINDOW = MAX_PAYLOAD - 4"), []byte("local WINDOW = 16384"), 1)
	if bytes.Equal(overrated, fast) {
		t.Fatal("WINDOW line not found in gota.lua")
	}
	for _, tc := range []struct {
		name     string
		script   []byte
		wantLoss bool
	}{
		{"gota.lua", fast, false},
		{"16 KiB window", overrated, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content, err := device.Build(device.CreateOptions{App: base})
			if err != nil {
				t.Fatal(err)
			}
			fl := flash.FromBytes(content)
			fl.SetTiming(flash.RealisticTiming)
			line := link.New(link.Config{})
			defer line.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			uart := line.Device()
			con := NewConsole()
			dev, err := device.Open(device.Config{Flash: fl, Log: con})
			if err != nil {
				t.Fatal(err)
			}
			board := NewBoard(dev, tc.script, Options{Firmware: UARTStartFirmware, Console: con, SetBaud: uart.SetBaud, RxBuffer: 128 + 256})
			defer board.Close()
			go board.Run(ctx, uart)
			s, err := updater.Connect(ctx, line.Host(), updater.Options{Baud: 921600})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer s.Close()
			start := time.Now()
			err = s.Flash(ctx, image, updater.FlashOptions{NoReboot: true, Progress: func(updater.Progress) {
				if tc.wantLoss && board.Dropped() > 0 {
					cancel() // shown: no need to finish
				}
			}})
			lost, rewinds := board.Dropped(), s.Stats().Rewinds
			t.Logf("%v; %d bytes lost, %d rewinds", time.Since(start).Round(time.Millisecond), lost, rewinds)
			if tc.wantLoss {
				if lost == 0 {
					t.Errorf("the overrated window lost nothing (flash: %v): the receive model is not working", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("flash: %v", err)
			}
			if lost > 0 || rewinds > 0 {
				t.Errorf("%d bytes overran the board's receive buffer, %d rewinds", lost, rewinds)
			}
		})
	}
}

// TestLuaAgentBaudFallback: after BAUD_R the agent switches its UART; when
// no valid frame arrives at the new rate within 3 s (a host that failed to
// follow), it switches back (SPEC 7.3) and answers at the old rate.
func TestLuaAgentBaudFallback(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 3 s baud check")
	}
	content, err := device.Build(device.CreateOptions{App: shareddata.File(t, "esp32-ledcontroller-v1.1.bin")})
	if err != nil {
		t.Fatal(err)
	}
	line := link.New(link.Config{})
	defer line.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	uart := line.Device()
	con := NewConsole()
	dev, err := device.Open(device.Config{Flash: flash.FromBytes(content), Log: con})
	if err != nil {
		t.Fatal(err)
	}
	board := NewBoard(dev, AgentScript, Options{Firmware: UARTStartFirmware, Console: con, SetBaud: uart.SetBaud})
	defer board.Close()
	go board.Run(ctx, uart)

	frames := make(chan protocol.Frame, 16)
	dec := protocol.NewDecoder(protocol.LimitMaxPayload, func(f protocol.Frame) { frames <- f }, nil)
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := line.Host().Read(buf)
			dec.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	want := func(typ protocol.Type, seq uint8) protocol.Frame {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case f := <-frames:
				if f.Type == typ && f.Seq == seq {
					return f
				}
			case <-timeout:
				t.Fatalf("no %v seq %d", typ, seq)
			}
		}
	}
	host := line.Host()
	// Faster than NodeMCU's byte-by-byte console can take: refused.
	host.Write(protocol.Frame{Type: protocol.TypeBaud, Seq: 9, Payload: protocol.EncodeU32(921600)}.Encode())
	if e, err := protocol.DecodeError(want(protocol.TypeError, 9).Payload); err != nil || e.Code != 0x102 || !strings.Contains(e.Message, "out of 9600..230400") {
		t.Fatalf("BAUD 921600: %+v %v", e, err)
	}
	host.Write(protocol.Frame{Type: protocol.TypeBaud, Seq: 1, Payload: protocol.EncodeU32(230400)}.Encode())
	if r, _ := protocol.DecodeU32(protocol.TypeBaud.Reply(), want(protocol.TypeBaud.Reply(), 1).Payload); r != 230400 {
		t.Fatalf("BAUD_R %d", r)
	}
	time.Sleep(500 * time.Millisecond)
	if b := uart.Baud(); b != 230400 {
		t.Fatalf("device at %d after BAUD_R, want 230400", b)
	}
	// The host stays at 115200 and says nothing: the agent goes back.
	time.Sleep(3 * time.Second)
	if b := uart.Baud(); b != 115200 {
		t.Fatalf("device at %d 3.5 s after an unconfirmed switch, want 115200", b)
	}
	host.Write(protocol.Frame{Type: protocol.TypePing, Seq: 2, Payload: []byte("still here")}.Encode())
	if p := want(protocol.TypePing.Reply(), 2); string(p.Payload) != "still here" {
		t.Errorf("PING_R %q", p.Payload)
	}
}

// TestLuaAgentIdleBackTo115200: SPEC 7.5: at a negotiated rate, 5 s
// without a valid frame send the agent back to 115200, where a new host
// finds it.
func TestLuaAgentIdleBackTo115200(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 5 s idle rule")
	}
	content, err := device.Build(device.CreateOptions{App: shareddata.File(t, "esp32-ledcontroller-v1.1.bin")})
	if err != nil {
		t.Fatal(err)
	}
	line := link.New(link.Config{})
	defer line.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	uart := line.Device()
	con := NewConsole()
	dev, err := device.Open(device.Config{Flash: flash.FromBytes(content), Log: con})
	if err != nil {
		t.Fatal(err)
	}
	board := NewBoard(dev, AgentScript, Options{Firmware: UARTStartFirmware, Console: con, SetBaud: uart.SetBaud})
	defer board.Close()
	go board.Run(ctx, uart)
	s, err := updater.Connect(ctx, line.Host(), updater.Options{Baud: 230400, Keepalive: time.Hour})
	if err != nil {
		t.Fatalf("connect at 230400: %v", err)
	}
	if b := uart.Baud(); b != 230400 {
		t.Fatalf("device at %d after the switch", b)
	}
	// The host goes silent without switching back (a crash).
	time.Sleep(4 * time.Second)
	if b := uart.Baud(); b != 230400 {
		t.Fatalf("device left 230400 after 4 s (%d): too early", b)
	}
	time.Sleep(2 * time.Second)
	if b := uart.Baud(); b != 115200 {
		t.Fatalf("device at %d 6 s after the last frame, want 115200 (SPEC 7.5)", b)
	}
	_ = s
	line.Host().SetBaud(115200)
	s2, err := updater.Connect(ctx, line.Host(), updater.Options{})
	if err != nil {
		t.Fatalf("a new host at 115200: %v", err)
	}
	s2.Close()
}
