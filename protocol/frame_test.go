package protocol

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestCRCVectors(t *testing.T) {
	check := []byte("123456789")
	if got := CRC8(check); got != 0xF4 {
		t.Errorf("CRC8(123456789) = %#02x, want 0xf4", got)
	}
	if got := CRC32(check); got != 0xCBF43926 {
		t.Errorf("CRC32(123456789) = %#08x, want 0xcbf43926", got)
	}
}

// TestFrameBytes pins the byte layout SPEC.md documents.
func TestFrameBytes(t *testing.T) {
	tests := []struct {
		f    Frame
		want string
	}{
		{Frame{Type: TypePing, Seq: 7, Payload: []byte("hi")}, ""},
		{Frame{Type: TypeInfo, Seq: 1}, ""},
	}
	for _, tt := range tests {
		b := tt.f.Encode()
		if b[0] != SOF || Type(b[1]) != tt.f.Type || b[3] != tt.f.Seq || int(b[4])|int(b[5])<<8 != len(tt.f.Payload) {
			t.Errorf("%v: header % x", tt.f.Type, b[:HeaderSize])
		}
		if CRC8(b[1:6]) != b[6] {
			t.Errorf("%v: header CRC", tt.f.Type)
		}
		t.Logf("%v seq %d: %s", tt.f.Type, tt.f.Seq, hex.EncodeToString(b))
	}
}

func TestRoundTrip(t *testing.T) {
	frames := []Frame{
		{Type: TypeHello, Seq: 1, Payload: Hello{Version: 1, Caps: 15, MaxPayload: 4096, Window: 65536}.Encode()},
		{Type: TypeData, Flags: FlagDeflate, Seq: 2, Payload: bytes.Repeat([]byte{SOF, 0, '\n'}, 700)},
		{Type: TypeAck, Seq: 0, Payload: Ack{Received: 1 << 20, Written: 4096}.Encode()},
		{Type: TypeError, Seq: 255, Payload: (&Error{Request: TypeEnd, Code: 0x1503, Message: "validation failed"}).Encode()},
		{Type: TypeInfo, Seq: 3},
	}
	var stream []byte
	for _, f := range frames {
		stream = append(stream, "log line\r\n"...)
		stream = AppendFrame(stream, f)
	}
	stream = append(stream, "tail\n"...)
	// Feed in every chunk size to exercise partial frames.
	for _, chunk := range []int{1, 2, 7, 11, 100, len(stream)} {
		var got []Frame
		var text bytes.Buffer
		d := NewDecoder(4096, func(f Frame) { got = append(got, f) }, func(b []byte) { text.Write(b) })
		for p := stream; len(p) > 0; {
			n := min(chunk, len(p))
			d.Write(p[:n])
			p = p[n:]
		}
		if len(got) != len(frames) {
			t.Fatalf("chunk %d: %d frames, want %d", chunk, len(got), len(frames))
		}
		for i := range frames {
			if got[i].Type != frames[i].Type || got[i].Seq != frames[i].Seq || got[i].Flags != frames[i].Flags || !bytes.Equal(got[i].Payload, frames[i].Payload) {
				t.Errorf("chunk %d: frame %d = %+v, want %+v", chunk, i, got[i], frames[i])
			}
		}
		want := bytes.Repeat([]byte("log line\r\n"), len(frames))
		want = append(want, "tail\n"...)
		if !bytes.Equal(text.Bytes(), want) {
			t.Errorf("chunk %d: text %q, want %q", chunk, text.Bytes(), want)
		}
	}
}
