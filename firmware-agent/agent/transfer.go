package agent

import (
	"crypto/sha256"
	"hash"
	"sync"

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
	window  int

	mu       sync.Mutex
	cond     *sync.Cond
	queue    [][]byte
	received uint32 // next expected image offset
	written  uint32 // bytes in flash
	writing  bool   // the writer holds a chunk taken from queue
	state    uint8  // protocol.StatusReceiving or StatusFailed
	err      error  // why the transfer failed
	canceled bool
	stopped  chan struct{}
	history  []byte    // last DictSize accepted bytes (DEFLATE dictionary)
	hash     hash.Hash // SHA-256 of the accepted bytes, in order
	gapSent  bool      // a GAP ACK was sent for the current received
	ackedW   uint32    // written value of the last ACK the writer sent
}

func newTransfer(a *Agent, b protocol.Begin, label string, deflate bool) *transfer {
	x := &transfer{
		a: a, size: b.Size, sha: b.SHA256, label: label, deflate: deflate,
		window: a.opt.Window, state: protocol.StatusReceiving,
		stopped: make(chan struct{}), hash: sha256.New(),
	}
	x.cond = sync.NewCond(&x.mu)
	return x
}

func (x *transfer) status() protocol.Status {
	x.mu.Lock()
	defer x.mu.Unlock()
	return protocol.Status{State: x.state, Size: x.size, Received: x.received, Written: x.written, SHA256: x.sha}
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
	free := x.window - int(x.received-x.written)
	plain := d.Bytes
	ok := d.Offset == x.received
	if ok && flags&protocol.FlagDeflate != 0 {
		var err error
		plain, err = protocol.Inflate(x.history, d.Bytes, max(free, 0))
		ok = err == nil && x.deflate
	}
	if ok && (len(plain) > free || (x.size > 0 && uint64(x.received)+uint64(len(plain)) > uint64(x.size))) {
		ok = false
	}
	if !ok {
		// A gap after a lost frame, or a frame we cannot take: tell the
		// host once per position so it goes back (go-back-N).
		send := !x.gapSent
		x.gapSent = true
		r, w := x.received, x.written
		x.mu.Unlock()
		if send {
			x.a.sendAck(r, w, protocol.FlagGap)
		}
		return
	}
	if len(plain) > 0 {
		x.queue = append(x.queue, plain)
		x.received += uint32(len(plain))
		x.hash.Write(plain)
		if x.deflate {
			x.history = append(x.history, plain...)
			if len(x.history) > 2*protocol.DictSize {
				x.history = append([]byte(nil), x.history[len(x.history)-protocol.DictSize:]...)
			}
		}
		x.gapSent = false
		x.cond.Broadcast()
	}
	r, w := x.received, x.written
	x.mu.Unlock()
	x.a.sendAck(r, w, 0)
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
	x.gapSent = false
	x.ackedW = x.written
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
