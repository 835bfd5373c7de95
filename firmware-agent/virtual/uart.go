package virtual

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/gota-dev/gota/firmware-agent/link"
)

// errReset is what a port of the chip's UART returns once the chip has
// been reset: whatever used it (agent, ROM loader) is gone.
var errReset = errors.New("virtual: chip reset")

// uart shares the device end of the line between the successive lives of
// the chip (app, ROM loader) separated by resets. Each life gets a port;
// a reset invalidates it, so a Read pending in the old life returns
// errReset instead of stealing the new life's bytes. Reads reach the line
// only on demand, one chunk at a time, so the line's backpressure holds.
type uart struct {
	end     *link.End
	mu      sync.Mutex
	cond    *sync.Cond
	gen     int
	buf     []byte // read from the line, not consumed yet
	err     error  // the last line read's error, for the next reader
	reading bool
}

func newUART(end *link.End) *uart {
	u := &uart{end: end}
	u.cond = sync.NewCond(&u.mu)
	return u
}

// port starts a new life: earlier ports fail from now on.
func (u *uart) port() *uartPort {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.gen++
	u.buf, u.err = nil, nil
	u.cond.Broadcast()
	return &uartPort{u: u, gen: u.gen}
}

// fill reads one chunk from the line for whichever life is current when
// it arrives: a read begun before a reset returns bytes that came after it
// (those sent while the chip was held in reset were drained by that
// life).
func (u *uart) fill(n int) {
	buf := make([]byte, min(max(n, 1), 4096))
	k, err := u.end.Read(buf)
	u.mu.Lock()
	u.reading = false
	u.buf = append(u.buf, buf[:k]...)
	if err != nil {
		u.err = err
	}
	u.cond.Broadcast()
	u.mu.Unlock()
}

// uartPort is the UART as one life of the chip sees it.
type uartPort struct {
	u   *uart
	gen int
}

func (p *uartPort) Read(b []byte) (int, error) {
	u := p.u
	u.mu.Lock()
	defer u.mu.Unlock()
	for {
		if p.gen != u.gen {
			return 0, errReset
		}
		if len(u.buf) > 0 {
			n := copy(b, u.buf)
			u.buf = u.buf[n:]
			return n, nil
		}
		if u.err != nil {
			err := u.err
			u.err = nil
			return 0, err
		}
		if !u.reading {
			u.reading = true
			go u.fill(len(b))
		}
		u.cond.Wait()
	}
}

func (p *uartPort) Write(b []byte) (int, error) {
	if p.stale() {
		return 0, errReset
	}
	return p.u.end.Write(b)
}

func (p *uartPort) stale() bool {
	p.u.mu.Lock()
	defer p.u.mu.Unlock()
	return p.gen != p.u.gen
}

// SetBaud switches the chip's UART rate (after its output has left).
func (p *uartPort) SetBaud(baud int) error {
	if p.stale() {
		return errReset
	}
	return p.u.end.SetBaud(baud)
}

// InstallDriver sets the receive path, unless the chip was reset since.
func (p *uartPort) InstallDriver(r link.Receiver) {
	if !p.stale() {
		p.u.end.InstallDriver(r)
	}
}

// Buffered returns how many received bytes wait to be read, as
// uart_get_buffered_data_len does: those in the line's driver and FIFO and
// those already taken from it for this port.
func (p *uartPort) Buffered() int {
	p.u.mu.Lock()
	n := 0
	if p.gen == p.u.gen {
		n = len(p.u.buf)
	}
	p.u.mu.Unlock()
	return n + p.u.end.Buffered()
}

// Baud returns the chip's UART rate.
func (p *uartPort) Baud() int { return p.u.end.Baud() }

// bootLog is the log writer of a booting app: until the agent's console
// takes over (use), text goes to the UART through a queue the boot does
// not wait for, as the ROM's and bootloader's output does; once the
// console is set, to it. A full queue drops text, as a UART driver's full
// TX buffer does.
type bootLog struct {
	mu      sync.Mutex
	console io.Writer
	queue   chan []byte
	done    chan struct{} // closed when the queue has gone out
}

func newBootLog(p io.Writer) *bootLog {
	b := &bootLog{queue: make(chan []byte, 256), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for m := range b.queue {
			if _, err := p.Write(m); errors.Is(err, errReset) {
				for range b.queue {
				}
				return
			}
		}
	}()
	return b
}

func (b *bootLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.console != nil {
		return b.console.Write(p)
	}
	select {
	case b.queue <- append([]byte(nil), p...):
	default:
	}
	return len(p), nil
}

// use hands the log over to the agent's console.
func (b *bootLog) use(console io.Writer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.console == nil {
		b.console = console
		close(b.queue)
	}
}

// wait returns once the queued boot log has been written (or ctx ends),
// so that the agent's first frame does not interleave with it.
func (b *bootLog) wait(ctx context.Context) {
	select {
	case <-b.done:
	case <-ctx.Done():
	}
}
