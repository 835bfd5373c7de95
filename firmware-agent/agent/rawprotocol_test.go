package agent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/agent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/protocol"
)

// TestRawProtocol speaks frames by hand: retries are answered from the
// reply cache, unknown types get ESP_ERR_NOT_SUPPORTED, DATA without BEGIN
// gets "no upgrade in progress".
func TestRawProtocol(t *testing.T) { forAgents(t, testRawProtocol) }

func testRawProtocol(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	content, err := device.Build(device.CreateOptions{App: v10})
	if err != nil {
		t.Fatal(err)
	}
	con := k.console()
	dev, err := device.Open(device.Config{Flash: flash.FromBytes(content), Log: con})
	if err != nil {
		t.Fatal(err)
	}
	a := k.start(t, dev, con, agent.Options{}, 0, 0)
	host, devEnd := net.Pipe()
	defer host.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Serve(ctx, devEnd)
	frames := make(chan protocol.Frame, 100)
	var text bytes.Buffer
	var tmu sync.Mutex
	dec := protocol.NewDecoder(protocol.LimitMaxPayload, func(f protocol.Frame) { frames <- f }, func(b []byte) { tmu.Lock(); text.Write(b); tmu.Unlock() })
	go io.Copy(dec, host)
	next := func() protocol.Frame {
		select {
		case f := <-frames:
			return f
		case <-time.After(5 * time.Second):
			t.Fatal("no frame")
		}
		return protocol.Frame{}
	}
	if f := next(); f.Type != protocol.TypeReady {
		t.Fatalf("first frame %v", f.Type)
	}
	send := func(f protocol.Frame) { host.Write(f.Encode()) }

	// Noise and a half frame before the first request.
	host.Write([]byte{0x01, 0x02, 0x03, 0x01})
	time.Sleep(150 * time.Millisecond) // idle rule
	// The C app announces itself when it starts and again when a host
	// attaches: a second READY may have arrived meanwhile.
	for len(frames) > 0 {
		if f := <-frames; f.Type != protocol.TypeReady {
			t.Fatalf("unasked frame %v before the first request", f.Type)
		}
	}
	send(protocol.Frame{Type: protocol.TypeAccept, Seq: 7})
	if f := next(); f.Type != protocol.TypeAccept.Reply() || f.Seq != 7 {
		t.Fatalf("accept: %v seq %d", f.Type, f.Seq)
	}
	boots := dev.Boots()
	send(protocol.Frame{Type: protocol.TypeAccept, Seq: 7}) // a retry
	if f := next(); f.Type != protocol.TypeAccept.Reply() || f.Seq != 7 {
		t.Fatalf("retried accept: %v seq %d", f.Type, f.Seq)
	}
	send(protocol.Frame{Type: 0x33, Seq: 8})
	f := next()
	e, _ := protocol.DecodeError(f.Payload)
	if f.Type != protocol.TypeError || e.Code != device.ErrNotSupported || e.Message != "unknown request type 0x33" || f.Seq != 8 {
		t.Fatalf("unknown type: %v %+v", f.Type, e)
	}
	send(protocol.Frame{Type: protocol.TypeData, Payload: protocol.Data{Bytes: []byte{0xE9}}.Encode()})
	f = next()
	e, _ = protocol.DecodeError(f.Payload)
	if f.Type != protocol.TypeError || e.Request != protocol.TypeData || e.Code != device.ErrInvalidState || f.Seq != 0 {
		t.Fatalf("data without begin: %v %+v", f.Type, e)
	}
	send(protocol.Frame{Type: protocol.TypeReboot, Seq: 9})
	if f := next(); f.Type != protocol.TypeReboot.Reply() {
		t.Fatalf("reboot: %v", f.Type)
	}
	if f := next(); f.Type != protocol.TypeReady {
		t.Fatalf("after reboot: %v", f.Type)
	} else if r, _ := protocol.DecodeReady(f.Payload); r.Reason != protocol.ReadyBoot {
		t.Errorf("ready reason %d", r.Reason)
	}
	if dev.Boots() != boots+1 {
		t.Errorf("boots %d -> %d", boots, dev.Boots())
	}
	tmu.Lock()
	log := text.String()
	tmu.Unlock()
	if !strings.Contains(log, "rst:0x") && !strings.Contains(log, "boot:") {
		t.Errorf("no boot log after reboot: %q", log)
	}
}

// TestAbortAndStatus: ABORT forgets the transfer; the next BEGIN starts
// at 0 even with RESUME.
func TestAbortAndStatus(t *testing.T) { forAgents(t, testAbortAndStatus) }

func testAbortAndStatus(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	r := newRig(t, k, v10, agent.Options{}, updater.Options{})
	ctx, cancel := context.WithCancel(r.ctx)
	r.sess.Flash(ctx, v11, updater.FlashOptions{Progress: func(p updater.Progress) {
		if p.Phase == "send" && p.Sent > len(v11)/3 {
			cancel()
		}
	}})
	st, err := r.sess.Status(r.ctx)
	if err != nil || st.State != protocol.StatusReceiving || st.Size != uint32(len(v11)) || st.Received < uint32(len(v11)/3) || st.SHA256 != sha256.Sum256(v11) {
		t.Fatalf("status after a cancelled flash: %+v %v", st, err)
	}
	if err := r.sess.Abort(r.ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := r.sess.Status(r.ctx); err != nil || st.State != protocol.StatusIdle {
		t.Fatalf("status after abort: %+v %v", st, err)
	}
	if err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := r.sess.Stats(); st.ResumedFrom != 0 {
		t.Errorf("resumed at %d after abort", st.ResumedFrom)
	}
}
