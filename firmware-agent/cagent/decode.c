/*
 * Host-only entry to the C frame decoder, for the Go fuzz target: decodes
 * p and writes every frame as type, flags, seq, len (u16 LE), payload.
 */
#include <string.h>

#include "gota_frame.h"

typedef struct {
    uint8_t *out;
    size_t cap, n;
} sink_t;

static void collect(void *ctx, const gota_frame_t *f)
{
    sink_t *s = ctx;
    if (s->n + 5 + f->len > s->cap) {
        return;
    }
    uint8_t *o = s->out + s->n;
    o[0] = f->type;
    o[1] = f->flags;
    o[2] = f->seq;
    gota_put_u16(o + 3, f->len);
    memcpy(o + 5, f->payload, f->len);
    s->n += 5 + (size_t)f->len;
}

size_t host_decode(const uint8_t *p, size_t n, uint16_t max_payload, size_t chunk, uint8_t *out, size_t cap)
{
    static uint8_t buf[GOTA_OVERHEAD + 65535];
    gota_decoder_t d;
    sink_t s = {.out = out, .cap = cap};
    gota_decoder_init(&d, buf, GOTA_OVERHEAD + (size_t)max_payload, max_payload, collect, &s);
    if (chunk == 0) {
        chunk = 1;
    }
    while (n > 0) {
        size_t k = n < chunk ? n : chunk;
        gota_decoder_feed(&d, p, k);
        p += k;
        n -= k;
    }
    return s.n;
}
