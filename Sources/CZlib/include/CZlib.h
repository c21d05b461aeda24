#ifndef UNDERCURRENT_CZLIB_H
#define UNDERCURRENT_CZLIB_H
// zlib's gzip file functions, for compressed archives (`.gz`).
#include <zlib.h>
#endif
