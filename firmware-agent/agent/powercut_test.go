package agent_test

import (
	"bytes"
	"testing"

	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/agent"
)

// TestPowerCutMidTransfer cuts the power while the agent writes the new
// image (the program in progress torn), powers the device on again and
// updates once more: the device boots the old build untouched, and the
// second update (a new host session) succeeds.
func TestPowerCutMidTransfer(t *testing.T) { forAgents(t, testPowerCutMidTransfer) }

func testPowerCutMidTransfer(t *testing.T, k agentKind) {
	v10 := image(t, "esp32-ledcontroller-v1.0.bin")
	v11 := image(t, "esp32-ledcontroller-v1.1.bin")
	r := newRig(t, k, v10, agent.Options{}, updater.Options{Compression: true})
	before := slotBytes(t, r, "app0", len(v10))
	r.fl.CutPowerAfter(30, true)
	if err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{}); err == nil {
		t.Fatal("flash survived a power cut")
	}
	if !r.fl.PoweredOff() {
		t.Fatal("the power was not cut")
	}
	r.fl.PowerOn()
	if err := r.dev.Reboot(); err != nil {
		t.Fatal(err)
	}
	r.disconnect()
	r.connect(updater.Options{Compression: true})
	di := r.info()
	if di.Running != "app0" || di.Find("app0").State != "valid" {
		t.Fatalf("after the power cut: running %s, app0 %+v", di.Running, di.Find("app0"))
	}
	if !bytes.Equal(slotBytes(t, r, "app0", len(v10)), before) {
		t.Fatal("the running build changed")
	}
	if err := r.sess.Flash(r.ctx, v11, updater.FlashOptions{}); err != nil {
		t.Fatal(err)
	}
	if di := r.sess.LastInfo(); di.Running != "app1" || di.Find("app1").SHA256 != hexsum(v11) {
		t.Errorf("after the second update: running %s, app1 %+v", di.Running, di.Find("app1"))
	}
}
