package protocol

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	var sha [32]byte
	for i := range sha {
		sha[i] = byte(i * 3)
	}
	h := Hello{Version: 1, Caps: CapDeflate | CapSHA256, MaxPayload: 4096, Window: 65536, Agent: "gota-go/1"}
	if got, err := DecodeHello(h.Encode()); err != nil || got != h {
		t.Errorf("hello: %+v %v", got, err)
	}
	b := Begin{Size: 316944, SHA256: sha, Flags: BeginResume}
	if got, err := DecodeBegin(b.Encode()); err != nil || got != b {
		t.Errorf("begin: %+v %v", got, err)
	}
	s := Status{State: StatusReceiving, Size: 9, Received: 8, Written: 7, SHA256: sha}
	if got, err := DecodeStatus(s.Encode()); err != nil || got != s {
		t.Errorf("status: %+v %v", got, err)
	}
	for _, a := range []Ack{{Received: 1 << 31, Written: 77}, {Received: 9, Written: 5, GapAt: 300, HasGapAt: true}} {
		if got, err := DecodeAck(a.Encode()); err != nil || got != a {
			t.Errorf("ack: %+v %v", got, err)
		}
	}
	e := &Error{Request: TypeEnd, Code: 0x1503, Message: "validation failed"}
	if got, err := DecodeError(e.Encode()); err != nil || *got != *e {
		t.Errorf("error: %+v %v", got, err)
	}
	if e.Error() != "device: validation failed (ESP_ERR_OTA_VALIDATE_FAILED 0x1503, END)" {
		t.Errorf("error text %q", e.Error())
	}
	r := Ready{Version: 1, Reason: ReadyBoot, Agent: "x"}
	if got, err := DecodeReady(r.Encode()); err != nil || got != r {
		t.Errorf("ready: %+v %v", got, err)
	}
	// Short payloads name the message and sizes.
	if _, err := DecodeBegin(make([]byte, 36)); !errors.Is(err, ErrShort) || err.Error() != "BEGIN payload is 36 bytes, need 37: payload too short" {
		t.Errorf("short begin: %v", err)
	}
}

func TestInfoRoundTrip(t *testing.T) {
	in := &InfoReply{Chip: "esp32", ChipRev: 300, Running: "app0", Next: "app1", Partitions: []Partition{
		{Label: "app0", Subtype: 16, Offset: 0x10000, Size: 0x140000, State: "valid", Name: "arduino-lib-builder", Version: "37d69ca", Date: "Feb 12 2025", Time: "12:11:56", IDFVersion: "v5.3.2", SHA256: "ab01", ImageLen: 316944},
		{Label: "app1", Subtype: 17, Offset: 0x150000, Size: 0x140000},
	}}
	got, err := DecodeInfo(in.Encode())
	if err != nil || !reflect.DeepEqual(got, in) {
		t.Errorf("info round trip:\n got %+v %v\nwant %+v", got, err, in)
	}
	if _, err := DecodeInfo([]byte("chip=esp32\npart=a\nsize=12k\n")); err == nil || err.Error() != `info line 3: size="12k" is not a number` {
		t.Errorf("bad number: %v", err)
	}
	// Chunked transfer.
	text := in.Encode()
	var all []byte
	for len(all) < len(text) {
		total, chunk, err := DecodeInfoChunk(InfoChunk(text, len(all), 40))
		if err != nil || total != len(text) || len(chunk) == 0 {
			t.Fatalf("chunk: %d %d %v", total, len(chunk), err)
		}
		all = append(all, chunk...)
	}
	if !bytes.Equal(all, text) {
		t.Error("chunked info differs")
	}
}

func TestDeflate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	image := make([]byte, 200000)
	for i := range image {
		if i%3 == 0 {
			image[i] = byte(r.IntN(256))
		} else {
			image[i] = byte(i / 1000)
		}
	}
	total := 0
	for off := 0; off < len(image); off += 8192 {
		end := min(off+8192, len(image))
		c := Deflate(image[:off], image[off:end])
		total += len(c)
		plain, err := Inflate(image[:off], c, 8192)
		if err != nil || !bytes.Equal(plain, image[off:end]) {
			t.Fatalf("offset %d: %v", off, err)
		}
	}
	t.Logf("compressed %d -> %d", len(image), total)
	if _, err := Inflate(nil, Deflate(nil, image[:5000]), 4999); err == nil {
		t.Error("no error for output over the limit")
	}
	if _, err := Inflate(nil, []byte{0xFF, 0xFF, 0xFF}, 100); err == nil {
		t.Error("no error for garbage")
	}
}

// FuzzMessages: every payload decoder accepts arbitrary bytes without
// panicking, and what decodes re-encodes to a prefix-equal payload.
func FuzzMessages(f *testing.F) {
	f.Add([]byte{})
	f.Add(Hello{Version: 1, Caps: 15, MaxPayload: 4096, Window: 65536, Agent: "x"}.Encode())
	f.Add(Begin{Size: 9}.Encode())
	f.Add([]byte("chip=esp32\npart=app0\nsize=12\n"))
	f.Add([]byte("part=a\nsubtype=0x10\noffset=99999999999\n"))
	f.Fuzz(func(t *testing.T, p []byte) {
		if m, err := DecodeHello(p); err == nil && !bytes.Equal(m.Encode(), p) {
			t.Errorf("hello %x re-encodes as %x", p, m.Encode())
		}
		if m, err := DecodeBegin(p); err == nil && !bytes.Equal(m.Encode(), p[:37]) {
			t.Errorf("begin %x", p)
		}
		if m, err := DecodeStatus(p); err == nil && !bytes.Equal(m.Encode(), p[:45]) {
			t.Errorf("status %x", p)
		}
		ackLen := 8
		if len(p) >= 12 {
			ackLen = 12 // with gap_at
		}
		if m, err := DecodeAck(p); err == nil && !bytes.Equal(m.Encode(), p[:ackLen]) {
			t.Errorf("ack %x", p)
		}
		if m, err := DecodeError(p); err == nil && !bytes.Equal(m.Encode(), p) {
			t.Errorf("error %x", p)
		}
		if m, err := DecodeReady(p); err == nil && !bytes.Equal(m.Encode(), p) {
			t.Errorf("ready %x", p)
		}
		DecodeBeginReply(p)
		DecodeData(p)
		DecodeInfoChunk(p)
		if m, err := DecodeInfoRequest(p); err == nil && m.Limit(1024) < min(MinInfoMax, 1024) {
			t.Errorf("info request %x: limit %d", p, m.Limit(1024))
		}
		if m, err := DecodeInfo(p); err == nil {
			// The text form is canonical after one round.
			again, err := DecodeInfo(m.Encode())
			if err != nil || !reflect.DeepEqual(again, m) {
				t.Errorf("info %q: round trip %v\n%+v\n%+v", p, err, m, again)
			}
		}
		Inflate(p, p, 1<<16)
	})
}

func TestInfoRequest(t *testing.T) {
	tests := []struct {
		r       InfoRequest
		wire    []byte
		hostMax int
		limit   int
	}{
		{InfoRequest{}, nil, 65535, 65535},
		{InfoRequest{Offset: 300}, []byte{0x2c, 1, 0, 0}, 256, 256},
		{InfoRequest{Offset: 0, Max: 200}, []byte{0, 0, 0, 0, 200, 0}, 65535, 200},
		{InfoRequest{Offset: 1, Max: 5000}, []byte{1, 0, 0, 0, 0x88, 0x13}, 1024, 1024},
		{InfoRequest{Offset: 1, Max: 8}, []byte{1, 0, 0, 0, 8, 0}, 1024, MinInfoMax},
	}
	for _, tt := range tests {
		b := tt.r.Encode()
		if !bytes.Equal(b, tt.wire) {
			t.Errorf("%+v: encoded % x, want % x", tt.r, b, tt.wire)
		}
		got, err := DecodeInfoRequest(b)
		if err != nil || got != tt.r {
			t.Errorf("%+v: decoded %+v, %v", tt.r, got, err)
		}
		if l := got.Limit(tt.hostMax); l != tt.limit {
			t.Errorf("%+v: limit %d for host max %d, want %d", tt.r, l, tt.hostMax, tt.limit)
		}
	}
	if _, err := DecodeInfoRequest([]byte{1, 2}); !errors.Is(err, ErrShort) {
		t.Errorf("2-byte INFO: %v, want ErrShort", err)
	}
	// Offset alone with a trailing odd byte: the limit is absent.
	if r, err := DecodeInfoRequest([]byte{7, 0, 0, 0, 9}); err != nil || r != (InfoRequest{Offset: 7}) {
		t.Errorf("5-byte INFO: %+v, %v", r, err)
	}
}

func TestReadChunks(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	var got []byte
	for c := range ReadChunks(strings.NewReader("log text\n"), stop) {
		got = append(got, c.B...)
		if c.Err != nil {
			if c.Err != io.EOF {
				t.Fatalf("error %v, want io.EOF", c.Err)
			}
			break
		}
	}
	if string(got) != "log text\n" {
		t.Errorf("read %q", got)
	}
}
