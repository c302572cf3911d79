/*
 * The RAM_PAGES format both ways (ram_codec.h), and its first encoding,
 * RAW.  The common part - header, descriptors and their checks - is here
 * once; an encoding only moves page data.
 */
#include "migration/ram_codec.h"
#include "util/log.h"
#include "util/zero.h"

#include <errno.h>
#include <string.h>

#define PAGE GUEST_PAGE_SIZE

/* ---- RAW: the pages' bytes, one after another ------------------------- */

static size_t raw_max_data(unsigned n)
{
	return (size_t)n * PAGE;
}

static size_t raw_encode(const struct guest_memory *mem,
			 const struct ram_batch *b, uint8_t *desc_out,
			 uint8_t *data_out, struct ram_counts *c)
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
	c->data_bytes += used;
	return used;
}

static int raw_decode(struct guest_memory *mem, const uint8_t *desc,
		      unsigned n, const uint8_t *data, size_t len, bool fresh,
		      struct ram_counts *c, char *err)
{
	size_t need = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t d;
		memcpy(&d, desc + (size_t)i * 8, 8);
		if (!(d & MIG_PAGE_ZERO))
			need += PAGE;
	}
	if (len != need)
		return err_set(err, -EPROTO,
			       "RAM_PAGES: %zu bytes of page data where its descriptors need %zu "
			       "(record too %s)", len, need, len < need ? "short" : "long");
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
		memcpy(dst, data, PAGE);
		data += PAGE;
	}
	c->pages += n;
	c->data_bytes += len;
	return 0;
}

static const struct ram_encoding encodings[RAM_ENC_COUNT] = {
	[RAM_ENC_RAW] = { .name = "none", .id = RAM_ENC_RAW,
			  .max_data = raw_max_data, .encode = raw_encode,
			  .decode = raw_decode },
};

const struct ram_encoding *ram_encoding_get(unsigned id)
{
	return id < RAM_ENC_COUNT && encodings[id].encode ? &encodings[id] : NULL;
}

const struct ram_encoding *ram_encoding_by_name(const char *name)
{
	for (unsigned i = 0; i < RAM_ENC_COUNT; i++)
		if (encodings[i].name && !strcmp(encodings[i].name, name))
			return &encodings[i];
	return NULL;
}

/* ---- the record ------------------------------------------------------- */

int ram_encode(struct rec_writer *w, const struct ram_encoding *enc,
	       const struct guest_memory *mem, const struct ram_batch *b,
	       struct ram_counts *c)
{
	if (!b->n)
		return rec_writer_error(w);
	if (b->n > MIG_PAGES_PER_RECORD)
		return rec_writer_fail(w, -EINVAL, "a batch of %u pages is too large", b->n);
	size_t desc_len = (size_t)b->n * 8;
	uint8_t *p = rec_begin(w, MIG_REC_RAM_PAGES,
			       RAM_PAGES_HEADER + desc_len + enc->max_data(b->n));
	if (!p)
		return rec_writer_error(w);
	uint16_t count = (uint16_t)b->n, id = enc->id;
	memcpy(p, &b->round, 4);
	memcpy(p + 4, &count, 2);
	memcpy(p + 6, &id, 2);
	size_t data = enc->encode(mem, b, p + RAM_PAGES_HEADER,
				  p + RAM_PAGES_HEADER + desc_len, c);
	rec_end(w, RAM_PAGES_HEADER + desc_len + data);
	return rec_writer_error(w);
}

void ram_decoder_init(struct ram_decoder *d, struct guest_memory *mem,
		      uint32_t encodings_mask)
{
	memset(d, 0, sizeof(*d));
	d->mem = mem;
	d->encodings = encodings_mask;
}

int ram_peek_round(const uint8_t *p, uint32_t len, uint32_t *round)
{
	if (len < RAM_PAGES_HEADER)
		return -EPROTO;
	memcpy(round, p, 4);
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
	for (unsigned i = 0; i < count; i++) {
		uint64_t v;
		memcpy(&v, desc + (size_t)i * 8, 8);
		if (v & (PAGE - 1) & ~MIG_PAGE_ZERO)
			return err_set(err, -EPROTO, "RAM_PAGES: bad page descriptor 0x%llx",
				       (unsigned long long)v);
		uint64_t gpa = v & ~(PAGE - 1);
		if (!memory_gpa_to_hva(d->mem, gpa, PAGE))
			return err_set(err, -EPROTO,
				       "RAM_PAGES: address 0x%llx is outside guest memory",
				       (unsigned long long)gpa);
	}
	return enc->decode(d->mem, desc, count, desc + desc_len,
			   len - RAM_PAGES_HEADER - desc_len, round == 0,
			   &d->counts, err);
}
