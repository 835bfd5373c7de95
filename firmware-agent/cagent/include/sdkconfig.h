/* Host build: the configuration of the virtual ESP32 (firmware-agent/device). */
#pragma once
#define CONFIG_IDF_TARGET "esp32"
#define CONFIG_IDF_TARGET_ESP32 1
#define CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE 1
