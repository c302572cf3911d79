/*
 * ram_compress.h - the compressing RAM_PAGES encodings (ram_codec.h):
 * zstd (libzstd) and lz4 (liblz4), each a compressor of a batch's plain
 * page data as one buffer and a decompressor that trusts none of its
 * input: the result must be exactly the length the record's descriptors
 * need, and nothing is written past the buffer it is given.
 */
#ifndef FERRY_MIG_RAM_COMPRESS_H
#define FERRY_MIG_RAM_COMPRESS_H

#include "migration/ram_codec.h"

extern const struct ram_encoding ram_compress_zstd;
extern const struct ram_encoding ram_compress_lz4;

#endif
