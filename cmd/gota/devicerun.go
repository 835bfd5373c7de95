package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/gota-dev/gota/firmware-agent/agent"
	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
)

func init() {
	register(&command{
		name: "device run",
		usage: "FLASH [--pty LINK] [--listen ADDR] [--baud N] [--agent go] [--no-rollback] [--fast-flash]\n" +
			"                       [--drop-rate R] [--flip-rate R] [--disconnect-after N[,N...]] [--seed S]\n" +
			"                       run a virtual ESP32 on a pseudo-terminal and/or ws://ADDR/serial",
		run: runDeviceRun,
	})
}

// agentEnv is what an agent runner gets: a booted-to-be device's flash and
// the device end of the emulated line.
type agentEnv struct {
	Flash       *flash.Flash
	NoRollback  bool
	ConsoleBaud int        // the rate the console starts at after a reboot
	Line        *link.Line // Line.Device() is the device's UART
	Log         io.Writer  // local copy of the device log (the terminal running gota)
}

// agentRunner boots a device on env.Flash and serves the agent protocol on
// env.Line until ctx is done. It returns an error only when the device
// cannot start.
type agentRunner func(ctx context.Context, env agentEnv) error

// agentRunners maps --agent names to runners. Other agents (the NodeMCU
// Lua agent) register here from their own file's init.
var agentRunners = map[string]agentRunner{"go": runGoAgent}

// runGoAgent runs the Go agent: a new Serve for every connection (each
// time the line comes back after a cut), keeping the OTA state across.
func runGoAgent(ctx context.Context, env agentEnv) error {
	con := agent.NewConsole()
	dev, err := device.Open(device.Config{
		Flash:      env.Flash,
		Log:        io.MultiWriter(env.Log, con),
		NoRollback: env.NoRollback,
	})
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	uart := env.Line.Device()
	a := agent.New(dev, con, agent.Options{SetBaud: uart.SetBaud})
	serveLoop(ctx, env.Line, func(ctx context.Context) error { return a.Serve(ctx, uart) })
	return nil
}

// serveLoop calls serve each time the line is up, until ctx is done. The
// device's UART keeps its rate across cuts, as a real one does: the agent
// itself must return to 115200 when its host is gone.
func serveLoop(ctx context.Context, line *link.Line, serve func(context.Context) error) {
	for ctx.Err() == nil {
		if err := line.WaitUp(ctx); err != nil {
			return
		}
		start := time.Now()
		serve(ctx)
		// Serve returns when the line is cut; if it returned for any
		// other reason, do not spin.
		if time.Since(start) < 100*time.Millisecond && line.Up() {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
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
	fastFlash  bool
	line       link.Config
}

func parseDeviceRun(stderr io.Writer, args []string) (*deviceRunOptions, error) {
	fs := flag.NewFlagSet("device run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &deviceRunOptions{}
	fs.StringVar(&o.ptyLink, "pty", "", "create a pseudo-terminal and make `LINK` a symlink to it (open LINK as a serial port)")
	fs.StringVar(&o.listen, "listen", "", "serve the line as a WebSocket at ws://`ADDR`/serial (?baud=N sets the host's rate)")
	fs.IntVar(&o.baud, "baud", link.DefaultBaud, "console rate at power-on, bit/s (gota hosts open ports at 115200, and the Go agent returns to 115200 at every reboot, SPEC.md 7)")
	fs.StringVar(&o.agent, "agent", "go", "device agent: "+strings.Join(agentNames(), ", "))
	fs.BoolVar(&o.noRollback, "no-rollback", false, "bootloader without app rollback support")
	fs.BoolVar(&o.fastFlash, "fast-flash", false, "instant flash operations (default: realistic SPI NOR timing, 45 ms sector erase, 0.7 ms page program)")
	fs.Float64Var(&o.line.DropRate, "drop-rate", 0, "probability that a byte on the line is lost")
	fs.Float64Var(&o.line.FlipRate, "flip-rate", 0, "probability that a byte on the line has one bit inverted")
	fs.Int64Var(&o.line.Seed, "seed", 1, "seed of the line fault generator")
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
unless --fast-flash. A cut (--disconnect-after) replaces the
pseudo-terminal behind LINK and closes the WebSocket: the host must reopen
its port. GOTA_LINK_TRACE=1 prints the line's rates and counters every second.

flags:
`)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, exitError{2}
	}
	if len(pos) != 1 {
		fs.Usage()
		return nil, exitError{2}
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
	if agentRunners[o.agent] == nil {
		return nil, fmt.Errorf("--agent %q: unknown agent (have %s)", o.agent, strings.Join(agentNames(), ", "))
	}
	o.line.Baud = o.baud
	return o, nil
}

func agentNames() []string {
	var names []string
	for n := range agentRunners {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var hosts hostSide
	var line *link.Line
	o.line.OnDisconnect = func() {
		st := line.Stats()
		fmt.Fprintf(out, "gota: line cut after %d bytes (disconnect %d of %d); the host must reopen the port\n",
			st.HostToDevice+st.DeviceToHost, st.Disconnects, len(o.line.DisconnectAfter))
		hosts.disconnected()
	}
	line = link.New(o.line)
	defer line.Close()
	hosts.line = line

	if o.ptyLink != "" {
		p, err := newPTYPort(o.ptyLink, line, o.baud, &hosts.active)
		if err != nil {
			return err
		}
		defer p.close()
		hosts.pty = p
		fmt.Fprintf(out, "gota: serial port %s -> %s\n", o.ptyLink, p.slaveName())
	}
	if o.listen != "" {
		ws, err := newWSPort(o.listen, line, o.baud, &hosts.active)
		if err != nil {
			return err
		}
		defer ws.close()
		ws.exclusive = hosts.pty == nil
		hosts.ws = ws
		fmt.Fprintf(out, "gota: WebSocket serial port %s\n", ws.url())
	}
	if hosts.ws != nil && hosts.pty == nil {
		// Until a WebSocket client opens the port, nobody is listening.
		line.Hangup()
	}
	go hosts.pump(ctx)
	if os.Getenv("GOTA_LINK_TRACE") != "" {
		go func() {
			for ctx.Err() == nil {
				time.Sleep(time.Second)
				fmt.Fprintf(stderr, "trace: host %d device %d up %v %+v\n", line.Host().Baud(), line.Device().Baud(), line.Up(), line.Stats())
			}
		}()
	}

	timing := "realistic flash timing"
	if o.fastFlash {
		timing = "instant flash"
	}
	agentDone := make(chan error, 1)
	go func() {
		agentDone <- agentRunners[o.agent](ctx, agentEnv{
			Flash: f, NoRollback: o.noRollback, ConsoleBaud: o.baud, Line: line, Log: out,
		})
	}()
	fmt.Fprintf(out, "gota: device running: agent %s, %d baud, %s; Ctrl-C stops it\n", o.agent, o.baud, timing)

	select {
	case <-ctx.Done():
	case err := <-agentDone:
		if err != nil {
			return err
		}
	}
	cancel()
	line.Close()
	select {
	case <-agentDone:
	case <-time.After(2 * time.Second):
	}
	st := line.Stats()
	fmt.Fprintf(out, "gota: line stats: host_to_device=%d device_to_host=%d dropped=%d flipped=%d garbled=%d overruns=%d disconnects=%d\n",
		st.HostToDevice, st.DeviceToHost, st.Dropped, st.Flipped, st.Garbled, st.Overruns, st.Disconnects)
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

// hostSide connects the host end of the line to the pseudo-terminal
// and/or the WebSocket client.
type hostSide struct {
	line *link.Line
	pty  *ptyPort
	ws   *wsPort
	// active is the port that last wrote or connected (portPTY, portWS):
	// its rate is the host's rate.
	active atomic.Int32
}

// Host ports, for hostSide.active.
const (
	portPTY = 1
	portWS  = 2
)

// pump copies what the device sends to the host ports until ctx is done.
// Writes to the ports never block the line: a port that does not keep up
// loses bytes, as a UART nobody reads does.
func (h *hostSide) pump(ctx context.Context) {
	buf := make([]byte, 4096)
	host := h.line.Host()
	for ctx.Err() == nil {
		n, err := host.Read(buf)
		if n > 0 {
			if h.pty != nil {
				h.pty.send(buf[:n])
			}
			if h.ws != nil {
				h.ws.send(buf[:n])
			}
		}
		if errors.Is(err, link.ErrClosed) {
			return
		}
		if err != nil {
			h.line.WaitUp(ctx)
		}
	}
}

// disconnected runs after the line was cut by a fault: the host loses its
// port (the pseudo-terminal is replaced, the WebSocket closed) and must
// open it again.
func (h *hostSide) disconnected() {
	if h.ws != nil {
		h.ws.drop()
	}
	if h.pty != nil {
		if err := h.pty.replace(); err != nil {
			return
		}
		h.line.Reconnect()
	}
}

// ptyPort is the host side as a pseudo-terminal: the device process keeps
// the master and the slave open (so the port survives hosts closing it)
// and LINK points to the slave.
type ptyPort struct {
	link   string
	line   *link.Line
	baud   int
	active *atomic.Int32

	mu     sync.Mutex
	master *os.File
	slave  *os.File
	out    chan []byte // bytes for the host, written by writer()
	gen    int
}

func newPTYPort(linkPath string, line *link.Line, baud int, active *atomic.Int32) (*ptyPort, error) {
	if fi, err := os.Lstat(linkPath); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return nil, fmt.Errorf("--pty %s: exists and is not a symlink; refusing to replace it", linkPath)
	}
	p := &ptyPort{link: linkPath, line: line, baud: baud, active: active}
	if err := p.open(); err != nil {
		return nil, err
	}
	return p, nil
}

// open creates a pseudo-terminal pair in raw mode at p.baud and points
// the link at it.
func (p *ptyPort) open() error {
	m, s, err := pty.Open()
	if err != nil {
		return fmt.Errorf("pseudo-terminal: %w", err)
	}
	// pty.Open leaves the master in blocking mode, where Close cannot
	// interrupt a pending Read; a non-blocking duplicate is pollable.
	fd, err := unix.Dup(int(m.Fd()))
	m.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		s.Close()
		return fmt.Errorf("pseudo-terminal: %w", err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	// Raw mode at once: a cooked slave would echo the device's output
	// back to it and translate line ends.
	if err := setRawBaud(int(s.Fd()), p.baud); err != nil {
		master.Close()
		s.Close()
		return fmt.Errorf("pseudo-terminal %s: %w", s.Name(), err)
	}
	tmp := p.link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(s.Name(), tmp); err != nil {
		master.Close()
		s.Close()
		return fmt.Errorf("--pty: %w", err)
	}
	if err := os.Rename(tmp, p.link); err != nil {
		os.Remove(tmp)
		master.Close()
		s.Close()
		return fmt.Errorf("--pty: %w", err)
	}
	p.mu.Lock()
	p.master, p.slave = master, s
	p.gen++
	out := make(chan []byte, 256)
	p.out = out
	gen := p.gen
	p.mu.Unlock()
	go p.reader(master, s, gen)
	go p.writer(master, out)
	return nil
}

func (p *ptyPort) slaveName() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.slave.Name()
}

// reader copies what the host writes to the line, at the rate the host
// set on its end of the pseudo-terminal.
func (p *ptyPort) reader(master, slave *os.File, gen int) {
	buf := make([]byte, 4096)
	host := p.line.Host()
	for {
		n, err := master.Read(buf)
		if err != nil {
			return
		}
		// The host sets its rate before writing; look at it now so the
		// bytes just read go out at the rate they were written at.
		p.active.Store(portPTY)
		if b, err := termiosBaud(int(slave.Fd())); err == nil && b != host.Baud() {
			host.SetBaudNow(b)
		}
		if _, err := host.Write(buf[:n]); err != nil {
			if errors.Is(err, link.ErrClosed) {
				return
			}
			// Cut: what the host wrote is lost with the connection.
			p.mu.Lock()
			stale := p.gen != gen
			p.mu.Unlock()
			if stale {
				return
			}
		}
	}
}

// writer delivers bytes to the host; a full pseudo-terminal (nobody has
// the port open) blocks only this goroutine.
func (p *ptyPort) writer(master *os.File, out chan []byte) {
	for b := range out {
		if _, err := master.Write(b); err != nil {
			for range out {
			}
			return
		}
	}
}

// send queues b for the host; bytes are lost when the host does not read.
func (p *ptyPort) send(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		return
	}
	// Keep the rate of the receiving end current for the line's
	// garbling model, unless a WebSocket client is the host.
	if p.active.Load() != portWS {
		if rate, err := termiosBaud(int(p.slave.Fd())); err == nil && rate != p.line.Host().Baud() {
			p.line.Host().SetBaudNow(rate)
		}
	}
	select {
	case p.out <- append([]byte(nil), b...):
	default:
	}
}

// replace closes the pseudo-terminal (the host's open port fails) and
// creates a new one behind the same link, as when a USB serial adapter is
// unplugged and plugged in again.
func (p *ptyPort) replace() error {
	p.closeCurrent()
	return p.open()
}

func (p *ptyPort) closeCurrent() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out != nil {
		close(p.out)
		p.out = nil
	}
	p.gen++
	if p.master != nil {
		p.master.Close()
		p.slave.Close()
	}
}

func (p *ptyPort) close() {
	p.closeCurrent()
	if target, err := os.Readlink(p.link); err == nil && strings.HasPrefix(target, "/dev/") {
		os.Remove(p.link)
	}
}

// wsPort is the host side as a WebSocket endpoint: each connection is a
// port open, ?baud=N the host's rate; binary messages carry line bytes.
// A new connection replaces the current one.
type wsPort struct {
	line   *link.Line
	baud   int
	ln     net.Listener
	srv    *http.Server
	active *atomic.Int32
	// exclusive: the WebSocket is the only host port, so the line is down
	// while no client is connected.
	exclusive bool

	mu   sync.Mutex
	conn *websocket.Conn
	out  chan []byte
}

func newWSPort(addr string, line *link.Line, baud int, active *atomic.Int32) (*wsPort, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	w := &wsPort{line: line, baud: baud, ln: ln, active: active}
	mux := http.NewServeMux()
	mux.HandleFunc("/serial", w.handle)
	w.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go w.srv.Serve(ln)
	return w, nil
}

func (w *wsPort) url() string { return "ws://" + w.ln.Addr().String() + "/serial" }

func (w *wsPort) handle(rw http.ResponseWriter, r *http.Request) {
	baud := w.baud
	if q := r.URL.Query().Get("baud"); q != "" {
		b, err := strconv.Atoi(q)
		if err != nil || b <= 0 {
			http.Error(rw, fmt.Sprintf("baud %q: not a positive integer", q), http.StatusBadRequest)
			return
		}
		baud = b
	}
	c, err := websocket.Accept(rw, r, &websocket.AcceptOptions{
		// The emulator serves the browser UI running from a local server.
		OriginPatterns: []string{"localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", "[::1]:*"},
	})
	if err != nil {
		return
	}
	c.SetReadLimit(1 << 20)
	out := make(chan []byte, 256)
	w.mu.Lock()
	// A port open: fresh buffers, the host's rate.
	w.line.Reconnect()
	w.line.Host().SetBaudNow(baud)
	w.active.Store(portWS)
	if w.conn != nil {
		// Close waits for the client's reply; do not hold the lock.
		go w.conn.Close(websocket.StatusGoingAway, "replaced by a new connection")
		close(w.out)
	}
	w.conn, w.out = c, out
	w.mu.Unlock()

	ctx := r.Context()
	go func() {
		for b := range out {
			if err := c.Write(ctx, websocket.MessageBinary, b); err != nil {
				for range out {
				}
				return
			}
		}
	}()
	host := w.line.Host()
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			break
		}
		if typ != websocket.MessageBinary {
			continue
		}
		if w.active.Swap(portWS) != portWS {
			host.SetBaudNow(baud) // back from the pseudo-terminal's rate
		}
		if _, err := host.Write(data); err != nil && errors.Is(err, link.ErrClosed) {
			break
		}
	}
	w.mu.Lock()
	if w.conn == c {
		w.conn = nil
		close(w.out)
		w.out = nil
		// The port is closed: nobody listens until the next open (unless
		// a pseudo-terminal shares the line).
		if w.exclusive {
			w.line.Hangup()
		}
	}
	w.mu.Unlock()
	c.CloseNow()
}

// send queues b for the connected client, if any.
func (w *wsPort) send(b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.out == nil {
		return
	}
	select {
	case w.out <- append([]byte(nil), b...):
	default:
	}
}

// drop closes the current connection after a line cut.
func (w *wsPort) drop() {
	w.mu.Lock()
	c := w.conn
	w.mu.Unlock()
	if c != nil {
		go c.Close(websocket.StatusGoingAway, "line disconnected")
	}
}

func (w *wsPort) close() {
	w.drop()
	w.srv.Close()
}
