/* Host stand-in for esp_rom's rom/miniz.h: the ROM's tinfl_decompress,
 * here from the vendored miniz (third_party/miniz). */
#pragma once
#include "../../third_party/miniz/miniz.h"
