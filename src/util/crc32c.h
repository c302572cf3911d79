/* crc32c.h - CRC-32C (Castagnoli), the checksum of every stream record. */
#ifndef FERRY_CRC32C_H
#define FERRY_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c(0, data, len) starts a checksum; pass the result to continue. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);
/* The table version, whatever the CPU (tests compare the two). */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
