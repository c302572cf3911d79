/*
 * ram_codec.h - the RAM_PAGES record, both ways: the source encodes a
 * batch of guest pages into one record, the destination checks and places
 * one.  Everything that knows the format is here (docs/migration-stream.md):
 *
 *   u32 round | u16 count | u16 encoding | count x u64 descriptor | data
 *
 * A descriptor is the page's guest-physical address (4 KiB aligned) with
 * flag bit 0 (MIG_PAGE_ZERO) for a page that is all zeros and has no data.
 * How the data of the other pages is carried is the encoding's business:
 * RAW (0) puts them one after another, 4096 bytes each.  An encoding is a
 * pair of functions on a whole batch (ram_encoding below), so zero-page
 * detection, compression (zstd, lz4) or delta encoding plug in as new
 * encodings, negotiated in HELLO, without touching precopy or incoming.
 *
 * (Version 1 streams had "u32 count" where this has count and encoding:
 * with count <= 256 the bytes are the same and the encoding is RAW.)
 */
#ifndef FERRY_MIG_RAM_CODEC_H
#define FERRY_MIG_RAM_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/record.h"
#include "migration/protocol.h"
#include "vmm/memory.h"

#define RAM_PAGES_HEADER 8u

enum ram_encoding_id {
	RAM_ENC_RAW = 0,
	RAM_ENC_COUNT,
};

/* A batch of pages the source sends in one record. */
struct ram_batch {
	uint32_t round;
	unsigned n;
	/* gpa, | MIG_PAGE_ZERO when the page is known never touched (then
	 * it is not even read) */
	uint64_t desc[MIG_PAGES_PER_RECORD];
};

struct ram_counts {
	uint64_t pages;       /* described */
	uint64_t zero_pages;  /* of which sent as zero */
	uint64_t data_bytes;  /* page data carried (after encoding) */
};

struct ram_encoding {
	const char *name;
	uint16_t id;
	/* The most data bytes encode may produce for n pages. */
	size_t (*max_data)(unsigned n);
	/*
	 * Source: read the batch's pages from mem, write each final
	 * descriptor (unaligned, little-endian) to desc_out[i*8] and the
	 * data to data_out.  Returns the data bytes used.  Each page is
	 * read once, so what is sent is one consistent copy even while the
	 * guest writes (a page written meanwhile is dirty and goes again).
	 */
	size_t (*encode)(const struct guest_memory *mem,
			 const struct ram_batch *b, uint8_t *desc_out,
			 uint8_t *data_out, struct ram_counts *c);
	/*
	 * Destination: place n pages whose descriptors (desc, unaligned)
	 * were checked already; data/len is the record's data part.  fresh:
	 * guest memory here is untouched (round 0), so zero pages need no
	 * write.  Returns 0 or -EPROTO with a message.
	 */
	int (*decode)(struct guest_memory *mem, const uint8_t *desc, unsigned n,
		      const uint8_t *data, size_t len, bool fresh,
		      struct ram_counts *c, char *err);
};

/* The encoding with this id, or NULL. */
const struct ram_encoding *ram_encoding_get(unsigned id);
/* By its name in the capabilities ("none" is RAW), or NULL. */
const struct ram_encoding *ram_encoding_by_name(const char *name);

/**
 * ram_encode() - one RAM_PAGES record for batch b, built in place in w's
 * buffer (the only copy of page data on the source).  Adds to *c.
 * Returns 0 or w's error.
 */
int ram_encode(struct rec_writer *w, const struct ram_encoding *enc,
	       const struct guest_memory *mem, const struct ram_batch *b,
	       struct ram_counts *c);

/* The destination's side. */
struct ram_decoder {
	struct guest_memory *mem;
	uint32_t encodings;   /* bit per encoding id this stream may use */
	struct ram_counts counts;
};

void ram_decoder_init(struct ram_decoder *d, struct guest_memory *mem,
		      uint32_t encodings);

/* The round a RAM_PAGES payload says, without checking the rest. */
int ram_peek_round(const uint8_t *p, uint32_t len, uint32_t *round);

/**
 * ram_decode() - check one RAM_PAGES payload whole (count, encoding, each
 * descriptor's flags and address, the data's length) and only then place
 * its pages in guest memory.  Returns 0 or -EPROTO with a message naming
 * what is wrong; *round (may be NULL) is the record's round.
 */
int ram_decode(struct ram_decoder *d, const uint8_t *p, uint32_t len,
	       uint32_t *round, char *err);

#endif
