/* Gota: the part of miniz.h the inflater needs (miniz_tinfl.c includes
 * "miniz.h"); the rest of miniz is not vendored. */
#pragma once
#define MINIZ_NO_STDIO
#define MINIZ_NO_TIME
#define MINIZ_NO_DEFLATE_APIS
#define MINIZ_NO_ARCHIVE_APIS
#define MINIZ_NO_ZLIB_APIS
#include "miniz_common.h"
#include "miniz_tinfl.h"
