package nodemcu

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/partition"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/internal/shareddata"
)

// rig is a virtual ESP32 running gota.lua, booted from the shared
// esp32-ledcontroller-v1.1.bin in app0.
type rig struct {
	t     *testing.T
	dev   *device.Device
	fl    *flash.Flash
	board *Board
	base  []byte // the image the device was created with

	allowLuaErrors bool // the test checks LuaErrors itself

	mu   sync.Mutex
	logs []string
}

func newRig(t *testing.T, opt Options) *rig {
	t.Helper()
	return newRigWith(t, opt, nil, AgentScript)
}

// newRigTable is newRig with a partition table (nil: the device default).
func newRigTable(t *testing.T, opt Options, table *partition.Table) *rig {
	t.Helper()
	return newRigWith(t, opt, table, AgentScript)
}

func newRigWith(t *testing.T, opt Options, table *partition.Table, script []byte) *rig {
	t.Helper()
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	content, err := device.Build(device.CreateOptions{App: v11, Table: table})
	if err != nil {
		t.Fatalf("device.Build: %v", err)
	}
	r := &rig{t: t, fl: flash.FromBytes(content), base: v11}
	con := NewConsole()
	r.dev, err = device.Open(device.Config{Flash: r.fl, Log: con})
	if err != nil {
		t.Fatalf("device.Open: %v", err)
	}
	opt.Console = con
	r.board = NewBoard(r.dev, script, opt)
	t.Cleanup(func() {
		r.board.Close()
		if errs := r.board.LuaErrors(); len(errs) > 0 && !r.allowLuaErrors {
			t.Errorf("Lua errors on the board: %q", errs)
		}
		if strings.Contains(r.logText(), "gota.lua: internal error") {
			t.Errorf("gota.lua reported an internal error:\n%s", r.logText())
		}
	})
	return r
}

// pipePort is the host end of an in-process serial line (no baud rate).
type pipePort struct{ net.Conn }

func (pipePort) SetBaud(int) error { return nil }

// attach connects a new serial line to the board and returns its host end.
func (r *rig) attach() net.Conn {
	boardEnd, hostEnd := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.board.Run(context.Background(), boardEnd)
	}()
	r.t.Cleanup(func() {
		hostEnd.Close()
		boardEnd.Close()
		<-done
	})
	return hostEnd
}

// connect attaches a line and handshakes over it with core/updater.
func (r *rig) connect(ctx context.Context) (*updater.Session, net.Conn) {
	r.t.Helper()
	conn := r.attach()
	s, err := updater.Connect(ctx, pipePort{conn}, updater.Options{Log: r.log})
	if err != nil {
		r.t.Fatalf("updater.Connect: %v\nlog:\n%s", err, r.logText())
	}
	r.t.Cleanup(func() { s.Close() })
	return s, conn
}

func (r *rig) log(line string) {
	r.mu.Lock()
	r.logs = append(r.logs, line)
	r.mu.Unlock()
}

func (r *rig) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.logs, "\n")
}

// build returns the base image with another version string.
func (r *rig) build(version string) []byte {
	r.t.Helper()
	img, err := espimage.SetVersion(r.base, version)
	if err != nil {
		r.t.Fatalf("SetVersion: %v", err)
	}
	return img
}

func (r *rig) info(ctx context.Context, s *updater.Session) *updater.DeviceInfo {
	r.t.Helper()
	info, err := s.Info(ctx)
	if err != nil {
		r.t.Fatalf("Info: %v\nlog:\n%s", err, r.logText())
	}
	return info
}

// wantState checks running/next and the state and version of partitions.
func wantState(t *testing.T, info *updater.DeviceInfo, running, next string, parts map[string][2]string) {
	t.Helper()
	if info.Running != running || info.Next != next {
		t.Errorf("running %q next %q, want %q and %q", info.Running, info.Next, running, next)
	}
	for label, want := range parts {
		p := info.Find(label)
		if p == nil {
			t.Errorf("partition %s missing from INFO", label)
			continue
		}
		if p.State != want[0] || (want[1] != "" && p.Version != want[1]) {
			t.Errorf("%s: state %q version %q, want %q and %q", label, p.State, p.Version, want[0], want[1])
		}
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestLuaAgentFullCycle flashes, accepts, flashes again and rolls back
// on every firmware profile.
func TestLuaAgentFullCycle(t *testing.T) {
	for _, prof := range Profiles {
		t.Run(prof.Name, func(t *testing.T) { testFullCycle(t, prof.Options) })
	}
}

func testFullCycle(t *testing.T, opt Options) {
	ctx := testContext(t)
	r := newRig(t, opt)
	s, _ := r.connect(ctx)

	caps := s.Caps()
	wantBaud := opt.Firmware != ConsoleFirmware // the console module cannot change the rate
	if caps.Agent != "gota-lua/1" || caps.Compression || caps.SHA256 || !caps.Resume || caps.BaudChange != wantBaud {
		t.Errorf("caps = %+v, want gota-lua/1 with resume, baud change %v", caps, wantBaud)
	}
	wantWindow := 1020 // one frame in flight where the rate may go up
	if opt.Firmware == ConsoleFirmware {
		wantWindow = 2040
	}
	if caps.MaxFrame != 1024 || caps.Window != wantWindow {
		t.Errorf("max frame %d window %d, want 1024 and %d", caps.MaxFrame, caps.Window, wantWindow)
	}

	first := r.info(ctx, s)
	if first.Chip != "esp32" || first.ChipRev != 300 {
		t.Errorf("chip %q rev %d, want esp32 300 (node.info(\"hw\"))", first.Chip, first.ChipRev)
	}
	baseVersion := first.Find("app0").Version
	wantState(t, r.info(ctx, s), "app0", "app0", map[string][2]string{"app0": {"valid", baseVersion}, "app1": {"", ""}})
	if d := first.Find("app0").SHA256; d != "" {
		t.Errorf("app0 digest %q: the agent did not write app0, it cannot know", d)
	}

	// Flash a new build: it boots on trial.
	img := r.build("9.1.0")
	if err := s.Flash(ctx, img, updater.FlashOptions{}); err != nil {
		t.Fatalf("Flash: %v\nlog:\n%s", err, r.logText())
	}
	if rs := s.Stats().ResumedFrom; rs != 0 {
		t.Errorf("fresh transfer resumed from %d", rs)
	}
	info := r.info(ctx, s)
	wantState(t, info, "app1", "app1", map[string][2]string{"app0": {"valid", baseVersion}, "app1": {"testing", "9.1.0"}})
	// Without a file system the digest does not survive the reboot.
	if d := info.Find("app1").SHA256; d != "" && d != fmt.Sprintf("%x", img[len(img)-32:]) {
		t.Errorf("app1 digest %s is not the image's appended SHA-256", d)
	}

	// Accept it.
	if err := s.Accept(ctx); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	wantState(t, r.info(ctx, s), "app1", "app1", map[string][2]string{"app1": {"valid", "9.1.0"}})

	// Another build, then roll it back: the accepted one runs again.
	if err := s.Flash(ctx, r.build("9.2.0"), updater.FlashOptions{}); err != nil {
		t.Fatalf("second Flash: %v\nlog:\n%s", err, r.logText())
	}
	wantState(t, r.info(ctx, s), "app0", "app0", map[string][2]string{"app0": {"testing", "9.2.0"}, "app1": {"valid", "9.1.0"}})
	if err := s.Rollback(ctx); err != nil {
		t.Fatalf("Rollback: %v\nlog:\n%s", err, r.logText())
	}
	info = r.info(ctx, s)
	wantState(t, info, "app1", "app1", map[string][2]string{"app1": {"valid", "9.1.0"}})
	if st := info.Find("app0").State; st != "invalid" && st != "aborted" {
		t.Errorf("rolled-back app0 state %q, want invalid or aborted", st)
	}

	// The agent's own log line shows at every boot.
	if !strings.Contains(r.logText(), "gota-lua/1 OTA agent on the console") {
		t.Errorf("agent banner missing from the log:\n%s", r.logText())
	}
}

// snapshot is the device state that a refused update must leave intact.
type snapshot struct {
	info  device.Info
	flash []byte
}

func (r *rig) snapshot() snapshot {
	r.t.Helper()
	info, err := r.dev.Info()
	if err != nil {
		r.t.Fatalf("device Info: %v", err)
	}
	// Everything but the inactive slot, which an update may scribble on.
	b := append([]byte(nil), r.fl.Bytes()...)
	for _, p := range r.dev.Table().Partitions {
		if p.Name == "app1" {
			for i := p.Offset; i < p.Offset+p.Size; i++ {
				b[i] = 0
			}
		}
	}
	return snapshot{info, b}
}

func (r *rig) wantUnchanged(before snapshot) {
	r.t.Helper()
	after := r.snapshot()
	if before.info.Running != after.info.Running || before.info.Next != after.info.Next {
		r.t.Errorf("running/next changed: %s/%s -> %s/%s", before.info.Running, before.info.Next, after.info.Running, after.info.Next)
	}
	if !bytes.Equal(before.flash, after.flash) {
		r.t.Errorf("flash outside the target slot changed (otadata or running firmware)")
	}
}

func TestLuaAgentRefusesBadImages(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func([]byte) []byte
		want    string // NodeMCU's message, carried in the ERROR frame
	}{
		{"bad checksum", func(b []byte) []byte {
			b[len(b)/2] ^= 0x55
			return b
		}, "validation failed"},
		{"not an image", func(b []byte) []byte {
			b[0] = 0x00
			return b
		}, "not a valid ota image"},
		{"truncated", func(b []byte) []byte {
			return b[:len(b)/3]
		}, "validation failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			r := newRig(t, Options{})
			s, _ := r.connect(ctx)
			before := r.snapshot()
			img := tc.corrupt(r.build("9.3.0"))
			err := s.Flash(ctx, img, updater.FlashOptions{Force: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Flash of a bad image: %v, want an error with %q", err, tc.want)
			}
			r.wantUnchanged(before)
			// The session is still usable and the device still updatable.
			if err := s.Flash(ctx, r.build("9.4.0"), updater.FlashOptions{}); err != nil {
				t.Fatalf("Flash after the refusal: %v\nlog:\n%s", err, r.logText())
			}
			wantState(t, r.info(ctx, s), "app1", "app1", map[string][2]string{"app1": {"testing", "9.4.0"}})
		})
	}
}

func TestLuaAgentRefusesUpgradeFromUnconfirmed(t *testing.T) {
	ctx := testContext(t)
	r := newRig(t, Options{})
	s, _ := r.connect(ctx)
	if err := s.Flash(ctx, r.build("9.1.0"), updater.FlashOptions{}); err != nil {
		t.Fatalf("Flash: %v", err)
	}
	before := r.snapshot()
	err := s.Flash(ctx, r.build("9.2.0"), updater.FlashOptions{Force: true})
	if err == nil || !strings.Contains(err.Error(), "can't upgrade from unconfirmed firmware") {
		t.Fatalf("Flash from a build on trial: %v, want NodeMCU's refusal", err)
	}
	r.wantUnchanged(before)
}

func TestLuaAgentDisconnectMidTransferResumes(t *testing.T) {
	ctx := testContext(t)
	r := newRig(t, Options{})
	s, conn := r.connect(ctx)
	img := r.build("9.5.0")

	// Cut the line once a third of the image is acknowledged.
	var once sync.Once
	err := s.Flash(ctx, img, updater.FlashOptions{Progress: func(p updater.Progress) {
		if p.Phase == "send" && p.Sent > len(img)/3 {
			once.Do(func() { conn.Close() })
		}
	}})
	if err == nil {
		t.Fatal("Flash survived a cut line")
	}
	s.Close()
	if info, _ := r.dev.Info(); info.Running != "app0" {
		t.Fatalf("device switched to %s after an interrupted transfer", info.Running)
	}

	// A new connection continues where the agent stopped.
	s2, _ := r.connect(ctx)
	if err := s2.Flash(ctx, img, updater.FlashOptions{}); err != nil {
		t.Fatalf("Flash after reconnect: %v\nlog:\n%s", err, r.logText())
	}
	if from := s2.Stats().ResumedFrom; from < len(img)/3 {
		t.Errorf("resumed from %d, want at least %d", from, len(img)/3)
	}
	wantState(t, r.info(ctx, s2), "app1", "app1", map[string][2]string{"app1": {"testing", "9.5.0"}})
}

func TestLuaAgentNoResumeStartsOver(t *testing.T) {
	ctx := testContext(t)
	r := newRig(t, Options{})
	s, conn := r.connect(ctx)
	img := r.build("9.6.0")
	var once sync.Once
	s.Flash(ctx, img, updater.FlashOptions{Progress: func(p updater.Progress) {
		if p.Phase == "send" && p.Sent > len(img)/2 {
			once.Do(func() { conn.Close() })
		}
	}})
	s.Close()
	conn2 := r.attach()
	s2, err := updater.Connect(ctx, pipePort{conn2}, updater.Options{Log: r.log, NoResume: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Flash(ctx, img, updater.FlashOptions{}); err != nil {
		t.Fatalf("Flash: %v", err)
	}
	if from := s2.Stats().ResumedFrom; from != 0 {
		t.Errorf("NoResume transfer resumed from %d", from)
	}
}

func TestLuaAgentOnUARTFirmware(t *testing.T) {
	// Firmware before the console module: uart.on serves the console.
	ctx := testContext(t)
	r := newRig(t, Options{Firmware: UARTFirmware})
	s, _ := r.connect(ctx)
	if err := s.Flash(ctx, r.build("9.7.0"), updater.FlashOptions{}); err != nil {
		t.Fatalf("Flash: %v\nlog:\n%s", err, r.logText())
	}
	wantState(t, r.info(ctx, s), "app1", "app1", map[string][2]string{"app1": {"testing", "9.7.0"}})
}

func TestLuaAgentRebootAndReady(t *testing.T) {
	ctx := testContext(t)
	r := newRig(t, Options{})
	s, _ := r.connect(ctx)
	if err := s.Reboot(ctx); err != nil {
		t.Fatalf("Reboot: %v\nlog:\n%s", err, r.logText())
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after reboot: %v", err)
	}
	if err := s.Accept(ctx); err != nil {
		t.Fatalf("Accept of the valid running build: %v", err)
	}
}

// TestLuaAgentWithREADMEPartitionTable boots the virtual ESP32 with the
// partition table the README tells users to flash (partitions.csv: ota_0,
// ota_1, LFS and SPIFFS) and updates it with gota.lua.
func TestLuaAgentWithREADMEPartitionTable(t *testing.T) {
	csv, err := os.ReadFile("partitions.csv")
	if err != nil {
		t.Fatal(err)
	}
	table, err := partition.ParseCSV(csv, partition.DefaultTableOffset)
	if err != nil {
		t.Fatalf("partitions.csv: %v", err)
	}
	ctx := testContext(t)
	r := newRigTable(t, Options{}, table)
	s, _ := r.connect(ctx)
	wantState(t, r.info(ctx, s), "ota_0", "ota_0", map[string][2]string{"ota_0": {"valid", ""}, "ota_1": {"", ""}})
	if err := s.Flash(ctx, r.build("9.9.0"), updater.FlashOptions{}); err != nil {
		t.Fatalf("Flash: %v\nlog:\n%s", err, r.logText())
	}
	if err := s.Accept(ctx); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	wantState(t, r.info(ctx, s), "ota_1", "ota_1", map[string][2]string{"ota_1": {"valid", "9.9.0"}})
}

// TestLuaAgentWithoutRollbackSupport: with a bootloader built without
// CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE the new build is not on trial, and
// a second update needs no accept.
func TestLuaAgentWithoutRollbackSupport(t *testing.T) {
	ctx := testContext(t)
	v11 := shareddata.File(t, "esp32-ledcontroller-v1.1.bin")
	content, err := device.Build(device.CreateOptions{App: v11})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, fl: flash.FromBytes(content), base: v11}
	con := NewConsole()
	if r.dev, err = device.Open(device.Config{Flash: r.fl, Log: con, NoRollback: true}); err != nil {
		t.Fatal(err)
	}
	r.board = NewBoard(r.dev, AgentScript, Options{Console: con})
	t.Cleanup(func() { r.board.Close() })
	s, _ := r.connect(ctx)
	if err := s.Flash(ctx, r.build("9.3.1"), updater.FlashOptions{}); err != nil {
		t.Fatalf("Flash: %v\nlog:\n%s", err, r.logText())
	}
	info := r.info(ctx, s)
	if info.Running != "app1" || info.Find("app1").State == "testing" {
		t.Errorf("running %s state %q: without rollback support the build is not on trial", info.Running, info.Find("app1").State)
	}
	if err := s.Flash(ctx, r.build("9.3.2"), updater.FlashOptions{}); err != nil {
		t.Fatalf("second Flash without accept: %v", err)
	}
	if info := r.info(ctx, s); info.Running != "app0" || info.Find("app0").Version != "9.3.2" {
		t.Errorf("after the second update: running %s %+v", info.Running, info.Find("app0"))
	}
}
