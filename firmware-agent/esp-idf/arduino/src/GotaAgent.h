/*
 * GotaAgent: the Gota agent for Arduino-ESP32 3.x sketches.
 *
 *   #include <GotaAgent.h>
 *   void setup() { GotaAgent.begin(); }
 *
 * The agent owns UART0 (the USB serial port of most boards) and its
 * driver: begin() ends Serial. Log with ESP_LOGI/ESP_LOGW/...: those lines
 * go out between the agent's frames. Serial.print would bypass it.
 */
#pragma once

#include <Arduino.h>

#include "gota_agent.h"

class GotaAgentClass {
public:
    /* begin starts the agent. accept, if given, decides whether a build
     * running on trial is good (see gota_accept_hook_t). */
    esp_err_t begin(gota_accept_hook_t accept = nullptr, void *arg = nullptr)
    {
        Serial.end();
        gota_agent_config_t cfg = GOTA_AGENT_CONFIG_DEFAULT();
        cfg.accept = accept;
        cfg.accept_arg = arg;
        return gota_agent_start(&cfg);
    }
};

inline GotaAgentClass GotaAgent;
