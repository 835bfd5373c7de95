/*
 * Internals shared by gota_core.c (sessions, requests, line rate) and
 * gota_xfer.c (transfers). Not part of the component's interface.
 */
#pragma once

#include <stdarg.h>
#include <stdint.h>

#include "gota_core.h"

/* Message types (SPEC.md 5). */
enum {
    T_HELLO = 0x01, T_INFO, T_STATUS, T_BEGIN, T_DATA, T_END, T_ACCEPT, T_ROLLBACK, T_REBOOT,
    T_ABORT, T_BAUD, T_PING,
    T_READY = 0x40, T_LOG = 0x41, T_ERROR = 0x7F, T_REPLY = 0x80, T_ACK = 0x85,
};

#define FLAG_DEFLATE 0x01
#define FLAG_GAP 0x02
#define FLAG_DELTA 0x04
#define KEPT_IN_RING 0x80 /* a kept frame's flags: its bytes are in the ring */
#define BEGIN_RESUME 0x01
#define END_REBOOT 0x01
#define DEFAULT_BAUD 115200u
#define MIN_BAUD 9600u
#define MAX_BAUD 2000000u
#define DELTA_REACH 16384u
#define MIN_INFO_MAX 64u
#define GAP_REPEAT_MS 1u

/* esp_err_t values the protocol sends (SPEC.md 8). */
#define E_INVALID_ARG 0x102
#define E_INVALID_STATE 0x103
#define E_INVALID_SIZE 0x104
#define E_NOT_SUPPORTED 0x106
#define E_OTA_VALIDATE_FAILED 0x1503

/* Sending (gota_core.c). */
void gota_send_small(gota_core_t *g, uint8_t type, uint8_t flags, uint8_t seq, uint16_t len);
uint16_t gota_format_error(uint8_t *p, size_t cap, uint8_t req, int32_t code, const char *fmt, va_list ap);

/* Transfers (gota_xfer.c). */
const char *gota_ota_message(int32_t code, char call);
void gota_xfer_drop_kept(gota_core_t *g);
void gota_xfer_abort(gota_core_t *g);
void gota_xfer_set_failed(gota_core_t *g, int32_t code, const char *msg);
void gota_xfer_write_step(gota_core_t *g);
void gota_xfer_drain(gota_core_t *g);
uint32_t gota_xfer_hold(const gota_core_t *g);
void gota_xfer_data(gota_core_t *g, const gota_frame_t *f);
