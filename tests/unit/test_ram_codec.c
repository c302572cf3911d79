/*
 * The RAM_PAGES codec (migration/ram_codec.h): encode against decode over
 * a real socket, and every kind of bad record the decoder must refuse
 * with a clear message before it writes anything.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

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

static void fill_page(struct guest_memory *m, uint64_t gpa, uint8_t seed)
{
	uint8_t *p = page_at(m, gpa);
	for (unsigned i = 0; i < PAGE; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

/* Encode batch b from src over a socketpair; decode into dst. */
static int roundtrip(struct guest_memory *src, struct guest_memory *dst,
		     const struct ram_batch *b, struct ram_counts *enc_counts,
		     struct ram_decoder *dec, char *err)
{
	int fd[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
	int big = 4 << 20;
	setsockopt(fd[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(fd[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	struct channel *a = channel_socket_new(fd[0], true);
	struct channel *z = channel_socket_new(fd[1], true);
	struct rec_writer *w = rec_writer_new(a, MIG_MAX_RECORD);
	struct rec_reader *r = rec_reader_new(z, MIG_MAX_RECORD);
	struct ram_encoder e;
	cr_assert_eq(ram_encoder_init(&e, ram_encoding_get(RAM_ENC_RAW), 0, err), 0);
	cr_assert_eq(ram_encode(w, &e, src, b, enc_counts),
		     0, "%s", rec_writer_errmsg(w));
	ram_encoder_free(&e);
	cr_assert_eq(rec_flush(w), 0, "%s", rec_writer_errmsg(w));
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0, "%s", rec_reader_errmsg(r));
	cr_assert_eq(type, MIG_REC_RAM_PAGES);
	(void)dst;
	uint32_t round = ~0u;
	int ret = ram_decode(dec, pl, len, &round, err);
	if (!ret)
		cr_assert_eq(round, b->round);
	rec_writer_free(w);
	rec_reader_free(r);
	channel_close(a);
	channel_close(z);
	return ret;
}

Test(ram_codec, encode_decode_roundtrip)
{
	struct guest_memory src, dst;
	mem_new(&src, 16 * MIB);
	mem_new(&dst, 16 * MIB);
	struct ram_batch b = { .round = 0 };
	/* 200 data pages, 20 touched pages that are zero, 36 never touched */
	for (unsigned i = 0; i < 200; i++) {
		fill_page(&src, (uint64_t)i * 3 * PAGE, (uint8_t)i);
		b.desc[b.n++] = (uint64_t)i * 3 * PAGE;
	}
	for (unsigned i = 0; i < 20; i++) {
		uint64_t gpa = 8 * MIB + (uint64_t)i * PAGE;
		page_at(&src, gpa)[0] = 1; /* touched ... */
		page_at(&src, gpa)[0] = 0; /* ... and zero again */
		b.desc[b.n++] = gpa;
	}
	for (unsigned i = 0; i < 36; i++)
		b.desc[b.n++] = (12 * MIB + (uint64_t)i * PAGE) | MIG_PAGE_ZERO;
	cr_assert_eq(b.n, MIG_PAGES_PER_RECORD);

	struct ram_counts ec = { 0 };
	struct ram_decoder dec;
	char err[ERR_MAX] = "";
	ram_decoder_init(&dec, &dst, 1u << RAM_ENC_RAW);
	cr_assert_eq(roundtrip(&src, &dst, &b, &ec, &dec, err), 0, "%s", err);
	cr_assert_eq(ec.pages, 256);
	cr_assert_eq(ec.zero_pages, 56);
	cr_assert_eq(ec.data_bytes, 200ULL * PAGE);
	cr_assert_eq(dec.counts.pages, 256);
	cr_assert_eq(dec.counts.zero_pages, 56);
	cr_assert_eq(dec.counts.data_bytes, 200ULL * PAGE);
	/* Round 0: zero pages were not written, so never faulted in (checked before
	 * anything reads them). */
	uint8_t pop[64];
	memory_populated(&dst, 0, (8 * MIB) / PAGE, 64, pop);
	for (unsigned i = 0; i < 20; i++)
		cr_assert_eq(pop[i], 0, "zero page %u was written in round 0", i);
	cr_assert_eq(memcmp(src.slots[0].hva, dst.slots[0].hva, 16 * MIB), 0);

	memory_free(&src);
	memory_free(&dst);
}

/* A page the source knows was never touched is not even read. */
Test(ram_codec, never_touched_pages_are_not_read)
{
	struct guest_memory src, dst;
	mem_new(&src, 4 * MIB);
	mem_new(&dst, 4 * MIB);
	/* Reading this page would kill the test with SIGSEGV. */
	cr_assert_eq(mprotect(src.slots[0].hva + MIB, PAGE, PROT_NONE), 0);
	fill_page(&src, 0, 9);
	struct ram_batch b = { .round = 0, .n = 2,
			       .desc = { MIB | MIG_PAGE_ZERO, 0 } };
	struct ram_counts ec = { 0 };
	struct ram_decoder dec;
	char err[ERR_MAX] = "";
	ram_decoder_init(&dec, &dst, 1u << RAM_ENC_RAW);
	cr_assert_eq(roundtrip(&src, &dst, &b, &ec, &dec, err), 0, "%s", err);
	cr_assert_eq(ec.zero_pages, 1);
	cr_assert_eq(memcmp(page_at(&dst, 0), page_at(&src, 0), PAGE), 0);
	mprotect(src.slots[0].hva + MIB, PAGE, PROT_READ | PROT_WRITE);
	memory_free(&src);
	memory_free(&dst);
}

/* After round 0 the destination's copy may hold old data: a zero page
 * must clear it. */
Test(ram_codec, later_round_zero_page_clears_old_data)
{
	struct guest_memory src, dst;
	mem_new(&src, 4 * MIB);
	mem_new(&dst, 4 * MIB);
	fill_page(&dst, 2 * PAGE, 0x33);
	struct ram_batch b = { .round = 3, .n = 1, .desc = { 2 * PAGE } };
	struct ram_counts ec = { 0 };
	struct ram_decoder dec;
	char err[ERR_MAX] = "";
	ram_decoder_init(&dec, &dst, 1u << RAM_ENC_RAW);
	cr_assert_eq(roundtrip(&src, &dst, &b, &ec, &dec, err), 0, "%s", err);
	uint8_t zero[PAGE] = { 0 };
	cr_assert_eq(memcmp(page_at(&dst, 2 * PAGE), zero, PAGE), 0);
	memory_free(&src);
	memory_free(&dst);
}

/* ---- decoding bad records --------------------------------------------- */

struct rec {
	uint8_t b[8 + 8 * 300 + 4 * PAGE];
	size_t len;
};

static void rec_hdr(struct rec *r, uint32_t round, uint16_t count, uint16_t enc)
{
	memcpy(r->b, &round, 4);
	memcpy(r->b + 4, &count, 2);
	memcpy(r->b + 6, &enc, 2);
	r->len = 8;
}

static void rec_u64(struct rec *r, uint64_t v)
{
	memcpy(r->b + r->len, &v, 8);
	r->len += 8;
}

static void rec_page(struct rec *r, uint8_t fill)
{
	memset(r->b + r->len, fill, PAGE);
	r->len += PAGE;
}

static struct guest_memory g_mem;
static struct ram_decoder g_dec;

static void dec_setup(void)
{
	mem_new(&g_mem, 16 * MIB);
	ram_decoder_init(&g_dec, &g_mem, 1u << RAM_ENC_RAW);
}

static void dec_teardown(void)
{
	ram_decoder_free(&g_dec);
	memory_free(&g_mem);
}

static void expect_refused(const struct rec *r, const char *needle)
{
	char err[ERR_MAX] = "";
	cr_assert_eq(ram_decode(&g_dec, r->b, (uint32_t)r->len, NULL, err), -EPROTO,
		     "accepted a record that should fail with '%s'", needle);
	cr_assert(strstr(err, needle), "message '%s' lacks '%s'", err, needle);
	/* nothing was placed */
	cr_assert_eq(g_dec.counts.pages, 0);
	cr_assert_eq(page_at(&g_mem, 0)[0], 0, "a page was written before the check");
}

TestSuite(ram_decode, .init = dec_setup, .fini = dec_teardown);

Test(ram_decode, shorter_than_header)
{
	struct rec r;
	rec_hdr(&r, 0, 1, 0);
	r.len = 5;
	expect_refused(&r, "shorter than its header");
}

Test(ram_decode, bad_counts)
{
	struct rec r;
	rec_hdr(&r, 0, 0, 0);
	expect_refused(&r, "bad page count 0");
	rec_hdr(&r, 0, 257, 0);
	expect_refused(&r, "bad page count 257");
}

Test(ram_decode, descriptors_cut_short)
{
	struct rec r;
	rec_hdr(&r, 0, 3, 0);
	rec_u64(&r, 0);
	rec_u64(&r, PAGE);
	expect_refused(&r, "cannot hold 3 page descriptors");
}

Test(ram_decode, bad_descriptor_flags)
{
	struct rec r;
	/* the first page is fine: it must not be written either */
	rec_hdr(&r, 0, 2, 0);
	rec_u64(&r, 0);
	rec_u64(&r, PAGE | 0x4);
	rec_page(&r, 0xaa);
	rec_page(&r, 0xbb);
	expect_refused(&r, "bad page descriptor 0x1004");
	/* bit 1 is a delta, which this stream did not agree to */
	rec_hdr(&r, 0, 2, 0);
	rec_u64(&r, 0);
	rec_u64(&r, PAGE | MIG_PAGE_DELTA);
	rec_page(&r, 0xaa);
	rec_page(&r, 0xbb);
	expect_refused(&r, "page 0x1000 comes as a delta, but deltas (xbzrle) were not negotiated");
	rec_hdr(&r, 0, 1, 0);
	rec_u64(&r, PAGE + 0x800); /* not page aligned */
	rec_page(&r, 0xaa);
	expect_refused(&r, "bad page descriptor 0x1800");
}

Test(ram_decode, addresses_outside_memory)
{
	static const uint64_t bad[] = { 16 * MIB, 1ULL << 30, ~0ULL & ~0xfffULL,
					16 * MIB - PAGE + PAGE };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rec r;
		rec_hdr(&r, 0, 2, 0);
		rec_u64(&r, 0);
		rec_u64(&r, bad[i]);
		rec_page(&r, 0xaa);
		rec_page(&r, 0xbb);
		expect_refused(&r, "outside guest memory");
	}
	/* the last page is inside */
	struct rec r;
	char err[ERR_MAX];
	rec_hdr(&r, 0, 1, 0);
	rec_u64(&r, 16 * MIB - PAGE);
	rec_page(&r, 0xcc);
	cr_assert_eq(ram_decode(&g_dec, r.b, (uint32_t)r.len, NULL, err), 0, "%s", err);
	cr_assert_eq(page_at(&g_mem, 16 * MIB - PAGE)[PAGE - 1], 0xcc);
}

Test(ram_decode, record_shorter_than_its_pages)
{
	struct rec r;
	rec_hdr(&r, 0, 2, 0);
	rec_u64(&r, 0);
	rec_u64(&r, PAGE);
	rec_page(&r, 0xaa);
	r.len -= 1;
	expect_refused(&r, "(record too short)");
	/* a zero-flagged page carries no data: one page of data for two */
	rec_hdr(&r, 0, 2, 0);
	rec_u64(&r, 0);
	rec_u64(&r, PAGE);
	rec_page(&r, 0xaa);
	expect_refused(&r, "too short");
}

Test(ram_decode, record_longer_than_its_pages)
{
	struct rec r;
	rec_hdr(&r, 0, 2, 0);
	rec_u64(&r, 0);
	rec_u64(&r, PAGE | MIG_PAGE_ZERO);
	rec_page(&r, 0xaa);
	rec_page(&r, 0xbb); /* data for the zero page too */
	expect_refused(&r, "(record too long)");
	rec_hdr(&r, 0, 1, 0);
	rec_u64(&r, 0);
	rec_page(&r, 0xaa);
	r.b[r.len++] = 1;
	expect_refused(&r, "too long");
}

Test(ram_decode, encodings_unknown_or_not_negotiated)
{
	struct rec r;
	rec_hdr(&r, 0, 1, 9);
	rec_u64(&r, 0);
	rec_page(&r, 0xaa);
	expect_refused(&r, "encoding 9 is unknown");
	g_dec.encodings = 0;
	rec_hdr(&r, 0, 1, RAM_ENC_RAW);
	rec_u64(&r, 0);
	rec_page(&r, 0xaa);
	expect_refused(&r, "encoding 'none' was not negotiated");
}

/* Version 1 wrote a u32 count: the same bytes, encoding RAW. */
Test(ram_decode, version_1_layout)
{
	uint8_t b[8 + 16 + PAGE];
	uint32_t round = 2, count = 2;
	uint64_t d0 = 5 * PAGE, d1 = 6 * PAGE | MIG_PAGE_ZERO;
	memcpy(b, &round, 4);
	memcpy(b + 4, &count, 4);
	memcpy(b + 8, &d0, 8);
	memcpy(b + 16, &d1, 8);
	memset(b + 24, 0x77, PAGE);
	fill_page(&g_mem, 6 * PAGE, 1);
	char err[ERR_MAX];
	uint32_t got_round;
	cr_assert_eq(ram_decode(&g_dec, b, sizeof(b), &got_round, err), 0, "%s", err);
	cr_assert_eq(got_round, 2);
	cr_assert_eq(page_at(&g_mem, 5 * PAGE)[100], 0x77);
	cr_assert_eq(page_at(&g_mem, 6 * PAGE)[100], 0, "round 2 zero page not cleared");
}

Test(ram_decode, peek_round)
{
	uint8_t b[8] = { 7, 0, 0, 0, 1, 0, 0, 0 };
	uint32_t round;
	cr_assert_eq(ram_peek_round(b, 8, &round), 0);
	cr_assert_eq(round, 7);
	cr_assert_eq(ram_peek_round(b, 7, &round), -EPROTO);
}

/* Two slots (RAM above 3 GiB): the hole between them is not memory. */
Test(ram_codec, two_slots_and_the_hole)
{
	struct guest_memory m;
	mem_new(&m, MEM_HOLE_START + 8 * MIB);
	cr_assert_eq(m.nslots, 2);
	struct ram_decoder d;
	ram_decoder_init(&d, &m, 1u << RAM_ENC_RAW);
	struct rec r;
	char err[ERR_MAX] = "";
	rec_hdr(&r, 0, 1, 0);
	rec_u64(&r, MEM_HOLE_START); /* the first page of the hole */
	rec_page(&r, 1);
	cr_assert_eq(ram_decode(&d, r.b, (uint32_t)r.len, NULL, err), -EPROTO);
	cr_assert(strstr(err, "outside guest memory"), "%s", err);
	rec_hdr(&r, 0, 1, 0);
	rec_u64(&r, MEM_HOLE_END + 8 * MIB - PAGE); /* the last page of RAM */
	rec_page(&r, 0x42);
	cr_assert_eq(ram_decode(&d, r.b, (uint32_t)r.len, NULL, err), 0, "%s", err);
	cr_assert_eq(page_at(&m, MEM_HOLE_END + 8 * MIB - PAGE)[0], 0x42);
	memory_free(&m);
}

Test(ram_codec, encoding_names)
{
	cr_assert_eq(ram_encoding_by_name("none"), ram_encoding_get(RAM_ENC_RAW));
	cr_assert_eq(ram_encoding_by_name("zstd"), ram_encoding_get(RAM_ENC_ZSTD));
	cr_assert_eq(ram_encoding_by_name("lz4"), ram_encoding_get(RAM_ENC_LZ4));
	cr_assert_null(ram_encoding_by_name("brotli"));
	cr_assert_null(ram_encoding_by_name(NULL));
	cr_assert_null(ram_encoding_get(RAM_ENC_COUNT));
}

/* The encoder's bytes are the documented layout. */
Test(ram_codec, encoded_layout)
{
	struct guest_memory src;
	mem_new(&src, 4 * MIB);
	fill_page(&src, 3 * PAGE, 5);
	int fd[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
	struct channel *a = channel_socket_new(fd[0], true);
	struct rec_writer *w = rec_writer_new(a, MIG_MAX_RECORD);
	struct ram_batch b = { .round = 4, .n = 2, .desc = { 3 * PAGE, 7 * PAGE } };
	struct ram_counts c = { 0 };
	struct ram_encoder e;
	cr_assert_eq(ram_encoder_init(&e, ram_encoding_get(RAM_ENC_RAW), 0, NULL), 0);
	cr_assert_eq(ram_encode(w, &e, &src, &b, &c), 0);
	ram_encoder_free(&e);
	cr_assert_eq(rec_flush(w), 0);
	static uint8_t got[12 + 8 + 16 + PAGE + 1];
	size_t want = 12 + 8 + 16 + PAGE;
	size_t n = 0;
	while (n < want) {
		ssize_t k = read(fd[1], got + n, sizeof(got) - n);
		cr_assert_gt(k, 0);
		n += (size_t)k;
	}
	cr_assert_eq(n, want);
	uint32_t type, len, round;
	uint16_t count, enc;
	uint64_t d0, d1;
	memcpy(&type, got, 4);
	memcpy(&len, got + 4, 4);
	memcpy(&round, got + 8, 4);
	memcpy(&count, got + 12, 2);
	memcpy(&enc, got + 14, 2);
	memcpy(&d0, got + 16, 8);
	memcpy(&d1, got + 24, 8);
	cr_assert_eq(type, MIG_REC_RAM_PAGES);
	cr_assert_eq(len, 8 + 16 + PAGE);
	cr_assert_eq(round, 4);
	cr_assert_eq(count, 2);
	cr_assert_eq(enc, RAM_ENC_RAW);
	cr_assert_eq(d0, 3 * PAGE);
	cr_assert_eq(d1, 7 * PAGE | MIG_PAGE_ZERO, "an all-zero page is sent as zero");
	cr_assert_eq(memcmp(got + 32, page_at(&src, 3 * PAGE), PAGE), 0);
	rec_writer_free(w);
	channel_close(a);
	close(fd[1]);
	memory_free(&src);
}
