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
	h := newRawHost(t, k, image(t, "esp32-ledcontroller-v1.0.bin"))
	dev, frames, next, send := h.dev, h.frames, h.next, h.send
	host := h.conn

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
	h.mu.Lock()
	log := h.text.String()
	h.mu.Unlock()
	if !strings.Contains(log, "rst:0x") && !strings.Contains(log, "boot:") {
		t.Errorf("no boot log after reboot: %q", log)
	}
}

// rawHost speaks frames by hand to an agent over a pipe, for tests that
// need an exact order of frames no updater would choose.
type rawHost struct {
	t      *testing.T
	dev    *device.Device
	conn   net.Conn
	frames chan protocol.Frame
	mu     sync.Mutex
	text   bytes.Buffer
}

// newRawHost starts agent k on a device running app and reads its first
// READY. Nothing has been asked yet.
func newRawHost(t *testing.T, k agentKind, app []byte) *rawHost {
	t.Helper()
	content, err := device.Build(device.CreateOptions{App: app})
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
	t.Cleanup(func() { host.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go a.Serve(ctx, devEnd)
	h := &rawHost{t: t, dev: dev, conn: host, frames: make(chan protocol.Frame, 4096)}
	dec := protocol.NewDecoder(protocol.LimitMaxPayload, func(f protocol.Frame) { h.frames <- f }, func(b []byte) {
		h.mu.Lock()
		h.text.Write(b)
		h.mu.Unlock()
	})
	go io.Copy(dec, host)
	if f := h.next(); f.Type != protocol.TypeReady {
		t.Fatalf("first frame %v, want READY", f.Type)
	}
	return h
}

func (h *rawHost) send(f protocol.Frame) { h.conn.Write(f.Encode()) }

// next returns the next frame from the agent.
func (h *rawHost) next() protocol.Frame {
	h.t.Helper()
	select {
	case f := <-h.frames:
		return f
	case <-time.After(5 * time.Second):
		h.t.Fatal("no frame from the agent within 5 s")
	}
	return protocol.Frame{}
}

// request sends a request and returns its reply, passing over frames the
// agent sends on its own (READY, LOG, ACK).
func (h *rawHost) request(t protocol.Type, seq uint8, payload []byte) protocol.Frame {
	h.t.Helper()
	h.send(protocol.Frame{Type: t, Seq: seq, Payload: payload})
	for {
		f := h.next()
		if f.Seq == seq && (f.Type == t.Reply() || f.Type == protocol.TypeError) {
			return f
		}
	}
}

// fill sends image from where the agent's ACKs say it has received up to,
// one frame at a time, to the end. A frame the agent did not take (its
// window was full: a GAP, and GAPs are not repeated at once) goes again
// after a quiet 100 ms, as the updater's retransmit timer would send it.
func (h *rawHost) fill(image []byte, chunk int) {
	h.t.Helper()
	for received := 0; received < len(image); {
		end := min(received+chunk, len(image))
		d := protocol.Data{Offset: uint32(received), Bytes: image[received:end]}
		f := protocol.Frame{Type: protocol.TypeData, Payload: d.Encode()}
		h.send(f)
		for deadline := time.Now().Add(5 * time.Second); received < end; {
			var r protocol.Frame
			select {
			case r = <-h.frames:
			case <-time.After(100 * time.Millisecond):
				if time.Now().After(deadline) {
					h.t.Fatalf("DATA at %d: not taken within 5 s", d.Offset)
				}
				h.send(f)
				continue
			}
			if r.Type == protocol.TypeError {
				e, _ := protocol.DecodeError(r.Payload)
				h.t.Fatalf("DATA at %d: %v", d.Offset, e)
			}
			if a, err := protocol.DecodeAck(r.Payload); r.Type == protocol.TypeAck && err == nil && int(a.Received) > received {
				received = int(a.Received)
			}
		}
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
