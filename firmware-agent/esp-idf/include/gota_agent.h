/*
 * Gota agent: over-the-air updates from a browser or the gota CLI over the
 * app's own console UART (protocol/SPEC.md). Add the component, call
 * gota_agent_start() from app_main, and the app can be updated from then
 * on; its ESP_LOG output keeps flowing on the same line.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "esp_err.h"
#include "sdkconfig.h"

/* Builds without this component's Kconfig (Arduino-ESP32's precompiled
 * ESP-IDF) get its defaults. */
#ifndef CONFIG_GOTA_UART_NUM
#define CONFIG_GOTA_UART_NUM 0
#define CONFIG_GOTA_UART_TX_PIN (-1)
#define CONFIG_GOTA_UART_RX_PIN (-1)
#define CONFIG_GOTA_UART_BAUD 115200
#define CONFIG_GOTA_UART_RX_BUFFER 32768
#define CONFIG_GOTA_MAX_PAYLOAD 2048
#define CONFIG_GOTA_CAP_DEFLATE 1
#define CONFIG_GOTA_CAP_DELTA 1
#define CONFIG_GOTA_CAP_RESUME 1
#define CONFIG_GOTA_CAP_BAUD 1
#define CONFIG_GOTA_CAP_REORDER 1
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Capability bits the agent can offer (protocol/SPEC.md 5.1). */
#define GOTA_AGENT_CAP_DEFLATE (1u << 0)
#define GOTA_AGENT_CAP_RESUME (1u << 1)
#define GOTA_AGENT_CAP_BAUD (1u << 2)
#define GOTA_AGENT_CAP_REORDER (1u << 4)
#define GOTA_AGENT_CAP_DELTA (1u << 5)

/* gota_accept_hook_t decides, at start, whether a build running on trial
 * (ESP_OTA_IMG_PENDING_VERIFY) is good: return true to mark it valid
 * (esp_ota_mark_app_valid_cancel_rollback). Without a hook the build stays
 * on trial until the host sends ACCEPT, or rolls back at the next reset. */
typedef bool (*gota_accept_hook_t)(void *arg);

typedef struct {
    int uart_num;            /* UART_NUM_0: the console */
    int tx_pin, rx_pin;      /* UART_PIN_NO_CHANGE (-1) keeps the console's pins */
    uint32_t baud;           /* rate at boot: 115200 (the protocol's base rate) */
    int rx_buffer_size;      /* UART driver ring buffer: bounds the window granted */
    bool isr_in_iram;        /* CONFIG_UART_ISR_IN_IRAM: the UART ISR runs during flash writes */
    uint32_t caps;           /* GOTA_AGENT_CAP_*; SHA-256 is always checked */
    uint16_t max_payload;    /* largest frame payload accepted (256..2048) */
    uint32_t rate_check_ms;  /* 0: 3 s to get a frame after a rate change (SPEC.md 7) */
    uint32_t rate_idle_ms;   /* 0: 5 s quiet before returning to 115200 (SPEC.md 7) */
    uint32_t task_stack;     /* bytes */
    int task_priority;
    gota_accept_hook_t accept;
    void *accept_arg;
} gota_agent_config_t;

/* GOTA_AGENT_CONFIG_DEFAULT is the configuration chosen in menuconfig. */
#define GOTA_AGENT_CONFIG_DEFAULT() {                                   \
        .uart_num = CONFIG_GOTA_UART_NUM,                               \
        .tx_pin = CONFIG_GOTA_UART_TX_PIN,                              \
        .rx_pin = CONFIG_GOTA_UART_RX_PIN,                              \
        .baud = CONFIG_GOTA_UART_BAUD,                                  \
        .rx_buffer_size = CONFIG_GOTA_UART_RX_BUFFER,                   \
        .isr_in_iram = GOTA_AGENT_ISR_IN_IRAM,                          \
        .caps = GOTA_AGENT_CAPS,                                        \
        .max_payload = CONFIG_GOTA_MAX_PAYLOAD,                         \
        .rate_check_ms = 0,                                             \
        .rate_idle_ms = 0,                                              \
        .task_stack = 4096,                                             \
        .task_priority = 5,                                             \
        .accept = NULL,                                                 \
        .accept_arg = NULL,                                             \
    }

#ifdef CONFIG_UART_ISR_IN_IRAM
#define GOTA_AGENT_ISR_IN_IRAM true
#else
#define GOTA_AGENT_ISR_IN_IRAM false
#endif

/* Kconfig bools are undefined when off: one macro per capability. */
#ifdef CONFIG_GOTA_CAP_DEFLATE
#define GOTA_AGENT_CFG_DEFLATE GOTA_AGENT_CAP_DEFLATE
#ifdef CONFIG_GOTA_CAP_DELTA
#define GOTA_AGENT_CFG_DELTA GOTA_AGENT_CAP_DELTA
#endif
#endif
#ifdef CONFIG_GOTA_CAP_RESUME
#define GOTA_AGENT_CFG_RESUME GOTA_AGENT_CAP_RESUME
#endif
#ifdef CONFIG_GOTA_CAP_BAUD
#define GOTA_AGENT_CFG_BAUD GOTA_AGENT_CAP_BAUD
#endif
#ifdef CONFIG_GOTA_CAP_REORDER
#define GOTA_AGENT_CFG_REORDER GOTA_AGENT_CAP_REORDER
#endif
#ifndef GOTA_AGENT_CFG_DEFLATE
#define GOTA_AGENT_CFG_DEFLATE 0
#endif
#ifndef GOTA_AGENT_CFG_DELTA
#define GOTA_AGENT_CFG_DELTA 0
#endif
#ifndef GOTA_AGENT_CFG_RESUME
#define GOTA_AGENT_CFG_RESUME 0
#endif
#ifndef GOTA_AGENT_CFG_BAUD
#define GOTA_AGENT_CFG_BAUD 0
#endif
#ifndef GOTA_AGENT_CFG_REORDER
#define GOTA_AGENT_CFG_REORDER 0
#endif
#define GOTA_AGENT_CAPS (GOTA_AGENT_CFG_DEFLATE | GOTA_AGENT_CFG_DELTA | GOTA_AGENT_CFG_RESUME | \
                         GOTA_AGENT_CFG_BAUD | GOTA_AGENT_CFG_REORDER)

/* gota_agent_start installs the UART driver, routes ESP_LOG output
 * through the agent (so log text and frames never mix), runs the accept
 * hook and starts the agent task. It returns ESP_ERR_NO_MEM when the
 * agent's 48 KiB cannot be allocated, or the UART driver's error. */
esp_err_t gota_agent_start(const gota_agent_config_t *cfg);

/* gota_agent_notify_attach makes the agent send READY (attach): call it
 * when a host connects, if the app can tell (USB-CDC DTR). */
void gota_agent_notify_attach(void);

#ifdef __cplusplus
}
#endif
