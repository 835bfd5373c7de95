package rom

import (
	"bufio"
	"compress/zlib"
	"errors"
	"io"
	"sync"
)

// inflater decompresses a zlib stream fed in blocks, as FLASH_DEFL_DATA
// delivers it, handing the output to out as the decoder produces it. feed
// returns once the decoder has consumed the block and wants more input (or
// the stream ended), so the loader answers a block only after what it
// could decode from it is written, as the ROM does.
type inflater struct {
	mu      sync.Mutex
	cond    *sync.Cond
	in      []byte
	waiting bool // the decoder is blocked for input
	done    bool // the stream ended or failed
	err     error
	closed  bool
	total   int64 // decompressed bytes so far
}

// errInflaterClosed ends the decoder goroutine of an abandoned stream.
var errInflaterClosed = errors.New("rom: compressed stream abandoned")

func newInflater(out func([]byte) error) *inflater {
	z := &inflater{}
	z.cond = sync.NewCond(&z.mu)
	go z.run(out)
	return z
}

func (z *inflater) run(out func([]byte) error) {
	err := func() error {
		zr, err := zlib.NewReader(bufio.NewReader(feedReader{z}))
		if err != nil {
			return err
		}
		buf := make([]byte, 4096)
		for {
			n, err := zr.Read(buf)
			if n > 0 {
				if werr := out(buf[:n]); werr != nil {
					return werr
				}
				z.mu.Lock()
				z.total += int64(n)
				z.mu.Unlock()
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}()
	z.mu.Lock()
	z.done, z.err = true, err
	z.cond.Broadcast()
	z.mu.Unlock()
}

// feedReader is the decoder's input: the fed blocks, blocking when empty.
type feedReader struct{ z *inflater }

func (f feedReader) Read(p []byte) (int, error) {
	z := f.z
	z.mu.Lock()
	defer z.mu.Unlock()
	for len(z.in) == 0 {
		if z.closed {
			return 0, errInflaterClosed
		}
		z.waiting = true
		z.cond.Broadcast()
		z.cond.Wait()
	}
	z.waiting = false
	n := copy(p, z.in)
	z.in = z.in[n:]
	return n, nil
}

// feed hands p to the decoder and waits until it is consumed. It reports
// whether the stream had already ended (data after the end) and any
// decode or write error so far.
func (z *inflater) feed(p []byte) (afterEnd bool, err error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.done {
		return len(p) > 0, z.err
	}
	z.in = append(z.in, p...)
	z.waiting = false
	z.cond.Broadcast()
	for !z.done && !(z.waiting && len(z.in) == 0) {
		z.cond.Wait()
	}
	return false, z.err
}

// finished reports whether the stream ended cleanly, and the output size.
func (z *inflater) finished() (bool, int64, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.done && z.err == nil, z.total, z.err
}

// close abandons the stream and ends the decoder goroutine.
func (z *inflater) close() {
	z.mu.Lock()
	z.closed = true
	z.cond.Broadcast()
	z.mu.Unlock()
}
