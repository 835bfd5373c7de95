/*
 * Host ESP-IDF: one virtual device per host_dev_t. The C agent's thread
 * keeps its device in a thread-local pointer; the ESP-IDF functions of
 * esp_host.c find their device there and call into Go (cagent.go).
 */
#pragma once
#include <setjmp.h>
#include <stdint.h>

#include "esp_log.h"
#include "esp_partition.h"

#define HOST_MAX_PARTS 16

typedef struct host_dev {
    uintptr_t go;           /* cgo.Handle of the Go agent */
    void *slot;             /* gota_idf.c's agent (GOTA_HOST_INSTANCES) */
    jmp_buf jmp;            /* esp_restart and stop return here */
    vprintf_like_t vprintf; /* esp_log_set_vprintf */
    esp_partition_t parts[HOST_MAX_PARTS];
    int nparts;
    /* the app's configuration (what Kconfig would give) */
    uint32_t caps;
    uint16_t max_payload;
    int rx_buffer;
    int isr_in_iram;
    uint32_t rate_check_ms, rate_idle_ms;
    int accept_on_boot; /* the app's accept hook says yes */
} host_dev_t;

host_dev_t *host_new(uintptr_t go);
void host_run(host_dev_t *d);
void host_log(host_dev_t *d, const char *p, int n);
void host_attach(host_dev_t *d);
