/* Host ESP-IDF subset: esp_system.h as in ESP-IDF v5.1.3 (components/esp_system). */
#pragma once
void esp_restart(void) __attribute__((__noreturn__));
