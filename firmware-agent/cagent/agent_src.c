/*
 * The inflater the ESP32 ROM has (esp_rom's rom/miniz.h), from the
 * vendored miniz. The agent's own sources are the symbolic links beside
 * this file (to ../esp-idf/src and ../esp-idf/include), so that cgo
 * builds, and its cache tracks, the very files of the ESP-IDF component.
 */
#include "third_party/miniz/miniz_tinfl.c"
