package updater

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gota-dev/gota/core/espimage"
	"github.com/gota-dev/gota/protocol"
)

// pipePort is a Port over an in-memory pipe (no rate).
type pipePort struct{ net.Conn }

func (pipePort) SetBaud(int) error { return nil }

// memDevice serves the requests Flash makes (HELLO, INFO, BEGIN, DATA,
// END without reboot) over a pipe, with a memAgent behind DATA. It loses
// the DATA frames lose picks (counted from 1).
type memDevice struct {
	t       *testing.T
	conn    net.Conn
	running []byte
	agent   *memAgent
	lose    func(n int) bool

	mu    sync.Mutex
	wmu   sync.Mutex
	data  int // DATA frames seen
	ended bool
}

func (d *memDevice) serve() {
	loop := protocol.ReadLoop{Decoder: protocol.NewDecoder(protocol.LimitMaxPayload, d.frame, nil)}
	loop.Run(d.conn, nil)
}

func (d *memDevice) send(f protocol.Frame) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.conn.Write(f.Encode())
}

func (d *memDevice) reply(req protocol.Frame, payload []byte) {
	d.send(protocol.Frame{Type: req.Type.Reply(), Seq: req.Seq, Payload: payload})
}

func (d *memDevice) info() *protocol.InfoReply {
	img, _ := espimage.Parse(d.running)
	r := &protocol.InfoReply{Chip: "esp32", ChipRev: 300, Running: "app0", Next: "app0", Partitions: []protocol.Partition{
		{Label: "app0", Subtype: 0x10, Offset: 0x10000, Size: 0x140000, State: protocol.OTAValid,
			Name: img.App.ProjectName, Version: img.App.Version, SHA256: hex.EncodeToString(img.Digest[:]), ImageLen: img.Length},
		{Label: "app1", Subtype: 0x11, Offset: 0x150000, Size: 0x140000},
	}}
	if d.ended {
		r.Next = "app1"
		r.Partitions[1].State = protocol.OTANew
	}
	return r
}

func (d *memDevice) frame(f protocol.Frame) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch f.Type {
	case protocol.TypeHello:
		d.reply(f, protocol.Hello{Version: protocol.Version, Caps: protocol.CapReorder | protocol.CapDeflate,
			MaxPayload: 4096, Window: uint32(d.agent.window), Agent: "mem/1"}.Encode())
	case protocol.TypeInfo:
		req, _ := protocol.DecodeInfoRequest(f.Payload)
		d.reply(f, protocol.InfoChunk(d.info().Encode(), int(req.Offset), req.Limit(4096)))
	case protocol.TypeBegin:
		d.reply(f, protocol.BeginReply{Label: "app1"}.Encode())
	case protocol.TypeData:
		if d.data++; d.lose != nil && d.lose(d.data) {
			return
		}
		d.agent.data(d.t, f)
		d.agent.write(time.Time{})
		for _, a := range d.agent.acks {
			d.send(a)
		}
		d.agent.acks = nil
	case protocol.TypeEnd:
		if len(d.agent.img) == 0 {
			d.t.Error("END before any data")
		}
		d.ended = true
		d.reply(f, nil)
	}
}

// TestSessionFlash runs Flash (handshake, INFO, Check, BEGIN, the
// streaming loop with its timers, END) against an in-memory device that
// loses every 25th DATA frame.
func TestSessionFlash(t *testing.T) {
	running, err := espimage.Synth(espimage.SynthOptions{Version: "1.0.0", ProjectName: "p", Size: 64 << 10, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	image, err := espimage.Synth(espimage.SynthOptions{Version: "2.0.0", ProjectName: "p", Size: 300_000, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	host, dev := net.Pipe()
	defer host.Close()
	defer dev.Close()
	d := &memDevice{t: t, conn: dev, running: running, lose: func(n int) bool { return n%25 == 0 },
		agent: &memAgent{window: 32 << 10, reorder: true, kept: map[int]protocol.Frame{}}}
	go d.serve()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Connect(ctx, pipePort{host}, Options{Compression: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var phases []Phase
	err = s.Flash(ctx, image, FlashOptions{NoReboot: true, Progress: func(p Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !bytes.Equal(d.agent.img, image) {
		t.Fatal("the device received other bytes than the image")
	}
	if want := []Phase{PhaseCheck, PhaseBegin, PhaseSend, PhaseVerify, PhaseDone}; !slices.Equal(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	st := s.Stats()
	if st.Resent+st.Rewinds == 0 || st.DataBytes < len(image) || st.WireBytes >= st.DataBytes {
		t.Errorf("stats %+v: want recoveries (frames were lost) and compression", st)
	}
	if s.LastInfo().Next != "app1" {
		t.Errorf("next boot %s, want app1", s.LastInfo().Next)
	}
}
