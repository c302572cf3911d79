#include "vmm/memory.h"
#include "util/log.h"
#include "util/units.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/kvm.h>

void memory_layout(struct guest_memory *mem, uint64_t ram_size)
{
	memset(mem, 0, sizeof(*mem));
	mem->pagemap_fd = -1;
	mem->ram_size = ram_size;
	uint64_t low = ram_size < MEM_HOLE_START ? ram_size : MEM_HOLE_START;
	mem->slots[0] = (struct mem_slot){ .id = 0, .gpa = 0, .size = low };
	mem->nslots = 1;
	if (ram_size > low) {
		mem->slots[1] = (struct mem_slot){
			.id = 1, .gpa = MEM_HOLE_END, .size = ram_size - low };
		mem->nslots = 2;
	}
}

int memory_alloc(struct guest_memory *mem, char *err)
{
	for (unsigned i = 0; i < mem->nslots; i++) {
		struct mem_slot *s = &mem->slots[i];
		/* MAP_NORESERVE: a large, mostly untouched guest must not need
		 * its whole size committed up front. */
		void *p = mmap(NULL, s->size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED) {
			int e = errno;
			memory_free(mem);
			char sz[UNITS_LEN];
			return err_set(err, -e,
				       "cannot map %s of guest memory: %s",
				       units_size(sz, sizeof(sz), (double)s->size),
				       strerror(e));
		}
		s->hva = p;
	}
	/* Opened once: the migration sender asks it every 16 MiB. */
	mem->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	return 0;
}

void memory_free(struct guest_memory *mem)
{
	for (unsigned i = 0; i < mem->nslots; i++) {
		if (mem->slots[i].hva)
			munmap(mem->slots[i].hva, mem->slots[i].size);
		mem->slots[i].hva = NULL;
		free(mem->vmm_dirty[i]);
		mem->vmm_dirty[i] = NULL;
		free(mem->log_scratch[i]);
		mem->log_scratch[i] = NULL;
	}
	if (mem->pagemap_fd >= 0)
		close(mem->pagemap_fd);
	mem->pagemap_fd = -1;
}

int memory_register(struct guest_memory *mem, int vm_fd, bool log_dirty)
{
	for (unsigned i = 0; i < mem->nslots; i++) {
		struct mem_slot *s = &mem->slots[i];
		struct kvm_userspace_memory_region r = {
			.slot = s->id,
			.flags = log_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			.guest_phys_addr = s->gpa,
			.memory_size = s->size,
			.userspace_addr = (uint64_t)(uintptr_t)s->hva,
		};
		if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
			int e = errno;
			log_error("KVM_SET_USER_MEMORY_REGION slot %u: %s",
				  s->id, strerror(e));
			return -e;
		}
	}
	return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* Populated a slice at a time, so a failure says how far it got. */
#define POPULATE_CHUNK (256ULL << 20)

int memory_populate(struct guest_memory *mem, bool hugepages, char *err)
{
	bool touch = false;  /* the kernel lacks MADV_POPULATE_WRITE */

	for (unsigned i = 0; i < mem->nslots; i++) {
		struct mem_slot *s = &mem->slots[i];
		/* Huge pages fault in ~5x faster here (docs/multifd.md); a
		 * kernel without THP just says no. */
		if (hugepages)
			madvise(s->hva, s->size, MADV_HUGEPAGE);
		for (uint64_t off = 0; off < s->size; off += POPULATE_CHUNK) {
			uint64_t len = s->size - off < POPULATE_CHUNK ? s->size - off
								      : POPULATE_CHUNK;
			if (!touch && madvise(s->hva + off, len, MADV_POPULATE_WRITE) == 0)
				continue;
			if (!touch && errno != EINVAL) {
				int e = errno;
				char at[UNITS_LEN], all[UNITS_LEN];
				return err_set(err, e == EFAULT || e == EHWPOISON ? -ENOMEM : -e,
					       "cannot fault in guest memory (%s of %s done): %s",
					       units_size(at, sizeof(at), (double)off),
					       units_size(all, sizeof(all), (double)s->size),
					       strerror(e));
			}
			touch = true;
			/* A write of what is there: faulted in writable,
			 * contents untouched. */
			volatile uint8_t *v = s->hva + off;
			for (uint64_t p = 0; p < len; p += GUEST_PAGE_SIZE)
				v[p] = v[p];
		}
	}
	return 0;
}

void *memory_gpa_to_hva(const struct guest_memory *mem, uint64_t gpa,
			uint64_t len)
{
	for (unsigned i = 0; i < mem->nslots; i++) {
		const struct mem_slot *s = &mem->slots[i];
		if (gpa >= s->gpa && gpa - s->gpa <= s->size &&
		    len <= s->size - (gpa - s->gpa))
			return s->hva + (gpa - s->gpa);
	}
	return NULL;
}

#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_SWAPPED (1ULL << 62)
#define PAGEMAP_BATCH   512 /* entries read per pread: 4 KiB */

void memory_populated(const struct guest_memory *mem, unsigned slot,
		      uint64_t first, uint64_t n, uint8_t *out)
{
	const struct mem_slot *s = &mem->slots[slot];
	uint64_t pm[PAGEMAP_BATCH];

	memset(out, 1, n);
	if (mem->pagemap_fd < 0)
		return;
	uint64_t vpage = (uint64_t)(uintptr_t)s->hva / GUEST_PAGE_SIZE + first;
	for (uint64_t done = 0; done < n;) {
		uint64_t k = n - done < PAGEMAP_BATCH ? n - done : PAGEMAP_BATCH;
		ssize_t got = pread(mem->pagemap_fd, pm, k * 8,
				    (off_t)((vpage + done) * 8));
		if (got != (ssize_t)(k * 8))
			return; /* the rest stays "populated": always safe */
		for (uint64_t i = 0; i < k; i++)
			out[done + i] = (pm[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED)) != 0;
		done += k;
	}
}

uint64_t memory_npages(const struct guest_memory *mem)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < mem->nslots; i++)
		n += mem->slots[i].size / GUEST_PAGE_SIZE;
	return n;
}

uint64_t memory_page_index(const struct guest_memory *mem, uint64_t gpa)
{
	uint64_t base = 0;
	for (unsigned i = 0; i < mem->nslots; i++) {
		const struct mem_slot *s = &mem->slots[i];
		if (gpa >= s->gpa && gpa - s->gpa < s->size)
			return base + (gpa - s->gpa) / GUEST_PAGE_SIZE;
		base += s->size / GUEST_PAGE_SIZE;
	}
	return UINT64_MAX;
}

uint64_t memory_page_gpa(const struct guest_memory *mem, uint64_t index)
{
	for (unsigned i = 0; i < mem->nslots; i++) {
		const struct mem_slot *s = &mem->slots[i];
		uint64_t n = s->size / GUEST_PAGE_SIZE;
		if (index < n)
			return s->gpa + index * GUEST_PAGE_SIZE;
		index -= n;
	}
	return UINT64_MAX;
}
