// A sketch that can be updated from the Gota page or CLI over USB serial.
#include <GotaAgent.h>

static const char *TAG = "sketch";

// Accept a build on trial once it got this far; return false to leave it
// to the host (gota accept), or to roll back at the next reset.
static bool selfTest(void *)
{
    return true;
}

void setup()
{
    GotaAgent.begin(selfTest);
}

void loop()
{
    ESP_LOGI(TAG, "millis %lu", millis());
    delay(5000);
}
