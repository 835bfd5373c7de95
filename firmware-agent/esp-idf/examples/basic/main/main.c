/*
 * An ESP-IDF app that can be updated from the Gota page or CLI over its
 * console. Its own ESP_LOG output keeps flowing on the same line.
 */
#include <stdbool.h>

#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "gota_agent.h"

static const char *TAG = "app";

/* A new build runs on trial (ESP_OTA_IMG_PENDING_VERIFY) until it is
 * accepted; if it is not, the bootloader rolls back at the next reset.
 * Accept only once the app works: here, when it got this far. Return
 * false to leave the decision to the host (`gota accept`, the page). */
static bool self_test(void *arg)
{
    (void)arg;
    ESP_LOGI(TAG, "self-test passed: accepting this build");
    return true;
}

void app_main(void)
{
    gota_agent_config_t cfg = GOTA_AGENT_CONFIG_DEFAULT();
    cfg.accept = self_test;
    ESP_ERROR_CHECK(gota_agent_start(&cfg));
    for (int i = 0;; i++) {
        ESP_LOGI(TAG, "tick %d", i);
        vTaskDelay(pdMS_TO_TICKS(5000));
    }
}
