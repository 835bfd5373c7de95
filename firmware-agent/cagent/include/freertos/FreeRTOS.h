/* Host FreeRTOS subset (the types and macros the agent uses). The host
 * ticks at 1 kHz; ESP-IDF's default is 100 Hz, so the agent never relies
 * on sub-tick waits. */
#pragma once
#include <stdint.h>
typedef uint32_t TickType_t;
typedef int BaseType_t;
typedef unsigned int UBaseType_t;
#define pdTRUE 1
#define pdFALSE 0
#define pdPASS 1
#define portMAX_DELAY ((TickType_t)0xffffffffUL)
#define configTICK_RATE_HZ 1000
#define pdMS_TO_TICKS(ms) ((TickType_t)(((uint64_t)(ms) * configTICK_RATE_HZ) / 1000U))
typedef struct QueueDefinition *QueueHandle_t;
