package agent

import (
	"crypto/sha256"
	"hash"
	"sync"
	"time"

	"github.com/gota-dev/gota/firmware-agent/device"
	"github.com/gota-dev/gota/protocol"
)

// transfer is an image being received: a queue of accepted bytes that a
// writer goroutine drains into the device (esp_ota_write), with the
// counters ACKs report.
type transfer struct {
	a       *Agent
	size    uint32
	sha     [32]byte
	label   string
	deflate bool
	reorder bool // keep frames that arrive after a gap (CapReorder)
	// DELTA frames (CapDelta): the running build at baseOffset in flash,
	// baseLen bytes long (0: none, and DELTA frames do not decode).
	delta      bool
	baseOffset uint32
	baseLen    int
	window     int

	mu           sync.Mutex
	cond         *sync.Cond
	queue        [][]byte
	received     uint32 // next expected image offset
	written      uint32 // bytes in flash
	writing      bool   // the writer holds a chunk taken from queue
	state        uint8  // protocol.StatusReceiving or StatusFailed
	err          error  // why the transfer failed
	canceled     bool
	stopped      chan struct{}
	history      []byte                  // last DictSize accepted bytes (DEFLATE dictionary)
	hash         hash.Hash               // SHA-256 of the accepted bytes, in order
	gapAt        time.Time               // when a GAP ACK was last sent for the current received (zero: none)
	pending      map[uint32]pendingFrame // frames after a gap, by offset
	pendingBytes int                     // their payload bytes (counted against the window)
	ackedW       uint32                  // written value of the last ACK the writer sent
}

func newTransfer(a *Agent, b protocol.Begin, label string, caps uint32) *transfer {
	x := &transfer{
		a: a, size: b.Size, sha: b.SHA256, label: label,
		deflate: caps&protocol.CapDeflate != 0, reorder: caps&protocol.CapReorder != 0,
		pending: map[uint32]pendingFrame{},
		window:  a.opt.Window, state: protocol.StatusReceiving,
		stopped: make(chan struct{}), hash: sha256.New(),
	}
	x.cond = sync.NewCond(&x.mu)
	if caps&protocol.CapDelta != 0 {
		x.delta = true
		if info, err := a.dev.Info(); err == nil {
			for _, p := range info.Partitions {
				if p.Running {
					x.baseOffset, x.baseLen = p.Offset, p.ImageLen
				}
			}
		}
	}
	return x
}

// deltaDict returns the dictionary of a DELTA frame at offset: the running
// build around the same offset (SPEC.md 6.7), read back from flash.
func (x *transfer) deltaDict(offset uint32) ([]byte, error) {
	start, end := protocol.DeltaRange(int(offset), x.baseLen)
	b := make([]byte, end-start)
	if _, err := x.a.dev.Flash().ReadAt(b, int64(x.baseOffset)+int64(start)); err != nil {
		return nil, err
	}
	return b, nil
}

func (x *transfer) status() protocol.Status {
	x.mu.Lock()
	defer x.mu.Unlock()
	return protocol.Status{State: x.state, Size: x.size, Received: x.received, Written: x.written, SHA256: x.sha}
}

// gapRepeat is the shortest time between two GAP ACKs for the same
// received offset: a frame's time on the line at 2 Mbaud.
var gapRepeat = time.Millisecond

// pendingFrame is a DATA frame that arrived after a gap (CapReorder).
type pendingFrame struct {
	bytes []byte
	flags uint8
}

// receive applies SPEC.md 6.2 to one DATA frame.
func (x *transfer) receive(d protocol.Data, flags uint8) {
	x.mu.Lock()
	if x.state != protocol.StatusReceiving || x.canceled {
		x.mu.Unlock()
		return
	}
	if d.Offset < x.received { // duplicate (a retransmission we already have)
		r, w := x.received, x.written
		x.mu.Unlock()
		x.a.sendAck(r, w, 0)
		return
	}
	ok := d.Offset == x.received && x.accept(d.Bytes, flags)
	if !ok && d.Offset == x.received && x.pendingBytes > 0 {
		// The frames kept after the gap leave no room for the one that
		// fills it (the host re-cut its frames smaller after a loss, so
		// they no longer line up): in-order data comes first.
		x.pending, x.pendingBytes = map[uint32]pendingFrame{}, 0
		ok = x.accept(d.Bytes, flags)
	}
	if ok {
		// Frames kept after a gap follow on now.
		for {
			p, found := x.pending[x.received]
			if !found {
				break
			}
			delete(x.pending, x.received)
			x.pendingBytes -= len(p.bytes)
			if !x.accept(p.bytes, p.flags) {
				break
			}
		}
		for off, p := range x.pending {
			if off < x.received {
				delete(x.pending, off)
				x.pendingBytes -= len(p.bytes)
			}
		}
		x.gapAt = time.Time{}
		x.cond.Broadcast()
		r, w := x.received, x.written
		x.mu.Unlock()
		x.a.sendAck(r, w, 0)
		return
	}
	if d.Offset > x.received && x.reorder {
		// Keep it, within the window, for when the gap is filled: the
		// host then resends only the missing frame.
		_, have := x.pending[d.Offset]
		room := x.window - int(x.received-x.written) - x.pendingBytes
		if !have && len(d.Bytes) <= room && int(d.Offset-x.received) < x.window {
			x.pending[d.Offset] = pendingFrame{bytes: d.Bytes, flags: flags}
			x.pendingBytes += len(d.Bytes)
		}
	}
	// A gap after a lost frame, or a frame we cannot take: tell the host
	// every time (SPEC.md 6.2), as TCP sends a duplicate ACK for every
	// segment out of order. A GAP after the host's resend tells it the
	// resend was lost too, long before its retransmission timeout; at
	// most every gapRepeat, so a burst of frames after one loss does not
	// flood the way back.
	now := time.Now()
	send := x.gapAt.IsZero() || now.Sub(x.gapAt) >= gapRepeat
	if send {
		x.gapAt = now
	}
	r, w := x.received, x.written
	x.mu.Unlock()
	if send {
		x.a.sendGap(r, w, d.Offset)
	}
}

// accept takes the frame at x.received into the write queue if it
// inflates and fits the window. Called with x.mu held.
func (x *transfer) accept(b []byte, flags uint8) bool {
	free := x.window - int(x.received-x.written) - x.pendingBytes
	plain := b
	if flags&protocol.FlagDeflate != 0 {
		if !x.deflate {
			return false
		}
		dict := x.history
		if flags&protocol.FlagDelta != 0 {
			if !x.delta {
				return false
			}
			var err error
			if dict, err = x.deltaDict(x.received); err != nil {
				return false
			}
		}
		var err error
		if plain, err = protocol.Inflate(dict, b, max(free, 0)); err != nil {
			return false
		}
	}
	if len(plain) > free || (x.size > 0 && uint64(x.received)+uint64(len(plain)) > uint64(x.size)) {
		return false
	}
	if len(plain) == 0 {
		return true
	}
	x.queue = append(x.queue, plain)
	x.received += uint32(len(plain))
	x.hash.Write(plain)
	if x.deflate {
		x.history = append(x.history, plain...)
		if len(x.history) > 2*protocol.DictSize {
			x.history = append([]byte(nil), x.history[len(x.history)-protocol.DictSize:]...)
		}
	}
	return true
}

// writer drains the queue into the device until the transfer ends.
func (x *transfer) writer() {
	defer close(x.stopped)
	for {
		x.mu.Lock()
		for len(x.queue) == 0 && !x.canceled {
			x.cond.Wait()
		}
		if x.canceled {
			x.mu.Unlock()
			return
		}
		chunk := x.queue[0]
		x.queue[0] = nil
		x.queue = x.queue[1:]
		x.writing = true
		x.mu.Unlock()

		err := x.a.dev.Write(chunk)

		x.mu.Lock()
		x.writing = false
		if x.canceled {
			x.cond.Broadcast()
			x.mu.Unlock()
			return
		}
		if err != nil {
			x.state = protocol.StatusFailed
			x.err = err
			x.queue = nil
			x.cond.Broadcast()
			x.mu.Unlock()
			e := toProtocolError(protocol.TypeData, err)
			x.a.con.writeFrame(protocol.Frame{Type: protocol.TypeError, Payload: e.Encode()})
			return
		}
		x.written += uint32(len(chunk))
		ack := int(x.written-x.ackedW) >= x.a.opt.MaxFrame || len(x.queue) == 0
		if ack {
			x.ackedW = x.written
		}
		r, w := x.received, x.written
		x.cond.Broadcast()
		x.mu.Unlock()
		if ack {
			x.a.sendAck(r, w, 0)
		}
	}
}

// drain waits until everything received is written (or the transfer
// failed or was canceled). Called with x.mu held.
func (x *transfer) drain() {
	for (len(x.queue) > 0 || x.writing) && x.state == protocol.StatusReceiving && !x.canceled {
		x.cond.Wait()
	}
}

// resume prepares the transfer to continue in a new session and returns
// the offset the host continues from.
func (x *transfer) resume() (uint32, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.drain()
	if x.state != protocol.StatusReceiving || x.canceled {
		return 0, false
	}
	x.gapAt = time.Time{}
	x.ackedW = x.written
	x.pending, x.pendingBytes = map[uint32]pendingFrame{}, 0
	return x.written, true
}

// finish waits for the writer, checks size and SHA-256 (SPEC.md 5.6) and
// stops the writer. The device's complete is the caller's.
func (x *transfer) finish() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.drain()
	if x.state == protocol.StatusFailed {
		return x.err
	}
	if x.canceled {
		return perr(device.ErrInvalidState, "no upgrade in progress")
	}
	if x.size > 0 && x.received != x.size {
		return perr(device.ErrInvalidSize, "received %d of %d bytes", x.received, x.size)
	}
	if x.sha != ([32]byte{}) && x.a.caps&protocol.CapSHA256 != 0 {
		var got [32]byte
		x.hash.Sum(got[:0])
		if got != x.sha {
			x.state = protocol.StatusFailed
			x.err = perr(device.ErrOTAValidateFailed, "image SHA-256 mismatch: got %x, announced %x", got, x.sha)
			return x.err
		}
	}
	x.canceled = true
	x.cond.Broadcast()
	return nil
}

func (x *transfer) cancel() {
	x.mu.Lock()
	x.canceled = true
	x.cond.Broadcast()
	x.mu.Unlock()
}

func (x *transfer) waitStopped() { <-x.stopped }
