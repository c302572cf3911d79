/*
 * ram_codec.h - the RAM_PAGES record, both ways: the source encodes a
 * batch of guest pages into one record, the destination checks and places
 * one.  Everything that knows the format is here (docs/migration-stream.md):
 *
 *   u32 round | u16 count | u16 encoding | count x u64 descriptor | data
 *
 * A descriptor is the page's guest-physical address (4 KiB aligned) with
 * flag bit 0 (MIG_PAGE_ZERO) for a page that is all zeros and has no data.
 * The data of the other pages, one after another, 4096 bytes each, is
 * the "plain" data; the encoding says how it travels: RAW (0) as it is,
 * ZSTD (1) as one zstd frame, LZ4 (2) as one LZ4 block, each of which
 * must decompress to exactly the plain length.  The encoding is chosen
 * per batch: a compressing source sends a batch that does not shrink
 * RAW.  Which compression a stream may use is negotiated in HELLO
 * ("compression" capability).
 *
 * (Version 1 streams had "u32 count" where this has count and encoding:
 * with count <= 256 the bytes are the same and the encoding is RAW.)
 *
 * Deltas (capability "xbzrle"): a descriptor with MIG_PAGE_DELTA is a
 * page whose data is a delta (delta.h) against the page the destination
 * holds.  Such a record has, between its descriptors and its data, one
 * u16 per delta page (in descriptor order): the delta's length, 0 to
 * RAM_DELTA_MAX.  The plain data is then each data page's 4096 bytes or
 * delta, in descriptor order, and the encoding applies to all of it.
 */
#ifndef FERRY_MIG_RAM_CODEC_H
#define FERRY_MIG_RAM_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/record.h"
#include "migration/protocol.h"
#include "vmm/memory.h"

struct delta_cache;

#define RAM_PAGES_HEADER 8u
/* The longest delta a record may carry (a longer one would not be
 * smaller than the page), and the longest the source makes: past 3 KiB
 * the saving (under a quarter of the page) is not worth the decoder's
 * work, and the encoder gives up early on pages that changed a lot. */
#define RAM_DELTA_MAX   4095u
#define RAM_DELTA_LIMIT 3072u

enum ram_encoding_id {
	RAM_ENC_RAW = 0,
	RAM_ENC_ZSTD = 1,
	RAM_ENC_LZ4 = 2,
	RAM_ENC_COUNT,
};

/* multifd-zstd-level, as QEMU takes it: 0 (zstd's own default, 3) to 20,
 * default 1 (fastest). */
#define RAM_ZSTD_LEVEL_MAX     20u
#define RAM_ZSTD_LEVEL_DEFAULT 1u

/* A batch of pages the source sends in one record. */
struct ram_batch {
	uint32_t round;
	unsigned n;
	/* gpa, | MIG_PAGE_ZERO when the page is known never touched (then
	 * it is not even read) */
	uint64_t desc[MIG_PAGES_PER_RECORD];
	/* The final round (the guest is paused): with deltas, the cache is
	 * read but not updated, since no page is sent again. */
	bool last_round;
};

struct ram_counts {
	uint64_t pages;       /* described */
	uint64_t zero_pages;  /* of which sent as zero */
	uint64_t data_bytes;  /* page data carried (after encoding) */
	uint64_t plain_bytes; /* the same page data before encoding */
	uint64_t compressed_batches; /* records whose data is compressed */
	/* records of a compressing encoder sent RAW because their data did
	 * not shrink */
	uint64_t raw_batches;
	/* Deltas (xbzrle), QEMU's xbzrle-cache figures.  The source counts
	 * every data page of a later round (delta_eligible) as a delta
	 * (delta_pages, of which delta_unchanged had no change at all), a
	 * page the cache lacked (delta_miss) or one whose delta exceeded
	 * RAM_DELTA_LIMIT (delta_overflow); the destination counts only
	 * delta_pages and delta_bytes.  delta_bytes: the deltas and their
	 * 2-byte lengths; delta_pages x 4096 over it is the encoding rate. */
	uint64_t delta_eligible, delta_pages, delta_unchanged;
	uint64_t delta_miss, delta_overflow, delta_bytes;
};

/* a += b, every count (the page channels add up their threads'). */
static inline void ram_counts_add(struct ram_counts *a, const struct ram_counts *b)
{
	a->pages += b->pages;
	a->zero_pages += b->zero_pages;
	a->data_bytes += b->data_bytes;
	a->plain_bytes += b->plain_bytes;
	a->compressed_batches += b->compressed_batches;
	a->raw_batches += b->raw_batches;
	a->delta_eligible += b->delta_eligible;
	a->delta_pages += b->delta_pages;
	a->delta_unchanged += b->delta_unchanged;
	a->delta_miss += b->delta_miss;
	a->delta_overflow += b->delta_overflow;
	a->delta_bytes += b->delta_bytes;
}

/*
 * An encoding of the data of a batch's non-zero pages (the descriptors,
 * zero-page detection and all checks are common, ram_codec.c).  RAW has
 * no functions: its data is the pages themselves.  The others compress
 * those bytes as one buffer (ram_compress.c).  Each keeps a library
 * context per direction, made on first use and kept for the stream.
 */
struct ram_encoding {
	const char *name;     /* in caps and multifd-compression */
	uint16_t id;
	/* The most bytes compress may produce from len bytes. */
	size_t (*bound)(size_t len);
	/* src/len into dst (cap >= bound(len)); returns the bytes written,
	 * 0 when the library failed (the batch then goes RAW). */
	size_t (*compress)(void **ctx, unsigned level, const uint8_t *src,
			   size_t len, uint8_t *dst, size_t cap);
	/* src/len must decompress to exactly want bytes in dst (room for
	 * dst_cap >= want): 0, or -EPROTO / -ENOMEM with a message naming
	 * what is wrong.  Never writes past dst_cap. */
	int (*decompress)(void **ctx, const uint8_t *src, size_t len,
			  uint8_t *dst, size_t want, size_t dst_cap, char *err);
	void (*free_cctx)(void *ctx);
	void (*free_dctx)(void *ctx);
};

/* The encoding with this id, or NULL. */
const struct ram_encoding *ram_encoding_get(unsigned id);
/* By its name in the capabilities ("none" is RAW), or NULL. */
const struct ram_encoding *ram_encoding_by_name(const char *name);

/* The source's side: one per stream (not thread-safe). */
struct ram_encoder {
	const struct ram_encoding *enc;
	unsigned level;          /* zstd's; others ignore it */
	void *ctx;               /* the library's, made on first use */
	uint8_t *plain;          /* a batch's page data before compression */
	bool failed_once;        /* the library failed (said once in the log) */
	struct delta_cache *cache; /* deltas (xbzrle) against it; NULL: none */
	uint8_t *delta;          /* one page's delta while it is made */
};

/**
 * ram_encoder_init() - an encoder for enc at level (a compressing one
 * gets its batch buffer here).  Returns 0 or -ENOMEM with a message.
 * ram_encoder_free() releases it (safe on a zeroed or freed one).
 */
int ram_encoder_init(struct ram_encoder *e, const struct ram_encoding *enc,
		     unsigned level, char *err);
void ram_encoder_free(struct ram_encoder *e);

/**
 * ram_encoder_use_deltas() - from now on, send the data pages of batches
 * of round >= 1 as deltas against @cache where it has them (the stream
 * must have agreed "xbzrle"), and keep @cache to what was sent.  @cache
 * stays the caller's.  Returns 0 or -ENOMEM with a message.
 */
int ram_encoder_use_deltas(struct ram_encoder *e, struct delta_cache *cache,
			   char *err);

/**
 * ram_encode() - one RAM_PAGES record for batch b, built in place in w's
 * buffer.  Zero pages become descriptors only, whatever the encoding; a
 * batch whose data does not shrink under e's compression goes RAW (the
 * record says so, and c->raw_batches counts it).  Adds to *c.
 * Returns 0 or w's error.
 */
int ram_encode(struct rec_writer *w, struct ram_encoder *e,
	       const struct guest_memory *mem, const struct ram_batch *b,
	       struct ram_counts *c);

/* The destination's side. */
struct ram_decoder {
	struct guest_memory *mem;
	uint32_t encodings;   /* bit per encoding id this stream may use */
	struct ram_counts counts;
	void *ctx[RAM_ENC_COUNT]; /* the libraries', made on first use */
	uint8_t *plain;       /* decompressed data, checked before placing */
	bool deltas;          /* MIG_PAGE_DELTA allowed ("xbzrle" agreed) */
	/* If set: raised (atomic maximum) to the end of the highest page a
	 * record is about to place, for fault_ahead.h to keep ahead of. */
	uint64_t *frontier;
};

/* encodings: the negotiated one's bit; RAW's is always added, since a
 * compressing source sends a batch that does not shrink RAW.  Deltas are
 * refused until d->deltas is set. */
void ram_decoder_init(struct ram_decoder *d, struct guest_memory *mem,
		      uint32_t encodings);
/* Frees what decoding compressed records allocated (safe to repeat). */
void ram_decoder_free(struct ram_decoder *d);

/* The round a RAM_PAGES payload says, without checking the rest. */
int ram_peek_round(const uint8_t *p, uint32_t len, uint32_t *round);

/**
 * ram_decode() - check one RAM_PAGES payload whole (count, encoding, each
 * descriptor's flags and address, the data's length; compressed data is
 * decompressed into d's own buffer and must give exactly the bytes its
 * descriptors need) and only then place its pages in guest memory: a
 * refused record writes nothing there, and nothing is ever written
 * outside the pages its descriptors name.  The result depends on p and
 * guest memory only, not on earlier records.  Returns 0 or -EPROTO with a message naming
 * what is wrong; *round (may be NULL) is the record's round.
 */
int ram_decode(struct ram_decoder *d, const uint8_t *p, uint32_t len,
	       uint32_t *round, char *err);

/*
 * Placing an uncompressed record's page data straight from the
 * connection into guest memory (the page channels, multifd_recv.c), with
 * the same checks ram_decode makes, done before any page is written:
 *
 *   ram_direct_count(header)            the record may go direct: count
 *   ram_direct_check(d, head, ...)      its descriptors and length pass
 *   ... the caller reads each non-zero page into memory_gpa_to_hva(desc)
 *   ram_direct_done(d, head, count)     zero pages cleared, counts added
 */

/* The 8-byte RAM_PAGES header of a record of len payload bytes: its page
 * count if it is uncompressed, its count valid and len can hold the
 * descriptors, else 0 (then ram_decode the whole record: it says what is
 * wrong). */
unsigned ram_direct_count(const uint8_t *header, uint32_t len);

/* head: the header and count descriptors.  True when every descriptor
 * and the data's length (len - header - descriptors) pass ram_decode's
 * checks. */
bool ram_direct_check(const struct ram_decoder *d, const uint8_t *head,
		      unsigned count, uint32_t len);

/* After the page data is in place: clear the zero pages (not in round 0:
 * fresh memory is zero) and add to d's counts as ram_decode would. */
void ram_direct_done(struct ram_decoder *d, const uint8_t *head, unsigned count);

/* Where a checked record's data goes, in the order it travels: fn(opaque,
 * hva, bytes) for each run of its data pages adjacent in host memory
 * (one read each).  Stops at fn's first non-zero return, and returns it. */
int ram_direct_each_run(const struct ram_decoder *d, const uint8_t *head, unsigned count,
			int (*fn)(void *opaque, uint8_t *dst, size_t len), void *opaque);

#endif
