/* Host FreeRTOS subset: tasks. xTaskCreate runs the task function in the
 * calling thread (the host starts one thread per virtual device). */
#pragma once
#include <stdint.h>
#include "freertos/FreeRTOS.h"
typedef struct tskTaskControlBlock *TaskHandle_t;
typedef void (*TaskFunction_t)(void *);
BaseType_t xTaskCreate(TaskFunction_t fn, const char *name, uint32_t stack_depth, void *arg, UBaseType_t priority,
                       TaskHandle_t *created);
TaskHandle_t xTaskGetCurrentTaskHandle(void);
void vTaskDelay(TickType_t ticks);
