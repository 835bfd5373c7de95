package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/virtual"
)

func init() {
	register(&command{
		name: "bench",
		usage: "[--baud 921600] [--runs 3] [--agent go,lua] [--uart bridge|usb] [--fast-flash]\n" +
			"                       time updates of every agent over the emulated line against the raw bytes' line time",
		run: runBench,
	})
}

func runBench(args []string) error {
	return bench(context.Background(), os.Stdout, os.Stderr, args)
}

// benchScenario is one update the bench times: the device runs running,
// the host sends image, with base as the DELTA dictionary when set.
type benchScenario struct {
	name    string
	image   []byte
	running []byte
	base    []byte
	slow    bool // too long to repeat at 115200: agents that cannot switch rate skip it
}

// benchGoal is what a scenario must reach with the Go agent at 921600 baud
// on the default line (issue "Honest emulator, honest figures").
type benchGoal struct {
	transfer, endToEnd float64 // ratios of raw; 0 = none
}

// benchRun is one timed update.
type benchRun struct {
	baud     int           // the rate the transfer ran at
	wire     int64         // bytes host to device from BEGIN to the last ACK
	transfer time.Duration // BEGIN sent to the last image byte acknowledged
	endToEnd time.Duration // connect to the new build confirmed running
	overruns int64         // host bytes the device's UART lost
}

// raw is the line time of the image's bytes alone at the run's rate.
func (r benchRun) raw(size int) time.Duration {
	return time.Duration(int64(size) * 10 * int64(time.Second) / int64(r.baud))
}

// utilisation is the share of the transfer time the wire was busy: above
// 1 the emulated line moved bytes faster than its rate allows.
func (r benchRun) utilisation() float64 {
	return float64(r.wire*10) / float64(r.baud) / r.transfer.Seconds()
}

type benchOptions struct {
	baud   int
	runs   int
	agents []string
	uart   link.UART
	timing flash.Timing
}

func bench(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	fs := newFlagSet("bench", stderr, "bench [flags]",
		"Flashes, for each agent, the shared LEDController v1.1 over v1.0 (first update, then as a delta against the running build)\n"+
			"and a random, incompressible 1 MiB image onto a virtual ESP32, in process, as `gota flash` does, and prints medians.")
	var o benchOptions
	fs.IntVar(&o.baud, "baud", 921600, "line rate to ask for after the handshake (agents that cannot switch stay at 115200)")
	fs.IntVar(&o.runs, "runs", 3, "runs of each scenario (the figures are medians)")
	agents := fs.String("agent", strings.Join(virtual.Agents(), ","), "agents to time, comma-separated")
	uartFlag(fs, &o.uart)
	fast := fs.Bool("fast-flash", false, "instant flash operations (default: realistic SPI NOR timing)")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	if o.baud <= 0 || o.runs <= 0 {
		return fmt.Errorf("--baud %d, --runs %d: must be positive", o.baud, o.runs)
	}
	for _, a := range strings.Split(*agents, ",") {
		if err := checkAgent(a); err != nil {
			return err
		}
		o.agents = append(o.agents, a)
	}
	if !*fast {
		o.timing = flash.RealisticTiming
	}
	scenarios, err := benchScenarios()
	if err != nil {
		return err
	}
	failed := false
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "agent\tscenario\tbaud\traw\twire bytes\toverruns\ttransfer\tratio\tend to end\tratio\tline use\tgoal\t\n")
	for _, agent := range o.agents {
		for _, sc := range scenarios {
			runs, err := benchRuns(ctx, agent, sc, o)
			if err != nil {
				failed = true
				fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t\tfailed: %v\t\t\t\t\t\n", agent, sc.name, err)
				continue
			}
			if runs == nil {
				fmt.Fprintf(tw, "%s\t%s\t115200\t\t\t\t\t\t\t\t\tskipped: %s a run at 115200\t\n", agent, sc.name,
					benchRun{baud: 115200}.raw(len(sc.image)).Round(time.Second))
				continue
			}
			m := medianRun(runs)
			raw := m.raw(len(sc.image))
			tr, e2e := m.transfer.Seconds()/raw.Seconds(), m.endToEnd.Seconds()/raw.Seconds()
			use := m.utilisation()
			if use > 1 {
				failed = true
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%s\t%.3f\t%s\t%.3f\t%.3f\t%s\t\n", agent, sc.name, m.baud,
				raw.Round(time.Millisecond), m.wire, m.overruns, m.transfer.Round(time.Millisecond), tr,
				m.endToEnd.Round(time.Millisecond), e2e, use, goalNote(agent, sc.name, m.baud, o, tr, e2e))
		}
	}
	tw.Flush()
	fmt.Fprintf(stdout, `medians of %d runs; line: %s UART model, %s flash timing; each run in process (link + agent + virtual device + updater, no OS port)
raw = image bytes ×10 / baud (8N1) at the rate the transfer ran
transfer = BEGIN sent to the last image byte acknowledged; wire bytes = host to device in that time (frames, compression, resends);
overruns = host bytes the device's UART lost (FIFO full while a flash operation stopped its ISR, or its ring full)
end to end = Connect (HELLO, BAUD) + INFO + check + BEGIN .. END + reboot + INFO confirming the new build runs, as gota flash does
line use = wire bytes ×10 / baud / transfer (above 1.000 the emulation would be faster than the wire: the bench fails)
`, o.runs, o.uart, map[bool]string{true: "instant", false: "realistic"}[*fast])
	if failed {
		return exitError{1}
	}
	return nil
}

// goalNote compares a Go-agent row at the default line and 921600 baud
// with its goal.
func goalNote(agent, scenario string, baud int, o benchOptions, transfer, e2e float64) string {
	goals := map[string]benchGoal{
		"LEDController v1.1 over v1.0":          {transfer: 0.58, endToEnd: 0.66},
		"random 1 MiB (incompressible)":         {endToEnd: 1.05},
		"LEDController v1.1 over v1.0 as delta": {endToEnd: 0.55},
	}
	g, ok := goals[scenario]
	if !ok || agent != "go" || baud != 921600 || o.uart != link.Bridge || o.timing == (flash.Timing{}) {
		return ""
	}
	var notes []string
	check := func(what string, got, want float64) {
		if want == 0 {
			return
		}
		verdict := "met"
		if got > want {
			verdict = "MISSED"
		}
		notes = append(notes, fmt.Sprintf("%s ≤ %.2f %s", what, want, verdict))
	}
	check("transfer", transfer, g.transfer)
	check("e2e", e2e, g.endToEnd)
	return strings.Join(notes, ", ")
}

// benchScenarios loads the shared LEDController builds (when found) and
// makes the random image.
func benchScenarios() ([]benchScenario, error) {
	var out []benchScenario
	if dir := sharedTestdata(); dir != "" {
		v10, err1 := os.ReadFile(filepath.Join(dir, "esp32-ledcontroller-v1.0.bin"))
		v11, err2 := os.ReadFile(filepath.Join(dir, "esp32-ledcontroller-v1.1.bin"))
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("shared test images: %v %v", err1, err2)
		}
		out = append(out,
			benchScenario{name: "LEDController v1.1 over v1.0", image: v11, running: v10},
			benchScenario{name: "LEDController v1.1 over v1.0 as delta", image: v11, running: v10, base: v10})
	} else {
		fmt.Fprintln(os.Stderr, "gota bench: shared test images not found (set GOTA_TESTDATA); timing the random image only")
	}
	img, err := randomAppImage(1<<20, 1)
	if err != nil {
		return nil, err
	}
	running, err := randomAppImage(64<<10, 2)
	if err != nil {
		return nil, err
	}
	return append(out, benchScenario{name: "random 1 MiB (incompressible)", image: img, running: running, slow: true}), nil
}

// benchRuns times sc o.runs times with agent; nil runs means skipped.
func benchRuns(ctx context.Context, agent string, sc benchScenario, o benchOptions) ([]benchRun, error) {
	var runs []benchRun
	for i := 0; i < o.runs; i++ {
		r, err := benchOnce(ctx, agent, sc, o)
		if err != nil {
			return nil, err
		}
		if sc.slow && r.baud <= link.DefaultBaud && o.baud > link.DefaultBaud {
			return nil, nil // the agent cannot switch rate: minutes a run
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// benchOnce boots a virtual device running sc.running with agent and
// updates it to sc.image as gota flash does, timing the phases.
func benchOnce(ctx context.Context, agent string, sc benchScenario, o benchOptions) (benchRun, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	content, err := device.Build(device.CreateOptions{App: sc.running})
	if err != nil {
		return benchRun{}, fmt.Errorf("device: %w", err)
	}
	fl := flash.FromBytes(content)
	fl.SetTiming(o.timing)
	vd, err := virtual.New(fl, virtual.Config{Agent: agent, Line: link.Config{UART: o.uart}})
	if err != nil {
		return benchRun{}, err
	}
	defer vd.Close()
	line := vd.Line()

	var r benchRun
	var begin, sent time.Time
	var wireAtBegin int64
	progress := func(p updater.Progress) {
		switch {
		case p.Phase == updater.PhaseBegin && begin.IsZero():
			begin, wireAtBegin = time.Now(), line.Stats().HostToDevice
		case p.Phase == updater.PhaseVerify && sent.IsZero():
			sent = time.Now()
			r.wire = line.Stats().HostToDevice - wireAtBegin
		}
	}
	start := time.Now()
	s, err := updater.Connect(ctx, line.Host(), updater.Options{Baud: o.baud, Compression: true})
	if err != nil {
		return r, fmt.Errorf("connect: %w", err)
	}
	defer s.Close()
	r.baud = s.Baud()
	di, err := s.Info(ctx)
	if err != nil {
		return r, err
	}
	if _, err := updater.Check(di, sc.image, updater.CheckOptions{}); err != nil {
		return r, err
	}
	if err := s.Flash(ctx, sc.image, updater.FlashOptions{Base: sc.base, Progress: progress}); err != nil {
		return r, err
	}
	r.endToEnd = time.Since(start)
	r.transfer = sent.Sub(begin)
	r.overruns = line.Stats().DeviceOverruns
	// A figure for an image that did not arrive intact means nothing.
	if err := checkRunning(vd.Device(), fl, sc.image); err != nil {
		return r, err
	}
	return r, nil
}

// medianRun returns the run with the median end-to-end time.
func medianRun(runs []benchRun) benchRun {
	runs = slices.Clone(runs)
	sort.Slice(runs, func(i, j int) bool { return runs[i].endToEnd < runs[j].endToEnd })
	return runs[len(runs)/2]
}

// checkRunning checks that the partition the device runs holds image.
func checkRunning(dev *device.Device, fl *flash.Flash, image []byte) error {
	info, err := dev.Info()
	if err != nil {
		return err
	}
	for _, p := range info.Partitions {
		if p.Label != info.Running {
			continue
		}
		got := make([]byte, len(image))
		if _, err := fl.ReadAt(got, int64(p.Offset)); err != nil {
			return err
		}
		if !bytes.Equal(got, image) {
			return fmt.Errorf("partition %s does not hold the image after the update", p.Label)
		}
		return nil
	}
	return fmt.Errorf("running partition %q not found", info.Running)
}

// randomAppImage builds a valid ESP32 app image of about size bytes whose
// segment data is random (incompressible).
func randomAppImage(size int, seed int64) ([]byte, error) {
	return espimage.Synth(espimage.SynthOptions{Version: fmt.Sprintf("random-%d", seed), ProjectName: "gota-bench", Size: size, Seed: seed})
}

// sharedTestdata is $GOTA_TESTDATA, the directory of the shared ESP32
// test images, or "". The CLI does not go looking for a source tree's test
// data; ./build.sh bench points it there.
func sharedTestdata() string { return os.Getenv("GOTA_TESTDATA") }
