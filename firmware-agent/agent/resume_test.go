package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/agent"
)

// TestDelta flashes a new build of the running project with the running
// image as base: most frames compress against it (SPEC.md 6.7) and the
// slot still receives the new image byte for byte. A base that is not the
// running build is not used.
func TestDelta(t *testing.T) { forAgents(t, testDelta) }

func testDelta(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	v12 := image(t, "esp32-ledcontroller-v1.2.bin")
	tests := []struct {
		name      string
		base      []byte
		agent     agent.Options
		wantDelta bool
		warning   string
	}{
		{"running build as base", v10, agent.Options{}, true, ""},
		{"another build as base", v12, agent.Options{}, false, "is not the running build"},
		{"agent without delta", v10, agent.Options{NoDelta: true}, false, ""},
		{"no base", nil, agent.Options{}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, k, v10, tt.agent, updater.Options{Compression: true})
			var warnings []string
			err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{NoReboot: true, Base: tt.base,
				Warning: func(w string) { warnings = append(warnings, w) }})
			if err != nil {
				t.Fatal(err)
			}
			st := r.sess.Stats()
			t.Logf("%d of %d bytes on the wire, %d of %d frames against the base", st.WireBytes, len(v11), st.DeltaFrames, st.DataFrames)
			if tt.wantDelta {
				// Compressed against itself the image takes 56%; the
				// builds differ in few bytes.
				if st.DeltaFrames == 0 || st.WireBytes > len(v11)/20 {
					t.Errorf("delta: %d bytes on the wire, %d delta frames", st.WireBytes, st.DeltaFrames)
				}
			} else if st.DeltaFrames != 0 {
				t.Errorf("%d frames used a base that must not be used", st.DeltaFrames)
			}
			if tt.warning != "" && !strings.Contains(strings.Join(warnings, "\n"), tt.warning) {
				t.Errorf("warnings %q, want one saying %q", warnings, tt.warning)
			}
			if got := slotBytes(t, r, "app1", len(v11)); !bytes.Equal(got, v11) {
				t.Error("app1 does not hold the new image byte for byte")
			}
		})
	}
}

// TestResume cuts the line half-way; a new host session for the same image
// continues from what the device holds.
func TestResume(t *testing.T) { forAgents(t, testResume) }

func testResume(t *testing.T, k agentKind) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compression=%v", compress), func(t *testing.T) {
			v10 := image(t, "esp32-ledcontroller-v1.0.bin")
			v11 := image(t, "esp32-ledcontroller-v1.1.bin")
			r := newRig(t, k, v10, agent.Options{}, updater.Options{Compression: compress})
			ctx, cancel := context.WithCancel(r.ctx)
			err := r.sess.Flash(ctx, v11, updater.FlashOptions{Progress: func(p updater.Progress) {
				if p.Phase == "send" && p.Sent >= len(v11)/2 {
					r.disconnect()
					cancel()
				}
			}})
			if err == nil {
				t.Fatal("flash survived the disconnect")
			}
			first := r.sess.Stats()
			r.connect(updater.Options{Compression: compress})
			before := r.port.written
			if err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{}); err != nil {
				t.Fatal(err)
			}
			st := r.sess.Stats()
			if st.ResumedFrom < len(v11)/2 {
				t.Errorf("resumed from %d of %d", st.ResumedFrom, len(v11))
			}
			// Everything sent beyond one copy of the image was sent twice.
			resent := first.DataBytes + st.DataBytes - len(v11)
			if resent >= len(v11)/4 {
				t.Errorf("re-sent %d of %d image bytes (over a quarter)", resent, len(v11))
			}
			t.Logf("first session sent %d, second resumed at %d and sent %d (%d bytes on the line): %d re-sent",
				first.DataBytes, st.ResumedFrom, st.DataBytes, r.port.written-before, resent)
			di := r.sess.LastInfo()
			if di.Running != "app1" || di.Find("app1").SHA256 != hexsum(v11) {
				t.Errorf("after resume: %s %+v", di.Running, di.Find("app1"))
			}
		})
	}
}

// TestResumeDifferentImage: a transfer held for one image is not resumed
// for another.
func TestResumeDifferentImage(t *testing.T) { forAgents(t, testResumeDifferentImage) }

func testResumeDifferentImage(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	v12 := image(t, "esp32-ledcontroller-v1.2.bin")
	r := newRig(t, k, v10, agent.Options{}, updater.Options{})
	ctx, cancel := context.WithCancel(r.ctx)
	r.sess.Flash(ctx, v11, updater.FlashOptions{Progress: func(p updater.Progress) {
		if p.Phase == "send" && p.Sent >= len(v11)/2 {
			r.disconnect()
			cancel()
		}
	}})
	r.connect(updater.Options{})
	if err := r.sess.Flash(r.ctx, v12, updater.FlashOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := r.sess.Stats(); st.ResumedFrom != 0 || st.DataBytes != len(v12) {
		t.Errorf("stats %+v", st)
	}
	if di := r.sess.LastInfo(); di.Find("app1").SHA256 != hexsum(v12) {
		t.Errorf("app1 holds %s", di.Find("app1").SHA256)
	}
}
