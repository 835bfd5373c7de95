package protocol

import (
	"io"
	"time"
)

// Chunk is what one Read of a line returned.
type Chunk struct {
	B   []byte
	Err error
}

// ReadChunks reads r on its own goroutine and delivers every Read's
// bytes and error on the returned channel, so a loop can select on the
// line alongside its timers. It stops after a Read fails (that chunk is
// delivered) or when stop is closed; a Read already blocked then still
// returns, into a fresh buffer nobody reads.
func ReadChunks(r io.Reader, stop <-chan struct{}) <-chan Chunk {
	reads := make(chan Chunk, 4)
	go func() {
		for {
			buf := make([]byte, 4096)
			n, err := r.Read(buf)
			select {
			case reads <- Chunk{buf[:n], err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return reads
}

// IdleTimeout is how long a line stays quiet before a receiver gives up an
// incomplete frame (SPEC.md 3).
const IdleTimeout = 100 * time.Millisecond

// ReadLoop feeds a line to a Decoder: it is the receive loop of the host
// session, the agents and the log monitor.
type ReadLoop struct {
	Decoder *Decoder
	// Quiet, when set, is called once the line has been quiet for
	// QuietAfter after bytes arrived: a receiver shows a log line that
	// lacks its newline (a prompt, or text cut by a reset). With
	// QuietAfter 0 it is called right after the idle check.
	Quiet      func()
	QuietAfter time.Duration
	// Buffered, when set, counts bytes received but not yet read (a
	// UART driver's ring, uart_get_buffered_data_len): while there are
	// any the line is not idle, however long since the last Read.
	Buffered func() int
}

// Run reads r and writes every chunk to l.Decoder until done is closed
// (it returns nil) or a Read fails (it returns that error, io.EOF
// included, after the chunk read with it). While the decoder holds an
// incomplete frame and IdleTimeout passes without bytes, it calls
// Decoder.Idle.
func (l *ReadLoop) Run(r io.Reader, done <-chan struct{}) error {
	stop := make(chan struct{})
	defer close(stop)
	reads := ReadChunks(r, stop)
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	quiet := time.NewTimer(time.Hour)
	defer quiet.Stop()
	for {
		select {
		case c := <-reads:
			if len(c.B) > 0 {
				l.Decoder.Write(c.B)
				if l.Decoder.Pending() || l.Quiet != nil && l.QuietAfter == 0 {
					idle.Reset(IdleTimeout)
				}
				if l.Quiet != nil && l.QuietAfter > 0 {
					quiet.Reset(l.QuietAfter)
				}
			}
			if c.Err != nil {
				return c.Err
			}
		case <-idle.C:
			if l.Buffered != nil && l.Buffered() > 0 {
				idle.Reset(IdleTimeout)
				break
			}
			l.Decoder.Idle()
			if l.Quiet != nil && l.QuietAfter == 0 {
				l.Quiet()
			}
		case <-quiet.C:
			l.Quiet()
		case <-done:
			return nil
		}
	}
}
