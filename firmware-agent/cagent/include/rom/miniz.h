/*
 * Host stand-in for esp_rom's rom/miniz.h (ESP-IDF v5.1.3,
 * components/esp_rom/include/esp32/rom/miniz.h): the part of the ROM's
 * miniz 9.1.15 inflater the agent calls, tinfl_init and tinfl_decompress,
 * with the ROM's names, signature, flags and status codes. The ROM's
 * decompressor state is tinfl's own; this one holds a zlib stream
 * (host_tinfl.c) and shares only m_state, the field tinfl_init clears.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint8_t mz_uint8;
typedef uint32_t mz_uint32;

#define MZ_MACRO_END while (0)

/* Decompression flags of tinfl_decompress (the ROM's values).
 * TINFL_FLAG_PARSE_ZLIB_HEADER and TINFL_FLAG_COMPUTE_ADLER32 are not
 * implemented on the host: they give TINFL_STATUS_BAD_PARAM. */
enum {
    TINFL_FLAG_PARSE_ZLIB_HEADER = 1,
    TINFL_FLAG_HAS_MORE_INPUT = 2,
    TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF = 4,
    TINFL_FLAG_COMPUTE_ADLER32 = 8
};

/* Max size of the LZ dictionary. */
#define TINFL_LZ_DICT_SIZE 32768

typedef enum {
    TINFL_STATUS_BAD_PARAM = -3,
    TINFL_STATUS_ADLER32_MISMATCH = -2,
    TINFL_STATUS_FAILED = -1,
    TINFL_STATUS_DONE = 0,
    TINFL_STATUS_NEEDS_MORE_INPUT = 1,
    TINFL_STATUS_HAS_MORE_OUTPUT = 2
} tinfl_status;

/* zlib's allocations for one stream (its inflate state and 32 KiB
 * window) come from arena: tinfl has no end call, and a caller may drop a
 * stream midway (the agent does when the output passes its limit), so
 * nothing may be left on the heap. The state holds pointers into itself:
 * it must not be moved or copied while a stream is under way. */
#define HOST_TINFL_ARENA_SIZE (TINFL_LZ_DICT_SIZE + 16384)

struct tinfl_decompressor_tag {
    mz_uint32 m_state; /* 0: a stream starts on the next call (tinfl_init) */
    tinfl_status m_status;
    z_stream m_zs;
    size_t m_arena_used;
    union { /* aligned for any of zlib's structures */
        unsigned char bytes[HOST_TINFL_ARENA_SIZE];
        long double ld;
        uint64_t u64;
        void *p;
    } m_arena;
};
typedef struct tinfl_decompressor_tag tinfl_decompressor;

/* Initializes the decompressor to its initial state (the ROM's macro). */
#define tinfl_init(r)      \
    do {                   \
        (r)->m_state = 0;  \
    } MZ_MACRO_END

/* Inflates from pIn_buf_next (*pIn_buf_size bytes) into the output buffer
 * that starts at pOut_buf_start, writing from pOut_buf_next on (at most
 * *pOut_buf_size bytes); on return both sizes hold what was consumed and
 * produced. Without TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF the output
 * buffer is circular, (pOut_buf_next - pOut_buf_start + *pOut_buf_size)
 * bytes, a power of two of at least TINFL_LZ_DICT_SIZE, and at a stream's
 * start all of it before pOut_buf_next (wrapping) is the history back
 * references may reach, as tinfl reads it; with the flag the history is
 * the bytes from pOut_buf_start to pOut_buf_next. */
tinfl_status tinfl_decompress(tinfl_decompressor *r, const mz_uint8 *pIn_buf_next, size_t *pIn_buf_size,
                              mz_uint8 *pOut_buf_start, mz_uint8 *pOut_buf_next, size_t *pOut_buf_size,
                              const mz_uint32 decomp_flags);

#ifdef __cplusplus
}
#endif
