/* KVM's dirty ring (dirty_ring.h). */
#include "vmm/dirty_ring.h"
#include "vmm/dirty_log.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/kvm.h>

bool dirty_ring_size_ok(uint64_t n)
{
	return n == 0 || (n >= DIRTY_RING_MIN_ENTRIES &&
			  n <= DIRTY_RING_MAX_ENTRIES && !(n & (n - 1)));
}

static uint64_t slot_words(const struct guest_memory *mem, unsigned i)
{
	return dirty_bitmap_words(mem->slots[i].size / GUEST_PAGE_SIZE);
}

int dirty_ring_enable(struct vm *vm, uint32_t entries, char *err)
{
	struct dirty_ring *r = &vm->ring;
	uint64_t bytes = (uint64_t)entries * sizeof(struct kvm_dirty_gfn);

	if (!dirty_ring_size_ok(entries) || !entries)
		return err_set(err, -EINVAL, "a dirty ring has a power of two of "
			       "entries from %d to %d, not %u",
			       DIRTY_RING_MIN_ENTRIES, DIRTY_RING_MAX_ENTRIES, entries);
	/* The acquire/release flavour where KVM has it: the one whose
	 * ordering rules this code follows on every architecture. */
	unsigned cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, cap);
	if (max <= 0) {
		cap = KVM_CAP_DIRTY_LOG_RING;
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, cap);
	}
	if (max <= 0)
		return err_set(err, -ENOTSUP, "this KVM has no dirty ring");
	if (bytes > (uint64_t)max)
		return err_set(err, -ENOTSUP, "this KVM's dirty ring holds at most "
			       "%d entries, not %u", max / (int)sizeof(struct kvm_dirty_gfn),
			       entries);
	struct kvm_enable_cap ec = { .cap = cap, .args = { bytes } };
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &ec) < 0)
		return err_set(err, -ENOTSUP, "KVM refused a dirty ring of %u "
			       "entries: %s", entries, strerror(errno));
	pthread_mutex_init(&r->lock, NULL);
	for (unsigned i = 0; i < vm->mem.nslots; i++) {
		r->acc[i] = calloc(slot_words(&vm->mem, i), sizeof(uint64_t));
		if (!r->acc[i]) {
			/* KVM's side cannot be undone: the VM is unusable. */
			r->entries = entries;
			return err_set(err, -ENOMEM, "out of memory for dirty bitmaps");
		}
	}
	r->entries = entries;
	return 0;
}

void dirty_ring_free(struct vm *vm)
{
	struct dirty_ring *r = &vm->ring;

	if (!r->entries)
		return;
	for (unsigned i = 0; i < MEM_MAX_SLOTS; i++)
		free(r->acc[i]);
	pthread_mutex_destroy(&r->lock);
	memset(r, 0, sizeof(*r));
}

int dirty_ring_map_vcpu(struct vcpu *v)
{
	uint32_t n = v->vm->ring.entries;

	if (!n)
		return 0;
	size_t bytes = (size_t)n * sizeof(struct kvm_dirty_gfn);
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd,
		       (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * getpagesize());
	if (p == MAP_FAILED)
		return -errno;
	v->ring = p;
	v->ring_fetch = 0;
	return 0;
}

void dirty_ring_unmap_vcpu(struct vcpu *v)
{
	if (v->ring)
		munmap(v->ring, (size_t)v->vm->ring.entries *
				sizeof(struct kvm_dirty_gfn));
	v->ring = NULL;
}

uint32_t dirty_ring_collect(struct kvm_dirty_gfn *gfns, uint32_t entries,
			    uint32_t *fetch, const struct guest_memory *mem,
			    uint64_t *const acc[MEM_MAX_SLOTS], uint64_t *ignored)
{
	uint32_t taken = 0;

	/* At most one lap: an entry still DIRTY a lap later would be KVM's
	 * own mistake, and a loop must end. */
	while (taken < entries) {
		struct kvm_dirty_gfn *e = &gfns[*fetch & (entries - 1)];
		/* Acquire: the slot and offset KVM wrote before the flag. */
		uint32_t flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
		if (!(flags & KVM_DIRTY_GFN_F_DIRTY))
			break;
		unsigned i = mem->nslots;
		/* The high half is the address space: always 0 here. */
		for (unsigned s = 0; s < mem->nslots && e->slot <= 0xffff; s++)
			if (mem->slots[s].id == e->slot)
				i = s;
		if (i < mem->nslots &&
		    e->offset < mem->slots[i].size / GUEST_PAGE_SIZE && acc[i])
			acc[i][e->offset / 64] |= 1ULL << (e->offset % 64);
		else
			++*ignored;
		/* Release: KVM may reuse the entry once it sees RESET. */
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		++*fetch;
		taken++;
	}
	return taken;
}

int dirty_ring_reap(struct vm *vm, bool full_exit)
{
	struct dirty_ring *r = &vm->ring;
	uint32_t taken = 0;

	pthread_mutex_lock(&r->lock);
	if (full_exit)
		r->full_exits++;
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = vm->vcpus[i];
		if (v && v->ring) {
			uint32_t n = dirty_ring_collect(v->ring, r->entries,
							&v->ring_fetch, &vm->mem,
							r->acc, &r->ignored);
			v->ring_taken += n;
			taken += n;
		}
	}
	r->harvested += taken;
	int ret = 0;
	/* Re-protect what was taken: from here a write is a new entry. */
	if (taken && ioctl(vm->vm_fd, KVM_RESET_DIRTY_RINGS, 0) < 0)
		ret = -errno;
	pthread_mutex_unlock(&r->lock);
	if (ret)
		log_error("KVM_RESET_DIRTY_RINGS: %s", strerror(-ret));
	return ret;
}

uint64_t dirty_ring_vcpu_taken(struct vm *vm, unsigned index)
{
	struct dirty_ring *r = &vm->ring;
	uint64_t n = 0;

	if (!r->entries || index >= vm->nvcpus || !vm->vcpus[index])
		return 0;
	pthread_mutex_lock(&r->lock);
	n = vm->vcpus[index]->ring_taken;
	pthread_mutex_unlock(&r->lock);
	return n;
}

void dirty_ring_counts(struct vm *vm, uint64_t *harvested, uint64_t *full_exits)
{
	struct dirty_ring *r = &vm->ring;

	*harvested = *full_exits = 0;
	if (!r->entries)
		return;
	pthread_mutex_lock(&r->lock);
	*harvested = r->harvested;
	*full_exits = r->full_exits;
	pthread_mutex_unlock(&r->lock);
}

void dirty_ring_start(struct vm *vm)
{
	struct dirty_ring *r = &vm->ring;

	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < vm->mem.nslots; i++)
		r->full[i] = true;
	pthread_mutex_unlock(&r->lock);
}

void dirty_ring_stop(struct vm *vm)
{
	struct dirty_ring *r = &vm->ring;

	/* Entries still in the rings would fill them for nothing. */
	dirty_ring_reap(vm, false);
	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < vm->mem.nslots; i++) {
		memset(r->acc[i], 0, slot_words(&vm->mem, i) * sizeof(uint64_t));
		r->full[i] = false;
	}
	pthread_mutex_unlock(&r->lock);
}

int dirty_ring_sync(struct vm *vm, unsigned slot, uint64_t *out)
{
	struct dirty_ring *r = &vm->ring;
	uint64_t npages = vm->mem.slots[slot].size / GUEST_PAGE_SIZE;
	uint64_t words = slot_words(&vm->mem, slot);

	int ret = dirty_ring_reap(vm, false);
	if (ret)
		return ret;
	pthread_mutex_lock(&r->lock);
	if (r->full[slot]) {
		/* Round 0: every page, as the bitmap's first sync. */
		memset(out, 0xff, words * sizeof(uint64_t));
		if (npages % 64)
			out[words - 1] = (1ULL << (npages % 64)) - 1;
		r->full[slot] = false;
	} else {
		for (uint64_t w = 0; w < words; w++)
			out[w] |= r->acc[slot][w];
	}
	memset(r->acc[slot], 0, words * sizeof(uint64_t));
	pthread_mutex_unlock(&r->lock);
	return 0;
}
