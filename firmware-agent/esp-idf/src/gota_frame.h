/*
 * Gota wire protocol framing (protocol/SPEC.md sections 2 and 3): CRC-8,
 * CRC-32, a streaming frame decoder that treats everything outside valid
 * frames as log text and resynchronises after noise, and an encoder.
 *
 * Portable C99: no ESP-IDF calls, no allocation.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GOTA_SOF 0x01
#define GOTA_HEADER_LEN 7
#define GOTA_OVERHEAD 11          /* header + CRC-32 trailer */
#define GOTA_BASE_MAX_PAYLOAD 256 /* every receiver accepts this much */

uint8_t gota_crc8(const uint8_t *p, size_t n);
uint32_t gota_crc32_update(uint32_t crc, const uint8_t *p, size_t n);
uint32_t gota_crc32(const uint8_t *p, size_t n);

/* A decoded frame; payload points into the decoder's buffer and is valid
 * only during the callback. */
typedef struct {
    uint8_t type;
    uint8_t flags;
    uint8_t seq;
    uint16_t len;
    const uint8_t *payload;
} gota_frame_t;

typedef void (*gota_frame_cb_t)(void *ctx, const gota_frame_t *f);

/* gota_decoder_t holds the undecided bytes of one candidate frame. */
typedef struct {
    uint8_t *buf;
    size_t cap;          /* GOTA_OVERHEAD + max_payload */
    size_t n;            /* bytes held, buf[0] == GOTA_SOF when n > 0 */
    uint16_t max_payload;
    gota_frame_cb_t cb;
    void *ctx;
    uint32_t rejected;   /* candidates rejected (bad CRC, length) */
} gota_decoder_t;

/* gota_decoder_init prepares d to accept payloads of up to max_payload
 * bytes; buf must hold GOTA_OVERHEAD + max_payload bytes. */
void gota_decoder_init(gota_decoder_t *d, uint8_t *buf, size_t cap, uint16_t max_payload,
                       gota_frame_cb_t cb, void *ctx);
/* gota_decoder_feed takes received bytes and calls cb for every valid
 * frame. Bytes outside frames are dropped (an agent gets no log text). */
void gota_decoder_feed(gota_decoder_t *d, const uint8_t *p, size_t n);
/* gota_decoder_pending reports an incomplete candidate (SPEC.md 3 rule 6). */
bool gota_decoder_pending(const gota_decoder_t *d);
/* gota_decoder_idle rejects the incomplete candidate after T_IDLE. */
void gota_decoder_idle(gota_decoder_t *d);

/* gota_frame_finish writes header and CRC-32 around a payload of len bytes
 * already at buf + GOTA_HEADER_LEN and returns the frame length. */
size_t gota_frame_finish(uint8_t *buf, uint8_t type, uint8_t flags, uint8_t seq, uint16_t len);
/* gota_frame_encode copies payload into buf and frames it; buf must hold
 * GOTA_OVERHEAD + len bytes. Returns the frame length. */
size_t gota_frame_encode(uint8_t *buf, uint8_t type, uint8_t flags, uint8_t seq,
                         const uint8_t *payload, uint16_t len);

static inline void gota_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void gota_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint16_t gota_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t gota_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

#ifdef __cplusplus
}
#endif
