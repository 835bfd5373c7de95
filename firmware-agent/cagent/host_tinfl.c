/*
 * tinfl_decompress of the ESP32 ROM (esp_rom's rom/miniz.h, miniz 9.1.15)
 * for the host build, on Debian's zlib: a raw inflater (windowBits -15)
 * whose preset dictionary is the history tinfl would read back from the
 * caller's output buffer when a stream starts. Only the API is the ROM's;
 * the state behind it is zlib's, in the decompressor's own arena.
 */
#include <stdlib.h>
#include <string.h>

#include "rom/miniz.h"

#define STATE_STARTED 1

/* zlib's allocator: bump allocation in the decompressor's arena, which a
 * new stream resets (see HOST_TINFL_ARENA_SIZE). */
static voidpf arena_alloc(voidpf opaque, uInt items, uInt size)
{
    tinfl_decompressor *r = opaque;
    size_t n = (size_t)items * size;
    if (size != 0 && n / size != items) {
        return Z_NULL;
    }
    n = (n + 15u) & ~(size_t)15u;
    if (n > sizeof(r->m_arena.bytes) - r->m_arena_used) {
        return Z_NULL;
    }
    void *p = r->m_arena.bytes + r->m_arena_used;
    r->m_arena_used += n;
    return p;
}

static void arena_free(voidpf opaque, voidpf address)
{
    /* Freed all at once when the next stream starts. */
}

/* Ends the stream with a status that every later call returns, as tinfl
 * does once it is done or has failed. */
static tinfl_status finish(tinfl_decompressor *r, tinfl_status st)
{
    r->m_state = STATE_STARTED;
    r->m_status = st;
    return st;
}

/* Gives zlib the history the ROM's tinfl would reach at a stream's start:
 * the dict bytes before out_next, oldest first (wrapping round a circular
 * buffer of buf_size bytes). */
static int set_history(tinfl_decompressor *r, const mz_uint8 *start, size_t off, size_t buf_size, size_t dict)
{
    if (dict == 0) {
        return Z_OK;
    }
    mz_uint8 *hist = malloc(dict);
    if (hist == NULL) {
        return Z_MEM_ERROR;
    }
    /* history byte i (0 oldest) is buffer byte (off - dict + i) mod buf_size */
    size_t first = (off + buf_size - dict) % buf_size;
    size_t head = buf_size - first < dict ? buf_size - first : dict;
    memcpy(hist, start + first, head);
    memcpy(hist + head, start, dict - head);
    int zr = inflateSetDictionary(&r->m_zs, hist, (uInt)dict);
    free(hist);
    return zr;
}

/* pad_zeros goes on past the end of the input the way miniz 9.1.15's tinfl
 * does when the caller says there is no more (no TINFL_FLAG_HAS_MORE_INPUT):
 * its TINFL_GET_BYTE reads zero bytes beyond the end ("pads the end of the
 * stream with 0's", miniz.c v1.15), except for a stored block's data, which
 * fails (TINFL_STATUS_FAILED). So a stream cut short may still end, with
 * bytes that were never sent. Newer miniz fails instead
 * (TINFL_STATUS_FAILED_CANNOT_MAKE_PROGRESS); the ROM has 9.1.15.
 * Zeros go in one at a time, so that a stored block whose header the zeros
 * complete is caught before zlib copies any of them. Returns Z_OK when the
 * output buffer is full, Z_STREAM_END, or an error. */
static int pad_zeros(z_stream *zs)
{
    static const Bytef zero;
    unsigned idle = 0;
    for (;;) {
        long mark = inflateMark(zs);
        if (mark > -65536L && mark < 0) {
            return Z_DATA_ERROR; /* inside a stored block with bytes to copy */
        }
        uInt before = zs->avail_out;
        zs->next_in = (z_const Bytef *)&zero;
        zs->avail_in = 1;
        int zr = inflate(zs, Z_NO_FLUSH);
        zs->avail_in = 0;
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            return zr;
        }
        if (zs->avail_out == 0) {
            return Z_OK;
        }
        /* Zero bits end a stream, or fail it, within one block header
         * (under 600 bytes: 316 code lengths of at most 14 bits) unless
         * they decode as output: a guard, never reached. */
        idle = zs->avail_out == before ? idle + 1 : 0;
        if (idle > 1024) {
            return Z_DATA_ERROR;
        }
    }
}

/* Starts a stream: TINFL_STATUS_NEEDS_MORE_INPUT, the state of a fresh
 * stream, or a failure. */
static tinfl_status start_stream(tinfl_decompressor *r, const mz_uint8 *out_start, size_t off, size_t out_room,
                                 mz_uint32 flags)
{
    size_t buf_size = off + out_room;
    size_t dict;
    if (flags & TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF) {
        dict = off < TINFL_LZ_DICT_SIZE ? off : TINFL_LZ_DICT_SIZE;
    } else {
        /* tinfl masks its distances with the buffer size, a power of two.
         * A buffer smaller than the dictionary would alias distances,
         * which zlib's window cannot reproduce: refused. */
        if ((buf_size & (buf_size - 1)) != 0 || buf_size < TINFL_LZ_DICT_SIZE) {
            return TINFL_STATUS_BAD_PARAM;
        }
        dict = TINFL_LZ_DICT_SIZE;
    }
    memset(&r->m_zs, 0, sizeof(r->m_zs));
    r->m_arena_used = 0;
    r->m_zs.zalloc = arena_alloc;
    r->m_zs.zfree = arena_free;
    r->m_zs.opaque = r;
    if (inflateInit2(&r->m_zs, -MAX_WBITS) != Z_OK) {
        return TINFL_STATUS_FAILED;
    }
    if (set_history(r, out_start, off, buf_size, dict) != Z_OK) {
        return TINFL_STATUS_FAILED;
    }
    r->m_state = STATE_STARTED;
    return r->m_status = TINFL_STATUS_NEEDS_MORE_INPUT;
}

tinfl_status tinfl_decompress(tinfl_decompressor *r, const mz_uint8 *pIn_buf_next, size_t *pIn_buf_size,
                              mz_uint8 *pOut_buf_start, mz_uint8 *pOut_buf_next, size_t *pOut_buf_size,
                              const mz_uint32 decomp_flags)
{
    size_t in_n = *pIn_buf_size;
    size_t out_n = *pOut_buf_size;
    *pIn_buf_size = 0;
    *pOut_buf_size = 0;
    if (pOut_buf_next < pOut_buf_start ||
        (decomp_flags & (TINFL_FLAG_PARSE_ZLIB_HEADER | TINFL_FLAG_COMPUTE_ADLER32)) != 0 || in_n > UINT32_MAX ||
        out_n > UINT32_MAX) {
        return TINFL_STATUS_BAD_PARAM;
    }
    if (r->m_state != STATE_STARTED) {
        tinfl_status st = start_stream(r, pOut_buf_start, (size_t)(pOut_buf_next - pOut_buf_start), out_n,
                                       decomp_flags);
        if (st < 0) {
            return finish(r, st);
        }
    } else if (r->m_status <= TINFL_STATUS_DONE) {
        return r->m_status;
    }

    z_stream *zs = &r->m_zs;
    zs->next_in = (z_const Bytef *)pIn_buf_next;
    zs->avail_in = (uInt)in_n;
    zs->next_out = pOut_buf_next;
    zs->avail_out = (uInt)out_n;
    int zr = inflate(zs, Z_NO_FLUSH);
    *pIn_buf_size = in_n - zs->avail_in;
    *pOut_buf_size = out_n - zs->avail_out;
    if (zr == Z_OK || zr == Z_BUF_ERROR) { /* Z_BUF_ERROR: no progress possible */
        if (zs->avail_out == 0) {
            return r->m_status = TINFL_STATUS_HAS_MORE_OUTPUT;
        }
        if (decomp_flags & TINFL_FLAG_HAS_MORE_INPUT) {
            return r->m_status = TINFL_STATUS_NEEDS_MORE_INPUT;
        }
        zr = pad_zeros(zs);
        *pOut_buf_size = out_n - zs->avail_out;
    }
    switch (zr) {
    case Z_STREAM_END:
        return finish(r, TINFL_STATUS_DONE);
    case Z_OK:
        return r->m_status = TINFL_STATUS_HAS_MORE_OUTPUT;
    default: /* Z_DATA_ERROR: invalid stream; Z_MEM_ERROR: arena too small */
        return finish(r, TINFL_STATUS_FAILED);
    }
}
