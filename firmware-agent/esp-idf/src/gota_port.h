/*
 * What the portable protocol core (gota_core.c) needs from the platform.
 * gota_idf.c implements it with ESP-IDF calls; nothing else does, so the
 * host build tests the same code an ESP32 runs, against a host
 * implementation of the ESP-IDF API subset (firmware-agent/cagent).
 *
 * Every function returning int32_t returns an esp_err_t (0 = ESP_OK).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Milliseconds since boot (esp_timer_get_time / 1000). */
uint32_t gota_port_now_ms(void);

/* Line: uart_read_bytes with a timeout in ms; returns bytes read (0 on
 * timeout). */
int gota_port_read(uint8_t *buf, size_t len, uint32_t timeout_ms);
/* Bytes already waiting in the UART driver (uart_get_buffered_data_len). */
size_t gota_port_buffered(void);
/* Writes a whole frame, serialised with log text (one lock). */
void gota_port_write_frame(const uint8_t *frame, size_t len);
/* Writes agent log text (the banner), serialised like the app's logs. */
void gota_port_log(const char *text);
/* uart_wait_tx_done then uart_set_baudrate. */
int32_t gota_port_set_baud(uint32_t baud);

/* OTA. gota_port_ota_begin picks esp_ota_get_next_update_partition(NULL),
 * checks size against it (ESP_ERR_INVALID_SIZE, with label and partition
 * size filled in for the message) and calls esp_ota_begin with lazy erase.
 * label must hold 17 bytes. */
int32_t gota_port_ota_begin(uint32_t size, char *label, uint32_t *part_size);
int32_t gota_port_ota_write(const uint8_t *p, size_t n);
/* esp_ota_end then esp_ota_set_boot_partition. */
int32_t gota_port_ota_end(void);
void gota_port_ota_abort(void);
int32_t gota_port_accept(void);
/* esp_ota_mark_app_invalid_rollback_and_reboot: returns only on failure. */
int32_t gota_port_rollback(void);
/* uart_wait_tx_done then esp_restart: does not return. */
void gota_port_restart(void);

/* Flash reads: the partition being written (DEFLATE history after a DELTA
 * frame) and the running app (DELTA dictionary). */
int32_t gota_port_read_target(uint32_t offset, uint8_t *buf, size_t n);
int32_t gota_port_read_running(uint32_t offset, uint8_t *buf, size_t n);
/* Length of the running image through its appended SHA-256 (0: unknown). */
uint32_t gota_port_running_len(void);

/* INFO text (SPEC.md 5.2): gota_port_info_line writes line slot i (with
 * its "\n") into buf and returns its length: 0 for a key without a value,
 * (size_t)-1 after the last slot. Slots are asked for in order from 0. */
size_t gota_port_info_line(unsigned i, char *buf, size_t cap);

/* SHA-256 of the image as written (mbedTLS). */
void gota_port_sha_start(void);
void gota_port_sha_update(const uint8_t *p, size_t n);
void gota_port_sha_finish(uint8_t out[32]);

/* Inflates one complete raw DEFLATE stream into ring, a 32 KiB circular
 * buffer whose bytes before pos are the dictionary (ROM tinfl). Returns
 * the bytes produced, or -1 when the stream is invalid, incomplete or
 * longer than max; *partial tells how many ring bytes from pos on were
 * overwritten either way (up to the whole ring: the caller holds no
 * unwritten bytes in it). */
int gota_port_inflate(uint8_t *ring, uint32_t pos, const uint8_t *src, size_t n, size_t max,
                      size_t *partial);

#ifdef __cplusplus
}
#endif
