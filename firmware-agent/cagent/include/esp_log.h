/* Host ESP-IDF subset: esp_log.h as in ESP-IDF v5.1.3 (components/log). */
#pragma once
#include <stdarg.h>
typedef int (*vprintf_like_t)(const char *, va_list);
vprintf_like_t esp_log_set_vprintf(vprintf_like_t func);
