/*
 * postcopy_proto.c - see postcopy_proto.h.
 */
#include "migration/postcopy_proto.h"
#include "vmm/memory_runs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/zero.h"

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

bool pcp_put_page(struct rec_writer *w, uint64_t gpa, const void *page,
		  bool answer)
{
	uint8_t *p = rec_begin(w, MIG_REC_PAGE,
			       PCP_PAGE_HEADER + GUEST_PAGE_SIZE);
	if (!p)
		return false;
	uint64_t desc = gpa | (answer ? PCP_PAGE_ANSWER : 0);
	/* Copied first, then tested: the guest may not be paused (a VMM
	 * write), and what is tested must be what is sent. */
	memcpy(p + PCP_PAGE_HEADER, page, GUEST_PAGE_SIZE);
	bool zero = page_is_zero(p + PCP_PAGE_HEADER);
	if (zero)
		desc |= MIG_PAGE_ZERO;
	put_le64(p, desc);
	rec_end(w, PCP_PAGE_HEADER + (zero ? 0 : GUEST_PAGE_SIZE));
	return zero;
}

int pcp_parse_page(const uint8_t *p, uint32_t len,
		   const struct guest_memory *mem, uint64_t *gpa,
		   const uint8_t **data, bool *answer, char *err)
{
	if (len < PCP_PAGE_HEADER)
		return err_set(err, -EPROTO, "PAGE record of %u bytes is too short",
			       len);
	struct cursor c;
	cursor_init(&c, p, len);
	uint64_t desc = cursor_u64(&c);
	uint64_t flags = desc & (GUEST_PAGE_SIZE - 1);
	uint64_t a = desc & ~(GUEST_PAGE_SIZE - 1);
	if (flags & ~(MIG_PAGE_ZERO | PCP_PAGE_ANSWER))
		return err_set(err, -EPROTO,
			       "PAGE 0x%llx has unknown flags 0x%llx",
			       (unsigned long long)a, (unsigned long long)flags);
	if (!memory_gpa_to_hva(mem, a, GUEST_PAGE_SIZE))
		return err_set(err, -EPROTO,
			       "PAGE 0x%llx lies outside guest RAM",
			       (unsigned long long)a);
	bool zero = flags & MIG_PAGE_ZERO;
	uint32_t want = PCP_PAGE_HEADER + (zero ? 0 : (uint32_t)GUEST_PAGE_SIZE);
	if (len != want)
		return err_set(err, -EPROTO,
			       "PAGE 0x%llx%s has %u bytes, not %u",
			       (unsigned long long)a, zero ? " (zero)" : "",
			       len, want);
	*gpa = a;
	*data = zero ? NULL : p + PCP_PAGE_HEADER;
	if (answer)
		*answer = flags & PCP_PAGE_ANSWER;
	return 0;
}

void pcp_put_request(struct rec_writer *w, const struct pcp_range *r,
		     unsigned n)
{
	uint8_t *p = rec_begin(w, MIG_REC_PAGE_REQUEST, 4 + 16 * (size_t)n);
	if (!p)
		return;
	p[0] = (uint8_t)n;
	p[1] = (uint8_t)(n >> 8);
	p[2] = (uint8_t)(n >> 16);
	p[3] = (uint8_t)(n >> 24);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *e = p + 4 + 16 * i;
		put_le64(e, r[i].gpa);
		put_le64(e + 8, r[i].npages);   /* u32 npages, u32 0 */
	}
	rec_end(w, 4 + 16 * (size_t)n);
}

int pcp_parse_request(const uint8_t *p, uint32_t len,
		      const struct guest_memory *mem, struct pcp_range *out,
		      unsigned *n, char *err)
{
	struct cursor c;
	cursor_init(&c, p, len);
	uint32_t count = cursor_u32(&c);
	if (c.short_read || count == 0 || count > PCP_REQ_MAX_RANGES)
		return err_set(err, -EPROTO,
			       "PAGE_REQUEST of %u bytes: count %u (1..%u)",
			       len, c.short_read ? 0 : count, PCP_REQ_MAX_RANGES);
	if (len != 4 + 16 * count)
		return err_set(err, -EPROTO,
			       "PAGE_REQUEST for %u ranges has %u bytes, not %u",
			       count, len, 4 + 16 * count);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t gpa = cursor_u64(&c);
		uint32_t np = cursor_u32(&c);
		uint32_t zero = cursor_u32(&c);
		if (gpa & (GUEST_PAGE_SIZE - 1) || zero)
			return err_set(err, -EPROTO,
				       "PAGE_REQUEST range %u: address 0x%llx not page aligned or reserved bits set",
				       i, (unsigned long long)gpa);
		if (np == 0 || np > PCP_REQ_MAX_PAGES)
			return err_set(err, -EPROTO,
				       "PAGE_REQUEST range %u: %u pages (1..%u)",
				       i, np, PCP_REQ_MAX_PAGES);
		if (!memory_gpa_to_hva(mem, gpa, (uint64_t)np * GUEST_PAGE_SIZE))
			return err_set(err, -EPROTO,
				       "PAGE_REQUEST range %u: 0x%llx + %u pages lies outside guest RAM",
				       i, (unsigned long long)gpa, np);
		out[i] = (struct pcp_range){ .gpa = gpa, .npages = np };
	}
	*n = count;
	return 0;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void pcp_put_missing(struct rec_writer *w, const struct pcp_run *runs, size_t n)
{
	pcp_put_runs(w, MIG_REC_POSTCOPY_MISSING, runs, n);
}

int pcp_run_list_add(void *opaque, uint64_t first, uint64_t npages)
{
	struct pcp_run_list *l = opaque;
	uint64_t gpa = l->slot_gpa + first * GUEST_PAGE_SIZE;

	l->pages += npages;
	if (l->n && l->runs[l->n - 1].gpa + l->runs[l->n - 1].npages * GUEST_PAGE_SIZE == gpa) {
		l->runs[l->n - 1].npages += npages;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct pcp_run *m2 = realloc(l->runs, cap * sizeof(*m2));
		if (!m2)
			return -ENOMEM;
		l->runs = m2;
		l->cap = cap;
	}
	l->runs[l->n++] = (struct pcp_run){ gpa, npages };
	return 0;
}

int pcp_list_populated(const struct guest_memory *mem, struct pcp_run_list *l)
{
	int r = 0;
	for (unsigned i = 0; i < mem->nslots && !r; i++) {
		l->slot_gpa = mem->slots[i].gpa;
		r = memory_populated_runs(mem, i, 0, mem->slots[i].size / GUEST_PAGE_SIZE,
					  pcp_run_list_add, l);
	}
	return r;
}

size_t pcp_put_runs(struct rec_writer *w, uint32_t type, const struct pcp_run *runs,
		    size_t n)
{
	size_t records = 0;
	while (n) {
		uint32_t count = n > PCP_MISSING_MAX_RUNS ? PCP_MISSING_MAX_RUNS : (uint32_t)n;
		uint32_t len = PCP_MISSING_HEADER + count * PCP_MISSING_RUN;
		uint8_t *p = rec_begin(w, type, len);
		if (!p)
			return records;   /* the writer keeps its error */
		memcpy(p, &count, 4);
		memset(p + 4, 0, 4);
		for (uint32_t i = 0; i < count; i++) {
			put_le64(p + PCP_MISSING_HEADER + i * PCP_MISSING_RUN, runs[i].gpa);
			put_le64(p + PCP_MISSING_HEADER + i * PCP_MISSING_RUN + 8,
				 runs[i].npages);
		}
		rec_end(w, len);
		records++;
		runs += count;
		n -= count;
	}
	return records;
}

int pcp_parse_missing(const uint8_t *p, uint32_t len,
		      const struct guest_memory *mem,
		      int (*fn)(void *opaque, uint64_t gpa, uint64_t npages),
		      void *opaque, char *err)
{
	return pcp_parse_runs(MIG_REC_POSTCOPY_MISSING, p, len, mem, fn, opaque, err);
}

int pcp_parse_runs(uint32_t type, const uint8_t *p, uint32_t len,
		   const struct guest_memory *mem,
		   int (*fn)(void *opaque, uint64_t gpa, uint64_t npages),
		   void *opaque, char *err)
{
	const char *name = mig_record_name(type);
	uint32_t count, reserved;

	if (len < PCP_MISSING_HEADER)
		return err_set(err, -EPROTO, "%s of %u bytes is too short", name, len);
	memcpy(&count, p, 4);
	memcpy(&reserved, p + 4, 4);
	if (count < 1 || count > PCP_MISSING_MAX_RUNS)
		return err_set(err, -EPROTO, "%s: %u runs (1..%u)", name, count,
			       PCP_MISSING_MAX_RUNS);
	if (reserved)
		return err_set(err, -EPROTO, "%s: reserved word is 0x%x", name, reserved);
	if ((uint64_t)len != PCP_MISSING_HEADER + (uint64_t)count * PCP_MISSING_RUN)
		return err_set(err, -EPROTO, "%s: %u bytes for %u runs (want %llu)",
			       name, len, count, (unsigned long long)(PCP_MISSING_HEADER +
							      (uint64_t)count * PCP_MISSING_RUN));
	uint64_t max = memory_npages(mem);
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *r = p + PCP_MISSING_HEADER + i * PCP_MISSING_RUN;
		uint64_t gpa = get_le64(r), n = get_le64(r + 8);
		if (gpa % GUEST_PAGE_SIZE || n < 1 || n > max ||
		    !memory_gpa_to_hva(mem, gpa, n * GUEST_PAGE_SIZE))
			return err_set(err, -EPROTO,
				       "%s run %u: %llu pages at 0x%llx is not "
				       "page aligned, empty or outside one memory slot",
				       name, i, (unsigned long long)n, (unsigned long long)gpa);
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *r = p + PCP_MISSING_HEADER + i * PCP_MISSING_RUN;
		int e = fn(opaque, get_le64(r), get_le64(r + 8));
		if (e)
			return e;
	}
	return 0;
}

void pcp_put_recv_bitmap(struct rec_writer *w, const uint64_t *bits,
			 uint64_t npages)
{
	size_t words = (size_t)((npages + 63) / 64);
	uint8_t *p = rec_begin(w, MIG_REC_RECV_BITMAP, 8 + words * 8);

	if (!p)
		return;
	put_le64(p, npages);
	for (size_t i = 0; i < words; i++)
		put_le64(p + 8 + i * 8, bits[i]);
	rec_end(w, 8 + words * 8);
}

int pcp_parse_recv_bitmap(const uint8_t *p, uint32_t len, uint64_t npages,
			  uint64_t *out, char *err)
{
	uint64_t n = 0;

	if (len < 8)
		return err_set(err, -EPROTO, "RECV_BITMAP of %u bytes, shorter than its header",
			       len);
	for (int i = 0; i < 8; i++)
		n |= (uint64_t)p[i] << (8 * i);
	if (n != npages)
		return err_set(err, -EPROTO, "RECV_BITMAP for %llu pages, but the guest has %llu",
			       (unsigned long long)n, (unsigned long long)npages);
	size_t words = (size_t)((npages + 63) / 64);
	if (len != 8 + words * 8)
		return err_set(err, -EPROTO, "RECV_BITMAP of %u bytes, wanted %zu for %llu pages",
			       len, 8 + words * 8, (unsigned long long)npages);
	memset(out, 0, (npages / 64 + 1) * 8);
	for (size_t i = 0; i < words; i++) {
		uint64_t v = 0;
		for (int k = 0; k < 8; k++)
			v |= (uint64_t)p[8 + i * 8 + k] << (8 * k);
		out[i] = v;
	}
	if (npages % 64)
		out[npages / 64] &= (1ULL << (npages % 64)) - 1;
	return 0;
}
