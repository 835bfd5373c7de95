package nodemcu

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/internal/shareddata"
	"github.com/gota-dev/gota/protocol"
)

// TestConsoleFirmwareRefusesConsoleUART: with the console module, uart.c's
// ensure_valid_id refuses UART 0 in every uart function.
func TestConsoleFirmwareRefusesConsoleUART(t *testing.T) {
	b := newTestBoard(t, ``, Options{Firmware: ConsoleFirmware})
	for _, call := range []string{
		`uart.setup(0, 921600, 8, uart.PARITY_NONE, uart.STOPBITS_1, 1)`,
		`uart.write(0, "x")`,
		`uart.on("data", 1, function() end, 0)`,
		`uart.on(0, "data", 1, function() end, 0)`,
		`uart.start(0)`,
		`uart.getconfig(0)`,
	} {
		got := evalLua(t, b, "select(2, pcall(function() "+call+" end))")
		if !strings.HasSuffix(got, "uart in use by system console; use the 'console' module instead") {
			t.Errorf("%s: %q", call, got)
		}
	}
	if got := evalLua(t, b, `pcall(uart.write, 1, "x")`); got != "true" {
		t.Errorf("uart.write on UART 1: %s", got)
	}
}

// TestUARTStartFirmwareNeedsStart: from 2024-05-12 until the console
// module, a uart.on callback on the console gets nothing until
// uart.start(0) (which returns false) has allocated the line buffer.
func TestUARTStartFirmwareNeedsStart(t *testing.T) {
	b := newTestBoard(t, `
		got = ""
		uart.on("data", 1, function(s) got = got .. s end, 0)
	`, Options{Firmware: UARTStartFirmware})
	term := attach(t, b)
	term.send("ab")
	time.Sleep(100 * time.Millisecond)
	if got := evalLua(t, b, "got"); got != "" {
		t.Fatalf("callback fired before uart.start(0): %q", got)
	}
	if got := evalLua(t, b, "uart.start(0)"); got != "false" {
		t.Errorf("uart.start(0) = %s, want false (platform_uart_start refuses the console)", got)
	}
	term.send("cd")
	waitLua(t, b, "got", "cd")
	// The same script on the older generation hears from boot.
	b2 := newTestBoard(t, `
		got = ""
		uart.on("data", 1, function(s) got = got .. s end, 0)
	`, Options{Firmware: UARTFirmware})
	attach(t, b2).send("ef")
	waitLua(t, b2, "got", "ef")
}

// TestLuaAgentHearsOnEveryGeneration: gota.lua answers a PING right after
// boot on every profile (on uart-start only because it calls uart.start).
func TestLuaAgentHearsOnEveryGeneration(t *testing.T) {
	for _, prof := range Profiles {
		t.Run(prof.Name, func(t *testing.T) {
			r := newRig(t, prof.Options)
			h := newRawHost(t, r)
			r.dev.Reboot() // boot with the line attached: READY is seen
			h.waitFrame(protocol.TypeReady, 0)
			h.send(protocol.Frame{Type: protocol.TypePing, Seq: 9, Payload: []byte("hi")})
			if f := h.waitFrame(protocol.TypePing.Reply(), 9); string(f.Payload) != "hi" {
				t.Errorf("PING_R %q", f.Payload)
			}
		})
	}
}

// TestLuaAgentWithoutBitOn51: a Lua 5.1 build without the bit module gets
// a clear message and NodeMCU's REPL stays usable.
func TestLuaAgentWithoutBitOn51(t *testing.T) {
	for _, fw := range []Firmware{ConsoleFirmware, UARTStartFirmware} {
		t.Run(fw.String(), func(t *testing.T) {
			r := newRig(t, Options{Firmware: fw, NoBit: true})
			term := attach(t, r.board)
			r.dev.Reboot() // boot again with the line attached: its output is seen
			term.waitFor("gota.lua: not started: this Lua 5.1 build has no bit module (enable CONFIG_NODEMCU_CMODULE_BIT")
			term.send("print(6*7)\n")
			term.waitFor("42\n")
		})
	}
}

// TestLuaAgentStartFailureLeavesREPL: when taking the console fails, the
// agent undoes what it did and NodeMCU's REPL keeps working.
func TestLuaAgentStartFailureLeavesREPL(t *testing.T) {
	sabotage := "console.mode = nil\n" // the strict module raises on a missing field
	r := newRigWith(t, Options{}, nil, append([]byte(sabotage), AgentScript...))
	r.allowLuaErrors = true
	term := attach(t, r.board)
	r.dev.Reboot()
	term.waitFor("gota.lua: not started:")
	term.send("print(6*7)\n")
	term.waitFor("42\n")
	if strings.Contains(term.output(), "\x01") {
		t.Errorf("the agent sent a frame although it did not start: %q", term.output())
	}
}

// TestLuaAgentReportsDigestsOfSlotsItWrote: after END the slot's INFO
// carries the image's appended SHA-256 (nothing for slots it did not write).
func TestLuaAgentReportsDigestsOfSlotsItWrote(t *testing.T) {
	for _, name := range []string{"console", "console-crypto"} {
		t.Run(name, func(t *testing.T) {
			prof, err := FindProfile(name)
			if err != nil {
				t.Fatal(err)
			}
			ctx := testContext(t)
			r := newRig(t, prof.Options)
			s, _ := r.connect(ctx)
			img := r.build("9.5.0")
			if err := s.Flash(ctx, img, updater.FlashOptions{NoReboot: true}); err != nil {
				t.Fatalf("Flash: %v\nlog:\n%s", err, r.logText())
			}
			info := r.info(ctx, s)
			if got, want := info.Find("app1").SHA256, fmt.Sprintf("%x", img[len(img)-32:]); got != want {
				t.Errorf("app1 sha256 %q, want the appended digest %s", got, want)
			}
			if d := info.Find("app0").SHA256; d != "" {
				t.Errorf("app0 sha256 %q: not written by the agent", d)
			}
		})
	}
}

// TestLuaAgentPowerCut: power fails while the agent writes the new build;
// after power returns the old build runs, and the update then succeeds.
func TestLuaAgentPowerCut(t *testing.T) {
	for _, prof := range Profiles {
		t.Run(prof.Name, func(t *testing.T) {
			ctx := testContext(t)
			r := newRig(t, prof.Options)
			r.allowLuaErrors = true
			s, _ := r.connect(ctx)
			r.fl.CutPowerAfter(60, true)
			if err := s.Flash(ctx, r.build("9.6.0"), updater.FlashOptions{}); err == nil {
				t.Fatal("Flash succeeded through a power cut")
			}
			s.Close()
			r.board.Close()
			r.fl.PowerOn()
			con := NewConsole()
			dev, err := device.Open(device.Config{Flash: r.fl, Log: con})
			if err != nil {
				t.Fatalf("boot after the cut: %v", err)
			}
			opt := prof.Options
			opt.Console = con
			r.dev, r.board = dev, NewBoard(dev, AgentScript, opt)
			s2, _ := r.connect(ctx)
			wantState(t, r.info(ctx, s2), "app0", "app0", map[string][2]string{"app0": {"valid", ""}})
			if err := s2.Flash(ctx, r.build("9.6.1"), updater.FlashOptions{}); err != nil {
				t.Fatalf("Flash after power returned: %v\nlog:\n%s", err, r.logText())
			}
			wantState(t, r.info(ctx, s2), "app1", "app1", map[string][2]string{"app1": {"testing", "9.6.1"}})
		})
	}
}

// TestLuaAgentNoisyLineEveryProfile flashes over a lossy line on every
// profile. The console runs at 2 Mbaud from boot
// (CONFIG_ESP_CONSOLE_UART_BAUDRATE), since the console module cannot
// switch rates.
func TestLuaAgentNoisyLineEveryProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of emulated line time")
	}
	base := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	image, err := espimage.SetVersion(base, "9.9.6")
	if err != nil {
		t.Fatal(err)
	}
	for _, prof := range Profiles {
		t.Run(prof.Name, func(t *testing.T) {
			content, err := device.Build(device.CreateOptions{App: base})
			if err != nil {
				t.Fatal(err)
			}
			fl := flash.FromBytes(content)
			const rate = 2000000
			line := link.New(link.Config{Baud: rate, DropRate: 1.5e-5, FlipRate: 1.5e-5, Seed: 11})
			defer line.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			uart := line.Device()
			con := NewConsole()
			dev, err := device.Open(device.Config{Flash: fl, Log: con})
			if err != nil {
				t.Fatal(err)
			}
			opt := prof.Options
			opt.Console, opt.SetBaud, opt.ConsoleBaud = con, uart.SetBaud, rate
			board := NewBoard(dev, AgentScript, opt)
			defer board.Close()
			go board.Run(ctx, uart)
			s, err := updater.Connect(ctx, line.Host(), updater.Options{})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer s.Close()
			if err := s.Flash(ctx, image, updater.FlashOptions{NoReboot: true}); err != nil {
				t.Fatalf("flash: %v", err)
			}
			if st := line.Stats(); st.Dropped+st.Flipped == 0 {
				t.Errorf("the line injected no fault: the test proves nothing")
			}
			p := dev.Table().Find("app1")
			got := make([]byte, len(image))
			fl.ReadAt(got, int64(p.Offset))
			if string(got) != string(image) {
				t.Fatalf("app1 does not hold the image")
			}
		})
	}
}

// TestLuaAgentSlowLineLongFrame: at 9600 baud a 1 KiB frame takes over a
// second; the agent asks for chunks short enough that the idle rule never
// fires while bytes flow.
func TestLuaAgentSlowLineLongFrame(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of emulated line time")
	}
	const rate = 9600
	content, err := device.Build(device.CreateOptions{App: shareddata.File(t, "esp32-ledcontroller-v1.1.bin")})
	if err != nil {
		t.Fatal(err)
	}
	line := link.New(link.Config{Baud: rate})
	defer line.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	uart := line.Device()
	con := NewConsole()
	dev, err := device.Open(device.Config{Flash: flash.FromBytes(content), Log: con})
	if err != nil {
		t.Fatal(err)
	}
	board := NewBoard(dev, AgentScript, Options{Console: con, SetBaud: uart.SetBaud, ConsoleBaud: rate})
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
	want := func(typ protocol.Type, seq uint8, within time.Duration) protocol.Frame {
		t.Helper()
		timeout := time.After(within)
		for {
			select {
			case f := <-frames:
				if f.Type == typ && f.Seq == seq {
					return f
				}
			case <-timeout:
				t.Fatalf("no %v seq %d within %v", typ, seq, within)
			}
		}
	}
	host := line.Host()
	hello := protocol.Hello{Version: 1, MaxPayload: 1024}.Encode()
	host.Write(protocol.Frame{Type: protocol.TypeHello, Seq: 1, Payload: hello}.Encode())
	want(protocol.TypeHello.Reply(), 1, 5*time.Second)
	payload := strings.Repeat("0123456789abcdef", 60) // 960 bytes: 1 s on the line
	start := time.Now()
	host.Write(protocol.Frame{Type: protocol.TypePing, Seq: 2, Payload: []byte(payload)}.Encode())
	if f := want(protocol.TypePing.Reply(), 2, 5*time.Second); string(f.Payload) != payload {
		t.Fatalf("PING_R payload differs")
	}
	t.Logf("PING of %d bytes at %d baud answered in %v", len(payload), rate, time.Since(start).Round(time.Millisecond))
}

// TestLuaAgentCryptoChecksBeginDigest: with the crypto module, an image
// whose SHA-256 is not the one BEGIN announced is refused at END, before
// otaupgrade.complete(): otadata stays as it was.
func TestLuaAgentCryptoChecksBeginDigest(t *testing.T) {
	r := newRig(t, Options{Firmware: ConsoleFirmware, Crypto: true})
	h := newRawHost(t, r)
	r.dev.Reboot() // boot with the line attached: READY is seen
	h.waitFrame(protocol.TypeReady, 0)
	before := r.snapshot()
	img := r.build("9.9.1")[:4096]
	h.send(protocol.Frame{Type: protocol.TypeHello, Seq: 1, Payload: protocol.Hello{Version: 1, MaxPayload: 1024}.Encode()})
	h.waitFrame(protocol.TypeHello.Reply(), 1)
	wrong := [32]byte{1, 2, 3}
	h.send(protocol.Frame{Type: protocol.TypeBegin, Seq: 2, Payload: protocol.Begin{Size: uint32(len(img)), SHA256: wrong}.Encode()})
	h.waitFrame(protocol.TypeBegin.Reply(), 2)
	for off := 0; off < len(img); off += 1020 {
		end := min(off+1020, len(img))
		h.send(protocol.Frame{Type: protocol.TypeData, Payload: protocol.Data{Offset: uint32(off), Bytes: img[off:end]}.Encode()})
		h.waitFrame(protocol.TypeAck, 0)
	}
	h.send(protocol.Frame{Type: protocol.TypeEnd, Seq: 3, Payload: []byte{0}})
	e, err := protocol.DecodeError(h.waitFrame(protocol.TypeError, 3).Payload)
	if err != nil || e.Code != 0x1503 || !strings.Contains(e.Message, "differs from the one BEGIN announced") {
		t.Fatalf("END of an image with the wrong SHA-256: %+v %v", e, err)
	}
	r.wantUnchanged(before)
}

// TestLuaAgentRelaxesEGCDuringSessions: Lua 5.1 builds start with
// node.egc ALWAYS (a full collection before every allocation); the agent
// collects on allocation failure only while a session runs, and restores
// NodeMCU's start-up mode when it ends.
func TestLuaAgentRelaxesEGCDuringSessions(t *testing.T) {
	r := newRigWith(t, Options{}, nil, append([]byte("gota_config = { quiet_ms = 300 }\n"), AgentScript...))
	egc := func() string {
		var m int
		r.board.do(func(v *vm) { m = v.egcMode })
		return fmt.Sprint(m)
	}
	if got := egc(); got != fmt.Sprint(egcAlways) {
		t.Fatalf("egc mode at boot %s, want ALWAYS (%d)", got, egcAlways)
	}
	h := newRawHost(t, r)
	r.dev.Reboot() // boot with the line attached: READY is seen
	h.waitFrame(protocol.TypeReady, 0)
	h.send(protocol.Frame{Type: protocol.TypePing, Seq: 1, Payload: []byte("x")})
	h.waitFrame(protocol.TypePing.Reply(), 1)
	if got := egc(); got != fmt.Sprint(egcOnAllocFailure) {
		t.Errorf("egc mode during a session %s, want ON_ALLOC_FAILURE (%d)", got, egcOnAllocFailure)
	}
	deadline := time.Now().Add(3 * time.Second)
	for egc() != fmt.Sprint(egcAlways) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := egc(); got != fmt.Sprint(egcAlways) {
		t.Errorf("egc mode after the session %s, want ALWAYS again", got)
	}
}
