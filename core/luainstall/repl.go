package luainstall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/gota-dev/gota/protocol"
)

// repl drives a NodeMCU REPL over a serial line: it writes lines and
// collects what the board prints, keeping protocol frames (the agent's
// READY) apart from text.
type repl struct {
	w io.Writer

	mu      sync.Mutex
	text    strings.Builder // everything printed since the start
	ready   int             // READY frames seen
	readErr error
	changed chan struct{} // signalled on every new byte
}

// newREPL starts reading r in the background until it fails. The reader
// goroutine ends with the port: close it after the install.
func newREPL(rw io.ReadWriter) *repl {
	x := &repl{w: rw, changed: make(chan struct{}, 1)}
	dec := protocol.NewDecoder(protocol.LimitMaxPayload, func(f protocol.Frame) {
		if f.Type == protocol.TypeReady {
			x.mu.Lock()
			x.ready++
			x.mu.Unlock()
		}
	}, func(b []byte) {
		x.mu.Lock()
		x.text.Write(b)
		x.mu.Unlock()
	})
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := rw.Read(buf)
			if n > 0 {
				dec.Write(buf[:n])
				x.signal()
			}
			if err != nil {
				x.mu.Lock()
				x.readErr = err
				x.mu.Unlock()
				x.signal()
				return
			}
		}
	}()
	return x
}

func (x *repl) signal() {
	select {
	case x.changed <- struct{}{}:
	default:
	}
}

// mark returns the current end of the collected text.
func (x *repl) mark() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.text.Len()
}

// since returns the text printed after mark m.
func (x *repl) since(m int) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.text.String()[m:]
}

func (x *repl) readyCount() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.ready
}

// errTimeout is returned by wait when cond never held.
var errTimeout = errors.New("timed out")

// wait polls cond(text since m) until it holds, the port fails or the
// timeout passes.
func (x *repl) wait(ctx context.Context, m int, timeout time.Duration, cond func(string) bool) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		out := x.since(m)
		if cond(out) {
			return out, nil
		}
		x.mu.Lock()
		err := x.readErr
		x.mu.Unlock()
		if err != nil {
			return out, fmt.Errorf("reading the port: %w", err)
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-deadline.C:
			return out, errTimeout
		case <-x.changed:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// prompted reports whether out ends with a REPL prompt on a line of its
// own: "> " (a statement ran) or ">> " (it continues).
func prompted(out string) bool {
	return strings.HasSuffix(out, "\n> ") || strings.HasSuffix(out, "\n>> ") || out == "> "
}

// line sends one REPL line and waits for the next prompt. It returns what
// the board printed after the echo of the line, prompt excluded.
func (x *repl) line(ctx context.Context, s string, timeout time.Duration) (string, error) {
	m := x.mark()
	if _, err := io.WriteString(x.w, s+"\n"); err != nil {
		return "", fmt.Errorf("writing to the port: %w", err)
	}
	out, err := x.wait(ctx, m, timeout, func(out string) bool {
		// The echo ends with a newline; the prompt comes after the output.
		_, rest, ok := strings.Cut(out, "\n")
		return ok && prompted("\n"+rest)
	})
	if err != nil {
		return out, err
	}
	_, rest, _ := strings.Cut(out, "\n")
	rest = strings.TrimSuffix(strings.TrimSuffix(rest, ">> "), "> ")
	return strings.ReplaceAll(rest, "\r", ""), nil
}
