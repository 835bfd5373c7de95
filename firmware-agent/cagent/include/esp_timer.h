/* Host ESP-IDF subset: esp_timer.h as in ESP-IDF v5.1.3 (components/esp_timer). */
#pragma once
#include <stdint.h>
int64_t esp_timer_get_time(void);
