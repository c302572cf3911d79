/*
 * mem_zap (vmm/memory_zap.h) on real anonymous memory: every queued range
 * reads as zeros afterwards and nothing else does, across more ranges
 * than one batch holds; adjacent ranges are joined; and the batching
 * really saves calls where the kernel takes MADV_DONTNEED through
 * process_madvise.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm/memory_zap.h"

#define PAGE 4096u
#define NPAGES 15000u  /* ranges enough for batches on two threads (ZAP_SPLIT_MIN) */

Test(memory_zap, drops_exactly_the_queued_pages)
{
	uint8_t *m = mmap(NULL, (size_t)NPAGES * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(m != MAP_FAILED);
	memset(m, 0x5a, (size_t)NPAGES * PAGE);
	struct mem_zap z;
	mem_zap_init(&z);
	/* Every third page alone, and pages 1..2 of each group of six as
	 * two adjacent ranges (joined into one). */
	unsigned queued = 0;
	for (unsigned i = 0; i + 2 < NPAGES; i += 3) {
		cr_assert_eq(mem_zap_add(&z, m + (size_t)i * PAGE, PAGE), 0);
		queued++;
	}
	cr_assert_eq(mem_zap_flush(&z), 0);
	uint64_t calls_apart = z.calls;
	for (unsigned i = 0; i < NPAGES; i++) {
		uint8_t want = (i % 3 == 0 && i + 2 < NPAGES) ? 0 : 0x5a;
		cr_assert_eq(m[(size_t)i * PAGE], want, "page %u", i);
		cr_assert_eq(m[(size_t)i * PAGE + PAGE - 1], want, "page %u's end", i);
	}
	/* Adjacent: one range, one call. */
	memset(m, 0x5a, 8 * PAGE);
	z.calls = 0;
	cr_assert_eq(mem_zap_add(&z, m + PAGE, PAGE), 0);
	cr_assert_eq(mem_zap_add(&z, m + 2 * PAGE, 2 * PAGE), 0);
	cr_assert_eq(z.n, 1, "adjacent ranges are one");
	cr_assert_eq(mem_zap_flush(&z), 0);
	cr_assert_eq(z.calls, 1);
	cr_assert(m[0] == 0x5a && m[PAGE] == 0 && m[3 * PAGE] == 0 && m[4 * PAGE] == 0x5a);
	/* Batched where the kernel lets it: a few calls per thousand (one
	 * more for the second thread's share). */
	if (z.pidfd >= 0)
		cr_assert_leq(calls_apart, queued / ZAP_BATCH + 3, "%llu calls for %u ranges",
			      (unsigned long long)calls_apart, queued);
	else
		cr_assert_eq(calls_apart, queued);
	mem_zap_fini(&z);
	munmap(m, (size_t)NPAGES * PAGE);
}
