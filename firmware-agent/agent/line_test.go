package agent_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/agent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/protocol"
)

// hostEnd is the host side of an emulated line as an updater.Port:
// changing the rate reconfigures the port at once, as tcsetattr does.
type hostEnd struct{ *link.End }

func (h hostEnd) SetBaud(b int) error { h.End.SetBaudNow(b); return nil }

// lineRig runs the agent on the device end of an emulated UART, where
// bytes sent at one rate and read at another arrive garbled.
func lineRig(t *testing.T, k agentKind, cfg link.Config, aopt agent.Options) (*link.Line, server, *device.Device, func()) {
	return lineRigTimers(t, k, cfg, aopt, 0, 0)
}

// lineRigTimers is lineRig with the agent's rate timers set (SPEC.md 7).
func lineRigTimers(t *testing.T, k agentKind, cfg link.Config, aopt agent.Options, check, idle time.Duration) (*link.Line, server, *device.Device, func()) {
	// serve starts Serve on the device end; recut cuts the line, waits
	// for Serve to return (as the device runner does) and serves again.
	t.Helper()
	content, err := device.Build(device.CreateOptions{App: image(t, "esp32-ledcontroller-v1.0.bin")})
	if err != nil {
		t.Fatal(err)
	}
	line := link.New(cfg)
	t.Cleanup(func() { line.Close() })
	con := k.console()
	dev, err := device.Open(device.Config{Flash: flash.FromBytes(content), Log: con})
	if err != nil {
		t.Fatal(err)
	}
	uart := line.Device()
	aopt.SetBaud = uart.SetBaud
	a := k.start(t, dev, con, aopt, check, idle)
	var done chan error
	serve := func() {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		done = make(chan error, 1)
		go func() { done <- a.Serve(ctx, uart) }()
	}
	recut := func() {
		line.Disconnect()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after the cut")
		}
		line.Reconnect()
		serve()
	}
	serve()
	return line, a, dev, recut
}

// TestBaudOverLine switches to 921600 on a line that garbles mismatched
// rates, flashes, and checks that a host that vanished without switching
// back finds the agent at 115200 again (the agent's idle rule).
func TestBaudOverLine(t *testing.T) { forAgents(t, testBaudOverLine) }

func testBaudOverLine(t *testing.T, k agentKind) {
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	line, a, _, recut := lineRigTimers(t, k, link.Config{}, agent.Options{}, 3*time.Second, 700*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := updater.Connect(ctx, hostEnd{line.Host()}, updater.Options{Baud: 921600, Compression: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Baud() != 921600 || a.Baud() != 921600 || line.Device().Baud() != 921600 || line.Host().Baud() != 921600 {
		t.Fatalf("rates: session %d agent %d, line device %d host %d", s.Baud(), a.Baud(), line.Device().Baud(), line.Host().Baud())
	}
	start := time.Now()
	if err := s.Flash(ctx, v11, updater.FlashOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("flashed %d bytes at 921600 in %v; line %+v", len(v11), time.Since(start).Round(time.Millisecond), line.Stats())
	if di := s.LastInfo(); di.Running != "app1" || s.Baud() != 921600 {
		t.Errorf("after flash: running %s at %d", di.Running, s.Baud())
	}

	// The host crashes: the line is cut and comes back; the agent still
	// runs at 921600 until its idle rule returns it to 115200.
	recut()
	line.Host().SetBaudNow(115200)
	s2, err := updater.Connect(ctx, hostEnd{line.Host()}, updater.Options{})
	if err != nil {
		t.Fatalf("new host at 115200: %v (agent at %d, line device %d host %d)", err, a.Baud(), line.Device().Baud(), line.Host().Baud())
	}
	if a.Baud() != 115200 || line.Device().Baud() != 115200 {
		t.Errorf("agent at %d, device end at %d", a.Baud(), line.Device().Baud())
	}
	if err := s2.Accept(ctx); err != nil {
		t.Fatal(err)
	}
	// A closed session may still have a read pending on its port, as
	// the CLI closes the port right after; here the line is cut instead.
	s2.Close()
	recut()
	// A polite host switches back on Close.
	s3, err := updater.Connect(ctx, hostEnd{line.Host()}, updater.Options{Baud: 460800, Keepalive: 200 * time.Millisecond, Log: func(l string) { t.Log(l) }})
	if err != nil {
		buf := make([]byte, 1<<20)
		t.Fatalf("%v (agent at %d, line device %d host %d)\n%s", err, a.Baud(), line.Device().Baud(), line.Host().Baud(), buf[:runtime.Stack(buf, true)])
	}
	if a.Baud() != 460800 {
		t.Fatalf("agent at %d", a.Baud())
	}
	time.Sleep(1500 * time.Millisecond) // idle, but the session keeps the line alive
	if a.Baud() != 460800 {
		t.Fatalf("idle session lost its rate: agent at %d", a.Baud())
	}
	s3.Close()
	if a.Baud() != 115200 || line.Host().Baud() != 115200 {
		t.Errorf("after Close: agent %d host %d", a.Baud(), line.Host().Baud())
	}
}

// TestNothingGarbledAroundReboot flashes at 921600 with flash that takes
// real time, so the agent is still writing the last bytes when the host
// has sent them all, and reboots: the host goes back to 115200 before
// the reboot, and no frame may cross the line at a rate the other side is
// not at (the last ACK once did, SPEC.md 7.7).
func TestNothingGarbledAroundReboot(t *testing.T) { forAgents(t, testNothingGarbledAroundReboot) }

func testNothingGarbledAroundReboot(t *testing.T, k agentKind) {
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	line, _, dev, _ := lineRig(t, k, link.Config{}, agent.Options{})
	dev.Flash().SetTiming(flash.RealisticTiming)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := updater.Connect(ctx, hostEnd{line.Host()}, updater.Options{Baud: 921600, Compression: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Flash(ctx, v11, updater.FlashOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := line.Stats(); st.Garbled != 0 {
		t.Errorf("%d bytes crossed the line at the wrong rate: %+v", st.Garbled, st)
	}
}

// lossyHostEnd is hostEnd losing the first frame of one type on its way
// to the host (see lossyReplyPort).
type lossyHostEnd struct {
	hostEnd
	lossy *lossyReplyPort
}

func (h lossyHostEnd) Read(b []byte) (int, error) {
	n, err := h.hostEnd.Read(b)
	return h.lossy.filter(b, n, err)
}

// TestBaudReplyLost loses BAUD_R on a line that garbles mismatched rates:
// the agent switches, the host's retry at the old rate is garbage to it
// until it switches back, and then the retry must switch it again.
func TestBaudReplyLost(t *testing.T) { forAgents(t, testBaudReplyLost) }

func testBaudReplyLost(t *testing.T, k agentKind) {
	line, a, _, _ := lineRig(t, k, link.Config{}, agent.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := lossyHostEnd{hostEnd{line.Host()}, &lossyReplyPort{lose: protocol.TypeBaud.Reply()}}
	s, err := updater.Connect(ctx, h, updater.Options{Baud: 921600})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !h.lossy.lost {
		t.Fatal("BAUD_R went through; the test proves nothing")
	}
	if s.Baud() != 921600 || a.Baud() != 921600 {
		t.Errorf("after a lost BAUD_R: session at %d, agent at %d; want both at 921600", s.Baud(), a.Baud())
	}
	if err := s.Ping(ctx); err != nil {
		t.Error(err)
	}
}

// TestNoisyLine flashes over a line that drops and flips bytes.
func TestNoisyLine(t *testing.T) { forAgents(t, testNoisyLine) }

func testNoisyLine(t *testing.T, k agentKind) {
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	line, _, _, _ := lineRig(t, k, link.Config{Baud: 2000000, DropRate: 2e-5, FlipRate: 2e-5, Seed: 7}, agent.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := updater.Connect(ctx, hostEnd{line.Host()}, updater.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Flash(ctx, v11, updater.FlashOptions{}); err != nil {
		t.Fatal(err)
	}
	st := line.Stats()
	t.Logf("line %+v, session %+v", st, s.Stats())
	if st.Dropped+st.Flipped == 0 {
		t.Error("the line did no damage; the test proves nothing")
	}
	if di := s.LastInfo(); di.Running != "app1" || di.Find("app1").SHA256 != hexsum(v11) {
		t.Errorf("after flash: %+v", di)
	}
}

// TestHeavyNoise flashes at 2 Mbaud over a line that loses one byte in a
// thousand and corrupts another (issue 4): the host must shrink its frames
// and window to get anything through, and the image must still arrive
// byte for byte, also to an agent that keeps nothing after a gap and
// takes at most 1 KiB frames (the Lua agent's profile).
func TestHeavyNoise(t *testing.T) { forAgents(t, testHeavyNoise) }

func testHeavyNoise(t *testing.T, k agentKind) {
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	tests := []struct {
		name string
		opt  agent.Options
	}{
		{"reorder", agent.Options{}},
		{"go-back-N, 1 KiB frames", agent.Options{NoReorder: true, MaxFrame: 1024, Window: 1020}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, _, _, _ := lineRig(t, k, link.Config{DropRate: 1e-3, FlipRate: 1e-3, Seed: 42}, tt.opt)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			s, err := updater.Connect(ctx, hostEnd{line.Host()}, updater.Options{Baud: 921600, Compression: true})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := s.Flash(ctx, v11, updater.FlashOptions{}); err != nil {
				t.Fatal(err)
			}
			st := line.Stats()
			t.Logf("%v at %d baud; line %+v, session %+v", time.Since(start).Round(time.Millisecond), s.Baud(), st, s.Stats())
			if st.Dropped == 0 || st.Flipped == 0 {
				t.Error("the line did no damage; the test proves nothing")
			}
			if s.Stats().Rewinds+s.Stats().Resent == 0 {
				t.Error("nothing was sent again on a line this noisy")
			}
			if di := s.LastInfo(); di.Running != "app1" || di.Find("app1").SHA256 != hexsum(v11) {
				t.Errorf("after flash: %+v", di)
			}
		})
	}
}
