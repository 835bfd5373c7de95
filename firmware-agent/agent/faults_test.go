package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/agent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/protocol"
)

// corruptPort flips one byte of image data on the way, after the frame
// CRC is computed: the agent's frame check rejects that frame, the host
// resends it, and the update still arrives intact.
type corruptPort struct {
	*pipePort
	once sync.Once
}

func (c *corruptPort) Write(b []byte) (int, error) {
	if len(b) > 1000 && b[1] == byte(protocol.TypeData) {
		c.once.Do(func() {
			b = append([]byte(nil), b...)
			b[500] ^= 0xFF
		})
	}
	return c.pipePort.Write(b)
}

func TestCorruptedFrameResent(t *testing.T) { forAgents(t, testCorruptedFrameResent) }

func testCorruptedFrameResent(t *testing.T, k agentKind) {
	for _, reorder := range []bool{true, false} {
		t.Run(fmt.Sprintf("reorder=%v", reorder), func(t *testing.T) {
			v10 := image(t, "esp32-ledcontroller-v1.0.bin")
			v11 := image(t, "esp32-ledcontroller-v1.1.bin")
			r := newRig(t, k, v10, agent.Options{NoReorder: !reorder}, updater.Options{})
			r.disconnect()
			r.connectVia(updater.Options{}, func(p *pipePort) updater.Port { return &corruptPort{pipePort: p} })
			s := r.sess
			if err := s.Flash(r.ctx, v11, updater.FlashOptions{NoReboot: true}); err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			switch {
			case reorder && (st.Resent != 1 || st.Rewinds != 0 || st.DataBytes > len(v11)+4092):
				t.Errorf("with reorder, one frame should be resent alone: %+v", st)
			case !reorder && (st.Rewinds == 0 || st.Resent != 0):
				t.Errorf("without reorder, the host should go back: %+v", st)
			}
			t.Logf("%+v", st)
			if di, _ := s.Info(r.ctx); di.Find("app1").SHA256 != hexsum(v11) {
				t.Errorf("app1 holds %s", di.Find("app1").SHA256)
			}
		})
	}
}

// stalePort is a port whose driver still holds what the agent sent to an
// earlier host: replies to that host's requests, with the seqs the new
// host is about to use.
type stalePort struct {
	*pipePort
	stale []byte
}

func (p *stalePort) Read(b []byte) (int, error) {
	if len(p.stale) > 0 {
		n := copy(b, p.stale)
		p.stale = p.stale[n:]
		return n, nil
	}
	return p.pipePort.Read(b)
}

// TestStaleReplies gives a new host session replies left over from an
// earlier one: same seqs, other request types. They must be skipped, not
// taken for the answers to the new requests.
func TestStaleReplies(t *testing.T) { forAgents(t, testStaleReplies) }

func testStaleReplies(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	r := newRig(t, k, v10, agent.Options{}, updater.Options{})
	r.disconnect()
	var stale []byte
	for seq := uint8(1); seq <= 16; seq++ {
		stale = append(stale, protocol.Frame{Type: protocol.TypeBaud.Reply(), Seq: seq}.Encode()...)
		stale = append(stale, protocol.Frame{Type: protocol.TypeAccept.Reply(), Seq: seq}.Encode()...)
		e := &protocol.Error{Request: protocol.TypeRollback, Code: 0x103, Message: "stale"}
		stale = append(stale, protocol.Frame{Type: protocol.TypeError, Seq: seq, Payload: e.Encode()}.Encode()...)
	}
	r.connectVia(updater.Options{}, func(p *pipePort) updater.Port { return &stalePort{pipePort: p, stale: stale} })
	if got := r.info().Running; got != "app0" {
		t.Errorf("running %q, want app0", got)
	}
	if err := r.sess.Ping(r.ctx); err != nil {
		t.Errorf("ping after stale replies: %v", err)
	}
}

// lossyReplyPort loses the first frame of one type on its way to the
// host, by corrupting its type byte (the frame then fails its header CRC).
type lossyReplyPort struct {
	*pipePort
	lose     protocol.Type
	afterSOF bool
	lost     bool
	disarmed atomic.Bool // let everything through for now
	ends     int         // END frames the host wrote
}

func (p *lossyReplyPort) Write(b []byte) (int, error) {
	if len(b) > 1 && b[0] == 0x01 && b[1] == byte(protocol.TypeEnd) {
		p.ends++
	}
	return p.pipePort.Write(b)
}

func (p *lossyReplyPort) Read(b []byte) (int, error) {
	n, err := p.pipePort.Read(b)
	return p.filter(b, n, err)
}

// filter corrupts the type byte of the first frame of type p.lose in
// b[:n], the bytes a Read returned.
func (p *lossyReplyPort) filter(b []byte, n int, err error) (int, error) {
	for i := 0; i < n && !p.lost && !p.disarmed.Load(); i++ {
		if p.afterSOF && b[i] == byte(p.lose) {
			b[i] ^= 0x20
			p.lost = true
		}
		p.afterSOF = b[i] == 0x01
	}
	return n, err
}

// TestEndReplyLost loses END's reply: the device completes and reboots
// all the same, and its READY tells the host, which must not wait out
// END's timeout nor report a failure.
func TestEndReplyLost(t *testing.T) { forAgents(t, testEndReplyLost) }

func testEndReplyLost(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	r := newRig(t, k, v10, agent.Options{}, updater.Options{})
	r.disconnect()
	var lossy *lossyReplyPort
	r.connectVia(updater.Options{}, func(p *pipePort) updater.Port {
		lossy = &lossyReplyPort{pipePort: p, lose: protocol.TypeEnd.Reply()}
		return lossy
	})
	if err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{}); err != nil {
		t.Fatal(err)
	}
	if !lossy.lost {
		t.Fatal("END's reply went through; the test proves nothing")
	}
	if lossy.ends != 1 {
		t.Errorf("the host sent END %d times: it waited for the reply after READY", lossy.ends)
	}
	if di := r.sess.LastInfo(); di.Running != "app1" || di.Find("app1").SHA256 != hexsum(v11) {
		t.Errorf("after flash: running %s", di.Running)
	}
}

// lossyRequestPort loses the first frame of one type the host writes, by
// corrupting its payload CRC.
type lossyRequestPort struct {
	*pipePort
	lose protocol.Type
	lost bool
}

func (p *lossyRequestPort) Write(b []byte) (int, error) {
	if !p.lost && len(b) > 1 && b[0] == 0x01 && b[1] == byte(p.lose) {
		p.lost = true
		b = append([]byte(nil), b...)
		b[len(b)-1] ^= 0xFF
	}
	return p.pipePort.Write(b)
}

// TestSlowRequestLost loses BEGIN and END on their way to the agent. Their
// first attempt must time out long before the whole budget the agent's
// work may take (60 s, 30 s), or every such loss stalls an update.
func TestSlowRequestLost(t *testing.T) { forAgents(t, testSlowRequestLost) }

func testSlowRequestLost(t *testing.T, k agentKind) {
	for _, typ := range []protocol.Type{protocol.TypeBegin, protocol.TypeEnd} {
		t.Run(typ.String(), func(t *testing.T) {
			v10 := image(t, "esp32-ledcontroller-v1.0.bin")
			v11 := image(t, "esp32-ledcontroller-v1.1.bin")
			r := newRig(t, k, v10, agent.Options{}, updater.Options{})
			r.disconnect()
			var lossy *lossyRequestPort
			r.connectVia(updater.Options{}, func(p *pipePort) updater.Port {
				lossy = &lossyRequestPort{pipePort: p, lose: typ}
				return lossy
			})
			// Well under the 30 s that a single attempt used to wait.
			ctx, cancel := context.WithTimeout(r.ctx, 20*time.Second)
			defer cancel()
			if err := r.sess.Flash(ctx, v11, updater.FlashOptions{}); err != nil {
				t.Fatal(err)
			}
			if !lossy.lost {
				t.Fatalf("no %v was lost; the test proves nothing", typ)
			}
			if di := r.sess.LastInfo(); di.Running != "app1" {
				t.Errorf("after flash: running %s", di.Running)
			}
		})
	}
}

// TestRollbackLost loses ROLLBACK on its way to the agent, or the READY
// that answers it: the host must find out which (resending only a
// ROLLBACK that never ran) and the device must roll back exactly once.
func TestRollbackLost(t *testing.T) { forAgents(t, testRollbackLost) }

func testRollbackLost(t *testing.T, k agentKind) {
	loseRollback := func(p *pipePort) (updater.Port, func() bool) {
		l := &lossyRequestPort{pipePort: p, lose: protocol.TypeRollback}
		return l, func() bool { return l.lost }
	}
	loseReady := func(p *pipePort) (updater.Port, func() bool) {
		// Not the READY (attach) of the connection, nor the one after
		// a reboot before the rollback: the one that follows ROLLBACK.
		l := &lossyReplyPort{pipePort: p, lose: protocol.TypeReady}
		l.disarmed.Store(true)
		return l, func() bool {
			l.disarmed.Store(false)
			return l.lost
		}
	}
	tests := []struct {
		name string
		// wrap returns the lossy port and a func that arms it on its
		// first call and then reports whether a frame was lost.
		wrap func(*pipePort) (updater.Port, func() bool)
		// sameSession flashes without reboot and reboots in the session
		// that rolls back, so that its last INFO shows the old build
		// running.
		sameSession bool
	}{
		{"ROLLBACK lost", loseRollback, false},
		{"READY lost", loseReady, false},
		{"READY lost, last INFO out of date", loseReady, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v10 := image(t, "esp32-ledcontroller-v1.0.bin")
			v11 := image(t, "esp32-ledcontroller-v1.1.bin")
			r := newRig(t, k, v10, agent.Options{}, updater.Options{})
			if !tt.sameSession {
				if err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			r.disconnect()
			var lost func() bool
			r.connectVia(updater.Options{}, func(p *pipePort) updater.Port {
				port, l := tt.wrap(p)
				lost = l
				return port
			})
			if tt.sameSession {
				if err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{NoReboot: true}); err != nil {
					t.Fatal(err)
				}
				if err := r.sess.Reboot(r.ctx); err != nil {
					t.Fatal(err)
				}
			}
			lost() // arm
			if err := r.sess.Rollback(r.ctx); err != nil {
				t.Fatal(err)
			}
			if !lost() {
				t.Fatal("nothing was lost; the test proves nothing")
			}
			di := r.info()
			if di.Running != "app0" || di.Find("app1").State != "invalid" || di.Find("app0").State != "valid" {
				t.Errorf("after rollback: running %s, app0 %s, app1 %s", di.Running, di.Find("app0").State, di.Find("app1").State)
			}
		})
	}
}

// shaPort changes the SHA-256 announced in BEGIN on its way to the
// device (re-framed, so the frame is valid): the agent must refuse at END
// without touching otadata.
type shaPort struct{ *pipePort }

func (p shaPort) Write(b []byte) (int, error) {
	var out []byte
	d := protocol.NewDecoder(protocol.LimitMaxPayload, func(f protocol.Frame) {
		if f.Type == protocol.TypeBegin {
			f.Payload[4] ^= 0xFF
		}
		out = protocol.AppendFrame(out, f)
	}, func(t []byte) { out = append(out, t...) })
	d.Write(b)
	if _, err := p.pipePort.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

func TestSHA256Mismatch(t *testing.T) { forAgents(t, testSHA256Mismatch) }

func testSHA256Mismatch(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	r := newRig(t, k, v10, agent.Options{}, updater.Options{})
	r.disconnect()
	r.connectVia(updater.Options{}, func(p *pipePort) updater.Port { return shaPort{p} })
	before := r.fl.Bytes()
	err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != device.ErrOTAValidateFailed || pe.Request != protocol.TypeEnd || !strings.HasPrefix(pe.Message, "image SHA-256 mismatch: got ") {
		t.Fatalf("flash with a wrong announced digest: %v", err)
	}
	if got := r.fl.Bytes(); !bytes.Equal(got[0xE000:0x10000], before[0xE000:0x10000]) {
		t.Error("otadata changed")
	}
	if di := r.info(); di.Running != "app0" || di.Next != "app0" {
		t.Errorf("device state: running %s next %s", di.Running, di.Next)
	}
}

// TestFlashFailure: the flash fails mid-transfer (power cut): the write
// error reaches the host as an ERROR for DATA with ESP-IDF's code.
func TestFlashFailure(t *testing.T) { forAgents(t, testFlashFailure) }

func testFlashFailure(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	r := newRig(t, k, v10, agent.Options{}, updater.Options{})
	r.fl.CutPowerAfter(40, false)
	err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Request != protocol.TypeData || pe.Code != device.ErrFlashOpFail || !strings.HasPrefix(pe.Message, device.MsgOTAError) {
		t.Fatalf("flash on failing flash: %v", err)
	}
	t.Log(err)
}
