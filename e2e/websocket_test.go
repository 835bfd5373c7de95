package e2e

import (
	"path/filepath"
	"regexp"
	"testing"
)

// TestWebSocketPort updates the virtual device through its WebSocket
// endpoint, the way the browser reaches it: each rate change is a new
// connection with ?baud=N.
func TestWebSocketPort(t *testing.T) {
	base := shared(t, "esp32-ledcontroller-v1.1.bin")
	v1 := writeFile(t, "v1.bin", newBuild(t, base, "1.0.0"))
	v2img := newBuild(t, base, "2.0.0")
	v2 := writeFile(t, "v2.bin", v2img)

	flashPath := filepath.Join(t.TempDir(), "esp32.flash")
	mustGota(t, "device", "create", flashPath, "--app", v1)
	dev := startDevice(t, flashPath, "--fast-flash", "--listen", "127.0.0.1:0")
	m := regexp.MustCompile(`WebSocket serial port (ws://\S+)`).FindStringSubmatch(dev.output())
	if m == nil {
		t.Fatalf("no WebSocket URL printed:\n%s", dev.output())
	}
	url := m[1]

	if in := deviceInfo(t, url); in.Running != "app0" {
		t.Fatalf("running %q over %s", in.Running, url)
	}
	mustGota(t, "flash", v2, "--port", url, "--baud", highBaud)
	in := deviceInfo(t, url)
	if st, ver, sha := in.slot(t, "app1"); in.Running != "app1" || st != "testing" || ver != "2.0.0" || sha != appendedDigest(t, v2img) {
		t.Fatalf("after flashing over WebSocket: running %s, app1 %s %s %s", in.Running, st, ver, sha)
	}
	// The pseudo-terminal serves the same device at the same time.
	if in := deviceInfo(t, dev.port); in.Running != "app1" {
		t.Fatalf("pty sees running %q", in.Running)
	}
}
