/*
 * RAM_PAGES with deltas (capability "xbzrle"): the source's encoder with a
 * page cache against the destination's decoder over a real socket, round
 * after round, raw and compressed; and the records with deltas a
 * destination must refuse before it writes anything.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "io/channel.h"
#include "io/record.h"
#include "migration/delta.h"
#include "migration/delta_cache.h"
#include "migration/protocol.h"
#include "migration/ram_codec.h"
#include "vmm/memory.h"
#include "util/log.h"

#define PAGE 4096u
#define MIB (1ULL << 20)

struct pipe {
	struct channel *a, *z;
	struct rec_writer *w;
	struct rec_reader *r;
};

static void pipe_open(struct pipe *p)
{
	int fd[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
	int big = 4 << 20;
	setsockopt(fd[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(fd[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	p->a = channel_socket_new(fd[0], true);
	p->z = channel_socket_new(fd[1], true);
	p->w = rec_writer_new(p->a, MIG_MAX_RECORD);
	p->r = rec_reader_new(p->z, MIG_MAX_RECORD);
}

static void pipe_close(struct pipe *p)
{
	rec_writer_free(p->w);
	rec_reader_free(p->r);
	channel_close(p->a);
	channel_close(p->z);
}

/* One batch through: encode with e, decode with d; returns the record's
 * length on the wire (payload). */
static uint32_t send_batch(struct pipe *p, struct ram_encoder *e,
			   struct guest_memory *src, struct ram_decoder *d,
			   const struct ram_batch *b, struct ram_counts *ec)
{
	char err[ERR_MAX] = "";
	cr_assert_eq(ram_encode(p->w, e, src, b, ec), 0, "%s", rec_writer_errmsg(p->w));
	cr_assert_eq(rec_flush(p->w), 0, "%s", rec_writer_errmsg(p->w));
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(p->r, &type, &pl, &len), 0, "%s", rec_reader_errmsg(p->r));
	cr_assert_eq(type, MIG_REC_RAM_PAGES);
	cr_assert_eq(ram_decode(d, pl, len, NULL, err), 0, "%s", err);
	return len;
}

static void mem_new(struct guest_memory *m, uint64_t size)
{
	char err[ERR_MAX];
	memory_layout(m, size);
	cr_assert_eq(memory_alloc(m, err), 0, "%s", err);
}

static uint8_t *page_at(struct guest_memory *m, uint64_t gpa)
{
	uint8_t *p = memory_gpa_to_hva(m, gpa, PAGE);
	cr_assert_not_null(p);
	return p;
}

/* A migration in miniature: 256 pages over rounds 0..4, the guest
 * writing a few counters into most pages between rounds (and zeroing
 * one, and rewriting one whole), with a cache of 128 pages so some
 * pages miss.  The destination must equal the source after each round. */
static void rounds(unsigned encoding)
{
	struct guest_memory src, dst;
	mem_new(&src, 4 * MIB);
	mem_new(&dst, 4 * MIB);
	struct delta_cache cache;
	struct ram_encoder e;
	struct ram_decoder d;
	struct pipe p;
	char err[ERR_MAX];
	struct ram_counts ec = { 0 };

	cr_assert_eq(delta_cache_init(&cache, 128 * PAGE, memory_npages(&src), err), 0);
	cr_assert_eq(ram_encoder_init(&e, ram_encoding_get(encoding), 1, err), 0, "%s", err);
	cr_assert_eq(ram_encoder_use_deltas(&e, &cache, err), 0, "%s", err);
	ram_decoder_init(&d, &dst, 1u << encoding);
	d.deltas = true;
	pipe_open(&p);
	for (unsigned i = 0; i < 256; i++)
		for (unsigned j = 0; j < PAGE; j++)
			page_at(&src, (uint64_t)i * PAGE)[j] = (uint8_t)(i * 31 + j * 7 + (j >> 9));
	uint32_t first_len = 0, last_len = 0;
	for (uint32_t round = 0; round <= 4; round++) {
		struct ram_batch b = { .round = round, .n = 256, .last_round = round == 4 };
		for (unsigned i = 0; i < 256; i++)
			b.desc[i] = (uint64_t)i * PAGE;
		uint32_t len = send_batch(&p, &e, &src, &d, &b, &ec);
		if (round == 1)
			first_len = len;
		last_len = len;
		cr_assert_eq(memcmp(src.slots[0].hva, dst.slots[0].hva, 256 * PAGE), 0,
			     "round %u: the destination differs", round);
		/* The guest writes between rounds. */
		for (unsigned i = 0; i < 256; i += 1) {
			uint64_t *ctr = (uint64_t *)page_at(&src, (uint64_t)i * PAGE);
			ctr[(round * 13 + i) % 512] += round + 1;
			ctr[(round * 7 + i * 3) % 512] ^= 0xff00;
		}
		memset(page_at(&src, 5 * PAGE), 0, PAGE);
		for (unsigned j = 0; j < PAGE; j++)
			page_at(&src, 9 * PAGE)[j] ^= (uint8_t)(j * 13 + round + 1);
	}
	/* Round 1 misses everything (nothing cached in round 0); later
	 * rounds hit for the 128 pages that hold the cache's slots (pages
	 * 128..255 share them and are refused while those stay hot): raw
	 * records shrink by about half.  Compressed, this test's patterned
	 * pages shrink more than their deltas do, so no size is promised. */
	if (encoding == RAM_ENC_RAW)
		cr_assert_lt(last_len, first_len * 0.55, "round 4 %u bytes, round 1 %u",
			     last_len, first_len);
	/* Round 1: the 255 data pages (page 5 is zero from round 1 on and
	 * gives up its slot, which page 133 takes); rounds 2-4: pages
	 * 128..255 but 133. */
	cr_assert_eq(ec.delta_miss, 255 + 3 * 127, "misses %llu",
		     (unsigned long long)ec.delta_miss);
	cr_assert_gt(ec.delta_pages, 0);
	cr_assert_gt(ec.delta_miss, 0);
	cr_assert_gt(ec.delta_overflow, 0, "page 9 changes whole every round");
	cr_assert_eq(ec.delta_eligible,
		     ec.delta_pages + ec.delta_miss + ec.delta_overflow);
	cr_assert_eq(d.counts.delta_pages, ec.delta_pages);
	cr_assert_eq(d.counts.delta_bytes, ec.delta_bytes);
	pipe_close(&p);
	ram_decoder_free(&d);
	ram_encoder_free(&e);
	delta_cache_free(&cache);
	memory_free(&src);
	memory_free(&dst);
}

Test(ram_delta, rounds_raw)
{
	rounds(RAM_ENC_RAW);
}

Test(ram_delta, rounds_zstd)
{
	rounds(RAM_ENC_ZSTD);
}

Test(ram_delta, rounds_lz4)
{
	rounds(RAM_ENC_LZ4);
}

/* An unchanged page resent costs its descriptor and a 2-byte length. */
Test(ram_delta, unchanged_page_is_two_bytes)
{
	struct guest_memory src, dst;
	mem_new(&src, 4 * MIB);
	mem_new(&dst, 4 * MIB);
	struct delta_cache cache;
	struct ram_encoder e;
	struct ram_decoder d;
	struct pipe p;
	char err[ERR_MAX];
	struct ram_counts ec = { 0 };
	cr_assert_eq(delta_cache_init(&cache, MIB, 0, err), 0);
	cr_assert_eq(ram_encoder_init(&e, ram_encoding_get(RAM_ENC_RAW), 0, err), 0);
	cr_assert_eq(ram_encoder_use_deltas(&e, &cache, err), 0);
	ram_decoder_init(&d, &dst, 0);
	d.deltas = true;
	pipe_open(&p);
	memset(page_at(&src, 0), 0x11, PAGE);
	struct ram_batch b = { .round = 1, .n = 1, .desc = { 0 } };
	cr_assert_eq(send_batch(&p, &e, &src, &d, &b, &ec), RAM_PAGES_HEADER + 8 + PAGE);
	b.round = 2;
	cr_assert_eq(send_batch(&p, &e, &src, &d, &b, &ec), RAM_PAGES_HEADER + 8 + 2);
	cr_assert_eq(ec.delta_unchanged, 1);
	cr_assert_eq(memcmp(page_at(&src, 0), page_at(&dst, 0), PAGE), 0);
	pipe_close(&p);
	ram_decoder_free(&d);
	ram_encoder_free(&e);
	delta_cache_free(&cache);
	memory_free(&src);
	memory_free(&dst);
}

/* ---- records a destination refuses ------------------------------------ */

struct rec {
	uint8_t b[8 + 8 * 4 + 2 * 4 + 4 * PAGE + 64];
	size_t len;
};

static void put(struct rec *r, const void *v, size_t n)
{
	memcpy(r->b + r->len, v, n);
	r->len += n;
}

static void hdr(struct rec *r, uint32_t round, uint16_t count, uint16_t enc)
{
	r->len = 0;
	put(r, &round, 4);
	put(r, &count, 2);
	put(r, &enc, 2);
}

static void u64(struct rec *r, uint64_t v) { put(r, &v, 8); }
static void u16(struct rec *r, uint16_t v) { put(r, &v, 2); }

static struct guest_memory g_mem;
static struct ram_decoder g_dec;

static void setup(void)
{
	mem_new(&g_mem, 4 * MIB);
	memset(page_at(&g_mem, PAGE), 0x44, PAGE);
	ram_decoder_init(&g_dec, &g_mem, 0);
	g_dec.deltas = true;
}

static void teardown(void)
{
	ram_decoder_free(&g_dec);
	memory_free(&g_mem);
}

static void refused(const struct rec *r, const char *needle)
{
	char err[ERR_MAX] = "";
	cr_assert_eq(ram_decode(&g_dec, r->b, (uint32_t)r->len, NULL, err), -EPROTO,
		     "accepted a record that should fail with '%s'", needle);
	cr_assert(strstr(err, needle), "message '%s' lacks '%s'", err, needle);
	cr_assert_eq(g_dec.counts.pages, 0);
	for (unsigned i = 0; i < PAGE; i++)
		cr_assert_eq(page_at(&g_mem, PAGE)[i], 0x44, "byte %u written", i);
	cr_assert_eq(page_at(&g_mem, 0)[0], 0);
}

TestSuite(ram_delta_decode, .init = setup, .fini = teardown);

Test(ram_delta_decode, a_good_record_applies)
{
	struct rec r;
	char err[ERR_MAX] = "";
	hdr(&r, 2, 2, RAM_ENC_RAW);
	u64(&r, 0);
	u64(&r, PAGE | MIG_PAGE_DELTA);
	u16(&r, 4);
	uint8_t page0[PAGE];
	memset(page0, 0x99, PAGE);
	put(&r, page0, PAGE);
	put(&r, (const uint8_t[]){ 10, 2, 0xaa, 0xbb }, 4);
	cr_assert_eq(ram_decode(&g_dec, r.b, (uint32_t)r.len, NULL, err), 0, "%s", err);
	cr_assert_eq(page_at(&g_mem, 0)[0], 0x99);
	uint8_t *p = page_at(&g_mem, PAGE);
	cr_assert_eq(p[9], 0x44);
	cr_assert_eq(p[10], 0xaa);
	cr_assert_eq(p[11], 0xbb);
	cr_assert_eq(p[12], 0x44);
	cr_assert_eq(g_dec.counts.delta_pages, 1);
	cr_assert_eq(g_dec.counts.delta_bytes, 6);
}

Test(ram_delta_decode, deltas_not_negotiated)
{
	struct rec r;
	g_dec.deltas = false;
	hdr(&r, 2, 1, RAM_ENC_RAW);
	u64(&r, PAGE | MIG_PAGE_DELTA);
	u16(&r, 4);
	put(&r, (const uint8_t[]){ 10, 2, 0xaa, 0xbb }, 4);
	refused(&r, "page 0x1000 comes as a delta, but deltas (xbzrle) were not negotiated");
}

Test(ram_delta_decode, zero_and_delta_at_once)
{
	struct rec r;
	hdr(&r, 2, 1, RAM_ENC_RAW);
	u64(&r, PAGE | MIG_PAGE_DELTA | MIG_PAGE_ZERO);
	refused(&r, "bad page descriptor 0x1003");
}

Test(ram_delta_decode, lengths_cut_short)
{
	struct rec r;
	hdr(&r, 2, 2, RAM_ENC_RAW);
	u64(&r, PAGE | MIG_PAGE_DELTA);
	u64(&r, 2 * PAGE | MIG_PAGE_DELTA);
	u16(&r, 0);
	put(&r, "x", 1);
	refused(&r, "the lengths of 2 deltas (record too short)");
}

Test(ram_delta_decode, delta_as_long_as_a_page)
{
	struct rec r;
	hdr(&r, 2, 1, RAM_ENC_RAW);
	u64(&r, PAGE | MIG_PAGE_DELTA);
	u16(&r, PAGE);
	refused(&r, "delta 1 of the record is 4096 bytes, not smaller than a page");
}

Test(ram_delta_decode, data_shorter_or_longer_than_the_lengths)
{
	struct rec r;
	hdr(&r, 2, 1, RAM_ENC_RAW);
	u64(&r, PAGE | MIG_PAGE_DELTA);
	u16(&r, 4);
	put(&r, (const uint8_t[]){ 10, 2, 0xaa }, 3);
	refused(&r, "3 bytes of page data where its descriptors need 4 (record too short)");
	put(&r, (const uint8_t[]){ 0xbb, 0xcc }, 2);
	refused(&r, "5 bytes of page data where its descriptors need 4 (record too long)");
}

Test(ram_delta_decode, a_bad_delta_names_its_page_and_writes_nothing)
{
	struct rec r;
	/* A good raw page first: still not written when the delta fails. */
	hdr(&r, 2, 2, RAM_ENC_RAW);
	u64(&r, 0);
	u64(&r, PAGE | MIG_PAGE_DELTA);
	u16(&r, 5);
	uint8_t page0[PAGE];
	memset(page0, 0x99, PAGE);
	put(&r, page0, PAGE);
	/* skip 4095, then 2 bytes: past the page's end */
	put(&r, (const uint8_t[]){ 0xff, 0x1f, 2, 1, 2 }, 5);
	refused(&r, "the delta for page 0x1000: run 1 changes bytes 4095..4096, past the page's end");
}
