/* Host ESP-IDF subset: esp_intr_alloc.h as in ESP-IDF v5.1.3 (components/esp_hw_support). */
#pragma once
#define ESP_INTR_FLAG_IRAM (1 << 10)
