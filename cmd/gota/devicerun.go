package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
	"github.com/gota-dev/gota/firmware-agent/nodemcu"
	"github.com/gota-dev/gota/firmware-agent/rom"
	"github.com/gota-dev/gota/firmware-agent/virtual"
)

// nodemcuProfiles lists the NodeMCU firmware profiles for flag help.
func nodemcuProfiles() string {
	var names []string
	for _, p := range nodemcu.Profiles {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

func init() {
	register(&command{
		name: "device run",
		usage: "FLASH [--pty LINK] [--listen ADDR] [--baud N] [--agent go] [--uart bridge|usb] [--no-rollback] [--fast-flash]\n" +
			"                       [--boot flash|download] [--chip esp32] [--reset auto|usb-jtag] [--rollback] [--nodemcu P] [--repl-only]\n" +
			"                       [--drop-rate R] [--flip-rate R] [--disconnect-after N[,N...]] [--seed S]\n" +
			"                       run a virtual ESP32 on a pseudo-terminal and/or ws://ADDR/serial",
		run: runDeviceRun,
	})
}

func runDeviceRun(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return deviceRun(ctx, os.Stdout, os.Stderr, args)
}

// deviceRunOptions are the parsed flags of "gota device run".
type deviceRunOptions struct {
	flashPath  string
	ptyLink    string
	listen     string
	baud       int
	agent      string
	noRollback bool
	rollback   bool   // Lua agent: bootloader with rollback support
	profile    string // Lua agent: NodeMCU firmware profile
	replOnly   bool   // Lua agent: NodeMCU's REPL only, gota.lua not installed
	fastFlash  bool
	boot       string
	chip       string
	reset      string
	line       link.Config
}

func parseDeviceRun(stderr io.Writer, args []string) (*deviceRunOptions, error) {
	fs := flag.NewFlagSet("device run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &deviceRunOptions{}
	fs.StringVar(&o.ptyLink, "pty", "", "create a pseudo-terminal and make `LINK` a symlink to it (open LINK as a serial port)")
	fs.StringVar(&o.listen, "listen", "", "serve the line as a WebSocket at ws://`ADDR`/serial (?baud=N sets the host's rate)")
	fs.IntVar(&o.baud, "baud", link.DefaultBaud, "console rate at power-on, bit/s (gota hosts open ports at 115200, and the Go agent returns to 115200 at every reboot, SPEC.md 7)")
	fs.StringVar(&o.agent, "agent", "go", "device agent: "+strings.Join(virtual.Agents(), ", "))
	uartFlag(fs, &o.line.UART)
	fs.BoolVar(&o.noRollback, "no-rollback", false, "bootloader without app rollback support")
	fs.BoolVar(&o.rollback, "rollback", false, "with --agent lua: a bootloader with app rollback support (stock NodeMCU builds have none, so that is the Lua agent's default)")
	fs.BoolVar(&o.replOnly, "repl-only", false, "with --agent lua: a board with NodeMCU's REPL and a user's init.lua but no agent (try gota nodemcu install)")
	fs.StringVar(&o.profile, "nodemcu", "console", "with --agent lua: NodeMCU firmware `profile` ("+nodemcuProfiles()+")")
	fs.BoolVar(&o.fastFlash, "fast-flash", false, "instant flash operations (default: realistic SPI NOR timing, 45 ms sector erase, 0.7 ms page program)")
	fs.Float64Var(&o.line.DropRate, "drop-rate", 0, "probability that a byte on the line is lost")
	fs.Float64Var(&o.line.FlipRate, "flip-rate", 0, "probability that a byte on the line has one bit inverted")
	fs.Int64Var(&o.line.Seed, "seed", 1, "seed of the line fault generator")
	fs.StringVar(&o.boot, "boot", "flash", "`flash`, or download: hold GPIO0 low (the BOOT button), so every reset enters the ROM's download mode (a pseudo-terminal has no DTR/RTS to get there)")
	fs.StringVar(&o.chip, "chip", "esp32", "chip the ROM identifies as: esp32, esp32s2, esp32s3, esp32c3")
	fs.StringVar(&o.reset, "reset", "auto", "how DTR/RTS reach EN and GPIO0: auto (dev board's two-transistor circuit) or usb-jtag (ESP32-S3/C3 USB-Serial-JTAG)")
	cuts := fs.String("disconnect-after", "", "cut the line when it has carried `N[,N...]` bytes in total (both directions)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: gota device run FLASH [flags]

Runs a virtual ESP32 booted from FLASH (made by "gota device create") until
Ctrl-C. Its console is an emulated UART (8N1, 10 bit times a byte, each
direction paced at its sender's rate), reachable as a pseudo-terminal
(--pty: any serial program can open LINK) and/or a WebSocket (--listen:
ws://ADDR/serial, one client at a time, ?baud=N is the client's rate,
binary messages carry the line's bytes). Bytes sent at one rate and
received at another arrive garbled. Flash operations take realistic time
unless --fast-flash; while one runs, the device's tasks stop and, with
--uart bridge, host bytes beyond the 128-byte UART FIFO are lost unless
the agent's UART ISR is in IRAM (see firmware-agent/link). A cut (--disconnect-after) replaces the
pseudo-terminal behind LINK and closes the WebSocket: the host must reopen
its port. GOTA_LINK_TRACE=1 prints the line's rates and counters every second.

DTR and RTS reach EN and GPIO0 through a dev board's auto-reset circuit
(--reset usb-jtag: the ESP32-S3/C3 USB-Serial-JTAG), as esptool's resets
expect; over the WebSocket a text message {"dtr": true, "rts": false} sets
them. GPIO0 low at reset enters the ROM's download mode (esptool's serial
protocol at 115200 baud, flasher stubs recognised by digest); a pseudo-
terminal has no modem lines, so --boot download holds GPIO0 low instead
(the BOOT button). A flash without a bootloader ("gota device create
--blank") boot-loops with "invalid header" until something is installed.

flags:
`)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return nil, err
	}
	o.flashPath = pos[0]
	if o.ptyLink == "" && o.listen == "" {
		return nil, errors.New("nothing to connect the device to: give --pty LINK and/or --listen ADDR")
	}
	if o.baud <= 0 {
		return nil, fmt.Errorf("--baud %d: must be positive", o.baud)
	}
	for name, r := range map[string]float64{"--drop-rate": o.line.DropRate, "--flip-rate": o.line.FlipRate} {
		if r < 0 || r > 1 {
			return nil, fmt.Errorf("%s %g: must be between 0 and 1", name, r)
		}
	}
	if *cuts != "" {
		for i, f := range strings.Split(*cuts, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("--disconnect-after: value %d %q is not a positive byte count", i+1, f)
			}
			o.line.DisconnectAfter = append(o.line.DisconnectAfter, n)
		}
	}
	if err := checkAgent(o.agent); err != nil {
		return nil, err
	}
	if _, err := nodemcu.FindProfile(o.profile); err != nil {
		return nil, fmt.Errorf("--nodemcu: %w", err)
	}
	if o.boot != "flash" && o.boot != "download" {
		return nil, fmt.Errorf("--boot %q: want flash or download", o.boot)
	}
	if o.reset != "auto" && o.reset != "usb-jtag" {
		return nil, fmt.Errorf("--reset %q: want auto or usb-jtag", o.reset)
	}
	uartSet := false
	fs.Visit(func(f *flag.Flag) { uartSet = uartSet || f.Name == "uart" })
	if o.reset == "usb-jtag" && !uartSet {
		o.line.UART = link.USB // the USB-Serial-JTAG is a USB device: flow-controlled
	}
	if _, err := rom.ChipByName(o.chip); err != nil {
		return nil, fmt.Errorf("--chip: %w", err)
	}
	o.line.Baud = o.baud
	return o, nil
}

// deviceRun runs a virtual ESP32 until ctx is done.
func deviceRun(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	o, err := parseDeviceRun(stderr, args)
	if err != nil {
		return err
	}
	f, err := flash.Open(o.flashPath)
	if err != nil {
		return err
	}
	defer f.Close()
	if !o.fastFlash {
		f.SetTiming(flash.RealisticTiming)
	}

	out := &lockedWriter{w: stdout}
	var dev *virtual.Device
	o.line.OnDisconnect = func() {
		st := dev.Line().Stats()
		fmt.Fprintf(out, "gota: line cut after %d bytes (disconnect %d of %d); the host must reopen the port\n",
			st.HostToDevice+st.DeviceToHost, st.Disconnects, len(o.line.DisconnectAfter))
	}
	vc := virtual.Config{Agent: o.agent, NoRollback: o.noRollback, Line: o.line, Log: out,
		Chip: o.chip, BootButton: o.boot == "download",
		Rollback: o.rollback, Profile: o.profile, REPLOnly: o.replOnly}
	if o.reset == "usb-jtag" {
		vc.Reset = rom.USBSerialJTAG
	}
	dev, err = virtual.New(f, vc)
	if err != nil {
		return err
	}
	defer dev.Close()
	line := dev.Line()

	if o.ptyLink != "" {
		slave, err := dev.AttachPTY(o.ptyLink)
		if err != nil {
			return fmt.Errorf("--pty: %w", err)
		}
		fmt.Fprintf(out, "gota: serial port %s -> %s\n", o.ptyLink, slave)
	}
	if o.listen != "" {
		url, err := dev.Listen(o.listen)
		if err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		fmt.Fprintf(out, "gota: WebSocket serial port %s\n", url)
	}
	if os.Getenv("GOTA_LINK_TRACE") != "" {
		go func() {
			for ctx.Err() == nil {
				time.Sleep(time.Second)
				fmt.Fprintf(stderr, "trace: host %d device %d up %v %s\n", line.Host().Baud(), line.Device().Baud(), line.Up(), lineStats(line.Stats()))
			}
		}()
	}

	timing := "realistic flash timing"
	if o.fastFlash {
		timing = "instant flash"
	}
	fmt.Fprintf(out, "gota: device running: agent %s, %d baud, UART %s, %s, %s; Ctrl-C stops it\n", o.agent, o.baud, o.line.UART, timing, dev.State())
	if o.boot == "download" {
		fmt.Fprintln(out, "gota: BOOT held: the chip is in the ROM's download mode (115200 baud) after every reset")
	}
	<-ctx.Done()
	dev.Close()
	fmt.Fprintf(out, "gota: line stats: %s\n", lineStats(line.Stats()))
	fmt.Fprintln(out, "gota: device stopped")
	return nil
}

// lockedWriter serialises writes from the device log and the port
// goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// uartFlag adds --uart (gota device run, gota serve).
func uartFlag(fs *flag.FlagSet, u *link.UART) {
	fs.TextVar(u, "uart", link.Bridge, "the device's serial hardware: bridge (UART0 behind a USB-UART bridge, no flow control: "+
		"bytes the device cannot take are lost) or usb (USB-Serial-JTAG/CDC, flow-controlled)")
}

// lineStats words a line's counters for the trace and the stop message.
func lineStats(st link.Stats) string {
	return fmt.Sprintf("host_to_device=%d device_to_host=%d dropped=%d flipped=%d garbled=%d host_overruns=%d device_overruns=%d disconnects=%d",
		st.HostToDevice, st.DeviceToHost, st.Dropped, st.Flipped, st.Garbled, st.Overruns, st.DeviceOverruns, st.Disconnects)
}

// checkAgent checks an --agent name (gota device run, gota serve).
func checkAgent(name string) error {
	if !slices.Contains(virtual.Agents(), name) {
		return fmt.Errorf("--agent %q: unknown agent (have %s)", name, strings.Join(virtual.Agents(), ", "))
	}
	return nil
}
