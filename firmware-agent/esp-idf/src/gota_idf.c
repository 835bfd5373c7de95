/*
 * The thin ESP-IDF layer of the Gota agent: gota_port.h on ESP-IDF v5.1+
 * (esp_ota_*, esp_partition_read, esp_image_verify, the UART driver,
 * esp_log_set_vprintf, mbedTLS SHA-256, the ROM's miniz tinfl), and
 * gota_agent_start. Signatures checked against ESP-IDF v5.1.3's headers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/uart.h"
#include "esp_chip_info.h"
#include "esp_image_format.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "mbedtls/sha256.h"
#include "mbedtls/version.h"
#include "rom/miniz.h"
#include "sdkconfig.h"

#include "gota_agent.h"
#include "gota_core.h"
#include "gota_port.h"

#if MBEDTLS_VERSION_NUMBER < 0x03000000
/* mbedTLS 2.x (ESP-IDF v4, and Debian 12's library the host build links):
 * the 3.x names (ESP-IDF v5) were the _ret functions. */
#define mbedtls_sha256_starts mbedtls_sha256_starts_ret
#define mbedtls_sha256_update mbedtls_sha256_update_ret
#define mbedtls_sha256_finish mbedtls_sha256_finish_ret
#endif

/* How long frames and log text wait for each other, and for the UART. */
#define LOCK_WAIT pdMS_TO_TICKS(1000)
#define TX_WAIT pdMS_TO_TICKS(1000)

typedef struct {
    gota_core_t core;
    uart_port_t uart;
    SemaphoreHandle_t lock;
    volatile bool attach; /* gota_agent_notify_attach was called */
    bool writing;         /* the agent task holds lock and writes */
    TaskHandle_t task;
    esp_ota_handle_t handle;
    const esp_partition_t *target;
    const esp_partition_t *running;
    mbedtls_sha256_context sha;
    tinfl_decompressor inflater;
    vprintf_like_t prev_vprintf;
    /* INFO: the partition whose lines are being generated, and what
     * esp_image_verify found there (kept small: RAM is budgeted) */
    const esp_partition_t *info_part;
    uint32_t info_len; /* 0: no valid image */
    bool info_hash;
    uint8_t info_digest[32];
} gota_idf_t;

#ifdef GOTA_HOST_INSTANCES
/* The host build runs several virtual devices in one process: the host
 * ESP-IDF (firmware-agent/cagent) keeps one agent pointer per device. */
void **gota_host_instance(void);
#define SELF (*(gota_idf_t **)gota_host_instance())
#else
static gota_idf_t *s_self;
#define SELF s_self
#endif

/* ---- line ------------------------------------------------------------- */

uint32_t gota_port_now_ms(void)
{
    return (uint32_t)(esp_timer_get_time() / 1000);
}

int gota_port_read(uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    gota_idf_t *g = SELF;
    if (g->attach) {
        g->attach = false;
        gota_core_announce(&g->core, 0);
    }
    int n = uart_read_bytes(g->uart, buf, (uint32_t)len, pdMS_TO_TICKS(timeout_ms));
    return n < 0 ? 0 : n;
}

size_t gota_port_buffered(void)
{
    size_t n = 0;
    uart_get_buffered_data_len(SELF->uart, &n);
    return n;
}

static void write_locked(gota_idf_t *g, const void *p, size_t n)
{
    if (xSemaphoreTake(g->lock, LOCK_WAIT) != pdTRUE) {
        return;
    }
    g->writing = true;
    uart_write_bytes(g->uart, p, n);
    g->writing = false;
    xSemaphoreGive(g->lock);
}

void gota_port_write_frame(const uint8_t *frame, size_t len)
{
    write_locked(SELF, frame, len);
}

void gota_port_log(const char *text)
{
    write_locked(SELF, text, strlen(text));
}

/* log_vprintf receives every ESP_LOG line of the app: it goes out between
 * frames, never inside one, and without the frame start byte. */
static int log_vprintf(const char *fmt, va_list ap)
{
    gota_idf_t *g = SELF;
    char buf[256];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (n <= 0 || g == NULL) {
        return n;
    }
    size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == GOTA_SOF) {
            buf[i] = '?';
        }
    }
    /* A log line from inside the agent's own UART write (a driver error)
     * would land in the middle of a frame: drop it. */
    if (g->writing && xTaskGetCurrentTaskHandle() == g->task) {
        return n;
    }
    write_locked(g, buf, len);
    return n;
}

int32_t gota_port_set_baud(uint32_t baud)
{
    uart_wait_tx_done(SELF->uart, TX_WAIT);
    return uart_set_baudrate(SELF->uart, baud);
}

/* ---- OTA -------------------------------------------------------------- */

int32_t gota_port_ota_begin(uint32_t size, char *label, uint32_t *part_size)
{
    gota_idf_t *g = SELF;
    g->target = esp_ota_get_next_update_partition(NULL);
    if (g->target == NULL) {
        return ESP_ERR_NOT_FOUND;
    }
    strncpy(label, g->target->label, 16);
    label[16] = 0;
    *part_size = g->target->size;
    if (size > g->target->size) {
        return ESP_ERR_INVALID_SIZE;
    }
    /* Lazy erase: each sector just before its first write, so erasing
     * overlaps with receiving instead of stalling BEGIN. */
    return esp_ota_begin(g->target, OTA_WITH_SEQUENTIAL_WRITES, &g->handle);
}

int32_t gota_port_ota_write(const uint8_t *p, size_t n)
{
    return esp_ota_write(SELF->handle, p, n);
}

int32_t gota_port_ota_end(void)
{
    gota_idf_t *g = SELF;
    esp_err_t err = esp_ota_end(g->handle);
    g->handle = 0;
    if (err != ESP_OK) {
        return err;
    }
    return esp_ota_set_boot_partition(g->target);
}

void gota_port_ota_abort(void)
{
    gota_idf_t *g = SELF;
    if (g->handle != 0) {
        esp_ota_abort(g->handle);
        g->handle = 0;
    }
}

int32_t gota_port_accept(void)
{
    return esp_ota_mark_app_valid_cancel_rollback();
}

int32_t gota_port_rollback(void)
{
    uart_wait_tx_done(SELF->uart, TX_WAIT);
    return esp_ota_mark_app_invalid_rollback_and_reboot();
}

void gota_port_restart(void)
{
    uart_wait_tx_done(SELF->uart, TX_WAIT);
    esp_restart();
}

int32_t gota_port_read_target(uint32_t offset, uint8_t *buf, size_t n)
{
    return esp_partition_read(SELF->target, offset, buf, n);
}

int32_t gota_port_read_running(uint32_t offset, uint8_t *buf, size_t n)
{
    return esp_partition_read(SELF->running, offset, buf, n);
}

static esp_err_t verify(const esp_partition_t *p, esp_image_metadata_t *md)
{
    esp_partition_pos_t pos = {.offset = p->address, .size = p->size};
    memset(md, 0, sizeof(*md));
    md->start_addr = p->address;
    return esp_image_verify(ESP_IMAGE_VERIFY_SILENT, &pos, md);
}

uint32_t gota_port_running_len(void)
{
    esp_image_metadata_t md;
    return verify(SELF->running, &md) == ESP_OK ? md.image_len : 0;
}

/* ---- INFO ------------------------------------------------------------- */

static const char *chip_name(esp_chip_model_t m)
{
    switch (m) {
    case CHIP_ESP32:
        return "esp32";
    case CHIP_ESP32S2:
        return "esp32s2";
    case CHIP_ESP32S3:
        return "esp32s3";
    case CHIP_ESP32C3:
        return "esp32c3";
    case CHIP_ESP32C2:
        return "esp32c2";
    case CHIP_ESP32C6:
        return "esp32c6";
    case CHIP_ESP32H2:
        return "esp32h2";
    default:
        return CONFIG_IDF_TARGET;
    }
}

static const char *state_name(esp_ota_img_states_t s)
{
    switch (s) {
    case ESP_OTA_IMG_NEW:
        return "new";
    case ESP_OTA_IMG_PENDING_VERIFY:
        return "testing";
    case ESP_OTA_IMG_VALID:
        return "valid";
    case ESP_OTA_IMG_INVALID:
        return "invalid";
    case ESP_OTA_IMG_ABORTED:
        return "aborted";
    default:
        return "undefined";
    }
}

/* app_partition returns the k-th app partition in table order. */
static const esp_partition_t *app_partition(unsigned k)
{
    const esp_partition_t *p = NULL;
    esp_partition_iterator_t it = esp_partition_find(ESP_PARTITION_TYPE_APP, ESP_PARTITION_SUBTYPE_ANY, NULL);
    for (; it != NULL; it = esp_partition_next(it)) {
        if (k-- == 0) {
            p = esp_partition_get(it);
            break;
        }
    }
    esp_partition_iterator_release(it);
    return p;
}

#define PART_LINES 13

static size_t kv(char *buf, size_t cap, const char *k, const char *v)
{
    if (v == NULL || v[0] == 0) {
        return 0;
    }
    int n = snprintf(buf, cap, "%s=%s\n", k, v);
    if (n < 0) {
        return 0;
    }
    if ((size_t)n >= cap) {
        buf[cap - 2] = '\n';
        n = (int)cap - 1;
    }
    for (int i = 0; i < n - 1; i++) {
        if (buf[i] == '\n' || buf[i] == '\r') {
            buf[i] = ' ';
        }
    }
    return (size_t)n;
}

static size_t part_line(gota_idf_t *g, const esp_partition_t *p, unsigned j, char *buf, size_t cap)
{
    char num[72];
    if (j == 0) {
        esp_image_metadata_t md;
        g->info_part = p;
        g->info_len = 0;
        g->info_hash = false;
        if (verify(p, &md) == ESP_OK) {
            g->info_len = md.image_len;
            g->info_hash = md.image.hash_appended != 0;
            memcpy(g->info_digest, md.image_digest, 32);
        }
        return kv(buf, cap, "part", p->label);
    }
    esp_app_desc_t desc;
    const esp_app_desc_t *d = NULL;
    if (j >= 5 && j <= 10 && esp_ota_get_partition_description(p, &desc) == ESP_OK) {
        d = &desc;
    }
    switch (j) {
    case 1:
        snprintf(num, sizeof(num), "%u", (unsigned)p->subtype);
        return kv(buf, cap, "subtype", num);
    case 2:
        snprintf(num, sizeof(num), "%lu", (unsigned long)p->address);
        return kv(buf, cap, "offset", num);
    case 3:
        snprintf(num, sizeof(num), "%lu", (unsigned long)p->size);
        return kv(buf, cap, "size", num);
    case 4: {
        esp_ota_img_states_t st;
        if (esp_ota_get_state_partition(p, &st) != ESP_OK) {
            return 0;
        }
        return kv(buf, cap, "state", state_name(st));
    }
    case 5:
        return d ? kv(buf, cap, "name", d->project_name) : 0;
    case 6:
        return d ? kv(buf, cap, "version", d->version) : 0;
    case 7:
        return d ? kv(buf, cap, "date", d->date) : 0;
    case 8:
        return d ? kv(buf, cap, "time", d->time) : 0;
    case 9:
        return d ? kv(buf, cap, "idf_version", d->idf_ver) : 0;
    case 10:
        if (d == NULL || (d->project_name[0] == 0 && d->secure_version == 0)) {
            return 0;
        }
        snprintf(num, sizeof(num), "%lu", (unsigned long)d->secure_version);
        return kv(buf, cap, "secure_version", num);
    case 11:
        if (g->info_len == 0 || !g->info_hash) {
            return 0;
        }
        for (int i = 0; i < 32; i++) {
            snprintf(num + 2 * i, 3, "%02x", g->info_digest[i]);
        }
        return kv(buf, cap, "sha256", num);
    default:
        if (g->info_len == 0) {
            return 0;
        }
        snprintf(num, sizeof(num), "%lu", (unsigned long)g->info_len);
        return kv(buf, cap, "image_len", num);
    }
}

/* gota_port_info_line generates slot i of the INFO text: 4 device lines,
 * then PART_LINES per app partition; a key without a value gives 0. */
size_t gota_port_info_line(unsigned i, char *buf, size_t cap)
{
    gota_idf_t *g = SELF;
    char num[16];
    switch (i) {
    case 0: {
        esp_chip_info_t ci;
        esp_chip_info(&ci);
        return kv(buf, cap, "chip", chip_name(ci.model));
    }
    case 1: {
        esp_chip_info_t ci;
        esp_chip_info(&ci);
        snprintf(num, sizeof(num), "%u", (unsigned)ci.revision);
        return kv(buf, cap, "chip_rev", num);
    }
    case 2:
        return kv(buf, cap, "running", g->running ? g->running->label : NULL);
    case 3: {
        const esp_partition_t *b = esp_ota_get_boot_partition();
        return kv(buf, cap, "next", b ? b->label : NULL);
    }
    }
    i -= 4;
    const esp_partition_t *p = (i % PART_LINES == 0 || g->info_part == NULL) ? app_partition(i / PART_LINES) : g->info_part;
    if (p == NULL) {
        return (size_t)-1;
    }
    return part_line(g, p, i % PART_LINES, buf, cap);
}

/* ---- SHA-256, inflate ------------------------------------------------- */

void gota_port_sha_start(void)
{
    mbedtls_sha256_init(&SELF->sha);
    mbedtls_sha256_starts(&SELF->sha, 0);
}

void gota_port_sha_update(const uint8_t *p, size_t n)
{
    mbedtls_sha256_update(&SELF->sha, p, n);
}

void gota_port_sha_finish(uint8_t out[32])
{
    mbedtls_sha256_finish(&SELF->sha, out);
    mbedtls_sha256_free(&SELF->sha);
}

int gota_port_inflate(uint8_t *ring, uint32_t pos, const uint8_t *src, size_t n, size_t max, size_t *partial)
{
    tinfl_decompressor *d = &SELF->inflater;
    tinfl_init(d);
    size_t out = 0;
    *partial = 0;
    for (;;) {
        size_t in_n = n;
        /* tinfl with a wrapping 32 KiB output buffer: at most up to the
         * end of the ring per call. */
        size_t room = GOTA_RING_SIZE - ((pos + out) & GOTA_RING_MASK);
        size_t out_n = room;
        tinfl_status st = tinfl_decompress(d, src, &in_n, ring, ring + ((pos + out) & GOTA_RING_MASK), &out_n, 0);
        src += in_n;
        n -= in_n;
        out += out_n;
        *partial = out < GOTA_RING_SIZE ? out : GOTA_RING_SIZE;
        if (out > max) {
            return -1;
        }
        if (st == TINFL_STATUS_DONE) {
            return (int)out;
        }
        if (st != TINFL_STATUS_HAS_MORE_OUTPUT) {
            return -1; /* invalid, or the stream ends before its final block */
        }
    }
}

/* ---- the agent task --------------------------------------------------- */

static void agent_task(void *arg)
{
    gota_idf_t *g = arg;
    gota_core_announce(&g->core, 1);
    for (;;) {
        gota_core_poll(&g->core, 20);
    }
}

void gota_agent_notify_attach(void)
{
    if (SELF != NULL) {
        SELF->attach = true;
    }
}

/* window is the most image bytes the agent can hold unwritten without
 * losing line bytes. It reads the line only between flash writes: what
 * arrives meanwhile waits in the UART driver's ring buffer, which the ISR
 * fills during a flash operation only when it runs from IRAM. Without
 * that, only the 128-byte hardware FIFO is there, so the agent grants a
 * single frame and the host waits for each write. */
static uint32_t window(const gota_agent_config_t *cfg, uint16_t max_payload)
{
    if (!cfg->isr_in_iram) {
        return (uint32_t)max_payload - 4u;
    }
    /* ring bytes carry frames: 11 bytes of framing per frame, and an
     * image byte per wire byte at worst (incompressible data is sent
     * plain). */
    uint32_t frames = (uint32_t)cfg->rx_buffer_size / ((uint32_t)max_payload + GOTA_OVERHEAD);
    uint32_t w = frames * ((uint32_t)max_payload - 4u);
    return w > 0 ? w : (uint32_t)max_payload - 4u;
}

/* wire_window is the window for a host that counts frame bytes (SPEC.md
 * 6.8): the UART ring less a frame for requests. Frames wait there
 * compressed until the agent has room to inflate them. Without the ISR in
 * IRAM the ring fills nothing during a flash operation: not offered. */
static uint32_t wire_window(const gota_agent_config_t *cfg, uint16_t max_payload)
{
    uint32_t frame = (uint32_t)max_payload + GOTA_OVERHEAD;
    if (!cfg->isr_in_iram || (uint32_t)cfg->rx_buffer_size <= frame) {
        return 0;
    }
    return (uint32_t)cfg->rx_buffer_size - frame;
}

esp_err_t gota_agent_start(const gota_agent_config_t *cfg)
{
    gota_idf_t *g = SELF;
    if (g == NULL) {
        g = calloc(1, sizeof(*g));
        if (g == NULL) {
            return ESP_ERR_NO_MEM;
        }
        g->lock = xSemaphoreCreateMutex();
        if (g->lock == NULL) {
            free(g);
            return ESP_ERR_NO_MEM;
        }
        SELF = g;
    } else {
        /* The host boots the app again in the same process. */
        xSemaphoreTake(g->lock, portMAX_DELAY);
        SemaphoreHandle_t lock = g->lock;
        memset(g, 0, sizeof(*g));
        g->lock = lock;
        xSemaphoreGive(g->lock);
    }
    g->uart = cfg->uart_num;
    esp_err_t err = uart_driver_install(g->uart, cfg->rx_buffer_size, 0, 0, NULL,
                                        cfg->isr_in_iram ? ESP_INTR_FLAG_IRAM : 0);
    if (err != ESP_OK) {
        return err;
    }
    if (cfg->tx_pin != UART_PIN_NO_CHANGE || cfg->rx_pin != UART_PIN_NO_CHANGE) {
        uart_set_pin(g->uart, cfg->tx_pin, cfg->rx_pin, UART_PIN_NO_CHANGE, UART_PIN_NO_CHANGE);
    }
    uart_set_baudrate(g->uart, cfg->baud);
    g->running = esp_ota_get_running_partition();

    uint16_t max_payload = cfg->max_payload;
    if (max_payload < GOTA_BASE_MAX_PAYLOAD || max_payload > GOTA_MAX_PAYLOAD) {
        max_payload = GOTA_MAX_PAYLOAD;
    }
    gota_core_config_t cc = {
        .caps = cfg->caps,
        .max_payload = max_payload,
        .window = window(cfg, max_payload),
        .wire_window = wire_window(cfg, max_payload),
        .baud_check_ms = cfg->rate_check_ms,
        .idle_revert_ms = cfg->rate_idle_ms,
    };
    gota_core_init(&g->core, &cc);
    g->prev_vprintf = esp_log_set_vprintf(log_vprintf);

    esp_ota_img_states_t st;
    if (cfg->accept != NULL && g->running != NULL && esp_ota_get_state_partition(g->running, &st) == ESP_OK &&
        st == ESP_OTA_IMG_PENDING_VERIFY && cfg->accept(cfg->accept_arg)) {
        esp_ota_mark_app_valid_cancel_rollback();
    }
    if (xTaskCreate(agent_task, "gota", cfg->task_stack, g, (UBaseType_t)cfg->task_priority, &g->task) != pdPASS) {
        return ESP_ERR_NO_MEM;
    }
    return ESP_OK;
}
