package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/virtual"
)

func init() {
	register(&command{
		name: "bench",
		usage: "[--baud 921600] [--fast-flash] [--agents go,c] [IMAGE...]\n" +
			"                       time Gota flashing each image over an emulated line against the raw-bytes baseline",
		run: runBench,
	})
}

func runBench(args []string) error {
	return bench(context.Background(), os.Stdout, os.Stderr, args)
}

// benchImage is one image to flash in the benchmark.
type benchImage struct {
	name string
	data []byte
	base []byte // the device runs base and the host has it (DELTA); nil: an unrelated build runs
}

// benchResult is the outcome of flashing one image.
type benchResult struct {
	Name      string
	Agent     string // device agent of the virtual device
	Size      int
	Baud      int
	Raw       time.Duration // size×10/baud: the bytes alone on the wire ("netcat push")
	Gota      time.Duration // wall time of Session.Flash
	WireBytes int64         // bytes the host sent during Flash (frames, compressed data, resends)
	Err       error
}

// Ratio is Gota's wall time over the raw baseline.
func (r benchResult) Ratio() float64 { return float64(r.Gota) / float64(r.Raw) }

func bench(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	fs := newFlagSet("bench", stderr, "bench [--baud N] [--fast-flash] [--agents go,c] [IMAGE...]",
		"Without images: the shared esp32-ledcontroller-v1.1.bin (when found) and a random, incompressible 1 MiB image.")
	baud := fs.Int("baud", 921600, "line rate to flash at, bit/s")
	fast := fs.Bool("fast-flash", false, "instant flash operations (default: realistic SPI NOR timing)")
	agentList := fs.String("agents", strings.Join(benchAgents(), ","), "device agents to flash through, each on the same images (ratio vs the first)")
	files, err := parseArgs(fs, args, 0, -1)
	if err != nil {
		return err
	}
	if *baud <= 0 {
		return fmt.Errorf("--baud %d: must be positive", *baud)
	}
	agents := strings.Split(*agentList, ",")
	for _, a := range agents {
		if err := checkAgent(a); err != nil {
			return fmt.Errorf("--agents: %w", err)
		}
	}
	var images []benchImage
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		images = append(images, benchImage{name: filepath.Base(name), data: b})
	}
	if len(images) == 0 {
		if dir := sharedTestdata(); dir != "" {
			name := filepath.Join(dir, "esp32-ledcontroller-v1.1.bin")
			if b, err := os.ReadFile(name); err == nil {
				images = append(images, benchImage{name: filepath.Base(name), data: b})
				if base, err := os.ReadFile(filepath.Join(dir, "esp32-ledcontroller-v1.0.bin")); err == nil {
					images = append(images, benchImage{name: filepath.Base(name) + " over v1.0, --base", data: b, base: base})
				}
			}
		} else {
			fmt.Fprintln(stderr, "gota bench: shared test images not found (set GOTA_TESTDATA); using the random image only")
		}
		img, err := randomAppImage(1<<20, 1)
		if err != nil {
			return err
		}
		images = append(images, benchImage{name: "random-1MiB (incompressible)", data: img})
	}

	timing := flash.RealisticTiming
	if *fast {
		timing = flash.Timing{}
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "image\tagent\tsize\traw @%d\tflash alone\tgota\tratio\tvs %s\twire bytes\t\n", *baud, agents[0])
	failed := false
	for _, im := range images {
		var first time.Duration
		for i, agent := range agents {
			r := benchFlash(ctx, im, *baud, timing, agent)
			if r.Err != nil {
				failed = true
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t\tfailed: %v\t\t\t\t\n", r.Name, agent, r.Size, r.Raw.Round(time.Millisecond), r.Err)
				continue
			}
			if i == 0 {
				first = r.Gota
			}
			vs := "-"
			if first > 0 {
				vs = fmt.Sprintf("%.3f", float64(r.Gota)/float64(first))
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%.3f\t%s\t%d\t\n", r.Name, agent, r.Size, r.Raw.Round(time.Millisecond),
				flashTime(r.Size, timing).Round(time.Millisecond), r.Gota.Round(time.Millisecond), r.Ratio(), vs, r.WireBytes)
		}
	}
	tw.Flush()
	fmt.Fprintf(stdout, "raw = size×10/baud: the bytes alone on the line (8N1)\n"+
		"flash alone = erasing sector by sector and programming the image, with no line at all (%s flash timing)\n"+
		"gota = wall time of the update: send, verify, complete (no reboot); ratio = gota/raw; vs %s = gota/gota of agent %s\n",
		map[bool]string{true: "instant", false: "realistic"}[*fast], agents[0], agents[0])
	if failed {
		return exitError{1}
	}
	return nil
}

// benchAgents are the agents bench compares by default: the Go agent,
// and the C agent when this build has it (cgo).
func benchAgents() []string {
	agents := []string{"go"}
	if slices.Contains(virtual.Agents(), "c") {
		agents = append(agents, "c")
	}
	return agents
}

// benchFlash flashes im onto a fresh virtual device (the shared LED
// controller v1.0 or a blank second slot running the random image's
// sibling) over an emulated line at baud, in process: link + agent +
// device + updater session.
func benchFlash(ctx context.Context, im benchImage, baud int, timing flash.Timing, agent string) benchResult {
	r := benchResult{Name: im.name, Agent: agent, Size: len(im.data), Baud: baud,
		Raw: time.Duration(int64(len(im.data)) * 10 * int64(time.Second) / int64(baud))}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()

	// The device runs the base, or else a different build of something
	// so that the image is an upgrade, not "same build".
	running := im.base
	if running == nil {
		var err error
		if running, err = randomAppImage(64<<10, 2); err != nil {
			r.Err = err
			return r
		}
	}
	content, err := device.Build(device.CreateOptions{App: running})
	if err != nil {
		r.Err = fmt.Errorf("device: %w", err)
		return r
	}
	fl := flash.FromBytes(content)
	fl.SetTiming(timing)
	vd, err := virtual.New(fl, virtual.Config{Agent: agent})
	if err != nil {
		r.Err = err
		return r
	}
	defer vd.Close()
	line, dev := vd.Line(), vd.Device()

	s, err := updater.Connect(ctx, line.Host(), updater.Options{Baud: baud, Compression: true})
	if err != nil {
		r.Err = fmt.Errorf("connect: %w", err)
		return r
	}
	defer s.Close()
	before := line.Stats().HostToDevice
	start := time.Now()
	err = s.Flash(ctx, im.data, updater.FlashOptions{NoReboot: true, Force: true, Base: im.base})
	r.Gota = time.Since(start)
	r.WireBytes = line.Stats().HostToDevice - before
	if err != nil {
		r.Err = err
		return r
	}
	// A figure for an image that did not arrive intact means nothing.
	if err := checkSlot(dev, fl, im.data); err != nil {
		r.Err = err
	}
	return r
}

// checkSlot checks that the partition the device boots next holds image.
func checkSlot(dev *device.Device, fl *flash.Flash, image []byte) error {
	info, err := dev.Info()
	if err != nil {
		return err
	}
	for _, p := range info.Partitions {
		if p.Label != info.Next {
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
	return fmt.Errorf("next boot partition %q not found", info.Next)
}

// flashTime is what writing size bytes costs the flash alone when each
// 4 KiB sector is erased before it is programmed (ESP-IDF's sequential
// OTA writes in sector-sized pieces).
func flashTime(size int, t flash.Timing) time.Duration {
	sectors := (size + flash.SectorSize - 1) / flash.SectorSize
	pages := (size + flash.PageSize - 1) / flash.PageSize
	return time.Duration(sectors)*t.SectorErase + time.Duration(pages)*t.PageProgram
}

// randomAppImage builds a valid ESP32 app image of about size bytes whose
// segment data is random (incompressible): a DROM segment holding the app
// descriptor, then one DRAM segment with the rest.
func randomAppImage(size int, seed int64) ([]byte, error) {
	const overhead = espimage.HeaderSize + 2*espimage.SegmentHeaderSize + 16 + espimage.DigestSize
	first := 4 << 10
	rest := (size - overhead - first) &^ 3
	if rest < 4 {
		return nil, errors.New("random image: size too small")
	}
	rng := rand.New(rand.NewSource(seed))
	d0, d1 := make([]byte, first), make([]byte, rest)
	rng.Read(d0)
	rng.Read(d1)
	h := espimage.Header{
		SPIMode: 2, SPISpeed: 0xF, FlashSize: 2, Entry: 0x40080000, WPPin: 0xEE,
		Chip: espimage.ChipESP32, MaxChipRevFull: 0xFFFF, HashAppended: true,
	}
	segs := []espimage.Segment{
		{LoadAddr: 0x3F400020, Data: d0}, // image offset 0x20 at a 64 KiB aligned slot
		{LoadAddr: 0x3FFB0000, Data: d1},
	}
	app := &espimage.AppDesc{
		Version:     fmt.Sprintf("random-%d", seed),
		ProjectName: "gota-bench",
		Time:        "00:00:00",
		Date:        "Jan  1 2026",
		IDFVer:      "v5.1.3",
	}
	return espimage.Build(h, segs, app)
}

// sharedTestdata finds the shared ESP32 test files: $GOTA_TESTDATA, or
// ../shared/testdata/esp32 next to a directory holding go.mod, searching
// up from the working directory. It returns "" when they are not found.
func sharedTestdata() string {
	if d := os.Getenv("GOTA_TESTDATA"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "..", "shared", "testdata", "esp32")
			if _, err := os.Stat(filepath.Join(d, "expected.jsonl")); err == nil {
				return d
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
