package cagent

/*
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "rom/miniz.h"

// host_inflate_ring inflates src into the 32 KiB ring from pos on the way
// gota_port_inflate (gota_idf.c) calls the ROM's tinfl: a fresh stream,
// all input at once (no TINFL_FLAG_HAS_MORE_INPUT), output up to the
// ring's end per call. Returns the bytes produced, or -1 on a failed
// stream or one longer than max.
static long host_inflate_ring(tinfl_decompressor *d, uint8_t *ring, uint32_t pos, const uint8_t *src, size_t n, size_t max)
{
    tinfl_init(d);
    size_t out = 0;
    for (;;) {
        size_t in_n = n;
        size_t at = (pos + out) & (TINFL_LZ_DICT_SIZE - 1);
        size_t out_n = TINFL_LZ_DICT_SIZE - at;
        tinfl_status st = tinfl_decompress(d, src, &in_n, ring, ring + at, &out_n, 0);
        src += in_n;
        n -= in_n;
        out += out_n;
        if (out > max) {
            return -1;
        }
        if (st == TINFL_STATUS_DONE) {
            return (long)out;
        }
        if (st != TINFL_STATUS_HAS_MORE_OUTPUT) {
            return -1;
        }
    }
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// RingSize is the size of the inflater's circular output buffer, the
// agent's image ring: DEFLATE's 32 KiB window.
const RingSize = C.TINFL_LZ_DICT_SIZE

// ErrInflate reports a DEFLATE stream the inflater refused: invalid, cut
// short, or longer than the limit.
var ErrInflate = errors.New("cagent: inflate failed")

// InflateRing runs the host's tinfl_decompress (host_tinfl.c, the ROM's
// API on zlib) as the C agent calls it: the raw DEFLATE stream src is
// inflated into ring, a RingSize circular buffer, from pos on, with the
// whole ring before pos as history. It returns the bytes produced. It
// exists so that tests and fuzzing can hold the inflater against Go's
// compress/flate.
func InflateRing(ring []byte, pos int, src []byte, max int) (int, error) {
	if len(ring) != RingSize {
		return 0, fmt.Errorf("cagent: ring of %d bytes, want %d", len(ring), RingSize)
	}
	if pos < 0 || pos >= RingSize {
		return 0, fmt.Errorf("cagent: ring position %d outside [0, %d)", pos, RingSize)
	}
	// The decompressor in C memory: zlib's state in it points into it.
	d := (*C.tinfl_decompressor)(C.malloc(C.sizeof_tinfl_decompressor))
	defer C.free(unsafe.Pointer(d))
	var p *C.uint8_t
	if len(src) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&src[0]))
	}
	n := C.host_inflate_ring(d, (*C.uint8_t)(unsafe.Pointer(&ring[0])), C.uint32_t(pos), p, C.size_t(len(src)), C.size_t(max))
	if n < 0 {
		return 0, ErrInflate
	}
	return int(n), nil
}
