/* Gota: stands in for the miniz_export.h miniz's CMake build generates. */
#pragma once
#define MINIZ_EXPORT
