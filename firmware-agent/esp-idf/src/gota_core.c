/*
 * Device side of the Gota wire protocol (protocol/SPEC.md), portable C99:
 * sessions, the reply cache, requests, the line-rate rules and the task's
 * loop; transfers are in gota_xfer.c. The Go agent (firmware-agent/agent)
 * is the reference for every rule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "gota_core.h"
#include "gota_port.h"
#include "gota_priv.h"

static const char *const s_type_names[] = {
    NULL, "HELLO", "INFO", "STATUS", "BEGIN", "DATA", "END", "ACCEPT", "ROLLBACK", "REBOOT",
    "ABORT", "BAUD", "PING",
};

static void on_frame(void *ctx, const gota_frame_t *f);

void gota_core_init(gota_core_t *g, const gota_core_config_t *cfg)
{
    memset(g, 0, offsetof(gota_core_t, rx));
    g->cfg = *cfg;
    if (g->cfg.max_payload > GOTA_MAX_PAYLOAD || g->cfg.max_payload == 0) {
        g->cfg.max_payload = GOTA_MAX_PAYLOAD;
    }
    if (g->cfg.max_payload < GOTA_BASE_MAX_PAYLOAD) {
        g->cfg.max_payload = GOTA_BASE_MAX_PAYLOAD;
    }
    uint32_t most = GOTA_RING_SIZE - g->cfg.max_payload;
    if (g->cfg.window == 0 || g->cfg.window > most) {
        g->cfg.window = most;
    }
    if (g->cfg.window < (uint32_t)g->cfg.max_payload - 4u) {
        g->cfg.window = (uint32_t)g->cfg.max_payload - 4u;
    }
    /* A wire window must take a whole frame, and a frame decodes to at
     * most the window, which the ring must hold beside its history. */
    if (g->cfg.wire_window > most) {
        g->cfg.wire_window = most;
    }
    if (g->cfg.wire_window < (uint32_t)g->cfg.max_payload + GOTA_OVERHEAD) {
        g->cfg.wire_window = 0;
    }
    if (g->cfg.baud_check_ms == 0) {
        g->cfg.baud_check_ms = 3000;
    }
    if (g->cfg.idle_revert_ms == 0) {
        g->cfg.idle_revert_ms = 5000;
    }
    g->cfg.caps &= GOTA_CAP_ALL;
    g->cfg.caps |= GOTA_CAP_SHA256;
    g->cfg.caps &= ~GOTA_CAP_WIREWINDOW;
    if (g->cfg.wire_window > 0) {
        g->cfg.caps |= GOTA_CAP_WIREWINDOW;
    }
    if (!(g->cfg.caps & GOTA_CAP_DEFLATE)) {
        g->cfg.caps &= ~GOTA_CAP_DELTA;
    }
    g->host_max = GOTA_BASE_MAX_PAYLOAD;
    g->baud = DEFAULT_BAUD;
    gota_decoder_init(&g->dec, g->rx, sizeof(g->rx), g->cfg.max_payload, on_frame, g);
}

/* ---- sending ---------------------------------------------------------- */

void gota_send_small(gota_core_t *g, uint8_t type, uint8_t flags, uint8_t seq, uint16_t len)
{
    size_t n = gota_frame_finish(g->small, type, flags, seq, len);
    gota_port_write_frame(g->small, n);
}

void gota_core_announce(gota_core_t *g, uint8_t reason)
{
    gota_port_log("gota-agent: ready (" GOTA_AGENT_NAME ", protocol 1)\n");
    uint8_t *p = g->small + GOTA_HEADER_LEN;
    p[0] = GOTA_VERSION;
    p[1] = reason;
    memcpy(p + 2, GOTA_AGENT_NAME, sizeof(GOTA_AGENT_NAME) - 1);
    gota_send_small(g, T_READY, 0, 0, (uint16_t)(2 + sizeof(GOTA_AGENT_NAME) - 1));
}

/* reply sends the payload of len bytes built at tx + header as the reply
 * to (type, seq) and keeps it for a retry (SPEC.md 4.2). */
static void reply(gota_core_t *g, uint8_t req, uint8_t seq, uint8_t type, uint16_t len)
{
    g->tx_len = gota_frame_finish(g->tx, type, 0, seq, len);
    g->last_ok = req != T_HELLO;
    g->last_type = req;
    g->last_seq = seq;
    gota_port_write_frame(g->tx, g->tx_len);
}

uint16_t gota_format_error(uint8_t *p, size_t cap, uint8_t req, int32_t code, const char *fmt, va_list ap)
{
    p[0] = req;
    gota_put_u32(p + 1, (uint32_t)code);
    int n = vsnprintf((char *)p + 5, cap - 5, fmt, ap);
    if (n < 0) {
        n = 0;
    }
    if ((size_t)n > cap - 6) {
        n = (int)(cap - 6);
    }
    return (uint16_t)(5 + n);
}

/* fail replies to a request with ERROR (SPEC.md 5.13). */
static void fail(gota_core_t *g, const gota_frame_t *f, int32_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (f->type == T_BAUD) {
        /* BAUD is not remembered: the saved reply stays (SPEC.md 4.2). */
        uint16_t n = gota_format_error(g->small + GOTA_HEADER_LEN, GOTA_SMALL_PAYLOAD, f->type, code, fmt, ap);
        va_end(ap);
        gota_send_small(g, T_ERROR, 0, f->seq, n);
        return;
    }
    uint16_t n = gota_format_error(g->tx + GOTA_HEADER_LEN, GOTA_TX_PAYLOAD, f->type, code, fmt, ap);
    va_end(ap);
    reply(g, f->type, f->seq, T_ERROR, n);
}

static bool short_payload(gota_core_t *g, const gota_frame_t *f, uint16_t want)
{
    if (f->len >= want) {
        return false;
    }
    fail(g, f, E_INVALID_ARG, "%s payload is %u bytes, need %u: payload too short",
         s_type_names[f->type], (unsigned)f->len, (unsigned)want);
    return true;
}

/* ---- requests --------------------------------------------------------- */

static void hello(gota_core_t *g, const gota_frame_t *f)
{
    if (short_payload(g, f, 11)) {
        return;
    }
    const uint8_t *p = f->payload;
    if (p[0] != GOTA_VERSION) {
        fail(g, f, E_NOT_SUPPORTED, "protocol version %u not supported (agent speaks %u)", p[0], GOTA_VERSION);
        return;
    }
    uint16_t hm = gota_get_u16(p + 5);
    g->host_max = hm < GOTA_BASE_MAX_PAYLOAD ? GOTA_BASE_MAX_PAYLOAD : hm;
    g->used = gota_get_u32(p + 1) & g->cfg.caps;
    g->last_ok = false; /* a new session: old replies must not answer its seqs */
    uint8_t *r = g->tx + GOTA_HEADER_LEN;
    r[0] = GOTA_VERSION;
    gota_put_u32(r + 1, g->cfg.caps);
    gota_put_u16(r + 5, g->cfg.max_payload);
    gota_put_u32(r + 7, (g->used & GOTA_CAP_WIREWINDOW) ? g->cfg.wire_window : g->cfg.window);
    memcpy(r + 11, GOTA_AGENT_NAME, sizeof(GOTA_AGENT_NAME) - 1);
    reply(g, T_HELLO, f->seq, T_HELLO | T_REPLY, (uint16_t)(11 + sizeof(GOTA_AGENT_NAME) - 1));
}

/* info sends the INFO text from the requested offset, generated line by
 * line so the whole text is never held. */
static void info(gota_core_t *g, const gota_frame_t *f)
{
    uint32_t offset = 0;
    uint32_t limit = g->host_max;
    if (f->len > 0) {
        if (short_payload(g, f, 4)) {
            return;
        }
        offset = gota_get_u32(f->payload);
        if (f->len >= 6) {
            uint32_t m = gota_get_u16(f->payload + 4);
            if (m != 0) {
                if (m < MIN_INFO_MAX) {
                    m = MIN_INFO_MAX;
                }
                if (m < limit) {
                    limit = m;
                }
            }
        }
    }
    if (limit > GOTA_TX_PAYLOAD) {
        limit = GOTA_TX_PAYLOAD;
    }
    uint8_t *out = g->tx + GOTA_HEADER_LEN + 4;
    uint32_t room = limit - 4, n = 0, pos = 0;
    char line[160];
    for (unsigned i = 0;; i++) {
        size_t len = gota_port_info_line(i, line, sizeof(line));
        if (len == (size_t)-1) {
            break;
        }
        /* copy the part of [pos, pos+len) that lies in [offset+n, offset+room) */
        for (size_t k = 0; k < len; k++) {
            if (pos + k >= offset && n < room) {
                out[n++] = (uint8_t)line[k];
            }
        }
        pos += (uint32_t)len;
    }
    gota_put_u32(g->tx + GOTA_HEADER_LEN, pos);
    reply(g, T_INFO, f->seq, T_INFO | T_REPLY, (uint16_t)(4 + n));
}

static void status(gota_core_t *g, const gota_frame_t *f)
{
    uint8_t *r = g->tx + GOTA_HEADER_LEN;
    memset(r, 0, 45);
    if (g->state != GOTA_IDLE) {
        r[0] = g->state;
        gota_put_u32(r + 1, g->size);
        gota_put_u32(r + 5, g->received);
        gota_put_u32(r + 9, g->written);
        memcpy(r + 13, g->sha, 32);
    }
    reply(g, T_STATUS, f->seq, T_STATUS | T_REPLY, 45);
}

static void begin_reply(gota_core_t *g, const gota_frame_t *f, uint32_t offset)
{
    uint8_t *r = g->tx + GOTA_HEADER_LEN;
    size_t n = strlen(g->label);
    gota_put_u32(r, offset);
    memcpy(r + 4, g->label, n);
    reply(g, T_BEGIN, f->seq, T_BEGIN | T_REPLY, (uint16_t)(4 + n));
}

static void begin(gota_core_t *g, const gota_frame_t *f)
{
    static const uint8_t zero[32];
    if (short_payload(g, f, 37)) {
        return;
    }
    uint32_t size = gota_get_u32(f->payload);
    const uint8_t *sha = f->payload + 4;
    uint8_t flags = f->payload[36];
    if (g->state == GOTA_RECEIVING && (flags & BEGIN_RESUME) && (g->cfg.caps & GOTA_CAP_RESUME) &&
        memcmp(sha, zero, 32) != 0 && size == g->size && memcmp(sha, g->sha, 32) == 0) {
        gota_xfer_drain(g);
        if (g->state == GOTA_RECEIVING) {
            g->gap_sent = false;
            g->acked_w = g->written;
            gota_xfer_drop_kept(g);
            /* A session that negotiated other capabilities continues
             * with those. */
            begin_reply(g, f, g->written);
            return;
        }
    }
    gota_xfer_abort(g);
    uint32_t part_size = 0;
    int32_t err = gota_port_ota_begin(size, g->label, &part_size);
    if (err == E_INVALID_SIZE) {
        fail(g, f, err, "ota error: image of %lu bytes does not fit partition \"%s\" (%lu bytes)",
             (unsigned long)size, g->label, (unsigned long)part_size);
        return;
    }
    if (err != 0) {
        fail(g, f, err, "%s", gota_ota_message(err, 'b'));
        return;
    }
    g->state = GOTA_RECEIVING;
    g->size = size;
    memcpy(g->sha, sha, 32);
    g->received = g->written = g->acked_w = 0;
    g->ring_lo = 0;
    g->gap_sent = false;
    g->err_code = 0;
    g->base_len = (g->used & GOTA_CAP_DELTA) ? gota_port_running_len() : 0;
    gota_xfer_drop_kept(g);
    gota_port_sha_start();
    begin_reply(g, f, 0);
}

static void hex(char *out, const uint8_t *b)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[64] = 0;
}

static void end(gota_core_t *g, const gota_frame_t *f)
{
    static const uint8_t zero[32];
    uint8_t flags = f->len > 0 ? f->payload[0] : 0;
    gota_xfer_drain(g);
    if (g->state == GOTA_IDLE) {
        fail(g, f, E_INVALID_STATE, "no upgrade in progress");
        return;
    }
    if (g->state == GOTA_FAILED) {
        fail(g, f, g->err_code, "%s", g->err_msg);
        return;
    }
    if (g->size > 0 && g->received != g->size) {
        fail(g, f, E_INVALID_SIZE, "received %lu of %lu bytes", (unsigned long)g->received, (unsigned long)g->size);
        return;
    }
    if (memcmp(g->sha, zero, 32) != 0) {
        uint8_t got[32];
        char a[65], b[65];
        gota_port_sha_finish(got);
        if (memcmp(got, g->sha, 32) != 0) {
            hex(a, got);
            hex(b, g->sha);
            gota_xfer_set_failed(g, E_OTA_VALIDATE_FAILED, "");
            snprintf(g->err_msg, sizeof(g->err_msg), "image SHA-256 mismatch: got %s, announced %s", a, b);
            /* otadata is not touched; END again repeats this error */
            fail(g, f, g->err_code, "%s", g->err_msg);
            return;
        }
    }
    g->state = GOTA_IDLE;
    int32_t err = gota_port_ota_end();
    if (err != 0) {
        fail(g, f, err, "%s", gota_ota_message(err, 'e'));
        return;
    }
    reply(g, T_END, f->seq, T_END | T_REPLY, 0);
    if (flags & END_REBOOT) {
        gota_port_restart();
    }
}

static void set_rate(gota_core_t *g, uint32_t baud)
{
    g->baud = baud;
    gota_port_set_baud(baud);
}

static void baud(gota_core_t *g, const gota_frame_t *f)
{
    if (short_payload(g, f, 4)) {
        return;
    }
    uint32_t rate = gota_get_u32(f->payload);
    if (!(g->cfg.caps & GOTA_CAP_BAUD)) {
        fail(g, f, E_NOT_SUPPORTED, "baud-rate change not supported");
        return;
    }
    if (rate < MIN_BAUD || rate > MAX_BAUD) {
        fail(g, f, E_INVALID_ARG, "baud rate %lu out of range %u..%u", (unsigned long)rate, MIN_BAUD, MAX_BAUD);
        return;
    }
    /* BAUD_R goes out of the small buffer: the saved reply stays. */
    uint8_t *p = g->small + GOTA_HEADER_LEN;
    gota_put_u32(p, rate);
    gota_send_small(g, T_BAUD | T_REPLY, 0, f->seq, 4);
    g->prev_baud = g->baud;
    g->switch_ms = gota_port_now_ms();
    g->checking = true;
    set_rate(g, rate);
}

static void request(gota_core_t *g, const gota_frame_t *f)
{
    if (g->last_ok && g->last_type == f->type && g->last_seq == f->seq && f->type != T_HELLO &&
        f->type != T_BAUD) {
        gota_port_write_frame(g->tx, g->tx_len); /* a retry: same answer */
        return;
    }
    switch (f->type) {
    case T_HELLO:
        hello(g, f);
        break;
    case T_INFO:
        info(g, f);
        break;
    case T_STATUS:
        status(g, f);
        break;
    case T_BEGIN:
        begin(g, f);
        break;
    case T_END:
        end(g, f);
        break;
    case T_ACCEPT: {
        int32_t err = gota_port_accept();
        if (err != 0) {
            fail(g, f, err, "%s", gota_ota_message(err, 'a'));
        } else {
            reply(g, T_ACCEPT, f->seq, T_ACCEPT | T_REPLY, 0);
        }
        break;
    }
    case T_ROLLBACK: {
        gota_xfer_abort(g);
        /* On success the device reboots: READY (boot) is the reply. */
        int32_t err = gota_port_rollback();
        fail(g, f, err, "%s", gota_ota_message(err, 'r'));
        break;
    }
    case T_REBOOT:
        reply(g, T_REBOOT, f->seq, T_REBOOT | T_REPLY, 0);
        gota_xfer_abort(g);
        gota_port_restart();
        break;
    case T_ABORT:
        gota_xfer_abort(g);
        reply(g, T_ABORT, f->seq, T_ABORT | T_REPLY, 0);
        break;
    case T_BAUD:
        baud(g, f);
        break;
    case T_PING: {
        uint16_t n = f->len > GOTA_TX_PAYLOAD ? GOTA_TX_PAYLOAD : f->len;
        memmove(g->tx + GOTA_HEADER_LEN, f->payload, n);
        reply(g, T_PING, f->seq, T_PING | T_REPLY, n);
        break;
    }
    default:
        fail(g, f, E_NOT_SUPPORTED, "unknown request type 0x%02X", f->type);
        break;
    }
    g->last_done_ms = gota_port_now_ms();
}

static void on_frame(void *ctx, const gota_frame_t *f)
{
    gota_core_t *g = ctx;
    g->last_frame_ms = gota_port_now_ms();
    if (f->type == T_DATA) {
        gota_xfer_data(g, f);
        return;
    }
    if ((f->type & T_REPLY) || f->type == T_READY || f->type == T_LOG || f->type == T_ERROR) {
        return; /* not a request: a loop-back or a confused peer */
    }
    request(g, f);
}

/* ---- the loop --------------------------------------------------------- */

void gota_core_feed(gota_core_t *g, const uint8_t *p, size_t n)
{
    g->last_rx_ms = gota_port_now_ms();
    gota_decoder_feed(&g->dec, p, n);
}

/* rate_rules applies SPEC.md 7 rules 3 and 5. */
static void rate_rules(gota_core_t *g, uint32_t now)
{
    uint32_t to = 0;
    if (g->checking) {
        if ((int32_t)(g->last_frame_ms - g->switch_ms) > 0) {
            g->checking = false;
        } else if (now - g->switch_ms >= g->cfg.baud_check_ms) {
            to = g->prev_baud;
        }
    }
    if (to == 0 && !g->checking && g->baud != DEFAULT_BAUD && now - g->last_frame_ms >= g->cfg.idle_revert_ms &&
        now - g->last_done_ms >= g->cfg.idle_revert_ms) {
        to = DEFAULT_BAUD;
    }
    if (to == 0) {
        return;
    }
    uint32_t from = g->baud;
    g->checking = false;
    set_rate(g, to);
    char msg[80];
    snprintf(msg, sizeof(msg), "gota-agent: line quiet at %lu baud, back to %lu\n", (unsigned long)from,
             (unsigned long)to);
    gota_port_log(msg);
}

void gota_core_poll(gota_core_t *g, uint32_t wait_ms)
{
    uint8_t buf[256];
    uint32_t held = g->state == GOTA_RECEIVING ? g->received - g->written : 0;
    /* Image bytes go to flash a sector at a time; less waits a moment for
     * the line, then goes too. */
    uint32_t wait = held >= GOTA_WRITE_CHUNK ? 0 : held > 0 ? 2 : wait_ms;
    int n = gota_port_read(buf, sizeof(buf), wait);
    uint32_t now = gota_port_now_ms();
    if (n > 0) {
        gota_core_feed(g, buf, (size_t)n);
    } else if (gota_decoder_pending(&g->dec) && now - g->last_rx_ms >= 100 && gota_port_buffered() == 0) {
        gota_decoder_idle(&g->dec);
    }
    /* Reading comes first: the host sends at most a window beyond what
     * is written, so the driver's ring buffer (at least a window long)
     * cannot overflow however long the agent leaves it. Write a sector's
     * worth, or what is held when the line is quiet or the window nearly
     * full. */
    held = g->state == GOTA_RECEIVING ? g->received - g->written : 0;
    if (held >= GOTA_WRITE_CHUNK || (held > 0 && n <= 0) ||
        held + g->keep_bytes + g->cfg.max_payload > gota_xfer_hold(g)) {
        gota_xfer_write_step(g);
    }
    if (g->checking || g->baud != DEFAULT_BAUD) {
        /* now again: frames handled above may be later than the read */
        rate_rules(g, gota_port_now_ms());
    }
}
