// Package e2e drives the gota binary as a user does: it builds it once,
// creates a virtual ESP32 flash file, runs it on a real pseudo-terminal
// with "gota device run --pty", and updates it with "gota info", "gota
// flash", "gota accept" and "gota rollback" through that terminal.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/internal/shareddata"
)

// gotaBin is the binary built by TestMain.
var gotaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gota-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gotaBin = filepath.Join(dir, "gota")
	// Each test measures its own transfers: no deltas against images an
	// earlier test flashed (and nothing written to the user's cache).
	os.Setenv("GOTA_CACHE", "off")
	build := exec.Command("go", "build", "-o", gotaBin, "github.com/gota-dev/gota/cmd/gota")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building gota: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is the outcome of one gota command.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("gota %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// gota runs the binary and returns what it printed and its exit status.
func gota(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gotaBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		r.code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			t.Fatalf("gota %s: timed out\n%s", strings.Join(args, " "), r)
		}
	}
	return r
}

// mustGota runs gota and fails the test unless it exits 0.
func mustGota(t *testing.T, args ...string) result {
	t.Helper()
	r := gota(t, args...)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	return r
}

// device is a running "gota device run".
type device struct {
	t      *testing.T
	cmd    *exec.Cmd
	port   string // the --pty link
	mu     sync.Mutex
	out    bytes.Buffer // everything it printed
	exited chan struct{}
}

// upgrade is the starting point of an update test: a device running
// build 1.0.0 of the shared LED controller image, and build 2.0.0.
type upgrade struct {
	dev       *device
	flashPath string // the device's flash file
	v2img     []byte // build 2.0.0
	v2        string // file holding v2img
}

// startUpgrade creates a flash file holding build 1.0.0, starts
// "gota device run --fast-flash extra..." on it and writes build 2.0.0.
func startUpgrade(t *testing.T, extra ...string) upgrade {
	t.Helper()
	base := shared(t, "esp32-ledcontroller-v1.1.bin")
	v1 := writeFile(t, "v1.bin", newBuild(t, base, "1.0.0"))
	u := upgrade{v2img: newBuild(t, base, "2.0.0"), flashPath: filepath.Join(t.TempDir(), "esp32.flash")}
	u.v2 = writeFile(t, "v2.bin", u.v2img)
	mustGota(t, "device", "create", u.flashPath, "--app", v1)
	u.dev = startDevice(t, u.flashPath, append([]string{"--fast-flash"}, extra...)...)
	return u
}

// startDevice runs "gota device run FLASH --pty LINK extra..." and waits
// until it is up.
func startDevice(t *testing.T, flashPath string, extra ...string) *device {
	t.Helper()
	port := filepath.Join(t.TempDir(), "ttyESP")
	args := append([]string{"device", "run", flashPath, "--pty", port}, extra...)
	d := &device{t: t, cmd: exec.Command(gotaBin, args...), port: port, exited: make(chan struct{})}
	pr, pw := io.Pipe()
	d.cmd.Stdout = pw
	d.cmd.Stderr = pw
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "gota: device running") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() {
		d.cmd.Wait()
		pw.Close()
		close(d.exited)
	}()
	t.Cleanup(func() { d.stop() })
	select {
	case <-ready:
	case <-d.exited:
		t.Fatalf("gota %s exited:\n%s", strings.Join(args, " "), d.output())
	case <-time.After(20 * time.Second):
		t.Fatalf("gota %s not ready:\n%s", strings.Join(args, " "), d.output())
	}
	return d
}

func (d *device) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// stop interrupts the device as Ctrl-C does and waits for it to exit.
func (d *device) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("gota device run did not stop on SIGINT:\n%s", d.output())
	}
}

// lineStats parses the "gota: line stats:" line printed at exit.
func (d *device) lineStats(t *testing.T) map[string]int64 {
	t.Helper()
	m := regexp.MustCompile(`gota: line stats: (.*)`).FindStringSubmatch(d.output())
	if m == nil {
		t.Fatalf("no line stats in the device output:\n%s", d.output())
	}
	stats := map[string]int64{}
	for _, f := range strings.Fields(m[1]) {
		k, v, _ := strings.Cut(f, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("line stats %q: %v", m[1], err)
		}
		stats[k] = n
	}
	return stats
}

// info is what "gota info --json" prints.
type info struct {
	Running    string `json:"running"`
	Next       string `json:"next"`
	Partitions map[string]struct {
		State   string `json:"state"`
		Version string `json:"version"`
		SHA256  string `json:"sha256"`
	} `json:"partitions"`
}

// slot returns the state, version and image digest gota info reports for
// partition label.
func (in *info) slot(t *testing.T, label string) (state, version, sha string) {
	t.Helper()
	p, ok := in.Partitions[label]
	if !ok {
		t.Fatalf("no partition %q in %+v", label, in)
	}
	return p.State, p.Version, p.SHA256
}

func parseInfo(t *testing.T, r result) *info {
	t.Helper()
	var in info
	if err := json.Unmarshal([]byte(r.stdout), &in); err != nil {
		t.Fatalf("info JSON: %v\n%s", err, r)
	}
	return &in
}

// deviceInfo runs "gota info --json" on port.
func deviceInfo(t *testing.T, port string) *info {
	t.Helper()
	return parseInfo(t, mustGota(t, "info", "--port", port, "--json"))
}

// inspect is what "gota device inspect --json" prints about a stopped
// device's flash file.
type inspect struct {
	Apps []struct {
		Name     string `json:"name"`
		Offset   uint32 `json:"offset"`
		State    string `json:"state"`
		Version  string `json:"version"`
		SHA256   string `json:"sha256"`
		ImageLen int    `json:"image_len"`
		Valid    bool   `json:"valid"`
	} `json:"apps"`
	Boot struct {
		Partition string `json:"partition"`
	} `json:"boot"`
}

func inspectFlash(t *testing.T, flashPath string) *inspect {
	t.Helper()
	r := mustGota(t, "device", "inspect", "--json", flashPath)
	var in inspect
	if err := json.Unmarshal([]byte(r.stdout), &in); err != nil {
		t.Fatalf("inspect JSON: %v\n%s", err, r)
	}
	return &in
}

// slotBytes reads n bytes at the start of app partition label from a
// stopped device's flash file.
func slotBytes(t *testing.T, flashPath string, label string, n int) []byte {
	t.Helper()
	for _, a := range inspectFlash(t, flashPath).Apps {
		if a.Name != label {
			continue
		}
		f, err := os.Open(flashPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, n)
		if _, err := f.ReadAt(b, int64(a.Offset)); err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatalf("no app partition %q in %s", label, flashPath)
	return nil
}

// image digest as gota reports it: the appended SHA-256, hex.
func appendedDigest(t *testing.T, image []byte) string {
	t.Helper()
	img, err := espimage.Parse(image)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(img.Digest[:])
}

// newBuild returns the shared LED controller image with its version set.
func newBuild(t *testing.T, base []byte, version string) []byte {
	t.Helper()
	b, err := espimage.SetVersion(base, version)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// shared returns a shared test image (the test skips when missing).
func shared(t *testing.T, name string) []byte { return shareddata.File(t, name) }

// agents are the device agents `gota device run --agent` runs that speak
// the whole protocol: the Go agent and the C agent (firmware-agent/esp-idf
// built for the host). Tests of the update cycle run over both.
var agents = []string{"go", "c"}

// forAgents runs test once per agent.
func forAgents(t *testing.T, test func(t *testing.T, agent string)) {
	for _, a := range agents {
		t.Run(a, func(t *testing.T) { test(t, a) })
	}
}
