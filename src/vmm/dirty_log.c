#include "vmm/dirty_log.h"
#include "vmm/memory.h"
#include "vmm/vm.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

int dirty_log_enable_cap(struct vm *vm)
{
	int caps = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION,
			 KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	/* Not INITIALLY_SET: see dirty_log.h. */
	uint64_t want = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
	if (caps <= 0 || ((uint64_t)caps & want) != want)
		return -ENOTSUP;
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
				      .args = { want } };
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return -errno;
	return 0;
}

int dirty_log_start(struct vm *vm, char *err)
{
	struct guest_memory *mem = &vm->mem;
	/* The VMM's own bitmaps live as long as the memory (memory_free
	 * frees them): memory_mark_dirty runs on other threads and must never
	 * find one freed under it.  A bit left from an earlier migration, or
	 * set by a late marker while this clears, only resends a page. */
	for (unsigned i = 0; i < mem->nslots; i++) {
		uint64_t words = dirty_bitmap_words(mem->slots[i].size / GUEST_PAGE_SIZE);
		if (mem->vmm_dirty[i]) {
			memset(mem->vmm_dirty[i], 0, words * sizeof(uint64_t));
			continue;
		}
		uint64_t *bm = calloc(words, sizeof(uint64_t));
		if (!bm)
			return err_set(err, -ENOMEM, "out of memory for dirty bitmaps");
		__atomic_store_n(&mem->vmm_dirty[i], bm, __ATOMIC_RELEASE);
	}
	for (unsigned i = 0; i < mem->nslots; i++)
		mem->log_all_next[i] = true;
	__atomic_store_n(&mem->logging, true, __ATOMIC_RELEASE);
	if (dirty_ring_on(&vm->ring))
		dirty_ring_start(vm);
	int r = memory_register(mem, vm->vm_fd, true);
	if (r) {
		dirty_log_stop(vm);
		return err_set(err, r, "cannot turn on dirty logging: %s",
			       strerror(-r));
	}
	return 0;
}

void dirty_log_stop(struct vm *vm)
{
	struct guest_memory *mem = &vm->mem;
	if (__atomic_load_n(&mem->logging, __ATOMIC_ACQUIRE))
		memory_register(mem, vm->vm_fd, false);
	if (dirty_ring_on(&vm->ring))
		dirty_ring_stop(vm);
	/* The bitmaps stay (see dirty_log_start). */
	__atomic_store_n(&mem->logging, false, __ATOMIC_RELEASE);
}

int dirty_log_sync(struct vm *vm, unsigned slot, uint64_t *out)
{
	struct guest_memory *mem = &vm->mem;
	uint64_t words = dirty_bitmap_words(mem->slots[slot].size / GUEST_PAGE_SIZE);
	if (dirty_ring_on(&vm->ring)) {
		int r = dirty_ring_sync(vm, slot, out);
		if (r)
			return r;
	} else {
		/* OR, not overwrite: bits harvested earlier and not yet
		 * sent (and the VMM's own, which KVM never sees) must
		 * survive a second sync. */
		/* Made once, for the bitmap backend only (memory.h). */
		uint64_t *tmp = mem->log_scratch[slot];
		if (!tmp && !(tmp = mem->log_scratch[slot] = malloc(words * sizeof(uint64_t))))
			return -ENOMEM;
		struct kvm_dirty_log log = { .slot = mem->slots[slot].id,
					     .dirty_bitmap = tmp };
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
			return -errno;
		for (uint64_t w = 0; w < words; w++)
			out[w] |= tmp[w];
		if (mem->log_all_next[slot]) {
			/* Round 0: what the guest wrote before logging began is
			 * in no log. */
			uint64_t npages = mem->slots[slot].size / GUEST_PAGE_SIZE;
			memset(out, 0xff, words * sizeof(uint64_t));
			if (npages % 64)
				out[words - 1] = (1ULL << (npages % 64)) - 1;
			mem->log_all_next[slot] = false;
		}
	}
	uint64_t *own = mem->vmm_dirty[slot];
	for (uint64_t w = 0; own && w < words; w++)
		if (__atomic_load_n(&own[w], __ATOMIC_RELAXED))
			out[w] |= __atomic_exchange_n(&own[w], 0, __ATOMIC_ACQ_REL);
	return 0;
}

int dirty_log_clear(struct vm *vm, unsigned slot, uint64_t first, uint64_t n,
		    uint64_t *bits)
{
	/* The ring re-protects pages when they are harvested. */
	if (dirty_ring_on(&vm->ring))
		return 0;
	struct kvm_clear_dirty_log c = { .slot = vm->mem.slots[slot].id,
					 .num_pages = (uint32_t)n,
					 .first_page = first,
					 .dirty_bitmap = bits };
	if (ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0)
		return -errno;
	return 0;
}

void memory_mark_dirty(struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	if (!__atomic_load_n(&mem->logging, __ATOMIC_ACQUIRE) || !len)
		return;
	for (unsigned i = 0; i < mem->nslots; i++) {
		struct mem_slot *s = &mem->slots[i];
		uint64_t *bm = __atomic_load_n(&mem->vmm_dirty[i], __ATOMIC_ACQUIRE);
		if (gpa < s->gpa || gpa >= s->gpa + s->size || !bm)
			continue;
		uint64_t first = (gpa - s->gpa) / GUEST_PAGE_SIZE;
		uint64_t last = (gpa + len - 1 - s->gpa) / GUEST_PAGE_SIZE;
		for (uint64_t p = first; p <= last; p++)
			/* Release: whoever sees the bit sees the write. */
			__atomic_fetch_or(&bm[p / 64], 1ULL << (p % 64),
					  __ATOMIC_RELEASE);
	}
}
