package cagent

/*
#include <stddef.h>
#include <stdint.h>
size_t host_decode(const uint8_t *p, size_t n, uint16_t max_payload, size_t chunk, uint8_t *out, size_t cap);
*/
import "C"

import (
	"encoding/binary"
	"sync"
	"unsafe"

	"github.com/gota-dev/gota/protocol"
)

var decodeMu sync.Mutex // host_decode's frame buffer is static

// DecodeFrames runs the C agent's frame decoder (gota_frame.c) over b, fed
// chunk bytes at a time, and returns the frames it finds. It exists so
// that tests and fuzzing can hold the C decoder against the Go one.
func DecodeFrames(b []byte, maxPayload, chunk int) []protocol.Frame {
	decodeMu.Lock()
	defer decodeMu.Unlock()
	out := make([]byte, 2*len(b)+64)
	var p *C.uint8_t
	if len(b) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&b[0]))
	}
	n := C.host_decode(p, C.size_t(len(b)), C.uint16_t(maxPayload), C.size_t(chunk),
		(*C.uint8_t)(unsafe.Pointer(&out[0])), C.size_t(len(out)))
	out = out[:n]
	var frames []protocol.Frame
	for len(out) >= 5 {
		l := int(binary.LittleEndian.Uint16(out[3:]))
		frames = append(frames, protocol.Frame{Type: protocol.Type(out[0]), Flags: out[1], Seq: out[2],
			Payload: append([]byte{}, out[5:5+l]...)})
		out = out[5+l:]
	}
	return frames
}
