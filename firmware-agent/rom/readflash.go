package rom

import (
	"context"
	"crypto/md5"
)

// readFlash runs the stub's READ_FLASH (offset, length, packet size,
// packets in flight): after the normal reply the stub sends the data as
// raw SLIP packets of the packet size, never more than the in-flight
// limit ahead of the host's acknowledgements (raw 4-byte packets holding
// the total received so far), then the MD5 of all of it as a raw 16-byte
// packet (serial-protocol.rst, "Reading Flash").
func (l *Loader) readFlash(ctx context.Context, c command, sr *SLIPReader) error {
	w, ok := c.words(4)
	if !ok || w[2] == 0 || w[3] == 0 {
		return l.reply(c.op, nil, ErrStubBadDataLen)
	}
	off, length, pkt, inFlight := w[0], w[1], w[2], w[3]
	data, code := l.readFlashBytes(off, length)
	if code != 0 {
		return l.reply(c.op, nil, code)
	}
	if err := l.reply(c.op, nil, 0); err != nil {
		return err
	}
	var sent, acked uint32
	for acked < length {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if sent < length && sent-acked < inFlight*pkt {
			n := min(pkt, length-sent)
			if err := l.send(data[sent : sent+n]); err != nil {
				return err
			}
			sent += n
			continue
		}
		p, err := sr.ReadFrame()
		if err != nil {
			return err
		}
		if v, ok := readFlashAck(p); ok && v <= sent && v > acked {
			acked = v
		}
	}
	sum := md5.Sum(data)
	return l.send(sum[:])
}
