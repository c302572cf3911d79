/*
 * The complete architectural state of one vCPU as a versioned blob:
 * a sequence of (u32 tag, u32 length, bytes) items, one per KVM state
 * ioctl.  Every tag is mandatory in version 1; a loader meeting a length
 * that is not the host's struct size refuses rather than guess.
 */
#include "vmm/vcpu.h"
#include "vmm/state_check.h"
#include "vmm/vm.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

enum vcpu_tag {
	TAG_REGS = 1, TAG_SREGS, TAG_XSAVE, TAG_XCRS, TAG_MSRS, TAG_LAPIC,
	TAG_EVENTS, TAG_MP_STATE, TAG_DEBUGREGS, TAG_MAX
};

static const char *const tag_names[TAG_MAX] = {
	[TAG_REGS] = "regs", [TAG_SREGS] = "sregs", [TAG_XSAVE] = "xsave",
	[TAG_XCRS] = "xcrs", [TAG_MSRS] = "msrs", [TAG_LAPIC] = "lapic",
	[TAG_EVENTS] = "events", [TAG_MP_STATE] = "mp_state",
	[TAG_DEBUGREGS] = "debugregs",
};

/* MSRs this host can both read and write for a vCPU, probed once. */
static uint32_t *msr_list;
static unsigned msr_count;
static size_t xsave_size = sizeof(struct kvm_xsave);

static bool msr_usable(int vcpu_fd, uint32_t index)
{
	/* A kvm_msrs with room for one entry (a flexible array member may
	 * not sit inside another struct in ISO C, so lay it out by hand). */
	union {
		struct kvm_msrs msrs;
		uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} m;
	memset(&m, 0, sizeof(m));
	m.msrs.nmsrs = 1;
	m.msrs.entries[0].index = index;

	if (ioctl(vcpu_fd, KVM_GET_MSRS, &m) != 1)
		return false;
	/* Writing back the value just read must be accepted too, or a
	 * restore would fail half way. */
	return ioctl(vcpu_fd, KVM_SET_MSRS, &m) == 1;
}

int vcpu_msr_list_set(const uint32_t *indices, unsigned n)
{
	uint32_t *l = calloc(n ? n : 1, sizeof(uint32_t));
	if (!l)
		return -ENOMEM;
	memcpy(l, indices, n * sizeof(uint32_t));
	free(msr_list);
	msr_list = l;
	msr_count = n;
	return 0;
}

int vcpu_msr_list_init(int kvm_fd, int vcpu_fd)
{
	if (msr_list)
		return 0;
	struct kvm_msr_list probe = { .nmsrs = 0 };
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return -errno;
	struct kvm_msr_list *l = calloc(1, sizeof(*l) +
					probe.nmsrs * sizeof(uint32_t));
	if (!l)
		return -ENOMEM;
	l->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		int e = errno;
		free(l);
		return -e;
	}
	msr_list = calloc(l->nmsrs ? l->nmsrs : 1, sizeof(uint32_t));
	if (!msr_list) {
		free(l);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < l->nmsrs; i++)
		if (msr_usable(vcpu_fd, l->indices[i]))
			msr_list[msr_count++] = l->indices[i];
	log_debug("%u of %u MSRs are saveable", msr_count, l->nmsrs);
	free(l);

	int sz = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (sz > (int)sizeof(struct kvm_xsave))
		xsave_size = (size_t)sz;
	return 0;
}

static void put_item(struct buf *out, uint32_t tag, const void *data,
		     size_t len)
{
	buf_put_u32(out, tag);
	buf_put_u32(out, (uint32_t)len);
	buf_put(out, data, len);
}

#define SAVE_FIXED(ioctl_nr, tag, type)                                   \
	do {                                                              \
		type s_;                                                  \
		memset(&s_, 0, sizeof(s_));                               \
		if (ioctl(v->fd, ioctl_nr, &s_) < 0)                      \
			return -errno;                                    \
		put_item(out, tag, &s_, sizeof(s_));                      \
	} while (0)

int vcpu_save_state(struct vcpu *v, struct buf *out)
{
	SAVE_FIXED(KVM_GET_REGS, TAG_REGS, struct kvm_regs);
	SAVE_FIXED(KVM_GET_SREGS, TAG_SREGS, struct kvm_sregs);

	struct kvm_xsave *xs = calloc(1, xsave_size);
	if (!xs)
		return -ENOMEM;
	unsigned long nr = xsave_size > sizeof(struct kvm_xsave)
				   ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
	if (ioctl(v->fd, nr, xs) < 0) {
		int e = errno;
		free(xs);
		return -e;
	}
	put_item(out, TAG_XSAVE, xs, xsave_size);
	free(xs);

	SAVE_FIXED(KVM_GET_XCRS, TAG_XCRS, struct kvm_xcrs);

	size_t msz = sizeof(struct kvm_msrs) +
		     msr_count * sizeof(struct kvm_msr_entry);
	struct kvm_msrs *m = calloc(1, msz);
	if (!m)
		return -ENOMEM;
	m->nmsrs = msr_count;
	for (unsigned i = 0; i < msr_count; i++)
		m->entries[i].index = msr_list[i];
	int n = ioctl(v->fd, KVM_GET_MSRS, m);
	if (n != (int)msr_count) {
		log_error("vCPU %u: read %d of %u MSRs (0x%x failed)", v->index,
			  n, msr_count, n >= 0 && (unsigned)n < msr_count
						? msr_list[n] : 0);
		free(m);
		return -EIO;
	}
	put_item(out, TAG_MSRS, m, msz);
	free(m);

	SAVE_FIXED(KVM_GET_LAPIC, TAG_LAPIC, struct kvm_lapic_state);
	SAVE_FIXED(KVM_GET_VCPU_EVENTS, TAG_EVENTS, struct kvm_vcpu_events);
	SAVE_FIXED(KVM_GET_MP_STATE, TAG_MP_STATE, struct kvm_mp_state);
	SAVE_FIXED(KVM_GET_DEBUGREGS, TAG_DEBUGREGS, struct kvm_debugregs);
	return out->oom ? -ENOMEM : 0;
}

struct item { const void *data; uint32_t len; };

static int set_item(struct vcpu *v, unsigned long nr, const struct item *it,
		    int tag, char *err)
{
	/* KVM may write to the struct; give it an aligned private copy. */
	void *copy = malloc(it->len);
	if (!copy)
		return err_set(err, -ENOMEM, "out of memory");
	memcpy(copy, it->data, it->len);
	int r = ioctl(v->fd, nr, copy) < 0 ? -errno : 0;
	free(copy);
	if (r)
		return err_set(err, r, "vCPU %u: restoring %s: %s", v->index,
			       tag_names[tag], strerror(-r));
	return 0;
}

static int set_msrs(struct vcpu *v, const struct item *it, char *err)
{
	/* The item sits at any offset inside a record: copy it to aligned
	 * memory before reading any field.  Its length matches its count
	 * (vcpu_load_state checked). */
	struct kvm_msrs *copy = malloc(it->len);
	if (!copy)
		return err_set(err, -ENOMEM, "out of memory");
	memcpy(copy, it->data, it->len);
	int n = ioctl(v->fd, KVM_SET_MSRS, copy);
	int r = 0;
	if (n != (int)copy->nmsrs)
		r = err_set(err, -EIO, "vCPU %u: MSR 0x%x was refused by KVM",
			    v->index, n >= 0 && (uint32_t)n < copy->nmsrs
					      ? copy->entries[n].index : 0);
	free(copy);
	return r;
}

/* What the guest's CPUID lets its state hold: the XCR0 bits it offers
 * (leaf 0xd.0 edx:eax) and its linear address width (LA57). */
static void cpuid_facts(const struct kvm_cpuid2 *c, struct vcpu_state_facts *f)
{
	f->xcr0 = 1; /* x87, always */
	f->va_bits = 48;
	for (unsigned i = 0; c && i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == 0xd && e->index == 0)
			f->xcr0 = ((uint64_t)e->edx << 32) | e->eax;
		if (e->function == 7 && e->index == 0 && (e->ecx & (1u << 16)))
			f->va_bits = 57;
	}
}

/* Every item judged before the first reaches KVM: a refused state leaves
 * the vCPU as it was, and the message names the field. */
static int check_items(struct vcpu *v, const struct item *items, char *err)
{
	struct vcpu_state_facts f = { .msrs = msr_list, .nmsrs = msr_count };
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp;
	struct kvm_debugregs dbg;
	int r;

	cpuid_facts(v->vm->cpuid, &f);
	memcpy(&regs, items[TAG_REGS].data, sizeof(regs));
	memcpy(&sregs, items[TAG_SREGS].data, sizeof(sregs));
	memcpy(&xcrs, items[TAG_XCRS].data, sizeof(xcrs));
	memcpy(&lapic, items[TAG_LAPIC].data, sizeof(lapic));
	memcpy(&ev, items[TAG_EVENTS].data, sizeof(ev));
	memcpy(&mp, items[TAG_MP_STATE].data, sizeof(mp));
	memcpy(&dbg, items[TAG_DEBUGREGS].data, sizeof(dbg));

	struct kvm_msrs *m = malloc(items[TAG_MSRS].len);
	void *xs = malloc(items[TAG_XSAVE].len);
	if (!m || !xs) {
		free(m);
		free(xs);
		return err_set(err, -ENOMEM, "out of memory");
	}
	memcpy(m, items[TAG_MSRS].data, items[TAG_MSRS].len);
	memcpy(xs, items[TAG_XSAVE].data, items[TAG_XSAVE].len);

	if ((r = state_check_regs(&regs, err)) ||
	    (r = state_check_sregs(&sregs, err)) ||
	    (r = state_check_xsave(xs, items[TAG_XSAVE].len, &f, err)) ||
	    (r = state_check_xcrs(&xcrs, &f, err)) ||
	    (r = state_check_msrs(m, &f, err)) ||
	    (r = state_check_lapic(&lapic, err)) ||
	    (r = state_check_events(&ev, err)) ||
	    (r = state_check_mp_state(&mp, err)) ||
	    (r = state_check_debugregs(&dbg, err)))
		err_prefix(err, r, "vCPU %u", v->index);
	free(m);
	free(xs);
	return r;
}

int vcpu_load_state(struct vcpu *v, uint32_t version, const void *data,
		    size_t len, char *err)
{
	struct item items[TAG_MAX] = { 0 };
	struct cursor c;
	int r;

	if (version != VCPU_STATE_VERSION)
		return err_set(err, -EPROTO, "vCPU %u: unknown state version %u",
			       v->index, version);
	cursor_init(&c, data, len);
	while (c.left && !c.short_read) {
		uint32_t tag = cursor_u32(&c), ilen = cursor_u32(&c);
		if (c.short_read || ilen > c.left)
			return err_set(err, -EPROTO,
				       "vCPU %u: state item truncated", v->index);
		if (tag == 0 || tag >= TAG_MAX)
			return err_set(err, -EPROTO,
				       "vCPU %u: unknown state item %u", v->index,
				       tag);
		if (items[tag].data)
			return err_set(err, -EPROTO, "vCPU %u: %s state appears twice",
				       v->index, tag_names[tag]);
		items[tag] = (struct item){ c.p, ilen };
		c.p += ilen;
		c.left -= ilen;
	}
	static const struct { int tag; size_t size; } fixed[] = {
		{ TAG_REGS, sizeof(struct kvm_regs) },
		{ TAG_SREGS, sizeof(struct kvm_sregs) },
		{ TAG_XCRS, sizeof(struct kvm_xcrs) },
		{ TAG_LAPIC, sizeof(struct kvm_lapic_state) },
		{ TAG_EVENTS, sizeof(struct kvm_vcpu_events) },
		{ TAG_MP_STATE, sizeof(struct kvm_mp_state) },
		{ TAG_DEBUGREGS, sizeof(struct kvm_debugregs) },
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		const struct item *it = &items[fixed[i].tag];
		if (!it->data || it->len != fixed[i].size)
			return err_set(err, -EPROTO,
				       "vCPU %u: %s state %s (%u bytes, want %zu)",
				       v->index, tag_names[fixed[i].tag],
				       it->data ? "has the wrong size" : "missing",
				       it->len, fixed[i].size);
	}
	if (!items[TAG_XSAVE].data || items[TAG_XSAVE].len < sizeof(struct kvm_xsave) ||
	    items[TAG_XSAVE].len > xsave_size)
		return err_set(err, -EPROTO,
			       "vCPU %u: xsave state %s (%u bytes; this host takes %zu to %zu)",
			       v->index, items[TAG_XSAVE].data ? "has the wrong size" : "missing",
			       items[TAG_XSAVE].len, sizeof(struct kvm_xsave), xsave_size);
	if (!items[TAG_MSRS].data)
		return err_set(err, -EPROTO, "vCPU %u: msrs state missing", v->index);
	struct kvm_msrs mhdr;
	if (items[TAG_MSRS].len < sizeof(mhdr))
		return err_set(err, -EPROTO, "vCPU %u: malformed MSR list", v->index);
	memcpy(&mhdr, items[TAG_MSRS].data, sizeof(mhdr));
	if (items[TAG_MSRS].len != sizeof(mhdr) +
				   (size_t)mhdr.nmsrs * sizeof(struct kvm_msr_entry))
		return err_set(err, -EPROTO, "vCPU %u: malformed MSR list (%u MSRs in %u bytes)",
			       v->index, mhdr.nmsrs, items[TAG_MSRS].len);
	r = check_items(v, items, err);
	if (r)
		return r;

	/* QEMU's order (kvm_arch_put_registers): registers, extended state,
	 * segments and control registers (which set the APIC base), MSRs,
	 * then MP state, the LAPIC, pending events and debug registers. */
	struct item xs = items[TAG_XSAVE];
	void *xbuf = calloc(1, xsave_size);
	if (!xbuf)
		return err_set(err, -ENOMEM, "out of memory");
	memcpy(xbuf, xs.data, xs.len);
	xs.data = xbuf;
	xs.len = xsave_size;

	struct kvm_vcpu_events ev;
	memcpy(&ev, items[TAG_EVENTS].data, sizeof(ev));
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING |
		    KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	struct item evi = { &ev, sizeof(ev) };

	if ((r = set_item(v, KVM_SET_REGS, &items[TAG_REGS], TAG_REGS, err)) ||
	    (r = set_item(v, KVM_SET_XSAVE, &xs, TAG_XSAVE, err)) ||
	    (r = set_item(v, KVM_SET_XCRS, &items[TAG_XCRS], TAG_XCRS, err)) ||
	    (r = set_item(v, KVM_SET_SREGS, &items[TAG_SREGS], TAG_SREGS, err)) ||
	    (r = set_msrs(v, &items[TAG_MSRS], err)) ||
	    (r = set_item(v, KVM_SET_MP_STATE, &items[TAG_MP_STATE],
			  TAG_MP_STATE, err)) ||
	    (r = set_item(v, KVM_SET_LAPIC, &items[TAG_LAPIC], TAG_LAPIC, err)) ||
	    (r = set_item(v, KVM_SET_VCPU_EVENTS, &evi, TAG_EVENTS, err)) ||
	    (r = set_item(v, KVM_SET_DEBUGREGS, &items[TAG_DEBUGREGS],
			  TAG_DEBUGREGS, err))) {
		/* err names the first item KVM refused */
	}
	free(xbuf);
	return r;
}
