package protocol

import (
	"bytes"
	"encoding/binary"
)

// Decoder splits a byte stream into frames and log text. Bytes that are
// not part of a valid frame are text: they are handed to the Text callback
// in order, except the SOF byte of a rejected candidate and the bytes a
// rejected but well-headed frame covered (binary noise, not log). After a
// rejected candidate the decoder rescans from the byte after its SOF, so a
// frame that follows a truncated one is still found.
//
// A Decoder is not safe for concurrent use.
type Decoder struct {
	maxPayload int
	frame      func(Frame)
	text       func([]byte)

	buf   []byte // undecided bytes; buf[0] is SOF when len(buf) > 0 and pending
	quiet int    // leading bytes of buf not to emit as text (inside a rejected frame)

	stats Stats
}

// Stats counts what a Decoder rejected.
type Stats struct {
	Frames     int // valid frames
	BadHeader  int // SOF followed by a header with a wrong CRC-8 or a length over the limit
	BadCRC     int // good header, wrong CRC-32
	Abandoned  int // incomplete candidates given up by Idle
	TextBytes  int // bytes passed on as text
	NoiseBytes int // bytes dropped as noise
}

// NewDecoder returns a decoder accepting payloads up to maxPayload bytes
// (clamped to BaseMaxPayload..LimitMaxPayload). frame receives each
// valid frame (its Payload is a fresh copy); text receives log bytes. Either
// callback may be nil.
func NewDecoder(maxPayload int, frame func(Frame), text func([]byte)) *Decoder {
	if maxPayload < BaseMaxPayload {
		maxPayload = BaseMaxPayload
	}
	if maxPayload > LimitMaxPayload {
		maxPayload = LimitMaxPayload
	}
	return &Decoder{maxPayload: maxPayload, frame: frame, text: text}
}

// SetMaxPayload changes the largest payload accepted (after a handshake).
func (d *Decoder) SetMaxPayload(n int) {
	d.maxPayload = min(max(n, BaseMaxPayload), LimitMaxPayload)
}

// Stats returns the counters so far.
func (d *Decoder) Stats() Stats { return d.stats }

// Write feeds p to the decoder. It never fails.
func (d *Decoder) Write(p []byte) (int, error) {
	n := len(p)
	if len(d.buf) == 0 {
		// Fast path: pass text up to the first SOF without copying.
		i := indexSOF(p)
		if i < 0 {
			d.emitText(p)
			return n, nil
		}
		d.emitText(p[:i])
		p = p[i:]
	}
	d.buf = append(d.buf, p...)
	d.scan(false)
	return n, nil
}

// Idle tells the decoder the line has been quiet (SPEC.md: 100 ms). An
// incomplete candidate frame is abandoned and the bytes after its SOF are
// rescanned, so a frame cut short by a disconnect cannot hide the frames
// that follow it.
func (d *Decoder) Idle() {
	if len(d.buf) > 0 {
		d.scan(true)
	}
}

// Pending reports whether the decoder holds an incomplete candidate.
func (d *Decoder) Pending() bool { return len(d.buf) > 0 }

// scan decides as much of d.buf as possible. d.buf is either empty or
// starts with SOF (text before it has been emitted).
func (d *Decoder) scan(idle bool) {
	for len(d.buf) > 0 {
		if d.buf[0] != SOF {
			i := indexSOF(d.buf)
			if i < 0 {
				i = len(d.buf)
			}
			q := min(d.quiet, i)
			d.stats.NoiseBytes += q
			d.emitText(d.buf[q:i])
			d.drop(i)
			continue
		}
		ok, need := d.try()
		if ok {
			continue
		}
		if need && !idle {
			break // wait for more bytes
		}
		if need {
			d.stats.Abandoned++
		}
		// Reject this SOF: drop it as noise and rescan after it.
		d.drop(1)
		d.stats.NoiseBytes++
	}
	if len(d.buf) == 0 {
		d.buf = d.buf[:0]
		d.quiet = 0
	}
}

// try examines the candidate at d.buf[0]. It returns ok when a frame was
// consumed, need when more bytes are required to decide; neither means the
// candidate is rejected.
func (d *Decoder) try() (ok, need bool) {
	b := d.buf
	if len(b) < HeaderSize {
		return false, true
	}
	n := int(binary.LittleEndian.Uint16(b[4:6]))
	if CRC8(b[1:6]) != b[6] || n > d.maxPayload {
		d.stats.BadHeader++
		return false, false
	}
	total := HeaderSize + n + CRCSize
	if len(b) < total {
		return false, true
	}
	if CRC32(b[1:total-CRCSize]) != binary.LittleEndian.Uint32(b[total-CRCSize:total]) {
		d.stats.BadCRC++
		// The header was right, so these bytes were most likely a frame
		// damaged on the way: do not show them as log text.
		d.quiet = max(d.quiet, total)
		return false, false
	}
	f := Frame{
		Type:    Type(b[1]),
		Flags:   b[2],
		Seq:     b[3],
		Payload: append([]byte(nil), b[HeaderSize:total-CRCSize]...),
	}
	d.drop(total)
	d.stats.Frames++
	if d.frame != nil {
		d.frame(f)
	}
	return true, false
}

// drop removes n leading bytes of buf.
func (d *Decoder) drop(n int) {
	d.buf = d.buf[n:]
	d.quiet = max(d.quiet-n, 0)
	if len(d.buf) == 0 {
		d.buf = nil
	}
}

func (d *Decoder) emitText(t []byte) {
	if len(t) == 0 {
		return
	}
	d.stats.TextBytes += len(t)
	if d.text != nil {
		d.text(t)
	}
}

func indexSOF(p []byte) int { return bytes.IndexByte(p, SOF) }
