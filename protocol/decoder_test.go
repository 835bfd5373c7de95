package protocol

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func collect(max int) (*Decoder, *[]Frame, *bytes.Buffer) {
	var frames []Frame
	var text bytes.Buffer
	d := NewDecoder(max, func(f Frame) { frames = append(frames, f) }, func(b []byte) { text.Write(b) })
	return d, &frames, &text
}

func pingFrames(n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, Frame{Type: TypePing, Seq: uint8(i + 1), Payload: []byte(fmt.Sprintf("payload %d %s", i, strings.Repeat("x", (i%100)*7)))}.Encode())
	}
	return out
}

// TestResync damages one frame in a stream of frames and checks that only
// that frame is lost and every later frame still arrives.
func TestResync(t *testing.T) {
	frames := pingFrames(6)
	damage := map[string]func(f []byte) []byte{
		"noise SOF before":   func(f []byte) []byte { return append([]byte{SOF, 0x05, 0x22}, f...) },
		"dropped byte":       func(f []byte) []byte { return append(append([]byte{}, f[:9]...), f[10:]...) },
		"duplicated byte":    func(f []byte) []byte { return append(append(append([]byte{}, f[:9]...), f[9]), f[9:]...) },
		"flipped payload":    func(f []byte) []byte { g := append([]byte{}, f...); g[8] ^= 0x10; return g },
		"flipped length":     func(f []byte) []byte { g := append([]byte{}, f...); g[5] ^= 0x01; return g },
		"truncated":          func(f []byte) []byte { return f[:len(f)-3] },
		"dropped SOF":        func(f []byte) []byte { return f[1:] },
		"header only":        func(f []byte) []byte { return f[:HeaderSize] },
		"duplicated SOF":     func(f []byte) []byte { return append([]byte{SOF}, f...) },
		"duplicated frame":   func(f []byte) []byte { return append(append([]byte{}, f...), f...) },
		"garbage with SOFs":  func(f []byte) []byte { return append(bytes.Repeat([]byte{SOF, 0xFF, 0}, 40), f...) },
		"binary after frame": func(f []byte) []byte { return append(append([]byte{}, f...), 0x01, 0x01, 0x01) },
	}
	for name, fn := range damage {
		t.Run(name, func(t *testing.T) {
			var stream []byte
			for i, f := range frames {
				if i == 2 {
					f = fn(f)
				}
				stream = append(stream, f...)
			}
			d, got, _ := collect(1024)
			d.Write(stream)
			d.Idle()
			var seqs []uint8
			for _, f := range *got {
				seqs = append(seqs, f.Seq)
			}
			// Frames 1,2 and 4,5,6 must arrive; 3 may or may not (dup, noise).
			want := []uint8{1, 2, 4, 5, 6}
			var filtered []uint8
			for _, s := range seqs {
				if s != 3 {
					filtered = append(filtered, s)
				}
			}
			if fmt.Sprint(filtered) != fmt.Sprint(want) {
				t.Errorf("frames %v, want %v (3 optional)", seqs, want)
			}
		})
	}
}

// TestIdle: a frame cut short by a disconnect must not hide the next one.
func TestIdle(t *testing.T) {
	big := Frame{Type: TypeData, Payload: bytes.Repeat([]byte{0xAA}, 900)}.Encode()
	hello := Frame{Type: TypeHello, Seq: 9, Payload: Hello{Version: 1}.Encode()}.Encode()
	d, got, text := collect(1024)
	d.Write(big[:100]) // host crashed mid-frame
	d.Write(hello)     // new host
	if len(*got) != 0 {
		t.Fatalf("frame decoded before the idle rule: %v", (*got)[0].Type)
	}
	d.Idle()
	if len(*got) != 1 || (*got)[0].Type != TypeHello {
		t.Fatalf("after Idle: %d frames", len(*got))
	}
	if d.Pending() {
		t.Error("still pending after Idle")
	}
	if text.Len() > 0 && bytes.Contains(text.Bytes(), []byte{SOF}) {
		t.Errorf("SOF leaked into text: %q", text.Bytes())
	}
}

func TestTextIntact(t *testing.T) {
	logs := []string{"I (31) boot: ESP-IDF v5.1.3 2nd stage bootloader\r\n", "partial ", "line\n", "", "\x1b[0;32mcolour\x1b[0m\n", "ünïcødé\n"}
	var stream []byte
	var want []byte
	for i, l := range logs {
		stream = append(stream, l...)
		want = append(want, l...)
		stream = AppendFrame(stream, Frame{Type: TypeLog, Seq: uint8(i), Payload: []byte{SOF, SOF, 0, '\n'}})
	}
	d, got, text := collect(256)
	d.Write(stream)
	if !bytes.Equal(text.Bytes(), want) {
		t.Errorf("text %q, want %q", text.Bytes(), want)
	}
	if len(*got) != len(logs) {
		t.Errorf("%d frames, want %d", len(*got), len(logs))
	}
	var lines []string
	l := &Lines{Line: func(s string) { lines = append(lines, s) }}
	l.Write(text.Bytes())
	if len(lines) != 4 || lines[1] != "partial line" || lines[0] != "I (31) boot: ESP-IDF v5.1.3 2nd stage bootloader" {
		t.Errorf("lines %q", lines)
	}
}

// TestRandomDamage: random byte drops, duplications and noise in a long
// stream never lose more frames than were damaged.
func TestRandomDamage(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	frames := pingFrames(200)
	var stream []byte
	damaged := 0
	for _, f := range frames {
		if r.IntN(4) == 0 {
			g := append([]byte{}, f...)
			i := r.IntN(len(g))
			switch r.IntN(3) {
			case 0:
				g = append(g[:i], g[i+1:]...)
			case 1:
				g = append(g[:i+1], g[i:]...)
			case 2:
				g[i] ^= byte(1 + r.IntN(255))
			}
			f = g
			damaged++
		}
		stream = append(stream, f...)
		if r.IntN(3) == 0 {
			stream = append(stream, "log\n"...)
		}
	}
	d, got, _ := collect(1024)
	for p := stream; len(p) > 0; {
		n := min(len(p), 1+r.IntN(64))
		d.Write(p[:n])
		p = p[n:]
	}
	d.Idle()
	if len(*got) < len(frames)-damaged {
		t.Errorf("%d frames of %d with %d damaged", len(*got), len(frames), damaged)
	}
	t.Logf("%d of %d frames, %d damaged, stats %+v", len(*got), len(frames), damaged, d.Stats())
}

// FuzzDecoder: arbitrary bytes never panic; text (without SOF) around
// valid frames reaches the user intact and the frames decode.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte("hello\n"), []byte{1, 2, 3}, []byte("world"), uint8(3))
	f.Add([]byte{SOF, 0, 0, 0, 0xFF, 0xFF}, []byte{SOF}, []byte{}, uint8(1))
	f.Add(Frame{Type: TypePing, Payload: []byte("x")}.Encode(), []byte("\x01\x01"), []byte("a\x01b"), uint8(7))
	f.Fuzz(func(t *testing.T, junk, payload, text []byte, chunk uint8) {
		// Arbitrary bytes: no panic, whatever comes out.
		d, _, _ := collect(300)
		d.Write(junk)
		d.Idle()

		// Text + frame + text: both texts intact (SOF removed from text:
		// log text never contains it), the frame decoded.
		clean := bytes.ReplaceAll(text, []byte{SOF}, nil)
		if len(payload) > 300 {
			payload = payload[:300]
		}
		fr := Frame{Type: TypeData, Flags: chunk, Seq: chunk, Payload: payload}
		var stream []byte
		stream = append(stream, clean...)
		stream = AppendFrame(stream, fr)
		stream = append(stream, clean...)
		d, got, out := collect(300)
		step := int(chunk%16) + 1
		for p := stream; len(p) > 0; {
			n := min(step, len(p))
			d.Write(p[:n])
			p = p[n:]
		}
		if len(*got) != 1 || !bytes.Equal((*got)[0].Payload, payload) || (*got)[0].Seq != chunk {
			t.Fatalf("frame lost: %d frames", len(*got))
		}
		if want := append(append([]byte{}, clean...), clean...); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("text %q, want %q", out.Bytes(), want)
		}
	})
}
