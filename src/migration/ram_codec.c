/*
 * The RAM_PAGES format both ways (ram_codec.h).  The common part - header,
 * descriptors, zero pages and their checks - is here once; an encoding
 * only turns the batch's plain page data into what travels and back
 * (ram_compress.c for zstd and lz4).
 */
#include "migration/ram_codec.h"
#include "migration/fault_ahead.h"
#include "migration/delta.h"
#include "migration/delta_cache.h"
#include "migration/ram_compress.h"
#include "util/log.h"
#include "util/zero.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PAGE GUEST_PAGE_SIZE
#define PLAIN_MAX ((size_t)MIG_PAGES_PER_RECORD * PAGE)
/* The decoder's buffer has a page to spare, so a compressed block that
 * decodes to a little more than its descriptors need is caught as such
 * rather than as merely corrupt. */
#define DECODE_ROOM (PLAIN_MAX + PAGE)

static const struct ram_encoding raw = { .name = "none", .id = RAM_ENC_RAW };

static const struct ram_encoding *const encodings[RAM_ENC_COUNT] = {
	[RAM_ENC_RAW] = &raw,
	[RAM_ENC_ZSTD] = &ram_compress_zstd,
	[RAM_ENC_LZ4] = &ram_compress_lz4,
};

const struct ram_encoding *ram_encoding_get(unsigned id)
{
	return id < RAM_ENC_COUNT ? encodings[id] : NULL;
}

const struct ram_encoding *ram_encoding_by_name(const char *name)
{
	for (unsigned i = 0; name && i < RAM_ENC_COUNT; i++)
		if (!strcmp(encodings[i]->name, name))
			return encodings[i];
	return NULL;
}

/* ---- the source --------------------------------------------------------- */

int ram_encoder_init(struct ram_encoder *e, const struct ram_encoding *enc,
		     unsigned level, char *err)
{
	memset(e, 0, sizeof(*e));
	e->enc = enc;
	e->level = level;
	if (enc->compress && !(e->plain = malloc(PLAIN_MAX)))
		return err_set(err, -ENOMEM, "out of memory for a %s batch buffer",
			       enc->name);
	return 0;
}

void ram_encoder_free(struct ram_encoder *e)
{
	if (e->enc && e->enc->free_cctx && e->ctx)
		e->enc->free_cctx(e->ctx);
	free(e->plain);
	free(e->delta);
	e->ctx = NULL;
	e->plain = NULL;
	e->delta = NULL;
	e->cache = NULL;
}

int ram_encoder_use_deltas(struct ram_encoder *e, struct delta_cache *cache,
			   char *err)
{
	/* A batch with deltas is gathered apart: its lengths go before its
	 * data, and are known only once every page is encoded. */
	if (!e->plain && !(e->plain = malloc(PLAIN_MAX)))
		return err_set(err, -ENOMEM, "out of memory for a batch buffer");
	if (!e->delta && !(e->delta = malloc(PAGE)))
		return err_set(err, -ENOMEM, "out of memory for a delta buffer");
	e->cache = cache;
	return 0;
}

/*
 * Write the batch's final descriptors to desc_out and the plain data of
 * its non-zero pages to data_out; returns the data's length.  Each page
 * is read once, so what is sent is one consistent copy even while the
 * guest writes (a page written meanwhile is dirty and goes again).
 */
static size_t gather(const struct guest_memory *mem, const struct ram_batch *b,
		     uint8_t *desc_out, uint8_t *data_out, struct ram_counts *c)
{
	size_t used = 0;
	for (unsigned i = 0; i < b->n; i++) {
		uint64_t d = b->desc[i];
		if (!(d & MIG_PAGE_ZERO)) {
			const uint8_t *src = memory_gpa_to_hva(mem, d, PAGE);
			uint8_t *dst = data_out + used;
			/* Copied first, then checked: the zero test and the
			 * data sent are the same snapshot of the page. */
			memcpy(dst, src, PAGE);
			if (page_is_zero(dst))
				d |= MIG_PAGE_ZERO;
			else
				used += PAGE;
		}
		if (d & MIG_PAGE_ZERO)
			c->zero_pages++;
		memcpy(desc_out + (size_t)i * 8, &d, 8);
	}
	c->pages += b->n;
	return used;
}

/*
 * gather() for a batch of a later round with a cache: each data page
 * found in the cache goes as its delta against the cached copy (the
 * page the destination holds) when that is at most RAM_DELTA_LIMIT
 * bytes, its length into lens.  Every data page sent leaves its copy in
 * the cache (taking a slot if it can): whatever form a page travels in,
 * the cache holds what the destination will hold.  In the last round
 * nothing is stored: no page goes again.  Returns the plain length.
 */
static size_t gather_deltas(struct ram_encoder *e, const struct guest_memory *mem,
			    const struct ram_batch *b, uint8_t *desc_out,
			    uint16_t *lens, unsigned *nlens, uint8_t *data_out,
			    struct ram_counts *c)
{
	struct delta_cache *cache = e->cache;
	size_t used = 0;
	unsigned nd = 0;

	for (unsigned i = 0; i < b->n; i++) {
		uint64_t d = b->desc[i], gpa = d & ~(uint64_t)(PAGE - 1);
		uint64_t idx = memory_page_index(mem, gpa);
		if (!(d & MIG_PAGE_ZERO)) {
			uint8_t *dst = data_out + used;
			/* One snapshot of the page: the delta, the zero test
			 * and the cached copy are all of the same bytes. */
			memcpy(dst, memory_gpa_to_hva(mem, gpa, PAGE), PAGE);
			if (page_is_zero(dst)) {
				d |= MIG_PAGE_ZERO;
			} else {
				c->delta_eligible++;
				uint8_t *old = delta_cache_find(cache, idx, b->round);
				size_t n = old ? delta_encode(old, dst, e->delta, RAM_DELTA_LIMIT)
					       : DELTA_OVERFLOW;
				if (!old) {
					c->delta_miss++;
					if (!b->last_round)
						delta_cache_insert(cache, idx, dst, b->round);
				} else if (!b->last_round) {
					memcpy(old, dst, PAGE);
				}
				if (old && n == DELTA_OVERFLOW)
					c->delta_overflow++;
				if (n == DELTA_OVERFLOW) {
					used += PAGE;
				} else {
					memcpy(dst, e->delta, n);
					used += n;
					d |= MIG_PAGE_DELTA;
					lens[nd++] = (uint16_t)n;
					c->delta_pages++;
					c->delta_unchanged += !n;
					c->delta_bytes += n + 2;
				}
			}
		}
		if (d & MIG_PAGE_ZERO) {
			c->zero_pages++;
			/* The destination holds zeros now, not the copy. */
			if (!b->last_round)
				delta_cache_drop(cache, idx);
		}
		memcpy(desc_out + (size_t)i * 8, &d, 8);
	}
	c->pages += b->n;
	*nlens = nd;
	return used;
}

int ram_encode(struct rec_writer *w, struct ram_encoder *e,
	       const struct guest_memory *mem, const struct ram_batch *b,
	       struct ram_counts *c)
{
	const struct ram_encoding *enc = e->enc;

	if (!b->n)
		return rec_writer_error(w);
	if (b->n > MIG_PAGES_PER_RECORD)
		return rec_writer_fail(w, -EINVAL, "a batch of %u pages is too large", b->n);
	/* Round 0 sends every page for the first time: nothing to diff. */
	bool deltas = e->cache && b->round >= 1;
	size_t desc_len = (size_t)b->n * 8, plain_max = (size_t)b->n * PAGE;
	size_t room = plain_max, table_max = deltas ? (size_t)b->n * 2 : 0;
	if (enc->compress && enc->bound(plain_max) > room)
		room = enc->bound(plain_max);
	uint8_t *p = rec_begin(w, MIG_REC_RAM_PAGES,
			       RAM_PAGES_HEADER + desc_len + table_max + room);
	if (!p)
		return rec_writer_error(w);
	uint8_t *desc = p + RAM_PAGES_HEADER, *data = desc + desc_len;
	uint16_t count = (uint16_t)b->n, id = RAM_ENC_RAW;
	/* The deltas' lengths, copied as they are: little-endian u16s on
	 * the x86 hosts KVM runs (delta.c refuses to build elsewhere). */
	uint16_t lens[MIG_PAGES_PER_RECORD];
	unsigned nlens = 0;
	size_t plain, len;

	if (!enc->compress && !deltas) {
		/* Straight into the record: the only copy on the source. */
		plain = len = gather(mem, b, desc, data, c);
	} else if (!enc->compress) {
		plain = len = gather_deltas(e, mem, b, desc, lens, &nlens, e->plain, c);
		memcpy(data, lens, (size_t)nlens * 2);
		data += (size_t)nlens * 2;
		memcpy(data, e->plain, plain);
	} else {
		if (deltas) {
			plain = gather_deltas(e, mem, b, desc, lens, &nlens, e->plain, c);
			memcpy(data, lens, (size_t)nlens * 2);
			data += (size_t)nlens * 2;
		} else {
			plain = gather(mem, b, desc, e->plain, c);
		}
		len = plain;
		size_t z = plain ? enc->compress(&e->ctx, e->level, e->plain, plain,
						 data, room) : 0;
		if (z && z < plain) {
			id = enc->id;
			len = z;
			c->compressed_batches++;
		} else if (plain) {
			/* Incompressible (or the library failed): RAW costs
			 * no more than the pages themselves. */
			if (!z && !e->failed_once) {
				e->failed_once = true;
				log_warn("%s compression failed (out of memory?): batches it "
					 "fails on go uncompressed", enc->name);
			}
			memcpy(data, e->plain, plain);
			c->raw_batches++;
		}
	}
	memcpy(p, &b->round, 4);
	memcpy(p + 4, &count, 2);
	memcpy(p + 6, &id, 2);
	c->plain_bytes += plain;
	c->data_bytes += len;
	rec_end(w, RAM_PAGES_HEADER + desc_len + (size_t)nlens * 2 + len);
	return rec_writer_error(w);
}

/* ---- the destination ---------------------------------------------------- */

void ram_decoder_init(struct ram_decoder *d, struct guest_memory *mem,
		      uint32_t encodings_mask)
{
	memset(d, 0, sizeof(*d));
	d->mem = mem;
	d->encodings = encodings_mask | 1u << RAM_ENC_RAW;
}

void ram_decoder_free(struct ram_decoder *d)
{
	for (unsigned i = 0; i < RAM_ENC_COUNT; i++) {
		if (d->ctx[i] && encodings[i]->free_dctx)
			encodings[i]->free_dctx(d->ctx[i]);
		d->ctx[i] = NULL;
	}
	free(d->plain);
	d->plain = NULL;
}

int ram_peek_round(const uint8_t *p, uint32_t len, uint32_t *round)
{
	if (len < RAM_PAGES_HEADER)
		return -EPROTO;
	memcpy(round, p, 4);
	return 0;
}

/* A record's descriptors go up (the source scans upwards): its last one
 * is its highest page. */
static void note_frontier(const struct ram_decoder *d, const uint8_t *desc, unsigned n)
{
	uint64_t last;
	if (!d->frontier || !n)
		return;
	memcpy(&last, desc + (size_t)(n - 1) * 8, 8);
	fa_note_frontier(d->frontier, (last & ~(uint64_t)(PAGE - 1)) + PAGE);
}

/*
 * Put the checked plain data where the descriptors say: a data page's
 * 4096 bytes, or its delta (checked, lens[k] bytes) applied to the page
 * as it is.
 */
static void place(struct guest_memory *mem, const uint8_t *desc, unsigned n,
		  const uint8_t *lens, const uint8_t *data, bool fresh,
		  struct ram_counts *c)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t d;
		memcpy(&d, desc + (size_t)i * 8, 8);
		uint8_t *dst = memory_gpa_to_hva(mem, d & ~(PAGE - 1), PAGE);
		if (d & MIG_PAGE_ZERO) {
			/* Fresh memory is zero; only a page written in an
			 * earlier round needs clearing. */
			if (!fresh)
				memset(dst, 0, PAGE);
			c->zero_pages++;
			continue;
		}
		if (d & MIG_PAGE_DELTA) {
			uint16_t dl;
			memcpy(&dl, lens, 2);
			lens += 2;
			delta_apply(dst, data, dl);
			data += dl;
			c->delta_pages++;
			c->delta_bytes += dl + 2u;
			continue;
		}
		memcpy(dst, data, PAGE);
		data += PAGE;
	}
	c->pages += n;
}

/* Every delta of the record well formed?  Before any page is written. */
static int check_deltas(const uint8_t *desc, unsigned n, const uint8_t *lens,
			const uint8_t *data, char *err)
{
	char why[ERR_MAX];

	for (unsigned i = 0; i < n; i++) {
		uint64_t d;
		memcpy(&d, desc + (size_t)i * 8, 8);
		if (d & MIG_PAGE_ZERO)
			continue;
		if (!(d & MIG_PAGE_DELTA)) {
			data += PAGE;
			continue;
		}
		uint16_t dl;
		memcpy(&dl, lens, 2);
		lens += 2;
		if (delta_check(data, dl, why))
			return err_set(err, -EPROTO, "RAM_PAGES: the delta for page 0x%llx: %s",
				       (unsigned long long)(d & ~(PAGE - 1)), why);
		data += dl;
	}
	return 0;
}

int ram_decode(struct ram_decoder *d, const uint8_t *p, uint32_t len,
	       uint32_t *round_out, char *err)
{
	uint32_t round;
	uint16_t count, id;

	if (len < RAM_PAGES_HEADER)
		return err_set(err, -EPROTO, "RAM_PAGES: %u bytes, shorter than its header", len);
	memcpy(&round, p, 4);
	memcpy(&count, p + 4, 2);
	memcpy(&id, p + 6, 2);
	if (round_out)
		*round_out = round;
	if (count == 0 || count > MIG_PAGES_PER_RECORD)
		return err_set(err, -EPROTO, "RAM_PAGES: bad page count %u (1..%u)",
			       count, MIG_PAGES_PER_RECORD);
	const struct ram_encoding *enc = ram_encoding_get(id);
	if (!enc)
		return err_set(err, -EPROTO, "RAM_PAGES: encoding %u is unknown here", id);
	if (!(d->encodings & (1u << id)))
		return err_set(err, -EPROTO, "RAM_PAGES: encoding '%s' was not negotiated",
			       enc->name);
	size_t desc_len = (size_t)count * 8;
	if (len - RAM_PAGES_HEADER < desc_len)
		return err_set(err, -EPROTO,
			       "RAM_PAGES: %u bytes cannot hold %u page descriptors (record too short)",
			       len, count);
	const uint8_t *desc = p + RAM_PAGES_HEADER;
	size_t need = 0;
	unsigned ndelta = 0;
	for (unsigned i = 0; i < count; i++) {
		uint64_t v;
		memcpy(&v, desc + (size_t)i * 8, 8);
		if (v & (PAGE - 1) & ~(MIG_PAGE_ZERO | MIG_PAGE_DELTA) ||
		    (v & MIG_PAGE_ZERO && v & MIG_PAGE_DELTA))
			return err_set(err, -EPROTO, "RAM_PAGES: bad page descriptor 0x%llx",
				       (unsigned long long)v);
		uint64_t gpa = v & ~(PAGE - 1);
		if (v & MIG_PAGE_DELTA && !d->deltas)
			return err_set(err, -EPROTO,
				       "RAM_PAGES: page 0x%llx comes as a delta, but deltas "
				       "(xbzrle) were not negotiated",
				       (unsigned long long)gpa);
		if (!memory_gpa_to_hva(d->mem, gpa, PAGE))
			return err_set(err, -EPROTO,
				       "RAM_PAGES: address 0x%llx is outside guest memory",
				       (unsigned long long)gpa);
		if (v & MIG_PAGE_DELTA)
			ndelta++;
		else if (!(v & MIG_PAGE_ZERO))
			need += PAGE;
	}
	/* The deltas' lengths, then the data. */
	const uint8_t *lens = desc + desc_len;
	size_t lens_len = (size_t)ndelta * 2;
	if (len - RAM_PAGES_HEADER - desc_len < lens_len)
		return err_set(err, -EPROTO,
			       "RAM_PAGES: %u bytes cannot hold %u page descriptors and the "
			       "lengths of %u deltas (record too short)", len, count, ndelta);
	for (unsigned k = 0; k < ndelta; k++) {
		uint16_t dl;
		memcpy(&dl, lens + (size_t)k * 2, 2);
		if (dl > RAM_DELTA_MAX)
			return err_set(err, -EPROTO,
				       "RAM_PAGES: delta %u of the record is %u bytes, not smaller "
				       "than a page", k + 1, dl);
		need += dl;
	}
	const uint8_t *data = lens + lens_len;
	size_t data_len = len - RAM_PAGES_HEADER - desc_len - lens_len;
	const uint8_t *plain = data;

	if (!enc->decompress) {
		if (data_len != need)
			return err_set(err, -EPROTO,
				       "RAM_PAGES: %zu bytes of page data where its descriptors need %zu "
				       "(record too %s)", data_len, need,
				       data_len < need ? "short" : "long");
	} else {
		/* A source compresses only data it has: a compressed
		 * record without any is not one it makes. */
		if (!need)
			return err_set(err, -EPROTO,
				       "RAM_PAGES: %s data for a batch without page data",
				       enc->name);
		if (!data_len)
			return err_set(err, -EPROTO, "RAM_PAGES: %s data missing (%zu bytes needed)",
				       enc->name, need);
		if (!d->plain && !(d->plain = malloc(DECODE_ROOM)))
			return err_set(err, -ENOMEM, "out of memory for a %s batch", enc->name);
		int r = enc->decompress(&d->ctx[id], data, data_len, d->plain, need,
					DECODE_ROOM, err);
		if (r)
			return r;
		plain = d->plain;
	}
	if (ndelta && check_deltas(desc, count, lens, plain, err))
		return -EPROTO;
	note_frontier(d, desc, count);
	place(d->mem, desc, count, lens, plain, round == 0, &d->counts);
	if (enc->decompress)
		d->counts.compressed_batches++;
	/* Data sent RAW on a compressed stream: a batch that did not
	 * shrink (the source counts the same). */
	else if (need && (d->encodings & ~(1u << RAM_ENC_RAW)))
		d->counts.raw_batches++;
	d->counts.plain_bytes += need;
	d->counts.data_bytes += data_len;
	return 0;
}

/* ---- straight into guest memory ----------------------------------------- */

unsigned ram_direct_count(const uint8_t *header, uint32_t len)
{
	uint16_t count, id;
	memcpy(&count, header + 4, 2);
	memcpy(&id, header + 6, 2);
	if (len < RAM_PAGES_HEADER || id != RAM_ENC_RAW || count == 0 ||
	    count > MIG_PAGES_PER_RECORD ||
	    len - RAM_PAGES_HEADER < (size_t)count * 8)
		return 0;
	return count;
}

bool ram_direct_check(const struct ram_decoder *d, const uint8_t *head,
		      unsigned count, uint32_t len)
{
	const uint8_t *desc = head + RAM_PAGES_HEADER;
	size_t need = 0;
	for (unsigned i = 0; i < count; i++) {
		uint64_t v;
		memcpy(&v, desc + (size_t)i * 8, 8);
		if (v & (PAGE - 1) & ~MIG_PAGE_ZERO)
			return false;
		if (!memory_gpa_to_hva(d->mem, v & ~(PAGE - 1), PAGE))
			return false;
		if (!(v & MIG_PAGE_ZERO))
			need += PAGE;
	}
	return len - RAM_PAGES_HEADER - (size_t)count * 8 == need;
}

int ram_direct_each_run(const struct ram_decoder *d, const uint8_t *head, unsigned count,
			int (*fn)(void *opaque, uint8_t *dst, size_t len), void *opaque)
{
	const uint8_t *desc = head + RAM_PAGES_HEADER;
	uint8_t *run = NULL;
	size_t run_len = 0;

	note_frontier(d, desc, count);
	for (unsigned i = 0; i <= count; i++) {
		uint8_t *dst = NULL;
		if (i < count) {
			uint64_t v;
			memcpy(&v, desc + (size_t)i * 8, 8);
			if (v & MIG_PAGE_ZERO)
				continue;
			dst = memory_gpa_to_hva(d->mem, v, PAGE);
			if (run && dst == run + run_len) {
				run_len += PAGE;
				continue;
			}
		}
		if (run) {
			int e = fn(opaque, run, run_len);
			if (e)
				return e;
		}
		run = dst;
		run_len = PAGE;
	}
	return 0;
}

void ram_direct_done(struct ram_decoder *d, const uint8_t *head, unsigned count)
{
	const uint8_t *desc = head + RAM_PAGES_HEADER;
	uint32_t round;
	size_t data = 0;
	memcpy(&round, head, 4);
	for (unsigned i = 0; i < count; i++) {
		uint64_t v;
		memcpy(&v, desc + (size_t)i * 8, 8);
		if (!(v & MIG_PAGE_ZERO)) {
			data += PAGE;
			continue;
		}
		if (round)
			memset(memory_gpa_to_hva(d->mem, v & ~(PAGE - 1), PAGE), 0, PAGE);
		d->counts.zero_pages++;
	}
	d->counts.pages += count;
	d->counts.plain_bytes += data;
	d->counts.data_bytes += data;
	if (data && (d->encodings & ~(1u << RAM_ENC_RAW)))
		d->counts.raw_batches++;
}
