/*
 * Transfers of the Gota agent (protocol/SPEC.md 6): the image ring that is
 * both DEFLATE history and write queue, DATA and ACK, DEFLATE and DELTA,
 * frames kept after a gap (REORDER), writing to flash. Portable C99.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gota_core.h"
#include "gota_port.h"
#include "gota_priv.h"

/* data_error sends an ERROR about DATA (seq 0), not remembered. */
static void data_error(gota_core_t *g, int32_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    uint16_t n = gota_format_error(g->small + GOTA_HEADER_LEN, GOTA_SMALL_PAYLOAD, T_DATA, code, fmt, ap);
    va_end(ap);
    gota_send_small(g, T_ERROR, 0, 0, n);
}

static void send_ack(gota_core_t *g, uint8_t flags, bool gap_at, uint32_t at)
{
    uint8_t *p = g->small + GOTA_HEADER_LEN;
    gota_put_u32(p, g->received);
    gota_put_u32(p + 4, g->written);
    if (gap_at) {
        gota_put_u32(p + 8, at);
    }
    gota_send_small(g, T_ACK, flags, 0, gap_at ? 12 : 8);
}

/* ---- transfer --------------------------------------------------------- */

void gota_xfer_drop_kept(gota_core_t *g)
{
    g->keep_n = 0;
    g->keep_bytes = 0;
    g->keep_used = 0;
}

void gota_xfer_abort(gota_core_t *g)
{
    if (g->state != GOTA_IDLE) {
        gota_port_ota_abort();
    }
    g->state = GOTA_IDLE;
    gota_xfer_drop_kept(g);
}

void gota_xfer_set_failed(gota_core_t *g, int32_t code, const char *msg)
{
    g->state = GOTA_FAILED;
    g->err_code = code;
    snprintf(g->err_msg, sizeof(g->err_msg), "%s", msg);
    gota_xfer_drop_kept(g);
}

/* ota_message is NodeMCU otaupgrade's message for an esp_err_t of a call
 * (SPEC.md 8), so every agent words its errors alike. */
const char *gota_ota_message(int32_t code, char call)
{
    switch (code) {
    case 0x101:
        return "out of memory";
    case 0x105:
        return call == 'b' ? "no OTA partition available" : "ota error";
    case 0x1501:
        return "can't overrite running firmware";
    case 0x1502:
        return "ota data partition invalid";
    case 0x1506:
        return "can't upgrade from unconfirmed firmware";
    case 0x1503:
        return call == 'w' ? "not a valid ota image" : "validation failed";
    case 0x1505:
        return "no other firmware to roll back to";
    case E_INVALID_ARG:
        return call == 'e' ? "empty firmware image" : call == 'w' ? "write not possible, use otaupgrade.commence() first" : "ota error";
    default:
        return call == 'a' ? "firmware accept failed" : "ota error";
    }
}

/* gota_xfer_hold is the most image bytes the agent holds received but
 * not written: the window, or with WIREWINDOW (whose window counts the
 * frames still in the UART ring) what the image ring takes beside a frame
 * being inflated. */
uint32_t gota_xfer_hold(const gota_core_t *g)
{
    if (g->used & GOTA_CAP_WIREWINDOW) {
        return GOTA_RING_SIZE - g->cfg.max_payload;
    }
    return g->cfg.window;
}

/* hold_free is what the image ring takes now: the hold less what is held
 * unwritten or kept after a gap, and no more than the image's rest. */
static int64_t hold_free(const gota_core_t *g)
{
    int64_t free = (int64_t)gota_xfer_hold(g) - (int64_t)(g->received - g->written) - g->keep_bytes;
    if (g->size > 0 && (int64_t)(g->size - g->received) < free) {
        free = (int64_t)(g->size - g->received);
    }
    return free < 0 ? 0 : free;
}

/* write_step writes up to one chunk of received bytes to flash. */
void gota_xfer_write_step(gota_core_t *g)
{
    if (g->state != GOTA_RECEIVING || g->written == g->received) {
        return;
    }
    uint32_t pos = g->written & GOTA_RING_MASK;
    uint32_t n = g->received - g->written;
    if (n > GOTA_WRITE_CHUNK) {
        n = GOTA_WRITE_CHUNK;
    }
    if (n > GOTA_RING_SIZE - pos) {
        n = GOTA_RING_SIZE - pos;
    }
    int32_t err = gota_port_ota_write(g->ring + pos, n);
    if (err != 0) {
        gota_xfer_set_failed(g, err, gota_ota_message(err, 'w'));
        data_error(g, err, "%s", g->err_msg);
        return;
    }
    gota_port_sha_update(g->ring + pos, n);
    g->written += n;
    if (g->written - g->acked_w >= g->cfg.max_payload || g->written == g->received) {
        g->acked_w = g->written;
        send_ack(g, 0, false, 0);
    }
}

void gota_xfer_drain(gota_core_t *g)
{
    while (g->state == GOTA_RECEIVING && g->written < g->received) {
        gota_xfer_write_step(g);
    }
}

/* ring_load reads image bytes [from, to) back into the ring from src
 * (the partition being written, or the running app for DELTA), placed as
 * image offsets [at, at + to - from). */
static bool ring_load(gota_core_t *g, bool running, uint32_t from, uint32_t to, uint32_t at)
{
    while (from < to) {
        uint32_t pos = at & GOTA_RING_MASK;
        uint32_t n = to - from;
        if (n > GOTA_RING_SIZE - pos) {
            n = GOTA_RING_SIZE - pos;
        }
        int32_t err = running ? gota_port_read_running(from, g->ring + pos, n)
                              : gota_port_read_target(from, g->ring + pos, n);
        if (err != 0) {
            return false;
        }
        from += n;
        at += n;
    }
    return true;
}

/* dictionary puts the preset dictionary of a DEFLATE frame at received
 * just before it in the ring (SPEC.md 6.4, 6.7). Everything received is
 * written: the ring's history can be replaced by the running build's
 * bytes and read back from the partition when a later frame needs it. */
static bool dictionary(gota_core_t *g, bool delta)
{
    uint32_t at = g->received;
    if (delta) {
        /* The running build around the same offset. */
        if (!(g->used & GOTA_CAP_DELTA) || g->base_len == 0) {
            return false;
        }
        uint32_t start = at > DELTA_REACH ? at - DELTA_REACH : 0;
        uint32_t end = at + DELTA_REACH < g->base_len ? at + DELTA_REACH : g->base_len;
        if (start >= end) {
            start = end = 0;
        }
        g->ring_lo = at;
        return ring_load(g, true, start, end, at - (end - start));
    }
    uint32_t want = at > GOTA_RING_SIZE ? at - GOTA_RING_SIZE : 0;
    if (g->ring_lo > want) {
        /* Bytes below ring_lo were written before a DELTA frame. */
        if (!ring_load(g, false, want, g->ring_lo, want)) {
            return false;
        }
        g->ring_lo = want;
    }
    return true;
}

static void unkeep(gota_core_t *g, unsigned i);

/* take appends the frame at received to the ring if it decodes and fits
 * the window (SPEC.md 6.2). */
static bool take(gota_core_t *g, const uint8_t *b, uint16_t n, uint8_t flags)
{
    if (flags & FLAG_DEFLATE) {
        /* The dictionary and the output need the whole ring: frames kept
         * in it go (the host resends them). */
        for (unsigned i = 0; i < g->keep_n;) {
            if (g->keep_flags[i] & KEPT_IN_RING) {
                unkeep(g, i);
            } else {
                i++;
            }
        }
        /* The inflater may write up to the end of the ring before it
         * finds a stream too long: nothing unwritten may be there. */
        gota_xfer_drain(g);
    } else if ((g->used & GOTA_CAP_WIREWINDOW) && n > hold_free(g)) {
        /* The host counts only frames not yet taken (SPEC.md 6.8): write
         * first, then take it. */
        gota_xfer_drain(g);
    }
    if (g->state != GOTA_RECEIVING) {
        return false;
    }
    int64_t free = hold_free(g);
    uint32_t pos = g->received & GOTA_RING_MASK;
    uint32_t got;
    if (flags & FLAG_DEFLATE) {
        if (!(g->used & GOTA_CAP_DEFLATE) || !dictionary(g, (flags & FLAG_DELTA) != 0)) {
            return false;
        }
        size_t partial = 0;
        int r = gota_port_inflate(g->ring, pos, b, n, (size_t)free, &partial);
        if (partial > 0 && g->received + partial > GOTA_RING_SIZE) {
            /* Output overwrote the oldest history. */
            uint32_t lo = g->received + (uint32_t)partial - GOTA_RING_SIZE;
            if (lo > g->ring_lo) {
                g->ring_lo = lo;
            }
        }
        if (r < 0) {
            return false;
        }
        got = (uint32_t)r;
    } else {
        if (n > free) {
            return false;
        }
        uint32_t first = n < GOTA_RING_SIZE - pos ? n : GOTA_RING_SIZE - pos;
        memcpy(g->ring + pos, b, first);
        memcpy(g->ring, b + first, n - first);
        got = n;
        if (g->received + n > GOTA_RING_SIZE && g->received + n - GOTA_RING_SIZE > g->ring_lo) {
            g->ring_lo = g->received + n - GOTA_RING_SIZE;
        }
    }
    g->received += got;
    return true;
}

/* keep stores a frame after a gap for later (REORDER). A plain frame goes
 * straight to its place in the ring, beyond received (the history bytes it
 * replaces are written, and read back from flash if a frame needs them);
 * a DEFLATE frame is kept raw in the keep buffer. */
static void keep(gota_core_t *g, uint32_t off, const uint8_t *b, uint16_t n, uint8_t flags)
{
    for (unsigned i = 0; i < g->keep_n; i++) {
        if (g->keep_off[i] == off) {
            return;
        }
    }
    uint32_t hold = gota_xfer_hold(g);
    int64_t room = (int64_t)hold - (int64_t)(g->received - g->written) - g->keep_bytes;
    if (g->keep_n == GOTA_KEEP_FRAMES || (int64_t)n > room || off - g->received >= hold ||
        (g->size > 0 && (uint64_t)off + n > g->size)) {
        return;
    }
    if (!(flags & FLAG_DEFLATE)) {
        /* Its span from received must not reach unwritten bytes. */
        if ((int64_t)(off + n - g->received) > (int64_t)hold - (int64_t)(g->received - g->written)) {
            return;
        }
        uint32_t pos = off & GOTA_RING_MASK;
        uint32_t first = n < GOTA_RING_SIZE - pos ? n : GOTA_RING_SIZE - pos;
        memcpy(g->ring + pos, b, first);
        memcpy(g->ring, b + first, n - first);
        if (off + n > GOTA_RING_SIZE && off + n - GOTA_RING_SIZE > g->ring_lo) {
            g->ring_lo = off + n - GOTA_RING_SIZE;
        }
        flags |= KEPT_IN_RING;
    } else {
        if (g->keep_used + n > GOTA_KEEP_SIZE) {
            return;
        }
        memcpy(g->keep + g->keep_used, b, n);
        g->keep_used += n;
    }
    g->keep_off[g->keep_n] = off;
    g->keep_len[g->keep_n] = n;
    g->keep_flags[g->keep_n] = flags;
    g->keep_n++;
    g->keep_bytes += n;
}

/* keep_start is where kept frame i's bytes begin in keep: the frames kept
 * raw lie there in the order they were kept. */
static uint16_t keep_start(const gota_core_t *g, unsigned i)
{
    uint16_t start = 0;
    for (unsigned j = 0; j < i; j++) {
        if (!(g->keep_flags[j] & KEPT_IN_RING)) {
            start += g->keep_len[j];
        }
    }
    return start;
}

static void reverse(uint8_t *p, size_t n)
{
    for (size_t i = 0, j = n; i + 1 < j; i++, j--) {
        uint8_t t = p[i];
        p[i] = p[j - 1];
        p[j - 1] = t;
    }
}

/* unkeep removes kept frame i. A frame kept raw leaves its bytes just past
 * the ones still kept, at keep + keep_used, where the caller may take them
 * before it keeps anything else (the bytes of the frames after it move
 * down: three reversals rotate them, with no second buffer). */
static void unkeep(gota_core_t *g, unsigned i)
{
    uint16_t n = g->keep_len[i];
    if (!(g->keep_flags[i] & KEPT_IN_RING)) {
        uint16_t start = keep_start(g, i);
        uint8_t *p = g->keep + start;
        size_t span = g->keep_used - start;
        reverse(p, n);
        reverse(p + n, span - n);
        reverse(p, span);
        g->keep_used -= n;
    }
    g->keep_bytes -= n;
    for (unsigned j = i; j + 1 < g->keep_n; j++) {
        g->keep_off[j] = g->keep_off[j + 1];
        g->keep_len[j] = g->keep_len[j + 1];
        g->keep_flags[j] = g->keep_flags[j + 1];
    }
    g->keep_n--;
}

/* follow takes kept frames that continue at received, and drops those
 * left below it. */
static void follow(gota_core_t *g)
{
    for (;;) {
        unsigned i;
        for (i = 0; i < g->keep_n && g->keep_off[i] != g->received; i++) {
        }
        if (i == g->keep_n) {
            break;
        }
        uint16_t n = g->keep_len[i];
        uint8_t flags = g->keep_flags[i];
        /* Unkept first, so that its bytes no longer count against the
         * window and take may drop other kept frames. */
        unkeep(g, i);
        if (flags & KEPT_IN_RING) {
            g->received += n; /* already in place */
            continue;
        }
        if (!take(g, g->keep + g->keep_used, n, flags)) {
            break;
        }
    }
    for (unsigned i = 0; i < g->keep_n;) {
        if (g->keep_off[i] < g->received) {
            unkeep(g, i);
        } else {
            i++;
        }
    }
}

void gota_xfer_data(gota_core_t *g, const gota_frame_t *f)
{
    uint32_t now = gota_port_now_ms();
    if (g->state == GOTA_FAILED) {
        return; /* the error was sent; BEGIN again */
    }
    if (g->state != GOTA_RECEIVING || f->len < 4) {
        if (g->data_err_sent && now - g->data_err_ms < 1000) {
            return;
        }
        g->data_err_sent = true;
        g->data_err_ms = now;
        if (f->len < 4) {
            data_error(g, E_INVALID_ARG, "DATA payload is %u bytes, need 4: payload too short", (unsigned)f->len);
        } else {
            data_error(g, E_INVALID_STATE, "no upgrade in progress");
        }
        return;
    }
    uint32_t off = gota_get_u32(f->payload);
    const uint8_t *b = f->payload + 4;
    uint16_t n = (uint16_t)(f->len - 4);
    if (off < g->received) { /* a duplicate */
        send_ack(g, 0, false, 0);
        return;
    }
    bool ok = off == g->received && take(g, b, n, f->flags);
    if (!ok && off == g->received && g->keep_bytes > 0 && g->state == GOTA_RECEIVING) {
        /* In-order data comes first (SPEC.md 6.2). */
        gota_xfer_drop_kept(g);
        ok = take(g, b, n, f->flags);
    }
    if (g->state != GOTA_RECEIVING) {
        return; /* a write failed while making room (DELTA) */
    }
    if (ok) {
        follow(g);
        g->gap_sent = false;
        send_ack(g, 0, false, 0);
        return;
    }
    if (off > g->received && (g->used & GOTA_CAP_REORDER)) {
        /* Frames after a gap wait for the one missing: make room for
         * them by writing what is held (the Go agent's writer task has
         * written it by now). */
        gota_xfer_drain(g);
        if (g->state != GOTA_RECEIVING) {
            return;
        }
        keep(g, off, b, n, f->flags);
    }
    if (!g->gap_sent || now - g->gap_ms >= GAP_REPEAT_MS) {
        g->gap_sent = true;
        g->gap_ms = now;
        send_ack(g, FLAG_GAP, true, off);
    }
}

