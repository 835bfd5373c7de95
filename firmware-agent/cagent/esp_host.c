/*
 * The ESP-IDF API subset the C agent calls, on the host: same signatures
 * and esp_err_t codes as ESP-IDF v5.1.3, backed by the virtual ESP32 of
 * firmware-agent/device through the Go functions of cagent.go.
 *
 * Differences from a chip, all on the host side of the API:
 * - esp_ota_end verifies the image and selects it in otadata (the
 *   device's complete); esp_ota_set_boot_partition then confirms the
 *   partition just completed. The agent calls them back to back, and
 *   checks the SHA-256 before either, as on a chip.
 * - esp_restart and a successful rollback return to host_run with
 *   longjmp, which boots the app again (app_main) on the same thread.
 * - xTaskCreate runs the task in the calling thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
#include "gota_agent.h"
#include "host.h"

#include "_cgo_export.h"

enum { JMP_BOOT = 0, JMP_RESTART = 1, JMP_STOP = 2 };

static __thread host_dev_t *t_dev;

static host_dev_t *dev(void)
{
    return t_dev;
}

void **gota_host_instance(void)
{
    return &t_dev->slot;
}

host_dev_t *host_new(uintptr_t go)
{
    host_dev_t *d = calloc(1, sizeof(*d));
    d->go = go;
    return d;
}

/* ---- boot ------------------------------------------------------------- */

static void load_partitions(host_dev_t *d)
{
    d->nparts = goPartitions(d->go, d->parts, HOST_MAX_PARTS);
}

/* accept_hook is the app's gota_accept_hook_t: its build works. */
static bool accept_hook(void *arg)
{
    (void)arg;
    return true;
}

static void app_main(host_dev_t *d)
{
    gota_agent_config_t cfg = {
        .uart_num = UART_NUM_0,
        .tx_pin = UART_PIN_NO_CHANGE,
        .rx_pin = UART_PIN_NO_CHANGE,
        .baud = 115200,
        .rx_buffer_size = d->rx_buffer,
        .isr_in_iram = d->isr_in_iram != 0,
        .caps = d->caps,
        .max_payload = d->max_payload,
        .rate_check_ms = d->rate_check_ms,
        .rate_idle_ms = d->rate_idle_ms,
        .task_stack = 4096,
        .task_priority = 5,
        .accept = d->accept_on_boot ? accept_hook : NULL,
    };
    gota_agent_start(&cfg);
}

void host_run(host_dev_t *d)
{
    t_dev = d;
    load_partitions(d);
    for (;;) {
        int why = setjmp(d->jmp);
        if (why == JMP_STOP) {
            return;
        }
        app_main(d);
        return; /* the agent task never returns on its own */
    }
}

/* checkpoint returns to host_run when the device rebooted or stops. It is
 * called only on the agent's thread, outside any Go callback. */
static void checkpoint(host_dev_t *d)
{
    int r = goCheckpoint(d->go);
    if (r == 1) {
        longjmp(d->jmp, JMP_RESTART);
    }
    if (r == 2) {
        longjmp(d->jmp, JMP_STOP);
    }
}

static int call_vprintf(vprintf_like_t f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = f(fmt, ap);
    va_end(ap);
    return n;
}

/* host_log is the app's log output (the device's boot and OTA log): through
 * the function esp_log_set_vprintf installed, or straight to the UART. */
void host_log(host_dev_t *d, const char *p, int n)
{
    host_dev_t *saved = t_dev;
    t_dev = d;
    if (d->vprintf != NULL) {
        call_vprintf(d->vprintf, "%.*s", n, p);
    } else {
        char buf[256];
        while (n > 0) {
            int k = n < (int)sizeof(buf) ? n : (int)sizeof(buf);
            for (int i = 0; i < k; i++) {
                buf[i] = p[i] == 0x01 ? '?' : p[i];
            }
            goUartWrite(d->go, (uint8_t *)buf, k);
            p += k;
            n -= k;
        }
    }
    t_dev = saved;
}

void host_attach(host_dev_t *d)
{
    host_dev_t *saved = t_dev;
    t_dev = d;
    if (d->slot != NULL) {
        gota_agent_notify_attach();
    }
    t_dev = saved;
}

/* ---- esp_system, esp_timer, esp_chip_info, esp_log -------------------- */

void esp_restart(void)
{
    host_dev_t *d = dev();
    goRestart(d->go);
    goCheckpoint(d->go); /* consume the reboot */
    longjmp(d->jmp, JMP_RESTART);
}

int64_t esp_timer_get_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void esp_chip_info(esp_chip_info_t *out)
{
    int model = 0, rev = 0;
    goChip(dev()->go, &model, &rev);
    memset(out, 0, sizeof(*out));
    out->model = (esp_chip_model_t)model;
    out->revision = (uint16_t)rev;
    out->cores = 2;
}

vprintf_like_t esp_log_set_vprintf(vprintf_like_t func)
{
    vprintf_like_t prev = dev()->vprintf;
    dev()->vprintf = func;
    return prev != NULL ? prev : vprintf;
}

/* ---- FreeRTOS --------------------------------------------------------- */

BaseType_t xTaskCreate(TaskFunction_t fn, const char *name, uint32_t stack_depth, void *arg, UBaseType_t priority,
                       TaskHandle_t *created)
{
    (void)name;
    (void)stack_depth;
    (void)priority;
    if (created != NULL) {
        *created = xTaskGetCurrentTaskHandle();
    }
    fn(arg);
    return pdPASS;
}

static __thread char t_task_id;

TaskHandle_t xTaskGetCurrentTaskHandle(void)
{
    return (TaskHandle_t)&t_task_id;
}

void vTaskDelay(TickType_t ticks)
{
    struct timespec ts = {.tv_sec = ticks / 1000, .tv_nsec = (long)(ticks % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

SemaphoreHandle_t xSemaphoreCreateMutex(void)
{
    pthread_mutex_t *m = malloc(sizeof(*m));
    if (m != NULL) {
        pthread_mutex_init(m, NULL);
    }
    return (SemaphoreHandle_t)m;
}

BaseType_t xSemaphoreTake(SemaphoreHandle_t s, TickType_t ticks)
{
    pthread_mutex_t *m = (pthread_mutex_t *)s;
    if (ticks == portMAX_DELAY) {
        return pthread_mutex_lock(m) == 0 ? pdTRUE : pdFALSE;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ticks / 1000;
    ts.tv_nsec += (long)(ticks % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_mutex_timedlock(m, &ts) == 0 ? pdTRUE : pdFALSE;
}

BaseType_t xSemaphoreGive(SemaphoreHandle_t s)
{
    return pthread_mutex_unlock((pthread_mutex_t *)s) == 0 ? pdTRUE : pdFALSE;
}

/* ---- UART ------------------------------------------------------------- */

esp_err_t uart_driver_install(uart_port_t uart_num, int rx_buffer_size, int tx_buffer_size, int queue_size,
                              QueueHandle_t *uart_queue, int intr_alloc_flags)
{
    (void)tx_buffer_size;
    (void)queue_size;
    if (uart_num != UART_NUM_0 || rx_buffer_size <= UART_HW_FIFO_LEN(uart_num) || uart_queue != NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    /* The ring buffer size and whether the ISR runs from IRAM (during
     * flash operations) are what the emulated line models. */
    goUartConfig(dev()->go, rx_buffer_size, (intr_alloc_flags & ESP_INTR_FLAG_IRAM) != 0);
    return ESP_OK;
}

bool uart_is_driver_installed(uart_port_t uart_num)
{
    return uart_num == UART_NUM_0;
}

esp_err_t uart_set_baudrate(uart_port_t uart_num, uint32_t baudrate)
{
    if (uart_num != UART_NUM_0) {
        return ESP_ERR_INVALID_ARG;
    }
    return goSetBaud(dev()->go, baudrate);
}

esp_err_t uart_set_pin(uart_port_t uart_num, int tx_io_num, int rx_io_num, int rts_io_num, int cts_io_num)
{
    (void)tx_io_num;
    (void)rx_io_num;
    (void)rts_io_num;
    (void)cts_io_num;
    return uart_num == UART_NUM_0 ? ESP_OK : ESP_ERR_INVALID_ARG;
}

esp_err_t uart_wait_tx_done(uart_port_t uart_num, TickType_t ticks_to_wait)
{
    (void)ticks_to_wait;
    if (uart_num != UART_NUM_0) {
        return ESP_ERR_INVALID_ARG;
    }
    goUartDrain(dev()->go);
    return ESP_OK;
}

int uart_write_bytes(uart_port_t uart_num, const void *src, size_t size)
{
    if (uart_num != UART_NUM_0) {
        return -1;
    }
    return goUartWrite(dev()->go, (uint8_t *)src, (int)size);
}

int uart_read_bytes(uart_port_t uart_num, void *buf, uint32_t length, TickType_t ticks_to_wait)
{
    host_dev_t *d = dev();
    if (uart_num != UART_NUM_0) {
        return -1;
    }
    checkpoint(d);
    int n = goUartRead(d->go, buf, (int)length, (int)ticks_to_wait);
    checkpoint(d);
    return n;
}

esp_err_t uart_get_buffered_data_len(uart_port_t uart_num, size_t *size)
{
    if (uart_num != UART_NUM_0) {
        return ESP_ERR_INVALID_ARG;
    }
    *size = (size_t)goUartBuffered(dev()->go);
    return ESP_OK;
}

/* ---- partitions ------------------------------------------------------- */

struct esp_partition_iterator_opaque_ {
    int next;
    esp_partition_type_t type;
    esp_partition_subtype_t subtype;
    const esp_partition_t *cur;
};

static esp_partition_iterator_t advance(esp_partition_iterator_t it)
{
    host_dev_t *d = dev();
    for (; it->next < d->nparts; it->next++) {
        const esp_partition_t *p = &d->parts[it->next];
        if ((it->type == ESP_PARTITION_TYPE_ANY || p->type == it->type) &&
            (it->subtype == ESP_PARTITION_SUBTYPE_ANY || p->subtype == it->subtype)) {
            it->cur = p;
            it->next++;
            return it;
        }
    }
    free(it);
    return NULL;
}

esp_partition_iterator_t esp_partition_find(esp_partition_type_t type, esp_partition_subtype_t subtype, const char *label)
{
    (void)label;
    esp_partition_iterator_t it = calloc(1, sizeof(*it));
    if (it == NULL) {
        return NULL;
    }
    it->type = type;
    it->subtype = subtype;
    return advance(it);
}

const esp_partition_t *esp_partition_get(esp_partition_iterator_t iterator)
{
    return iterator->cur;
}

esp_partition_iterator_t esp_partition_next(esp_partition_iterator_t iterator)
{
    return advance(iterator);
}

void esp_partition_iterator_release(esp_partition_iterator_t iterator)
{
    free(iterator);
}

static int part_index(const esp_partition_t *p)
{
    host_dev_t *d = dev();
    if (p < d->parts || p >= d->parts + d->nparts) {
        return -1;
    }
    return (int)(p - d->parts);
}

static const esp_partition_t *part_at(int i)
{
    host_dev_t *d = dev();
    return i >= 0 && i < d->nparts ? &d->parts[i] : NULL;
}

esp_err_t esp_partition_read(const esp_partition_t *partition, size_t src_offset, void *dst, size_t size)
{
    if (partition == NULL || dst == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    if (src_offset > partition->size || partition->size - src_offset < size) {
        return ESP_ERR_INVALID_SIZE;
    }
    return goFlashRead(dev()->go, partition->address + (uint32_t)src_offset, dst, (int)size);
}

/* ---- OTA -------------------------------------------------------------- */

const esp_partition_t *esp_ota_get_running_partition(void)
{
    return part_at(goRunning(dev()->go));
}

const esp_partition_t *esp_ota_get_boot_partition(void)
{
    return part_at(goBoot(dev()->go));
}

const esp_partition_t *esp_ota_get_next_update_partition(const esp_partition_t *start_from)
{
    (void)start_from;
    return part_at(goNextUpdate(dev()->go));
}

esp_err_t esp_ota_begin(const esp_partition_t *partition, size_t image_size, esp_ota_handle_t *out_handle)
{
    if (partition == NULL || out_handle == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    int i = part_index(partition);
    if (i < 0) {
        return ESP_ERR_NOT_FOUND;
    }
    esp_err_t err = goOtaBegin(dev()->go, i, image_size == OTA_WITH_SEQUENTIAL_WRITES);
    if (err == ESP_OK) {
        *out_handle = 1;
    }
    return err;
}

esp_err_t esp_ota_write(esp_ota_handle_t handle, const void *data, size_t size)
{
    if (handle == 0 || data == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    return goOtaWrite(dev()->go, (uint8_t *)data, (int)size);
}

esp_err_t esp_ota_end(esp_ota_handle_t handle)
{
    if (handle == 0) {
        return ESP_ERR_NOT_FOUND;
    }
    return goOtaEnd(dev()->go);
}

esp_err_t esp_ota_abort(esp_ota_handle_t handle)
{
    return handle == 0 ? ESP_ERR_NOT_FOUND : ESP_OK;
}

esp_err_t esp_ota_set_boot_partition(const esp_partition_t *partition)
{
    if (partition == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    return goOtaSetBoot(dev()->go, part_index(partition));
}

esp_err_t esp_ota_mark_app_valid_cancel_rollback(void)
{
    return goAccept(dev()->go);
}

esp_err_t esp_ota_mark_app_invalid_rollback_and_reboot(void)
{
    host_dev_t *d = dev();
    esp_err_t err = goRollback(d->go);
    if (err == ESP_OK) {
        goCheckpoint(d->go);
        longjmp(d->jmp, JMP_RESTART);
    }
    return err;
}

esp_err_t esp_ota_get_state_partition(const esp_partition_t *partition, esp_ota_img_states_t *ota_state)
{
    if (partition == NULL || ota_state == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    uint32_t st = 0;
    esp_err_t err = goState(dev()->go, part_index(partition), &st);
    *ota_state = (esp_ota_img_states_t)st;
    return err;
}

esp_err_t esp_ota_get_partition_description(const esp_partition_t *partition, esp_app_desc_t *app_desc)
{
    if (partition == NULL || app_desc == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    /* As esp_ota_ops.c: the descriptor follows the image header and the
     * first segment header. */
    esp_err_t err = esp_partition_read(partition, sizeof(esp_image_header_t) + sizeof(esp_image_segment_header_t),
                                       app_desc, sizeof(*app_desc));
    if (err != ESP_OK) {
        return err;
    }
    return app_desc->magic_word == ESP_APP_DESC_MAGIC_WORD ? ESP_OK : ESP_ERR_NOT_FOUND;
}

esp_err_t esp_image_verify(esp_image_load_mode_t mode, const esp_partition_pos_t *part, esp_image_metadata_t *data)
{
    (void)mode;
    if (part == NULL || data == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    host_dev_t *d = dev();
    int idx = -1;
    for (int i = 0; i < d->nparts; i++) {
        if (d->parts[i].address == part->offset) {
            idx = i;
        }
    }
    uint32_t len = 0;
    int appended = 0;
    esp_err_t err = goVerify(d->go, idx, &len, data->image_digest, &appended);
    if (err != ESP_OK) {
        return err;
    }
    data->image_len = len;
    data->image.hash_appended = (uint8_t)appended;
    return ESP_OK;
}
