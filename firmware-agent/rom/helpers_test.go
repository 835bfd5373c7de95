package rom

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/gota-dev/gota/firmware-agent/flash"
	"github.com/gota-dev/gota/firmware-agent/link"
)

// bench is a loader serving the device end of an emulated line, and a
// minimal host on the other end.
type bench struct {
	t      *testing.T
	line   *link.Line
	fl     *flash.Flash
	l      *Loader
	sr     *SLIPReader
	frames chan frameOrErr
	done   chan error
}

type frameOrErr struct {
	p   []byte
	err error
}

func newBench(t *testing.T, cfg Config, lc link.Config) *bench {
	t.Helper()
	if cfg.Flash == nil {
		cfg.Flash = flash.NewMemory(4 << 20)
	}
	line := link.New(lc)
	b := &bench{t: t, line: line, fl: cfg.Flash, l: New(cfg), done: make(chan error, 1)}
	b.sr = NewSLIPReader(line.Host())
	b.frames = make(chan frameOrErr, 1024)
	go func() {
		for {
			p, err := b.sr.ReadFrame()
			b.frames <- frameOrErr{p, err}
			if err != nil && err != ErrSLIP && !errors.Is(err, ErrSLIP) {
				return
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { b.done <- b.l.Serve(ctx, line.Device()) }()
	t.Cleanup(func() {
		cancel()
		line.Close()
		<-b.done
	})
	return b
}

// send writes one command packet.
func (b *bench) send(op byte, data []byte, chk uint32) {
	b.t.Helper()
	p := make([]byte, 8, 8+len(data))
	p[1] = op
	binary.LittleEndian.PutUint16(p[2:], uint16(len(data)))
	binary.LittleEndian.PutUint32(p[4:], chk)
	p = append(p, data...)
	if _, err := b.line.Host().Write(AppendSLIP(nil, p)); err != nil {
		b.t.Fatalf("write command 0x%02x: %v", op, err)
	}
}

type reply struct {
	op   byte
	val  uint32
	data []byte
}

// frame reads one frame within d.
func (b *bench) frame(d time.Duration) ([]byte, error) {
	select {
	case r := <-b.frames:
		return r.p, r.err
	case <-time.After(d):
		return nil, errTimeout
	}
}

var errTimeout = errors.New("no reply")

func (b *bench) reply(d time.Duration) (reply, error) {
	p, err := b.frame(d)
	if err != nil {
		return reply{}, err
	}
	if len(p) < 8 || p[0] != 1 || int(binary.LittleEndian.Uint16(p[2:])) != len(p)-8 {
		return reply{}, errors.New("malformed reply")
	}
	return reply{p[1], binary.LittleEndian.Uint32(p[4:]), p[8:]}, nil
}

// cmd sends a command and returns its reply.
func (b *bench) cmd(op byte, data []byte, chk uint32) reply {
	b.t.Helper()
	b.send(op, data, chk)
	r, err := b.reply(5 * time.Second)
	if err != nil {
		b.t.Fatalf("command 0x%02x: %v", op, err)
	}
	if r.op != op {
		b.t.Fatalf("command 0x%02x answered as 0x%02x", op, r.op)
	}
	return r
}

// status splits a reply into payload and (status, error), for a trailer
// of n bytes.
func status(r reply, n int) (payload []byte, failed, code byte) {
	if len(r.data) < n {
		return nil, 0xEE, 0xEE
	}
	s := r.data[len(r.data)-n:]
	return r.data[:len(r.data)-n], s[0], s[1]
}

func words(ws ...uint32) []byte {
	b := make([]byte, 4*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

// dataPacket is a _DATA payload: size, seq, 0, 0, data.
func dataPacket(seq int, data []byte) []byte {
	return append(words(uint32(len(data)), uint32(seq), 0, 0), data...)
}

func syncData() []byte {
	d := []byte{0x07, 0x07, 0x12, 0x20}
	for i := 0; i < 32; i++ {
		d = append(d, 0x55)
	}
	return d
}
