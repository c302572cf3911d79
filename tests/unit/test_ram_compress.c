/*
 * Compressed RAM_PAGES records (migration/ram_compress.h): zstd and lz4
 * round trips on a realistic batch (zero, random and text pages), the
 * automatic RAW fallback, and compressed data that lies - corrupt,
 * truncated, too short or too long - refused with a message naming it and
 * nothing written to guest memory.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lz4.h>
#include <zstd.h>

#include "io/channel.h"
#include "io/record.h"
#include "migration/protocol.h"
#include "migration/ram_codec.h"
#include "vmm/memory.h"
#include "util/log.h"

#define PAGE 4096u
#define MIB (1ULL << 20)

static void mem_new(struct guest_memory *m, uint64_t size)
{
	char err[ERR_MAX];
	memory_layout(m, size);
	cr_assert_eq(memory_alloc(m, err), 0, "%s", err);
}

static uint8_t *page_at(struct guest_memory *m, uint64_t gpa)
{
	uint8_t *p = memory_gpa_to_hva(m, gpa, PAGE);
	cr_assert_not_null(p, "gpa 0x%llx", (unsigned long long)gpa);
	return p;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fill_random(uint8_t *p)
{
	for (unsigned i = 0; i < PAGE; i += 8) {
		uint64_t v = next_rand();
		memcpy(p + i, &v, 8);
	}
}

/* Text-like data: compresses well, but is not all one byte. */
static void fill_text(uint8_t *p, unsigned seed)
{
	size_t n = 0;
	while (n < PAGE) {
		char line[96];
		int k = snprintf(line, sizeof(line),
				 "page %u line %zu: the quick brown fox jumps over the lazy dog\n",
				 seed, n / 64);
		size_t take = (size_t)k < PAGE - n ? (size_t)k : PAGE - n;
		memcpy(p + n, line, take);
		n += take;
	}
}

/*
 * The batch every round trip uses, 256 pages: 40 touched but zero again,
 * 40 never touched (flagged by the source), 80 random, 96 text.
 */
static void mixed_batch(struct guest_memory *src, struct ram_batch *b)
{
	*b = (struct ram_batch){ .round = 0 };
	for (unsigned i = 0; i < 256; i++) {
		uint64_t gpa = (uint64_t)i * 2 * PAGE;
		if (i % 32 < 5) {          /* zero */
			page_at(src, gpa)[7] = 1;
			page_at(src, gpa)[7] = 0;
		} else if (i % 32 < 10) {  /* never touched */
			gpa |= MIG_PAGE_ZERO;
		} else if (i % 32 < 20) {  /* random */
			fill_random(page_at(src, gpa));
		} else {                   /* text */
			fill_text(page_at(src, gpa), i);
		}
		b->desc[b->n++] = gpa;
	}
}

/*
 * Encode b from mem with encoding id at level into a file, and return the
 * RAM_PAGES record's payload (malloc'd) and its length.
 */
static uint8_t *encode(unsigned id, unsigned level, const struct guest_memory *mem,
		       const struct ram_batch *b, struct ram_counts *c, uint32_t *len)
{
	char err[ERR_MAX] = "";
	FILE *f = tmpfile();
	cr_assert_not_null(f);
	int fd = fileno(f);
	struct channel *ch = channel_file_new(fd, false, 0, UINT64_MAX, "test");
	struct rec_writer *w = rec_writer_new(ch, MIG_MAX_RECORD);
	struct ram_encoder e;
	cr_assert_eq(ram_encoder_init(&e, ram_encoding_get(id), level, err), 0, "%s", err);
	cr_assert_eq(ram_encode(w, &e, mem, b, c), 0, "%s", rec_writer_errmsg(w));
	cr_assert_eq(rec_flush(w), 0, "%s", rec_writer_errmsg(w));
	ram_encoder_free(&e);
	ram_encoder_free(&e); /* twice is harmless */
	rec_writer_free(w);
	channel_close(ch);

	uint32_t hdr[2];
	cr_assert_eq(pread(fd, hdr, 8, 0), 8);
	cr_assert_eq(hdr[0], MIG_REC_RAM_PAGES);
	uint8_t *p = malloc(hdr[1] + 64); /* room for tests that append */
	cr_assert_eq(pread(fd, p, hdr[1], 8), (ssize_t)hdr[1]);
	fclose(f);
	*len = hdr[1];
	return p;
}

static uint16_t rec_encoding(const uint8_t *p)
{
	uint16_t id;
	memcpy(&id, p + 6, 2);
	return id;
}

static void roundtrip_mixed(unsigned id, unsigned level)
{
	struct guest_memory src, dst;
	mem_new(&src, 4 * MIB);
	mem_new(&dst, 4 * MIB);
	struct ram_batch b;
	mixed_batch(&src, &b);
	struct ram_counts ec = { 0 };
	uint32_t len;
	uint8_t *p = encode(id, level, &src, &b, &ec, &len);
	cr_assert_eq(rec_encoding(p), id, "the mixed batch went %u", rec_encoding(p));
	cr_assert_eq(ec.pages, 256);
	cr_assert_eq(ec.zero_pages, 80);
	cr_assert_eq(ec.plain_bytes, 176ULL * PAGE);
	/* 80 of the 176 data pages are random: 45% is the floor */
	cr_assert_lt(ec.data_bytes, ec.plain_bytes * 3 / 5,
		     "%s level %u: %llu of %llu bytes", ram_encoding_get(id)->name, level,
		     (unsigned long long)ec.data_bytes, (unsigned long long)ec.plain_bytes);
	cr_assert_eq(len, RAM_PAGES_HEADER + 256 * 8 + ec.data_bytes);
	cr_assert_eq(ec.compressed_batches, 1);
	cr_assert_eq(ec.raw_batches, 0);

	struct ram_decoder dec;
	char err[ERR_MAX] = "";
	ram_decoder_init(&dec, &dst, 1u << id);
	cr_assert_eq(ram_decode(&dec, p, len, NULL, err), 0, "%s", err);
	cr_assert_eq(dec.counts.pages, 256);
	cr_assert_eq(dec.counts.zero_pages, 80);
	cr_assert_eq(dec.counts.plain_bytes, ec.plain_bytes);
	cr_assert_eq(dec.counts.data_bytes, ec.data_bytes);
	cr_assert_eq(dec.counts.compressed_batches, 1);
	/* Round 0: the zero pages were not written (never faulted in;
	 * checked before anything reads them). */
	uint8_t pop[2];
	memory_populated(&dst, 0, 0, 1, pop);
	memory_populated(&dst, 0, 2 * 5, 1, pop + 1);
	cr_assert_eq(pop[0] | pop[1], 0, "a zero page was written in round 0");
	cr_assert_eq(memcmp(src.slots[0].hva, dst.slots[0].hva, 4 * MIB), 0);

	/* A later round over old data: zero pages are cleared, the rest
	 * overwritten, and the same decoder (its context reused) does it. */
	memset(dst.slots[0].hva, 0x5a, 4 * MIB);
	memcpy(p, &(uint32_t){ 3 }, 4);
	cr_assert_eq(ram_decode(&dec, p, len, NULL, err), 0, "%s", err);
	for (unsigned i = 0; i < 256; i++) {
		uint64_t gpa = (uint64_t)i * 2 * PAGE;
		cr_assert_eq(memcmp(page_at(&src, gpa), page_at(&dst, gpa), PAGE), 0,
			     "page %u differs after round 3", i);
	}
	ram_decoder_free(&dec);
	ram_decoder_free(&dec);
	free(p);
	memory_free(&src);
	memory_free(&dst);
}

TestSuite(ram_compress, .timeout = 60);

Test(ram_compress, zstd_mixed_batch_roundtrip)
{
	roundtrip_mixed(RAM_ENC_ZSTD, RAM_ZSTD_LEVEL_DEFAULT);
}

Test(ram_compress, zstd_levels_roundtrip)
{
	/* 0 is zstd's own default (3); 20 QEMU's highest */
	roundtrip_mixed(RAM_ENC_ZSTD, 0);
	roundtrip_mixed(RAM_ENC_ZSTD, 9);
	roundtrip_mixed(RAM_ENC_ZSTD, RAM_ZSTD_LEVEL_MAX);
}

Test(ram_compress, lz4_mixed_batch_roundtrip)
{
	roundtrip_mixed(RAM_ENC_LZ4, 0);
}

/* A batch that does not shrink goes RAW by itself, and a destination
 * that agreed to the compression takes it. */
static void raw_fallback(unsigned id)
{
	struct guest_memory src, dst;
	mem_new(&src, 4 * MIB);
	mem_new(&dst, 4 * MIB);
	struct ram_batch b = { .round = 0 };
	for (unsigned i = 0; i < 256; i++) {
		fill_random(page_at(&src, (uint64_t)i * PAGE));
		b.desc[b.n++] = (uint64_t)i * PAGE;
	}
	b.desc[7] |= MIG_PAGE_ZERO; /* zero pages still travel as descriptors */
	struct ram_counts ec = { 0 };
	uint32_t len;
	uint8_t *p = encode(id, 1, &src, &b, &ec, &len);
	cr_assert_eq(rec_encoding(p), RAM_ENC_RAW);
	cr_assert_eq(ec.raw_batches, 1);
	cr_assert_eq(ec.compressed_batches, 0);
	cr_assert_eq(ec.data_bytes, 255ULL * PAGE);
	cr_assert_eq(ec.plain_bytes, 255ULL * PAGE);
	cr_assert_eq(len, RAM_PAGES_HEADER + 256 * 8 + 255 * PAGE);

	struct ram_decoder dec;
	char err[ERR_MAX] = "";
	ram_decoder_init(&dec, &dst, 1u << id);
	cr_assert_eq(ram_decode(&dec, p, len, NULL, err), 0, "%s", err);
	cr_assert_eq(dec.counts.raw_batches, 1);
	cr_assert_eq(dec.counts.compressed_batches, 0);
	for (unsigned i = 0; i < 256; i++)
		if (i != 7)
			cr_assert_eq(memcmp(page_at(&src, i * PAGE), page_at(&dst, i * PAGE),
					    PAGE), 0, "page %u", i);
	ram_decoder_free(&dec);
	free(p);
	memory_free(&src);
	memory_free(&dst);
}

Test(ram_compress, zstd_incompressible_batch_goes_raw)
{
	raw_fallback(RAM_ENC_ZSTD);
}

Test(ram_compress, lz4_incompressible_batch_goes_raw)
{
	raw_fallback(RAM_ENC_LZ4);
}

/* Only zero pages: nothing to compress, descriptors only, RAW. */
Test(ram_compress, zero_pages_only_are_descriptors)
{
	struct guest_memory src;
	mem_new(&src, 4 * MIB);
	struct ram_batch b = { .round = 1, .n = 3,
			       .desc = { 0, PAGE, 2 * PAGE | MIG_PAGE_ZERO } };
	for (unsigned id = RAM_ENC_ZSTD; id <= RAM_ENC_LZ4; id++) {
		struct ram_counts ec = { 0 };
		uint32_t len;
		uint8_t *p = encode(id, 1, &src, &b, &ec, &len);
		cr_assert_eq(len, RAM_PAGES_HEADER + 3 * 8);
		cr_assert_eq(rec_encoding(p), RAM_ENC_RAW);
		cr_assert_eq(ec.zero_pages, 3);
		cr_assert_eq(ec.raw_batches + ec.compressed_batches, 0);
		free(p);
	}
	memory_free(&src);
}

/* ---- compressed data that lies ------------------------------------------ */

static struct guest_memory g_mem;
static struct ram_decoder g_dec;

static void setup(void)
{
	mem_new(&g_mem, 4 * MIB);
	ram_decoder_init(&g_dec, &g_mem, 1u << RAM_ENC_ZSTD | 1u << RAM_ENC_LZ4);
}

static void teardown(void)
{
	ram_decoder_free(&g_dec);
	memory_free(&g_mem);
}

/* A record by hand: header, the descriptors, then data. */
static uint32_t make_record(uint8_t *out, uint16_t id, const uint64_t *desc,
			    unsigned n, const void *data, size_t len)
{
	uint32_t round = 0;
	uint16_t count = (uint16_t)n;
	memcpy(out, &round, 4);
	memcpy(out + 4, &count, 2);
	memcpy(out + 6, &id, 2);
	memcpy(out + 8, desc, (size_t)n * 8);
	memcpy(out + 8 + (size_t)n * 8, data, len);
	return (uint32_t)(8 + (size_t)n * 8 + len);
}

static bool memory_untouched(void)
{
	static const uint8_t zero[PAGE];
	for (uint64_t off = 0; off < 4 * MIB; off += PAGE)
		if (memcmp(g_mem.slots[0].hva + off, zero, PAGE))
			return false;
	return true;
}

static void expect_refused(const uint8_t *rec, uint32_t len, const char *needle)
{
	char err[ERR_MAX] = "";
	int r = ram_decode(&g_dec, rec, len, NULL, err);
	cr_assert_eq(r, -EPROTO, "accepted (%d) a record that should fail with '%s'", r,
		     needle);
	cr_assert(strstr(err, needle), "message '%s' lacks '%s'", err, needle);
	cr_assert_eq(g_dec.counts.pages, 0, "pages were counted as placed");
	cr_assert(memory_untouched(), "guest memory was written by a refused record");
	/* The same bytes, the same answer: decoding keeps no state that
	 * changes it. */
	char again[ERR_MAX] = "";
	cr_assert_eq(ram_decode(&g_dec, rec, len, NULL, again), -EPROTO);
	cr_assert_str_eq(again, err);
}

/* Two text pages at 8 and 9 pages into memory: 8 KiB of plain data. */
static const uint64_t two_pages[] = { 8 * PAGE, 9 * PAGE };

static size_t plain_text(uint8_t *buf, size_t pages)
{
	for (size_t i = 0; i < pages; i++)
		fill_text(buf + i * PAGE, (unsigned)i);
	return pages * PAGE;
}

static size_t zstd_frame(uint8_t *out, size_t cap, const uint8_t *src, size_t len,
			 bool with_size)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, with_size);
	size_t z = ZSTD_compress2(c, out, cap, src, len);
	cr_assert(!ZSTD_isError(z), "%s", ZSTD_getErrorName(z));
	ZSTD_freeCCtx(c);
	return z;
}

TestSuite(ram_compress_bad, .init = setup, .fini = teardown, .timeout = 60);

Test(ram_compress_bad, zstd_a_good_record_first)
{
	static uint8_t plain[2 * PAGE], z[4 * PAGE], rec[16 * PAGE];
	size_t n = zstd_frame(z, sizeof(z), plain, plain_text(plain, 2), true);
	uint32_t len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, n);
	char err[ERR_MAX] = "";
	cr_assert_eq(ram_decode(&g_dec, rec, len, NULL, err), 0, "%s", err);
	cr_assert_eq(memcmp(page_at(&g_mem, 8 * PAGE), plain, 2 * PAGE), 0);
}

Test(ram_compress_bad, zstd_not_a_frame)
{
	static uint8_t plain[2 * PAGE], z[4 * PAGE], rec[16 * PAGE];
	size_t n = zstd_frame(z, sizeof(z), plain, plain_text(plain, 2), true);
	z[0] ^= 0xff; /* the magic number */
	uint32_t len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, n);
	expect_refused(rec, len, "does not start with a valid zstd frame header");
	/* bytes that are not zstd at all */
	len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, plain, 100);
	expect_refused(rec, len, "valid zstd frame header");
}

Test(ram_compress_bad, zstd_truncated)
{
	static uint8_t plain[2 * PAGE], z[4 * PAGE], rec[16 * PAGE];
	size_t n = zstd_frame(z, sizeof(z), plain, plain_text(plain, 2), true);
	uint32_t len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, n - 1);
	expect_refused(rec, len, "zstd frame is corrupt or truncated");
	len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, n / 2);
	expect_refused(rec, len, "zstd frame is corrupt or truncated");
	len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, 3);
	expect_refused(rec, len, "zstd");
	len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, 0);
	expect_refused(rec, len, "zstd data missing");
}

Test(ram_compress_bad, zstd_trailing_bytes)
{
	static uint8_t plain[2 * PAGE], z[4 * PAGE], rec[16 * PAGE];
	size_t n = zstd_frame(z, sizeof(z), plain, plain_text(plain, 2), true);
	/* a second frame after the first is data the record does not own */
	size_t n2 = zstd_frame(z + n, sizeof(z) - n, plain, PAGE, true);
	uint32_t len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, n + n2);
	expect_refused(rec, len, "follow the");
	z[n] = 0;
	len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, n + 1);
	expect_refused(rec, len, "1 bytes follow the");
}

Test(ram_compress_bad, zstd_size_claim_differs)
{
	static uint8_t plain[3 * PAGE], z[4 * PAGE], rec[16 * PAGE];
	plain_text(plain, 3);
	/* three pages of data for two descriptors, and one for two */
	size_t n = zstd_frame(z, sizeof(z), plain, 3 * PAGE, true);
	uint32_t len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, n);
	expect_refused(rec, len, "zstd frame says it holds 12288 bytes where its descriptors need 8192");
	n = zstd_frame(z, sizeof(z), plain, PAGE, true);
	len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, n);
	expect_refused(rec, len, "says it holds 4096 bytes where its descriptors need 8192");
}

/* Without the size in its header, the decompressed length still decides. */
Test(ram_compress_bad, zstd_without_size_claim)
{
	static uint8_t plain[3 * PAGE], z[4 * PAGE], rec[16 * PAGE];
	plain_text(plain, 3);
	size_t n = zstd_frame(z, sizeof(z), plain, 3 * PAGE, false);
	cr_assert_eq(ZSTD_getFrameContentSize(z, n), ZSTD_CONTENTSIZE_UNKNOWN);
	uint32_t len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, n);
	expect_refused(rec, len, "zstd data decompresses to more than the 8192 bytes its descriptors need");
	n = zstd_frame(z, sizeof(z), plain, PAGE, false);
	len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, n);
	expect_refused(rec, len, "zstd data decompresses to 4096 bytes where its descriptors need 8192");
	/* and the right size without a claim is fine */
	n = zstd_frame(z, sizeof(z), plain, 2 * PAGE, false);
	len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, n);
	char err[ERR_MAX] = "";
	cr_assert_eq(ram_decode(&g_dec, rec, len, NULL, err), 0, "%s", err);
	cr_assert_eq(memcmp(page_at(&g_mem, 8 * PAGE), plain, 2 * PAGE), 0);
}

Test(ram_compress_bad, lz4_corrupt_truncated_and_wrong_sizes)
{
	static uint8_t plain[4 * PAGE], z[8 * PAGE], rec[16 * PAGE];
	plain_text(plain, 4);
	int n = LZ4_compress_default((char *)plain, (char *)z, 2 * PAGE, sizeof(z));
	cr_assert_gt(n, 0);
	uint32_t len = make_record(rec, RAM_ENC_LZ4, two_pages, 2, z, (size_t)n - 1);
	expect_refused(rec, len, "lz4");
	len = make_record(rec, RAM_ENC_LZ4, two_pages, 2, z, (size_t)n / 2);
	expect_refused(rec, len, "lz4");
	/* garbage: a literal run longer than the input */
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x01, 0x02 };
	len = make_record(rec, RAM_ENC_LZ4, two_pages, 2, junk, sizeof(junk));
	expect_refused(rec, len, "lz4 data is corrupt, truncated or decompresses to more than");
	/* well formed, but more or less than the descriptors need */
	n = LZ4_compress_default((char *)plain, (char *)z, 3 * PAGE, sizeof(z));
	len = make_record(rec, RAM_ENC_LZ4, two_pages, 2, z, (size_t)n);
	expect_refused(rec, len, "lz4 data decompresses to 12288 bytes where its descriptors need 8192");
	n = LZ4_compress_default((char *)plain, (char *)z, PAGE, sizeof(z));
	len = make_record(rec, RAM_ENC_LZ4, two_pages, 2, z, (size_t)n);
	expect_refused(rec, len, "lz4 data decompresses to 4096 bytes where its descriptors need 8192");
	len = make_record(rec, RAM_ENC_LZ4, two_pages, 2, z, 0);
	expect_refused(rec, len, "lz4 data missing");
	/* the good one still decodes after all that */
	n = LZ4_compress_default((char *)plain, (char *)z, 2 * PAGE, sizeof(z));
	len = make_record(rec, RAM_ENC_LZ4, two_pages, 2, z, (size_t)n);
	char err[ERR_MAX] = "";
	cr_assert_eq(ram_decode(&g_dec, rec, len, NULL, err), 0, "%s", err);
	cr_assert_eq(memcmp(page_at(&g_mem, 8 * PAGE), plain, 2 * PAGE), 0);
}

/* Far more than a record can hold: the decoder's buffer bounds it. */
Test(ram_compress_bad, huge_expansion_is_bounded)
{
	static uint8_t big[2 * MIB], z[64 * 1024], rec[128 * 1024];
	memset(big, 'a', sizeof(big)); /* 2 MiB of one byte: tiny compressed */
	int n = LZ4_compress_default((char *)big, (char *)z, sizeof(big), sizeof(z));
	cr_assert_gt(n, 0);
	uint32_t len = make_record(rec, RAM_ENC_LZ4, two_pages, 2, z, (size_t)n);
	expect_refused(rec, len, "lz4 data is corrupt, truncated or decompresses to more than");
	size_t zn = zstd_frame(z, sizeof(z), big, sizeof(big), false);
	len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, zn);
	expect_refused(rec, len, "zstd data decompresses to more than the 8192 bytes");
}

Test(ram_compress_bad, compressed_record_of_zero_pages_only)
{
	static uint8_t z[256], rec[1024];
	static const uint64_t zeros[] = { 8 * PAGE | MIG_PAGE_ZERO };
	size_t n = zstd_frame(z, sizeof(z), z, 0, true);
	uint32_t len = make_record(rec, RAM_ENC_ZSTD, zeros, 1, z, n);
	expect_refused(rec, len, "zstd data for a batch without page data");
}

Test(ram_compress_bad, not_negotiated)
{
	static uint8_t plain[2 * PAGE], z[4 * PAGE], rec[16 * PAGE];
	size_t n = zstd_frame(z, sizeof(z), plain, plain_text(plain, 2), true);
	uint32_t len = make_record(rec, RAM_ENC_ZSTD, two_pages, 2, z, n);
	ram_decoder_free(&g_dec);
	ram_decoder_init(&g_dec, &g_mem, 1u << RAM_ENC_LZ4);
	expect_refused(rec, len, "encoding 'zstd' was not negotiated");
	ram_decoder_init(&g_dec, &g_mem, 1u << RAM_ENC_RAW);
	expect_refused(rec, len, "encoding 'zstd' was not negotiated");
	rec[6] = RAM_ENC_LZ4;
	expect_refused(rec, len, "encoding 'lz4' was not negotiated");
}

/*
 * Mutated records (bytes of the data flipped, the data cut or extended):
 * whatever the decoder says, it writes no page but the descriptors' and
 * stays within its buffers (the sanitizer build checks that part).
 */
static void mutate_and_decode(unsigned id)
{
	struct guest_memory src;
	mem_new(&src, 4 * MIB);
	struct ram_batch b = { .round = 0 };
	for (unsigned i = 0; i < 16; i++) {
		uint64_t gpa = (64 + (uint64_t)i * 3) * PAGE;
		if (i % 4 == 3)
			fill_random(page_at(&src, gpa));
		else
			fill_text(page_at(&src, gpa), i);
		b.desc[b.n++] = gpa;
	}
	struct ram_counts ec = { 0 };
	uint32_t len;
	uint8_t *good = encode(id, 1, &src, &b, &ec, &len);
	cr_assert_eq(rec_encoding(good), id);
	size_t data_at = RAM_PAGES_HEADER + 16 * 8, data_len = len - data_at;
	uint8_t *rec = malloc(len + 64);
	unsigned accepted = 0;

	for (unsigned iter = 0; iter < 1500; iter++) {
		memcpy(rec, good, len);
		uint32_t l = len;
		unsigned kind = next_rand() % 3;
		if (kind == 0) {
			unsigned flips = 1 + next_rand() % 4;
			for (unsigned k = 0; k < flips; k++)
				rec[data_at + next_rand() % data_len] ^= (uint8_t)(1 + next_rand() % 255);
		} else if (kind == 1) {
			l = (uint32_t)(data_at + next_rand() % data_len);
		} else {
			unsigned extra = 1 + next_rand() % 64;
			for (unsigned k = 0; k < extra; k++)
				rec[len + k] = (uint8_t)next_rand();
			l = len + extra;
		}
		/* Pages the descriptors do not name hold a marker that
		 * must survive. */
		memset(g_mem.slots[0].hva, 0xe7, 4 * MIB);
		char err[ERR_MAX] = "";
		int r = ram_decode(&g_dec, rec, l, NULL, err);
		cr_assert(r == 0 || r == -EPROTO, "decode returned %d", r);
		if (r == 0)
			accepted++;
		else
			cr_assert(err[0], "refused without a message");
		for (uint64_t pg = 0; pg < 4 * MIB / PAGE; pg++) {
			bool named = pg >= 64 && pg < 64 + 16 * 3 && (pg - 64) % 3 == 0;
			if (named)
				continue;
			const uint8_t *p = g_mem.slots[0].hva + pg * PAGE;
			cr_assert(p[0] == 0xe7 && p[PAGE - 1] == 0xe7 &&
				  !memcmp(p, p + 1, PAGE - 1),
				  "iteration %u wrote page %llu, which no descriptor names",
				  iter, (unsigned long long)pg);
		}
	}
	/* Flipped literal bytes decode "fine" (to other bytes): the record's
	 * CRC-32C, not the codec, guards the wire; most mutations fail. */
	cr_assert_lt(accepted, 1500);
	free(rec);
	free(good);
	memory_free(&src);
}

Test(ram_compress_bad, zstd_mutations_stay_inside)
{
	mutate_and_decode(RAM_ENC_ZSTD);
}

Test(ram_compress_bad, lz4_mutations_stay_inside)
{
	mutate_and_decode(RAM_ENC_LZ4);
}

/* ---- a whole stream over a real socket ------------------------------------ */

struct reader_arg {
	int fd;
	struct guest_memory *dst;
	unsigned id;
	struct ram_counts counts;
	int rc;
	char err[ERR_MAX];
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	struct channel *ch = channel_socket_new(a->fd, false);
	struct rec_reader *r = rec_reader_new(ch, MIG_MAX_RECORD);
	struct ram_decoder d;
	ram_decoder_init(&d, a->dst, 1u << a->id);
	for (;;) {
		uint32_t type, len;
		const uint8_t *pl;
		if (rec_read(r, &type, &pl, &len)) {
			snprintf(a->err, sizeof(a->err), "%s", rec_reader_errmsg(r));
			a->rc = -1;
			break;
		}
		if (type != MIG_REC_RAM_PAGES)
			break;
		if ((a->rc = ram_decode(&d, pl, len, NULL, a->err)))
			break;
	}
	a->counts = d.counts;
	ram_decoder_free(&d);
	rec_reader_free(r);
	channel_close(ch);
	return NULL;
}

/*
 * 8 MiB of mixed page kinds in 8 records through the record layer
 * (CRC-32C, the writer's buffering) over a socketpair, read on another
 * thread as a destination does: the same memory at the end, and the same
 * counts on both sides.
 */
static void stream_over_socket(unsigned id)
{
	struct guest_memory src, dst;
	mem_new(&src, 16 * MIB);
	mem_new(&dst, 16 * MIB);
	int fd[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
	struct reader_arg a = { .fd = fd[1], .dst = &dst, .id = id };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, reader, &a), 0);

	char err[ERR_MAX] = "";
	struct channel *ch = channel_socket_new(fd[0], false);
	struct rec_writer *w = rec_writer_new(ch, MIG_MAX_RECORD);
	struct ram_encoder e;
	cr_assert_eq(ram_encoder_init(&e, ram_encoding_get(id), 1, err), 0, "%s", err);
	struct ram_counts ec = { 0 };
	for (unsigned rec = 0; rec < 8; rec++) {
		struct ram_batch b = { .round = rec / 2 };
		for (unsigned i = 0; i < 256; i++) {
			uint64_t pg = (uint64_t)rec * 256 + i;
			uint8_t *p = page_at(&src, pg * PAGE);
			switch ((pg * 7) % 5) {
			case 0: memset(p, 0, PAGE); break;
			case 1: case 2: fill_text(p, (unsigned)pg); break;
			case 3: fill_random(p); break;
			default: memset(p, (int)pg, PAGE); break;
			}
			b.desc[b.n++] = pg * PAGE;
		}
		cr_assert_eq(ram_encode(w, &e, &src, &b, &ec), 0, "%s", rec_writer_errmsg(w));
	}
	rec_put(w, MIG_REC_ROUND_END, "end", 3);
	cr_assert_eq(rec_flush(w), 0, "%s", rec_writer_errmsg(w));
	pthread_join(t, NULL);
	cr_assert_eq(a.rc, 0, "the reader failed: %s", a.err);
	cr_assert_eq(memcmp(src.slots[0].hva, dst.slots[0].hva, 8 * MIB), 0);
	cr_assert_eq(a.counts.pages, ec.pages);
	cr_assert_eq(a.counts.zero_pages, ec.zero_pages);
	cr_assert_eq(a.counts.plain_bytes, ec.plain_bytes);
	cr_assert_eq(a.counts.data_bytes, ec.data_bytes);
	cr_assert_eq(a.counts.compressed_batches, ec.compressed_batches);
	cr_assert_eq(ec.compressed_batches, 8);
	cr_assert_lt(ec.data_bytes, ec.plain_bytes / 2);
	ram_encoder_free(&e);
	rec_writer_free(w);
	channel_close(ch);
	close(fd[0]);
	close(fd[1]);
	memory_free(&src);
	memory_free(&dst);
}

Test(ram_compress, zstd_stream_over_a_socket)
{
	stream_over_socket(RAM_ENC_ZSTD);
}

Test(ram_compress, lz4_stream_over_a_socket)
{
	stream_over_socket(RAM_ENC_LZ4);
}

/* ---- what query-migrate says -------------------------------------------- */

#include "migration/stats.h"

Test(compression_report, json_on_both_sides)
{
	json_t *c = mig_compression_json("zstd", 3, 4000, 1000, 7, 2);
	char *s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert_str_eq(s, "{\"bytes-after\":1000,\"bytes-before\":4000,"
			 "\"compressed-batches\":7,\"method\":\"zstd\",\"ratio\":4.0,"
			 "\"raw-batches\":2,\"zstd-level\":3}");
	free(s);
	json_decref(c);
	/* a destination does not know the level; nothing yet is ratio 1 */
	c = mig_compression_json("lz4", -1, 0, 0, 0, 0);
	s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert_str_eq(s, "{\"bytes-after\":0,\"bytes-before\":0,"
			 "\"compressed-batches\":0,\"method\":\"lz4\",\"ratio\":1.0,"
			 "\"raw-batches\":0}");
	free(s);
	json_decref(c);
	/* before negotiation the method is empty: "none" */
	c = mig_compression_json("", 1, 0, 0, 0, 0);
	cr_assert_str_eq(json_string_value(json_object_get(c, "method")), "none");
	cr_assert_null(json_object_get(c, "zstd-level"));
	json_decref(c);
}

/* The source's query-migrate carries it under "ferry". */
Test(compression_report, in_the_source_stats)
{
	struct mig_stats st;
	memset(&st, 0, sizeof(st));
	st.status = MIG_STATUS_ACTIVE;
	snprintf(st.compression, sizeof(st.compression), "zstd");
	st.zstd_level = 1;
	st.page_plain_bytes = 8192;
	st.page_data_bytes = 2048;
	st.compressed_batches = 1;
	json_t *j = mig_stats_json(&st, 1);
	json_t *c = json_object_get(json_object_get(j, "ferry"), "compression");
	cr_assert_str_eq(json_string_value(json_object_get(c, "method")), "zstd");
	cr_assert_eq(json_real_value(json_object_get(c, "ratio")), 4.0);
	cr_assert_eq(json_integer_value(json_object_get(c, "zstd-level")), 1);
	json_decref(j);
}
