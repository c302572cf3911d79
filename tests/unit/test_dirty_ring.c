/*
 * The dirty ring's harvest (vmm/dirty_ring.h) on rings laid out as KVM
 * lays them out, written here the way KVM writes them: slot, offset, then
 * the DIRTY flag.  A host without KVM cannot run the rings themselves;
 * the migrations with --dirty-ring are in the integration tests (KVM).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <linux/kvm.h>

#include "vmm/dirty_log.h"
#include "vmm/dirty_ring.h"
#include "vmm/memory.h"

#define N 256

/* Two slots as memory_layout makes them for a guest above 3 GiB: ids
 * 0 and 1, 16 and 8 pages here. */
static struct guest_memory mem = {
	.nslots = 2,
	.slots = { { .id = 0, .gpa = 0, .size = 16 * 4096 },
		   { .id = 1, .gpa = 1ULL << 32, .size = 8 * 4096 } },
};

static void push(struct kvm_dirty_gfn *ring, uint32_t *kvm_index, uint32_t slot,
		 uint64_t offset)
{
	struct kvm_dirty_gfn *e = &ring[*kvm_index % N];
	cr_assert_eq(e->flags & KVM_DIRTY_GFN_F_DIRTY, 0, "KVM would not overwrite");
	e->slot = slot;
	e->offset = offset;
	__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_DIRTY, __ATOMIC_RELEASE);
	++*kvm_index;
}

/* What KVM_RESET_DIRTY_RINGS does to the entries (not the pages). */
static void kvm_reset(struct kvm_dirty_gfn *ring)
{
	for (unsigned i = 0; i < N; i++)
		if (ring[i].flags & KVM_DIRTY_GFN_F_RESET)
			ring[i].flags = 0;
}

Test(dirty_ring, sizes)
{
	cr_assert(dirty_ring_size_ok(0), "0: off");
	cr_assert(dirty_ring_size_ok(256));
	cr_assert(dirty_ring_size_ok(4096));
	cr_assert(dirty_ring_size_ok(65536));
	cr_assert(!dirty_ring_size_ok(128), "less than a page of entries");
	cr_assert(!dirty_ring_size_ok(131072), "more than KVM takes");
	cr_assert(!dirty_ring_size_ok(1000), "not a power of two");
	cr_assert(!dirty_ring_size_ok(UINT64_MAX));
}

Test(dirty_ring, harvests_in_order_and_marks_reset)
{
	static struct kvm_dirty_gfn ring[N];
	uint64_t b0[1] = { 0 }, b1[1] = { 0 };
	uint64_t *const acc[MEM_MAX_SLOTS] = { b0, b1 };
	uint32_t kvm = 0, fetch = 0;
	uint64_t ignored = 0;

	push(ring, &kvm, 0, 3);
	push(ring, &kvm, 1, 7);
	push(ring, &kvm, 0, 15);
	push(ring, &kvm, 0, 3);   /* again: one bit */
	cr_assert_eq(dirty_ring_collect(ring, N, &fetch, &mem, acc, &ignored), 4);
	cr_assert_eq(fetch, 4);
	cr_assert_eq(b0[0], (1ULL << 3) | (1ULL << 15));
	cr_assert_eq(b1[0], 1ULL << 7);
	cr_assert_eq(ignored, 0);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(ring[i].flags, KVM_DIRTY_GFN_F_RESET, "entry %u", i);
	cr_assert_eq(ring[4].flags, 0);
	/* Nothing new: nothing taken. */
	cr_assert_eq(dirty_ring_collect(ring, N, &fetch, &mem, acc, &ignored), 0);
	cr_assert_eq(fetch, 4);
}

Test(dirty_ring, stops_at_the_first_entry_kvm_has_not_published)
{
	static struct kvm_dirty_gfn ring[N];
	uint64_t b0[1] = { 0 }, b1[1] = { 0 };
	uint64_t *const acc[MEM_MAX_SLOTS] = { b0, b1 };
	uint32_t kvm = 0, fetch = 0;
	uint64_t ignored = 0;

	push(ring, &kvm, 0, 1);
	/* KVM is writing entry 1: slot and offset there, flag not yet. */
	ring[1].slot = 0;
	ring[1].offset = 2;
	cr_assert_eq(dirty_ring_collect(ring, N, &fetch, &mem, acc, &ignored), 1);
	cr_assert_eq(b0[0], 1ULL << 1, "the unpublished page is not taken");
	__atomic_store_n(&ring[1].flags, KVM_DIRTY_GFN_F_DIRTY, __ATOMIC_RELEASE);
	kvm = 2;
	cr_assert_eq(dirty_ring_collect(ring, N, &fetch, &mem, acc, &ignored), 1);
	cr_assert_eq(b0[0], (1ULL << 1) | (1ULL << 2));
}

Test(dirty_ring, wraps_around)
{
	static struct kvm_dirty_gfn ring[N];
	uint64_t b0[1] = { 0 }, b1[1] = { 0 };
	uint64_t *const acc[MEM_MAX_SLOTS] = { b0, b1 };
	uint32_t kvm = 0, fetch = 0;
	uint64_t ignored = 0;
	unsigned total = 0;

	/* Three laps of the ring, harvested and reset every 100 entries;
	 * the indexes are free-running as KVM's are. */
	for (unsigned lap = 0; lap < 3 * N / 100; lap++) {
		for (unsigned i = 0; i < 100; i++)
			push(ring, &kvm, i % 2, (lap * 100 + i) % 8);
		total += dirty_ring_collect(ring, N, &fetch, &mem, acc, &ignored);
		kvm_reset(ring);
	}
	cr_assert_eq(total, kvm);
	cr_assert_eq(fetch, kvm);
	cr_assert_eq(ignored, 0);
	cr_assert_eq(b0[0], 0x55, "even offsets in slot 0");
	cr_assert_eq(b1[0], 0xaa, "odd offsets in slot 1");
}

Test(dirty_ring, a_full_ring_is_taken_whole_and_ends)
{
	static struct kvm_dirty_gfn ring[N];
	uint64_t b0[1] = { 0 }, b1[1] = { 0 };
	uint64_t *const acc[MEM_MAX_SLOTS] = { b0, b1 };
	uint32_t kvm = 0, fetch = 0;
	uint64_t ignored = 0;

	for (unsigned i = 0; i < N; i++)
		push(ring, &kvm, 0, i % 16);
	cr_assert_eq(dirty_ring_collect(ring, N, &fetch, &mem, acc, &ignored), N,
		     "every entry once, and no second lap");
	cr_assert_eq(b0[0], 0xffff);
}

Test(dirty_ring, entries_naming_no_page_of_ours_are_reset_not_written)
{
	static struct kvm_dirty_gfn ring[N];
	uint64_t b0[1] = { 0 }, b1[1] = { 0 };
	uint64_t *const acc[MEM_MAX_SLOTS] = { b0, b1 };
	uint32_t kvm = 0, fetch = 0;
	uint64_t ignored = 0;

	push(ring, &kvm, 5, 0);                 /* no such slot */
	push(ring, &kvm, 1, 8);                 /* past slot 1's 8 pages */
	push(ring, &kvm, 0, UINT64_MAX);        /* far past */
	push(ring, &kvm, (1u << 16) | 0, 0);    /* another address space */
	push(ring, &kvm, 1, 0);                 /* a good one after them */
	cr_assert_eq(dirty_ring_collect(ring, N, &fetch, &mem, acc, &ignored), 5);
	cr_assert_eq(ignored, 4);
	cr_assert_eq(b0[0], 0);
	cr_assert_eq(b1[0], 1);
	for (unsigned i = 0; i < 5; i++)
		cr_assert_eq(ring[i].flags, KVM_DIRTY_GFN_F_RESET,
			     "entry %u must be reset or the ring stalls", i);
}
