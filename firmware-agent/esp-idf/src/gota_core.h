/*
 * The device side of the Gota wire protocol (protocol/SPEC.md), portable
 * C99: sessions, the reply cache, transfers with window, DEFLATE, DELTA,
 * REORDER, resume, SHA-256 before otadata, and the line-rate rules. It
 * runs in one task: gota_core_poll reads the line, handles frames and
 * writes received image bytes to flash between reads, so the UART driver's
 * ring buffer carries the line while the flash erases and programs.
 *
 * Platform calls go through gota_port.h.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "gota_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GOTA_VERSION 1
#define GOTA_AGENT_NAME "gota-c/1"

/* Capability bits (SPEC.md 5.1). */
#define GOTA_CAP_DEFLATE (1u << 0)
#define GOTA_CAP_RESUME (1u << 1)
#define GOTA_CAP_BAUD (1u << 2)
#define GOTA_CAP_SHA256 (1u << 3)
#define GOTA_CAP_REORDER (1u << 4)
#define GOTA_CAP_DELTA (1u << 5)
#define GOTA_CAP_WIREWINDOW (1u << 6)
#define GOTA_CAP_ALL 0x7Fu

/* The image ring: DEFLATE history (32 KiB, RFC 1951's window) and the
 * queue of bytes received but not yet written, in one buffer. */
#define GOTA_RING_SIZE 32768u
#define GOTA_RING_MASK (GOTA_RING_SIZE - 1u)

#ifndef GOTA_MAX_PAYLOAD
#define GOTA_MAX_PAYLOAD 2048 /* largest DATA payload accepted */
#endif
#ifndef GOTA_KEEP_SIZE
#define GOTA_KEEP_SIZE 1024 /* REORDER: bytes of DEFLATE frames kept after a gap */
#endif
#define GOTA_KEEP_FRAMES 16 /* a window holds at most 15 frames */
#define GOTA_TX_PAYLOAD 512   /* replies (INFO_R chunks at most this long) */
#define GOTA_SMALL_PAYLOAD 128 /* ACK, READY, ERROR about DATA */
#define GOTA_WRITE_CHUNK 4096 /* esp_ota_write per step: one sector */

/* Transfer states (SPEC.md 5.3). */
enum { GOTA_IDLE = 0, GOTA_RECEIVING = 1, GOTA_FAILED = 2 };

typedef struct {
    uint32_t caps;         /* offered capabilities (GOTA_CAP_*) */
    uint16_t max_payload;  /* <= GOTA_MAX_PAYLOAD */
    uint32_t window;       /* image bytes held unwritten; <= GOTA_RING_SIZE - max_payload */
    /* WIREWINDOW (SPEC.md 6.8): frame bytes the UART ring takes beyond
     * received; 0 does not offer it */
    uint32_t wire_window;
    uint32_t baud_check_ms; /* 3000 (SPEC.md 7 rule 3) */
    uint32_t idle_revert_ms; /* 5000 (SPEC.md 7 rule 5) */
} gota_core_config_t;

typedef struct {
    gota_core_config_t cfg;
    gota_decoder_t dec;

    /* session */
    uint16_t host_max;
    uint32_t used;
    bool last_ok;
    uint8_t last_type, last_seq;
    size_t tx_len; /* the last reply, kept in tx for retries */

    /* line rate (SPEC.md 7) */
    uint32_t baud, prev_baud;
    uint32_t switch_ms, last_frame_ms, last_done_ms, last_rx_ms, data_err_ms;
    bool checking, data_err_sent;

    /* transfer (SPEC.md 6) */
    uint8_t state;
    uint32_t size, received, written, acked_w;
    uint8_t sha[32];
    char label[17];
    int32_t err_code;
    char err_msg[200];
    uint32_t ring_lo; /* lowest image offset whose bytes the ring holds */
    uint32_t gap_ms;
    bool gap_sent;
    uint32_t base_len; /* running image length, for DELTA */

    /* REORDER: frames kept after a gap, raw, packed in keep */
    uint8_t keep_n;
    uint16_t keep_bytes; /* kept payload bytes (count against the window) */
    uint16_t keep_used;  /* bytes of the keep buffer in use */
    uint32_t keep_off[GOTA_KEEP_FRAMES];
    uint16_t keep_len[GOTA_KEEP_FRAMES];
    uint8_t keep_flags[GOTA_KEEP_FRAMES];

    uint8_t rx[GOTA_OVERHEAD + GOTA_MAX_PAYLOAD];
    uint8_t tx[GOTA_OVERHEAD + GOTA_TX_PAYLOAD];
    uint8_t small[GOTA_OVERHEAD + GOTA_SMALL_PAYLOAD];
    uint8_t keep[GOTA_KEEP_SIZE];
    uint8_t ring[GOTA_RING_SIZE];
} gota_core_t;

/* gota_core_init sets g up from cfg (clamped to what the buffers hold). */
void gota_core_init(gota_core_t *g, const gota_core_config_t *cfg);
/* gota_core_announce prints the banner and sends READY (reason 1 boot,
 * 0 attach). */
void gota_core_announce(gota_core_t *g, uint8_t reason);
/* gota_core_poll runs one step: reads what the line holds (waiting up to
 * wait_ms when there is nothing else to do), handles frames, writes one
 * chunk to flash, applies the idle and rate rules. */
void gota_core_poll(gota_core_t *g, uint32_t wait_ms);
/* gota_core_feed handles received bytes (exposed for tests and fuzzing). */
void gota_core_feed(gota_core_t *g, const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif
