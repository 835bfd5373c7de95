/* Host ESP-IDF subset: esp_flash_partitions.h as in ESP-IDF v5.1.3 (components/bootloader_support). */
#pragma once
#include <stdint.h>
typedef enum {
    ESP_OTA_IMG_NEW = 0x0U,
    ESP_OTA_IMG_PENDING_VERIFY = 0x1U,
    ESP_OTA_IMG_VALID = 0x2U,
    ESP_OTA_IMG_INVALID = 0x3U,
    ESP_OTA_IMG_ABORTED = 0x4U,
    ESP_OTA_IMG_UNDEFINED = 0xFFFFFFFFU,
} esp_ota_img_states_t;
typedef struct {
    uint32_t offset;
    uint32_t size;
} esp_partition_pos_t;
