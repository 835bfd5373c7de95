package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
		usage: "[--baud 921600] [--fast-flash] [IMAGE...]\n" +
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
	fs := newFlagSet("bench", stderr, "bench [--baud N] [--fast-flash] [IMAGE...]",
		"Without images: the shared esp32-ledcontroller-v1.1.bin (when found) and a random, incompressible 1 MiB image.")
	baud := fs.Int("baud", 921600, "line rate to flash at, bit/s")
	fast := fs.Bool("fast-flash", false, "instant flash operations (default: realistic SPI NOR timing)")
	files, err := parseArgs(fs, args, 0, -1)
	if err != nil {
		return err
	}
	if *baud <= 0 {
		return fmt.Errorf("--baud %d: must be positive", *baud)
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
	fmt.Fprintf(tw, "image\tsize\traw @%d\tflash alone\tgota\tratio\twire bytes\t\n", *baud)
	failed := false
	for _, im := range images {
		r := benchFlash(ctx, im, *baud, timing)
		if r.Err != nil {
			failed = true
			fmt.Fprintf(tw, "%s\t%d\t%s\t\tfailed: %v\t\t\t\n", r.Name, r.Size, r.Raw.Round(time.Millisecond), r.Err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%.3f\t%d\t\n", r.Name, r.Size, r.Raw.Round(time.Millisecond),
			flashTime(r.Size, timing).Round(time.Millisecond), r.Gota.Round(time.Millisecond), r.Ratio(), r.WireBytes)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "raw = size×10/baud: the bytes alone on the line (8N1)\n"+
		"flash alone = erasing sector by sector and programming the image, with no line at all (%s flash timing)\n"+
		"gota = wall time of the update: send, verify, complete (no reboot); ratio = gota/raw\n",
		map[bool]string{true: "instant", false: "realistic"}[*fast])
	if failed {
		return exitError{1}
	}
	return nil
}

// benchFlash flashes im onto a fresh virtual device (the shared LED
// controller v1.0 or a blank second slot running the random image's
// sibling) over an emulated line at baud, in process: link + agent +
// device + updater session.
func benchFlash(ctx context.Context, im benchImage, baud int, timing flash.Timing) benchResult {
	r := benchResult{Name: im.name, Size: len(im.data), Baud: baud,
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
	vd, err := virtual.New(fl, virtual.Config{})
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
// segment data is random (incompressible).
func randomAppImage(size int, seed int64) ([]byte, error) {
	return espimage.Synth(espimage.SynthOptions{Version: fmt.Sprintf("random-%d", seed), ProjectName: "gota-bench", Size: size, Seed: seed})
}

// sharedTestdata is $GOTA_TESTDATA, the directory of the shared ESP32
// test images, or "". The CLI does not go looking for a source tree's test
// data; ./build.sh bench points it there.
func sharedTestdata() string { return os.Getenv("GOTA_TESTDATA") }
