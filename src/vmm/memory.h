/*
 * memory.h - guest RAM: host mappings, KVM memory slots, the hole below 4 GiB.
 *
 * RAM up to 3 GiB is one slot at guest-physical 0.  Larger RAM is split like
 * on a PC: [0, 3 GiB) and the rest from 4 GiB up, leaving the 3-4 GiB hole for
 * MMIO (LAPIC, IOAPIC).  Each slot is one anonymous mapping (a restore
 * copies the snapshot into it), so a guest-physical address translates
 * with one range check.
 */
#ifndef FERRY_MEMORY_H
#define FERRY_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_PAGE_SIZE  4096ULL
#define MEM_HOLE_START   0xC0000000ULL /* 3 GiB */
#define MEM_HOLE_END     0x100000000ULL /* 4 GiB */
#define MEM_MAX_SLOTS    2

struct mem_slot {
	uint32_t id;        /* KVM slot number */
	uint64_t gpa;       /* guest-physical start */
	uint64_t size;      /* bytes, page aligned */
	uint8_t *hva;       /* host mapping (anonymous) */
};

struct guest_memory {
	uint64_t ram_size;  /* total bytes of guest RAM */
	unsigned nslots;
	struct mem_slot slots[MEM_MAX_SLOTS];
	/* While a migration tracks dirty pages: pages the VMM wrote itself
	 * (dirty_log.h).  Allocated by the first dirty_log_start, freed only
	 * by memory_free. */
	bool logging;
	/* The next sync reports every page of the slot (dirty_log.h). */
	bool log_all_next[MEM_MAX_SLOTS];
	uint64_t *vmm_dirty[MEM_MAX_SLOTS];
	/* KVM_GET_DIRTY_LOG's buffer per slot, kept from the first sync
	 * (round 0's) to memory_free: a buffer made anew for every sync
	 * would be fresh memory each time, faulted in inside the pause for
	 * the last one. */
	uint64_t *log_scratch[MEM_MAX_SLOTS];
	int pagemap_fd;     /* /proc/self/pagemap, for memory_populated */
	/* While post-copy fills memory on demand (migration/postcopy_dest.h):
	 * make [gpa, gpa+len) present before host code uses it.  NULL when
	 * every page is here.  Set and cleared while no other thread uses
	 * the memory. */
	int (*ensure)(void *opaque, uint64_t gpa, uint64_t len);
	void *ensure_opaque;
};

/**
 * memory_ensure() - host code (devices, the digest, snapshots,
 * x-guest-memory-write) calls this before it reads or writes
 * [gpa, gpa+len) of guest RAM, so that it never works on a page a
 * post-copy destination has not received yet (a plain access would wait
 * in the kernel, but page-table lookups such as memory_populated would
 * see a hole).  Returns 0 at once when no post-copy is under way, else 0
 * once the pages are here or a negative errno (-ECANCELED: post-copy
 * failed and will not deliver them).
 */
static inline int memory_ensure(const struct guest_memory *mem, uint64_t gpa,
				uint64_t len)
{
	return mem->ensure ? mem->ensure(mem->ensure_opaque, gpa, len) : 0;
}

/* Compute the slot layout for ram_size bytes (no allocation). */
void memory_layout(struct guest_memory *mem, uint64_t ram_size);
/* Map anonymous memory for every slot.  Untouched pages cost nothing. */
int memory_alloc(struct guest_memory *mem, char *err);
void memory_free(struct guest_memory *mem);
/* Register every slot with KVM; log_dirty turns on dirty page logging. */
int memory_register(struct guest_memory *mem, int vm_fd, bool log_dirty);

/*
 * For pages [first, first+n) of a slot: out[i] = 0 if the page was never
 * touched, so it reads as zero without being read (and without faulting it
 * in), 1 if it may hold data (present or swapped out).
 * Uses /proc/self/pagemap; on any failure every page counts as populated.
 */
void memory_populated(const struct guest_memory *mem, unsigned slot,
		      uint64_t first, uint64_t n, uint8_t *out);

/**
 * memory_populate() - fault in every page of guest RAM now, writable
 * (`--prealloc`), so that a stream landing later finds memory that is
 * already there.  With hugepages the slots are first advised
 * MADV_HUGEPAGE (transparent huge pages; ignored where unavailable).
 * Uses MADV_POPULATE_WRITE where the kernel has it (Linux 5.14), else
 * rewrites one byte of each page with itself.
 * Returns 0, or a negative errno with a message (-ENOMEM: the host
 * cannot give that much memory now).
 */
int memory_populate(struct guest_memory *mem, bool hugepages, char *err);

/* Host pointer for [gpa, gpa+len) if it lies inside one slot, else NULL. */
void *memory_gpa_to_hva(const struct guest_memory *mem, uint64_t gpa,
			uint64_t len);

/*
 * Guest pages numbered 0..memory_npages()-1 across the slots, in slot
 * order (post-copy's bitmaps and push order use these numbers).
 * memory_page_index: the number of the page holding @gpa, UINT64_MAX
 * outside guest RAM; memory_page_gpa: the page's address, UINT64_MAX past
 * the last page.
 */
uint64_t memory_npages(const struct guest_memory *mem);
uint64_t memory_page_index(const struct guest_memory *mem, uint64_t gpa);
uint64_t memory_page_gpa(const struct guest_memory *mem, uint64_t index);

#endif
