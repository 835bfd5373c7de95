/*
 * Framing of the Gota wire protocol (protocol/SPEC.md sections 2 and 3).
 */
#include <string.h>

#include "gota_frame.h"

uint8_t gota_crc8(const uint8_t *p, size_t n)
{
    uint8_t c = 0;
    while (n--) {
        c ^= *p++;
        for (int i = 0; i < 8; i++) {
            c = (c & 0x80) ? (uint8_t)((c << 1) ^ 0x07) : (uint8_t)(c << 1);
        }
    }
    return c;
}

/* A 16-entry table keeps the CRC-32 small (64 bytes of rodata) and about
 * four times faster than the bitwise loop. */
static const uint32_t s_crc32_nibble[16] = {
    0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4, 0x4DB26158, 0x5005713C,
    0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
};

uint32_t gota_crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    uint32_t c = ~crc;
    while (n--) {
        c ^= *p++;
        c = (c >> 4) ^ s_crc32_nibble[c & 0x0F];
        c = (c >> 4) ^ s_crc32_nibble[c & 0x0F];
    }
    return ~c;
}

uint32_t gota_crc32(const uint8_t *p, size_t n)
{
    return gota_crc32_update(0, p, n);
}

void gota_decoder_init(gota_decoder_t *d, uint8_t *buf, size_t cap, uint16_t max_payload,
                       gota_frame_cb_t cb, void *ctx)
{
    memset(d, 0, sizeof(*d));
    d->buf = buf;
    d->cap = cap;
    d->max_payload = max_payload;
    if (cap < GOTA_OVERHEAD + (size_t)max_payload) {
        d->max_payload = (uint16_t)(cap > GOTA_OVERHEAD ? cap - GOTA_OVERHEAD : 0);
    }
    d->cb = cb;
    d->ctx = ctx;
}

/* reject drops the candidate's start byte and keeps what follows from the
 * next start byte on (SPEC.md 3 rule 5). */
static void reject(gota_decoder_t *d)
{
    d->rejected++;
    const uint8_t *next = d->n > 1 ? memchr(d->buf + 1, GOTA_SOF, d->n - 1) : NULL;
    if (next == NULL) {
        d->n = 0;
        return;
    }
    size_t skip = (size_t)(next - d->buf);
    memmove(d->buf, next, d->n - skip);
    d->n -= skip;
}

/* step decides the candidate held, as far as the bytes allow. */
static void step(gota_decoder_t *d)
{
    while (d->n >= GOTA_HEADER_LEN) {
        uint16_t len = gota_get_u16(d->buf + 4);
        if (gota_crc8(d->buf + 1, 5) != d->buf[6] || len > d->max_payload) {
            reject(d);
            continue;
        }
        size_t need = GOTA_OVERHEAD + (size_t)len;
        if (d->n < need) {
            return;
        }
        if (gota_crc32(d->buf + 1, GOTA_HEADER_LEN - 1 + len) != gota_get_u32(d->buf + GOTA_HEADER_LEN + len)) {
            reject(d);
            continue;
        }
        gota_frame_t f = {
            .type = d->buf[1],
            .flags = d->buf[2],
            .seq = d->buf[3],
            .len = len,
            .payload = d->buf + GOTA_HEADER_LEN,
        };
        d->cb(d->ctx, &f);
        /* After a rescan the buffer may hold bytes past this frame: keep
         * them from their next start byte on. */
        size_t rest = d->n - need;
        d->n = 0;
        if (rest > 0) {
            const uint8_t *sof = memchr(d->buf + need, GOTA_SOF, rest);
            if (sof != NULL) {
                d->n = rest - (size_t)(sof - (d->buf + need));
                memmove(d->buf, sof, d->n);
            }
        }
    }
}

void gota_decoder_feed(gota_decoder_t *d, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (d->n == 0) {
            const uint8_t *sof = memchr(p, GOTA_SOF, n);
            if (sof == NULL) {
                return; /* log text: nothing for the agent */
            }
            n -= (size_t)(sof - p);
            p = sof;
        }
        /* Take as many bytes as complete the header, then the frame. */
        size_t want;
        if (d->n < GOTA_HEADER_LEN) {
            want = GOTA_HEADER_LEN - d->n;
        } else {
            want = GOTA_OVERHEAD + (size_t)gota_get_u16(d->buf + 4) - d->n;
        }
        if (want > n) {
            want = n;
        }
        memcpy(d->buf + d->n, p, want);
        d->n += want;
        p += want;
        n -= want;
        step(d);
    }
}

bool gota_decoder_pending(const gota_decoder_t *d)
{
    return d->n > 0;
}

void gota_decoder_idle(gota_decoder_t *d)
{
    if (d->n > 0) {
        reject(d);
        step(d);
    }
}

size_t gota_frame_finish(uint8_t *buf, uint8_t type, uint8_t flags, uint8_t seq, uint16_t len)
{
    buf[0] = GOTA_SOF;
    buf[1] = type;
    buf[2] = flags;
    buf[3] = seq;
    gota_put_u16(buf + 4, len);
    buf[6] = gota_crc8(buf + 1, 5);
    gota_put_u32(buf + GOTA_HEADER_LEN + len, gota_crc32(buf + 1, GOTA_HEADER_LEN - 1 + len));
    return GOTA_OVERHEAD + (size_t)len;
}

size_t gota_frame_encode(uint8_t *buf, uint8_t type, uint8_t flags, uint8_t seq,
                         const uint8_t *payload, uint16_t len)
{
    if (len > 0) {
        memmove(buf + GOTA_HEADER_LEN, payload, len);
    }
    return gota_frame_finish(buf, type, flags, seq, len);
}
