/*
 * snapshot_format.h - the snapshot file (docs/snapshot-format.md).
 *
 *   offset 0      struct snap_header (64 bytes, its own CRC)
 *   state_offset  records: u32 type, u32 length, payload, u32 crc32c
 *                 (the CRC covers type, length and payload)
 *   mem_offset    guest RAM, slot after slot, 4 KiB aligned; zero pages
 *                 are holes (the file is sparse), so untouched memory costs
 *                 neither time nor disk.
 */
#ifndef FERRY_SNAPSHOT_FORMAT_H
#define FERRY_SNAPSHOT_FORMAT_H

#include <stdint.h>

#define SNAP_MAGIC        "FERRYSNP"
#define SNAP_VERSION      1
#define SNAP_MAX_RECORD   (64u << 20)

struct snap_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size;    /* sizeof(struct snap_header) */
	uint64_t ram_size;
	uint64_t state_offset;
	uint64_t state_length;
	uint64_t mem_offset;
	uint32_t nrecords;
	uint32_t reserved;
	uint32_t reserved2;
	uint32_t header_crc;     /* crc32c of the bytes before this field */
} __attribute__((packed));

_Static_assert(sizeof(struct snap_header) == 64, "header is 64 bytes");

enum snap_record_type {
	SNAP_REC_CONFIG = 1,  /* JSON: {"memory": N, "vcpus": N, ...} */
	/* 2 and 3: STATE_REC_DEVICE and STATE_REC_VCPU (machine_state.h) */
	SNAP_REC_END = 4,     /* empty; the last record */
};

#endif
