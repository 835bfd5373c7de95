package virtual

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/gota-dev/gota/firmware-agent/link"
)

// AttachPTY creates a pseudo-terminal in raw mode at the line's power-on
// rate, makes linkPath a symlink to it and connects it to the host end of
// the line; it returns the terminal's name. Any serial program can open
// linkPath; the rate the host sets on it is the host's rate. A line cut
// replaces the terminal behind linkPath, as unplugging a USB serial
// adapter and plugging it in again does. Attach it before Listen or the
// first WebSocket connection: the WebSocket then shares the line.
func (p *ports) AttachPTY(linkPath string) (string, error) {
	pp, err := newPTYPort(linkPath, p.line, p.line.InitialBaud(), &p.active)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	p.pty = pp
	p.mu.Unlock()
	if !p.line.Up() {
		p.line.Reconnect() // Listen hung it up: the terminal is a listener
	}
	p.startPump()
	return pp.slaveName(), nil
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
		return nil, fmt.Errorf("%s: exists and is not a symlink; refusing to replace it", linkPath)
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
		return fmt.Errorf("pseudo-terminal link: %w", err)
	}
	if err := os.Rename(tmp, p.link); err != nil {
		os.Remove(tmp)
		master.Close()
		s.Close()
		return fmt.Errorf("pseudo-terminal link: %w", err)
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

// setRawBaud puts the terminal fd in raw mode (no echo, no line
// discipline, 8N1) at baud, as a serial port is.
func setRawBaud(fd, baud int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS2)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CBAUD
	t.Cflag |= unix.CS8 | unix.CLOCAL | unix.CREAD | unix.BOTHER
	t.Ispeed, t.Ospeed = uint32(baud), uint32(baud)
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS2, t)
}

// termiosBaud returns the output rate set on the terminal fd, whichever
// way it was set (a Bnnn constant or BOTHER with an arbitrary rate).
func termiosBaud(fd int) (int, error) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS2)
	if err != nil {
		return 0, err
	}
	if c := t.Cflag & unix.CBAUD; c != unix.BOTHER {
		if b, ok := termiosRates[c]; ok {
			return b, nil
		}
	}
	return int(t.Ospeed), nil
}

var termiosRates = map[uint32]int{
	unix.B50: 50, unix.B75: 75, unix.B110: 110, unix.B134: 134, unix.B150: 150,
	unix.B200: 200, unix.B300: 300, unix.B600: 600, unix.B1200: 1200, unix.B1800: 1800,
	unix.B2400: 2400, unix.B4800: 4800, unix.B9600: 9600, unix.B19200: 19200,
	unix.B38400: 38400, unix.B57600: 57600, unix.B115200: 115200, unix.B230400: 230400,
	unix.B460800: 460800, unix.B500000: 500000, unix.B576000: 576000, unix.B921600: 921600,
	unix.B1000000: 1000000, unix.B1152000: 1152000, unix.B1500000: 1500000,
	unix.B2000000: 2000000, unix.B2500000: 2500000, unix.B3000000: 3000000,
	unix.B3500000: 3500000, unix.B4000000: 4000000,
}
