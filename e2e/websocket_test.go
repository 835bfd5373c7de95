package e2e

import (
	"regexp"
	"testing"
)

// TestWebSocketPort updates the virtual device through its WebSocket
// endpoint, the way the browser reaches it: each rate change is a new
// connection with ?baud=N.
func TestWebSocketPort(t *testing.T) { forAgents(t, testWebSocketPort) }

func testWebSocketPort(t *testing.T, agent string) {
	u := startUpgrade(t, "--listen", "127.0.0.1:0", "--agent", agent)
	dev, v2img, v2 := u.dev, u.v2img, u.v2
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
