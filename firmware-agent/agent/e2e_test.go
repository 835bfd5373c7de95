package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/agent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/internal/shareddata"
	"github.com/gota-dev/gota/protocol"
)

// pipePort is the host end of an in-process line.
type pipePort struct {
	net.Conn
	mu    sync.Mutex
	bauds []int
	// written counts bytes the host wrote.
	written int
	cut     bool // disconnect was called
}

func (p *pipePort) SetBaud(b int) error {
	p.mu.Lock()
	p.bauds = append(p.bauds, b)
	p.mu.Unlock()
	return nil
}

func (p *pipePort) Write(b []byte) (int, error) {
	p.mu.Lock()
	p.written += len(b)
	p.mu.Unlock()
	return p.Conn.Write(b)
}

// rig is a virtual ESP32 on memory flash running the agent, and a host
// session connected to it over net.Pipe.
type rig struct {
	t     *testing.T
	ctx   context.Context
	fl    *flash.Flash
	dev   *device.Device
	con   io.Writer
	agent server
	port  *pipePort
	sess  *updater.Session

	mu        sync.Mutex
	lines     []string
	agentBaud []int
	serveDone chan error
}

func image(t *testing.T, name string) []byte { return shareddata.File(t, name) }

// withVersion returns the shared image with its descriptor version set.
func withVersion(t *testing.T, name, version string) []byte {
	b, err := espimage.SetVersion(image(t, name), version)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRig(t *testing.T, k agentKind, app []byte, aopt agent.Options, hopt updater.Options) *rig {
	t.Helper()
	content, err := device.Build(device.CreateOptions{App: app})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, fl: flash.FromBytes(content)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	r.ctx = ctx
	r.con = k.console()
	r.dev, err = device.Open(device.Config{Flash: r.fl, Log: r.con})
	if err != nil {
		t.Fatal(err)
	}
	aopt.SetBaud = func(b int) error {
		r.mu.Lock()
		r.agentBaud = append(r.agentBaud, b)
		r.mu.Unlock()
		return nil
	}
	r.agent = k.start(t, r.dev, r.con, aopt, 0, 0)
	r.connect(hopt)
	return r
}

// connect opens a new line and a new host session (a new host process).
func (r *rig) connect(hopt updater.Options) { r.connectVia(hopt, nil) }

// connectVia is connect with the host's port wrapped by wrap.
func (r *rig) connectVia(hopt updater.Options, wrap func(*pipePort) updater.Port) {
	r.t.Helper()
	host, devEnd := net.Pipe()
	r.port = &pipePort{Conn: host}
	done := make(chan error, 1)
	r.serveDone = done
	go func() { done <- r.agent.Serve(r.ctx, devEnd) }()
	r.t.Cleanup(func() { host.Close(); devEnd.Close() })
	hopt.Log = func(l string) {
		r.mu.Lock()
		r.lines = append(r.lines, l)
		r.mu.Unlock()
	}
	var p updater.Port = r.port
	if wrap != nil {
		p = wrap(r.port)
	}
	s, err := updater.Connect(r.ctx, p, hopt)
	if err != nil {
		r.t.Fatal(err)
	}
	r.sess = s
}

// disconnect cuts the line as a crashed host or a pulled cable would. A
// second call for the same line does nothing.
func (r *rig) disconnect() {
	if r.port.cut {
		return
	}
	r.port.cut = true
	r.port.Conn.Close()
	r.sess.Close()
	select {
	case <-r.serveDone:
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		r.t.Fatalf("Serve did not return after the line was cut\n%s", buf[:runtime.Stack(buf, true)])
	}
}

func (r *rig) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

func (r *rig) info() *updater.DeviceInfo {
	r.t.Helper()
	di, err := r.sess.Info(r.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return di
}

func (r *rig) state(label string) string {
	p := r.info().Find(label)
	if p == nil {
		r.t.Fatalf("no partition %s", label)
	}
	return string(p.State)
}

func hexsum(b []byte) string {
	img, err := espimage.Parse(b)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("%x", img.Digest)
}

func TestInfo(t *testing.T) { forAgents(t, testInfo) }

func testInfo(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	r := newRig(t, k, v10, agent.Options{}, updater.Options{})
	di := r.info()
	if di.Chip != "esp32" || di.ChipRev != 300 || di.Running != "app0" || di.Next != "app0" {
		t.Errorf("info %+v", di)
	}
	if len(di.Partitions) != 2 {
		t.Fatalf("partitions %+v", di.Partitions)
	}
	p := di.Find("app0")
	if p.Name != "arduino-lib-builder" || p.Version != "37d69ca" || p.IDFVersion != "v5.3.2-584-g489d7a2b3a-dirty" ||
		p.Date != "Feb 12 2025" || p.Time != "12:11:56" || p.SHA256 != hexsum(v10) || p.ImageLen != len(v10) ||
		p.Offset != 0x10000 || p.Size != 0x180000 || p.Subtype != 16 || p.State != "valid" {
		t.Errorf("app0 %+v", *p)
	}
	if q := di.Find("app1"); q.State != "" || q.Name != "" || q.Subtype != 17 {
		t.Errorf("app1 %+v", *q)
	}
	c := r.sess.Caps()
	if !c.Resume || !c.BaudChange || !c.SHA256 || c.Compression || c.MaxFrame != k.maxFrame || c.Window != k.window || c.Agent != k.agentName {
		t.Errorf("caps %+v", c)
	}
	if !containsLine(r.log(), "gota-agent: ready") {
		t.Errorf("no banner in log %q", r.log())
	}
}

func containsLine(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// TestFlashAcceptRollback: a different build goes to app1, boots on trial,
// is accepted; another goes to app0 and is rolled back.
func TestFlashAcceptRollback(t *testing.T) { forAgents(t, testFlashAcceptRollback) }

func testFlashAcceptRollback(t *testing.T, k agentKind) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compression=%v", compress), func(t *testing.T) {
			v10 := withVersion(t, "esp32-ledcontroller-v1.0.bin", "1.0.0")
			v11 := withVersion(t, "esp32-ledcontroller-v1.1.bin", "1.1.0")
			v12 := withVersion(t, "esp32-ledcontroller-v1.2.bin", "1.2.0")
			r := newRig(t, k, v10, agent.Options{}, updater.Options{Compression: compress})
			var phases []string
			var last updater.Progress
			err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{Progress: func(p updater.Progress) {
				if len(phases) == 0 || phases[len(phases)-1] != string(p.Phase) {
					phases = append(phases, string(p.Phase))
				}
				last = p
			}})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(phases, ","); got != "check,begin,send,verify,reboot,done" {
				t.Errorf("phases %s", got)
			}
			if last.Sent != len(v11) || last.Total != len(v11) {
				t.Errorf("last progress %+v", last)
			}
			di := r.sess.LastInfo()
			if di.Running != "app1" || di.Find("app1").State != "testing" || di.Find("app1").SHA256 != hexsum(v11) || di.Find("app1").Version != "1.1.0" {
				t.Errorf("after flash: running %s, app1 %+v", di.Running, di.Find("app1"))
			}
			st := r.sess.Stats()
			if compress && st.WireBytes >= st.DataBytes*9/10 {
				t.Errorf("compression: %d image bytes as %d wire bytes", st.DataBytes, st.WireBytes)
			}
			if !compress && st.WireBytes != st.DataBytes {
				t.Errorf("no compression: %d image bytes as %d wire bytes", st.DataBytes, st.WireBytes)
			}
			t.Logf("stats %+v", st)
			if !containsLine(r.log(), "Loaded app from partition at offset 0x190000") && !containsLine(r.log(), "app1") {
				t.Logf("boot log: %q", r.log())
			}

			// Flashing while on trial is refused by the host...
			if err := r.sess.Flash(r.ctx, v12, updater.FlashOptions{}); !errors.Is(err, updater.ErrRefused) || !strings.Contains(err.Error(), "unconfirmed") {
				t.Errorf("flash on trial: %v", err)
			}
			// ... and, forced, by the device itself.
			err = r.sess.Flash(r.ctx, v12, updater.FlashOptions{Force: true})
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != device.ErrOTARollbackInvalid || !strings.HasPrefix(pe.Message, device.MsgUnconfirmed) {
				t.Errorf("forced flash on trial: %v", err)
			}

			if err := r.sess.Accept(r.ctx); err != nil {
				t.Fatal(err)
			}
			if s := r.state("app1"); s != "valid" {
				t.Errorf("after accept: app1 %s", s)
			}

			if err := r.sess.Flash(r.ctx, v12, updater.FlashOptions{}); err != nil {
				t.Fatal(err)
			}
			if di := r.info(); di.Running != "app0" || di.Find("app0").State != "testing" {
				t.Errorf("after second flash: %s %+v", di.Running, di.Find("app0"))
			}
			if err := r.sess.Rollback(r.ctx); err != nil {
				t.Fatal(err)
			}
			di = r.info()
			if di.Running != "app1" || di.Find("app0").State != "invalid" || di.Find("app1").State != "valid" {
				t.Errorf("after rollback: running %s, app0 %q, app1 %q", di.Running, di.Find("app0").State, di.Find("app1").State)
			}
			// Nothing left to roll back to: the device says so.
			err = r.sess.Rollback(r.ctx)
			if !errors.As(err, &pe) || pe.Code != device.ErrOTARollbackFailed || !strings.HasPrefix(pe.Message, device.MsgNoRollbackFirmware) {
				t.Errorf("second rollback: %v", err)
			}
		})
	}
}

func TestNoReboot(t *testing.T) { forAgents(t, testNoReboot) }

func testNoReboot(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	r := newRig(t, k, v10, agent.Options{}, updater.Options{})
	boots := r.dev.Boots()
	if err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{NoReboot: true}); err != nil {
		t.Fatal(err)
	}
	di := r.info()
	if r.dev.Boots() != boots || di.Running != "app0" || di.Next != "app1" || di.Find("app1").State != "new" {
		t.Errorf("no-reboot: boots %d->%d, running %s next %s app1 %q", boots, r.dev.Boots(), di.Running, di.Next, di.Find("app1").State)
	}
	if err := r.sess.Reboot(r.ctx); err != nil {
		t.Fatal(err)
	}
	if di := r.info(); di.Running != "app1" || di.Find("app1").State != "testing" {
		t.Errorf("after reboot: %s %q", di.Running, di.Find("app1").State)
	}
}

// TestRefusals: what the host refuses before sending, and what the device
// refuses on its own when the host is forced.
func TestRefusals(t *testing.T) { forAgents(t, testRefusals) }

func testRefusals(t *testing.T, k agentKind) {
	v10 := withVersion(t, "esp32-ledcontroller-v1.0.bin", "1.0.0")
	s2 := image(t, "esp32s2-blink.bin")
	older := withVersion(t, "esp32-ledcontroller-v1.1.bin", "0.9.0")
	huge := make([]byte, 0x180000+0x1000)
	copy(huge, v10)

	tests := []struct {
		name      string
		img       []byte
		host      string // substring of the host refusal
		code      int    // device code when forced (0: the device accepts)
		msgPrefix string
	}{
		{"same build", v10, "already running", 0, ""},
		{"wrong chip", s2, "image is for esp32s2, device is esp32", device.ErrOTAValidateFailed, device.MsgValidationFailed},
		{"too big", huge, "does not fit app1 (1.5 MiB)", device.ErrInvalidSize, device.MsgOTAError},
		{"older", older, "older than the running 1.0.0", 0, ""},
		{"not an image", []byte("hello world, not an image at all"), "image:", device.ErrOTAValidateFailed, device.MsgNotValidImage},
		// esp_ota_end (v5.1.3) asks for no app descriptor: forced, the
		// device takes a bootloader and refuses it only at boot, so the
		// host's refusal is what keeps it off the device.
		{"bootloader", image(t, "bootloader-esp32-arduino.bin"), "image is not an app (no app descriptor; a bootloader?)", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, k, v10, agent.Options{}, updater.Options{})
			before := r.fl.Bytes()
			err := r.sess.Flash(r.ctx, tt.img, updater.FlashOptions{})
			if !errors.Is(err, updater.ErrRefused) || !strings.Contains(err.Error(), tt.host) {
				t.Fatalf("host: %v, want refusal containing %q", err, tt.host)
			}
			if !bytes.Equal(before, r.fl.Bytes()) {
				t.Error("flash changed by a refused update")
			}
			err = r.sess.Flash(r.ctx, tt.img, updater.FlashOptions{Force: true, NoReboot: true})
			if tt.code == 0 {
				if err != nil {
					t.Errorf("forced: %v", err)
				}
				return
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != uint32(tt.code) || !strings.HasPrefix(pe.Message, tt.msgPrefix) {
				t.Fatalf("forced: %v, want device code 0x%x %q", err, tt.code, tt.msgPrefix)
			}
			t.Logf("forced: %v", err)
			di := r.info()
			if di.Running != "app0" || di.Next != "app0" || di.Find("app0").State != "valid" {
				t.Errorf("device state changed: %+v", di)
			}
			if got := r.fl.Bytes(); !bytes.Equal(got[0xE000:0x10000], before[0xE000:0x10000]) || !bytes.Equal(got[0x10000:0x190000], before[0x10000:0x190000]) {
				t.Error("otadata or the running app changed")
			}
		})
	}
	t.Run("downgrade allowed", func(t *testing.T) {
		r := newRig(t, k, v10, agent.Options{}, updater.Options{})
		if err := r.sess.Flash(r.ctx, older, updater.FlashOptions{AllowDowngrade: true}); err != nil {
			t.Fatal(err)
		}
		if di := r.sess.LastInfo(); di.Running != "app1" || di.Find("app1").Version != "0.9.0" {
			t.Errorf("after downgrade: %+v", di)
		}
	})
}

// TestLogInterleaved: the app logs continuously while an update streams;
// every log line reaches the host intact and the update succeeds.
func TestLogInterleaved(t *testing.T) { forAgents(t, testLogInterleaved) }

func testLogInterleaved(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	r := newRig(t, k, v10, agent.Options{}, updater.Options{Compression: true})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const n = 400
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			// Lines written in two pieces, as printf calls do.
			fmt.Fprintf(r.con, "I (%d) app: tick %d ", i, i)
			fmt.Fprintf(r.con, "\x01payload %s\r\n", strings.Repeat("=", i%50))
			if i%20 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		<-stop
	}()
	if err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{NoReboot: true}); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	r.info() // a round trip: everything before it has been read
	got := map[string]bool{}
	for _, l := range r.log() {
		got[l] = true
	}
	for i := 0; i < n; i++ {
		want := fmt.Sprintf("I (%d) app: tick %d ?payload %s", i, i, strings.Repeat("=", i%50))
		if !got[want] {
			t.Fatalf("log line %d missing or damaged: want %q", i, want)
		}
	}
}

// TestBaudChange: host asks, agent acks and switches, both continue.
func TestBaudChange(t *testing.T) { forAgents(t, testBaudChange) }

func testBaudChange(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	r := newRig(t, k, v10, agent.Options{}, updater.Options{Baud: 921600})
	if r.sess.Baud() != 921600 || r.agent.Baud() != 921600 {
		t.Fatalf("baud host %d agent %d", r.sess.Baud(), r.agent.Baud())
	}
	if err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{}); err != nil {
		t.Fatal(err)
	}
	// Before the reboot both went back to 115200; after it the session
	// switched up again.
	r.mu.Lock()
	ab := fmt.Sprint(r.agentBaud)
	r.mu.Unlock()
	r.port.mu.Lock()
	hb := fmt.Sprint(r.port.bauds)
	r.port.mu.Unlock()
	if ab != "[921600 115200 921600]" || hb != ab {
		t.Errorf("agent rates %s, host rates %s", ab, hb)
	}
	// Refused rate: an error naming the limit, the line keeps working.
	if err := r.sess.SetBaud(r.ctx, 3000000); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("3 Mbaud: %v", err)
	}
	if err := r.sess.Ping(r.ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMinimalAgent: an agent offering no optional capability (like the
// Lua agent) still updates.
func TestMinimalAgent(t *testing.T) { forAgents(t, testMinimalAgent) }

func testMinimalAgent(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	opt := agent.Options{MaxFrame: 256, Window: 512, NoCompression: true, NoResume: true, NoBaudChange: true}
	r := newRig(t, k, v10, opt, updater.Options{Compression: true, Baud: 921600})
	c := r.sess.Caps()
	if c.Compression || c.Resume || c.BaudChange || c.MaxFrame != 256 || c.Window != k.windowOf(opt) || r.sess.Baud() != 115200 {
		t.Errorf("caps %+v baud %d", c, r.sess.Baud())
	}
	if err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{}); err != nil {
		t.Fatal(err)
	}
	if di := r.sess.LastInfo(); di.Running != "app1" {
		t.Errorf("running %s", di.Running)
	}
}

// TestSlowFlash: with slow flash the window keeps the line busy: half-way
// through, the agent holds received data ahead of what is written.
func TestSlowFlash(t *testing.T) { forAgents(t, testSlowFlash) }

func testSlowFlash(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	r := newRig(t, k, v10, agent.Options{}, updater.Options{})
	r.fl.SetTiming(flash.Timing{SectorErase: 2 * time.Millisecond, BlockErase: 10 * time.Millisecond, PageProgram: 20 * time.Microsecond})
	// STATUS at a third, half and two thirds of the way, asked beside the
	// stream (a callback that waited for it would pause the stream and
	// let the agent write everything it holds).
	var (
		mu       sync.Mutex
		statuses []protocol.Status
		asked    int
		pending  sync.WaitGroup
	)
	err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{NoReboot: true, Progress: func(p updater.Progress) {
		if p.Phase != "send" || asked == 3 || p.Sent <= len(v11)*(asked+1)/4 {
			return
		}
		asked++
		pending.Add(1)
		go func() {
			defer pending.Done()
			st, err := r.sess.Status(r.ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			statuses = append(statuses, st)
			mu.Unlock()
		}()
	}})
	if err != nil {
		t.Fatal(err)
	}
	pending.Wait()
	ahead := false
	for _, st := range statuses {
		if st.Received < st.Written || int(st.Received-st.Written) > k.held {
			t.Errorf("status %+v: want received at or ahead of written, by at most %d", st, k.held)
		}
		ahead = ahead || st.Received > st.Written
		t.Logf("mid-transfer: received %d, written %d (%d buffered)", st.Received, st.Written, st.Received-st.Written)
	}
	if len(statuses) != 3 || !ahead {
		t.Errorf("%d statuses, received ahead of written in any: %v; want 3, and some bytes held unwritten while the line runs", len(statuses), ahead)
	}
	if di := r.info(); di.Find("app1").SHA256 != hexsum(v11) {
		t.Error("image differs")
	}
}

// slotBytes returns the first n bytes of the partition label in the rig's
// flash.
func slotBytes(t *testing.T, r *rig, label string, n int) []byte {
	t.Helper()
	p := r.dev.Table().Find(label)
	if p == nil {
		t.Fatalf("no partition %s", label)
	}
	return r.fl.Bytes()[p.Offset : int(p.Offset)+n]
}
