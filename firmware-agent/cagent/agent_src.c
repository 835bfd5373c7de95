/*
 * The C agent's sources, compiled into this Go package as they are
 * (cgo builds only the C files of the package directory): the portable
 * part, the ESP-IDF layer (against the host ESP-IDF of esp_host.c), and
 * the inflater the ESP32 ROM has.
 */
#include "../esp-idf/src/gota_frame.c"
#include "../esp-idf/src/gota_core.c"
#include "../esp-idf/src/gota_idf.c"
#include "third_party/miniz/miniz_tinfl.c"
