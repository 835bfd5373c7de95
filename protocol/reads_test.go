package protocol

import (
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadLoop: frames and text reach the decoder, an incomplete frame is
// given up after IdleTimeout (the frame behind it is found), Quiet runs
// after its pause, and Run returns the Read error or nil when done.
func TestReadLoop(t *testing.T) {
	pr, pw := io.Pipe()
	var frames []Frame
	var text []byte
	quiet := make(chan struct{}, 1)
	loop := ReadLoop{
		Decoder:    NewDecoder(BaseMaxPayload, func(f Frame) { frames = append(frames, f) }, func(b []byte) { text = append(text, b...) }),
		Quiet:      func() { quiet <- struct{}{} },
		QuietAfter: 150 * time.Millisecond,
	}
	done := make(chan struct{})
	ran := make(chan error, 1)
	go func() { ran <- loop.Run(pr, done) }()

	ping := Frame{Type: TypePing, Seq: 1, Payload: []byte("x")}.Encode()
	pw.Write([]byte("boot\n"))
	pw.Write(ping[:4]) // cut short: only the idle check gives it up
	<-quiet            // QuietAfter passed, so did IdleTimeout
	pw.Write(ping)
	pw.CloseWithError(errors.New("unplugged"))
	if err := <-ran; err == nil || err.Error() != "unplugged" {
		t.Fatalf("Run = %v, want the Read error", err)
	}
	if len(frames) != 1 || frames[0].Type != TypePing || string(text[:5]) != "boot\n" {
		t.Errorf("frames %v, text %q: want the PING behind the cut frame and the boot line", frames, text)
	}
	if st := loop.Decoder.Stats(); st.Abandoned == 0 {
		t.Errorf("stats %+v, want the cut frame abandoned", st)
	}

	pr2, _ := io.Pipe()
	go func() { ran <- loop.Run(pr2, done) }()
	close(done)
	if err := <-ran; err != nil {
		t.Errorf("Run after done = %v, want nil", err)
	}
}

// TestReadLoopBuffered: bytes waiting in the driver's ring keep an
// incomplete frame alive past IdleTimeout (the agent was kept from
// reading by a flash operation, the line was not idle).
func TestReadLoopBuffered(t *testing.T) {
	pr, pw := io.Pipe()
	var frames []Frame
	var waiting atomic.Int32
	waiting.Store(1)
	loop := ReadLoop{
		Decoder:  NewDecoder(BaseMaxPayload, func(f Frame) { frames = append(frames, f) }, nil),
		Buffered: func() int { return int(waiting.Load()) },
	}
	done := make(chan struct{})
	ran := make(chan error, 1)
	go func() { ran <- loop.Run(pr, done) }()
	ping := Frame{Type: TypePing, Seq: 1, Payload: []byte("x")}.Encode()
	pw.Write(ping[:4])
	time.Sleep(3 * IdleTimeout) // the idle check runs, and finds bytes waiting
	pw.Write(ping[4:])
	waiting.Store(0)
	pw.Close()
	if err := <-ran; err != io.EOF {
		t.Fatalf("Run = %v, want EOF", err)
	}
	if len(frames) != 1 || loop.Decoder.Stats().Abandoned != 0 {
		t.Errorf("frames %v, stats %+v: want the frame whole, nothing abandoned", frames, loop.Decoder.Stats())
	}
}
