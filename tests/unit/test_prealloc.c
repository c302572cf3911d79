/*
 * Guest RAM faulted in in advance (vmm/prealloc.h, memory_populate):
 * real mappings, checked through the kernel's own page tables
 * (/proc/self/pagemap, memory_populated).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "vmm/memory.h"
#include "vmm/prealloc.h"

#define MIB (1ULL << 20)

/* Pages of slot 0 the kernel has present (or swapped). */
static uint64_t present(const struct guest_memory *m)
{
	uint64_t n = m->slots[0].size / GUEST_PAGE_SIZE, k = 0;
	uint8_t *out = malloc(n);
	cr_assert_not_null(out);
	memory_populated(m, 0, 0, n, out);
	for (uint64_t i = 0; i < n; i++)
		k += out[i];
	free(out);
	return k;
}

Test(prealloc, populate_faults_in_everything_and_keeps_contents)
{
	struct guest_memory m;
	char err[ERR_MAX] = "";
	memory_layout(&m, 16 * MIB);
	cr_assert_eq(memory_alloc(&m, err), 0, "%s", err);
	if (m.pagemap_fd < 0)
		cr_skip_test("no /proc/self/pagemap here");
	cr_assert_eq(present(&m), 0, "fresh memory is already there");
	m.slots[0].hva[5 * GUEST_PAGE_SIZE + 7] = 0x5a;
	cr_assert_eq(memory_populate(&m, true, err), 0, "%s", err);
	cr_assert_eq(present(&m), 16 * MIB / GUEST_PAGE_SIZE);
	cr_assert_eq(m.slots[0].hva[5 * GUEST_PAGE_SIZE + 7], 0x5a);
	cr_assert_eq(m.slots[0].hva[9 * MIB], 0);
	memory_free(&m);
}

Test(prealloc, taken_once_with_its_size)
{
	struct mem_prealloc *p = NULL;
	struct guest_memory m;
	char err[ERR_MAX] = "";
	cr_assert_eq(mem_prealloc_start(&p, 8 * MIB, err), 0, "%s", err);
	cr_assert_eq(mem_prealloc_size(p), 8 * MIB);
	cr_assert_eq(mem_prealloc_take(p, &m, err), 0, "%s", err);
	cr_assert_eq(m.ram_size, 8 * MIB);
	cr_assert_eq(m.nslots, 1);
	if (m.pagemap_fd >= 0)
		cr_assert_eq(present(&m), 8 * MIB / GUEST_PAGE_SIZE);
	cr_assert_gt(mem_prealloc_seconds(p), 0.0);
	struct guest_memory again;
	cr_assert_eq(mem_prealloc_take(p, &again, err), -EALREADY);
	cr_assert(strstr(err, "already in use"), "%s", err);
	mem_prealloc_free(p);      /* the memory is m's now: still mapped */
	m.slots[0].hva[8 * MIB - 1] = 1;
	memory_free(&m);
}

/* Freed without being taken (the destination ended first). */
Test(prealloc, freed_untaken)
{
	struct mem_prealloc *p = NULL;
	char err[ERR_MAX] = "";
	cr_assert_eq(mem_prealloc_start(&p, 4 * MIB, err), 0, "%s", err);
	mem_prealloc_free(p);
	mem_prealloc_free(NULL);
}
