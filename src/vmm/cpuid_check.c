/*
 * The CPUID rule (cpuid_check.h).  KVM looks a leaf up by walking the list
 * in order and taking the first entry whose function matches and whose
 * index matches too, or does not matter (no KVM_CPUID_FLAG_SIGNIFCANT_INDEX).
 * So a check that looks entries up by (function, index) can be walked
 * around: an extra entry for leaf 1 with index 1, put first, is what the
 * guest is given while the check reads the real one.  Here every entry is
 * checked, and a list in which some entry would never be the one KVM uses
 * is refused: a real source never sends one.
 */
#include "vmm/cpuid_check.h"
#include "util/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <linux/kvm.h>

#define FLAGS_KNOWN (KVM_CPUID_FLAG_SIGNIFCANT_INDEX | \
		     KVM_CPUID_FLAG_STATEFUL_FUNC | KVM_CPUID_FLAG_STATE_READ_NEXT)

enum { EAX, EBX, ECX, EDX };
static const char *const reg_names[] = { "eax", "ebx", "ecx", "edx" };

/* Registers made of feature bits: each bit the guest has, the host must
 * have.  min_idx..max_idx selects sub-leaves (all of them by default). */
static const struct feature_reg {
	uint32_t fn, min_idx, max_idx;
	int reg;
} feature_regs[] = {
	{ 0x1, 0, 0, ECX }, { 0x1, 0, 0, EDX },
	{ 0x6, 0, 0, EAX },
	{ 0x7, 0, UINT32_MAX, EBX }, { 0x7, 0, UINT32_MAX, ECX },
	{ 0x7, 0, UINT32_MAX, EDX }, { 0x7, 1, UINT32_MAX, EAX },
	{ 0xd, 0, 0, EAX }, { 0xd, 0, 0, EDX },          /* XCR0 bits */
	{ 0xd, 1, 1, EAX }, { 0xd, 1, 1, ECX }, { 0xd, 1, 1, EDX }, /* XSS */
	{ 0x14, 0, 0, EBX }, { 0x14, 0, 0, ECX },
	{ 0x40000001, 0, 0, EAX },                       /* KVM's own */
	{ 0x80000001, 0, 0, ECX }, { 0x80000001, 0, 0, EDX },
	{ 0x80000007, 0, 0, EDX },
	{ 0x80000008, 0, 0, EBX },
	{ 0x8000000a, 0, 0, EDX },
	{ 0x80000021, 0, 0, EAX },
};

/* Registers holding a count or limit the host's must not be below. */
static const struct limit_reg {
	uint32_t fn, idx;
	int reg;
	uint32_t mask;
	const char *what;
} limit_regs[] = {
	{ 0x0, 0, EAX, UINT32_MAX, "highest basic leaf" },
	{ 0x7, 0, EAX, UINT32_MAX, "highest leaf 7 sub-leaf" },
	{ 0x40000000, 0, EAX, UINT32_MAX, "highest KVM leaf" },
	{ 0x80000000, 0, EAX, UINT32_MAX, "highest extended leaf" },
	{ 0x80000008, 0, EAX, 0xff, "physical address width" },
	{ 0x80000008, 0, EAX, 0xff00, "linear address width" },
};

static uint32_t reg_of(const struct kvm_cpuid_entry2 *e, int reg)
{
	switch (reg) {
	case EAX: return e->eax;
	case EBX: return e->ebx;
	case ECX: return e->ecx;
	default:  return e->edx;
	}
}

static bool matches(const struct kvm_cpuid_entry2 *e, uint32_t fn,
		    uint32_t idx)
{
	return e->function == fn &&
	       (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == idx);
}

/* What KVM returns for CPUID(fn, idx) from list @c: the first match. */
static const struct kvm_cpuid_entry2 *lookup(const struct kvm_cpuid2 *c,
					     uint32_t fn, uint32_t idx)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (matches(&c->entries[i], fn, idx))
			return &c->entries[i];
	return NULL;
}

/* The list's own shape: every entry is one KVM can reach. */
int cpuid_check_shape(const struct kvm_cpuid2 *g, char *err)
{
	if (g->nent == 0 || g->nent > CPUID_MAX_ENTRIES)
		return err_set(err, -EPROTO, "CPUID: %u entries (1 to %u allowed)",
			       g->nent, CPUID_MAX_ENTRIES);
	for (unsigned i = 0; i < g->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &g->entries[i];
		if (e->flags & ~FLAGS_KNOWN)
			return err_set(err, -EPROTO,
				       "CPUID entry %u (leaf 0x%x.%u): unknown flags 0x%x",
				       i, e->function, e->index, e->flags);
		/* KVM ignores the index of such an entry: one that is not 0
		 * says a sub-leaf that is not there. */
		if (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index)
			return err_set(err, -EPROTO,
				       "CPUID entry %u: leaf 0x%x has no sub-leaves but says index %u",
				       i, e->function, e->index);
		for (unsigned j = 0; j < i; j++)
			if (matches(&g->entries[j], e->function, e->index) ||
			    (g->entries[j].function == e->function &&
			     (g->entries[j].flags ^ e->flags) &
				     KVM_CPUID_FLAG_SIGNIFCANT_INDEX))
				return err_set(err, -EPROTO,
					       "CPUID entry %u (leaf 0x%x.%u) repeats or contradicts entry %u",
					       i, e->function, e->index, j);
	}
	return 0;
}

static int check_entry(unsigned i, const struct kvm_cpuid_entry2 *g,
		       const struct kvm_cpuid2 *host, char *err)
{
	const struct kvm_cpuid_entry2 *h = lookup(host, g->function, g->index);
	if (!h)
		return err_set(err, -ENOTSUP,
			       "CPUID leaf 0x%x.%u is not offered by this host",
			       g->function, g->index);
	if ((h->flags ^ g->flags) & KVM_CPUID_FLAG_SIGNIFCANT_INDEX)
		return err_set(err, -EPROTO,
			       "CPUID entry %u: leaf 0x%x %s sub-leaves here",
			       i, g->function,
			       h->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX ? "has"
									  : "has no");
	/* Leaf 0's vendor: a guest does not change CPU makers in flight. */
	if (g->function == 0 &&
	    (g->ebx != h->ebx || g->ecx != h->ecx || g->edx != h->edx))
		return err_set(err, -ENOTSUP,
			       "CPUID leaf 0x0: the guest's CPU vendor is not this host's");
	for (size_t k = 0; k < sizeof(feature_regs) / sizeof(feature_regs[0]); k++) {
		const struct feature_reg *f = &feature_regs[k];
		if (f->fn != g->function || g->index < f->min_idx ||
		    g->index > f->max_idx)
			continue;
		uint32_t hv = reg_of(h, f->reg), gv = reg_of(g, f->reg);
		if (f->fn == 1 && f->reg == EDX)
			hv |= 1u << 28; /* HTT: ours to set (cpuid_set_for_vcpu) */
		if (gv & ~hv)
			return err_set(err, -ENOTSUP,
				       "CPU features missing here: CPUID leaf 0x%x.%u %s bits 0x%08x",
				       g->function, g->index, reg_names[f->reg],
				       gv & ~hv);
	}
	for (size_t k = 0; k < sizeof(limit_regs) / sizeof(limit_regs[0]); k++) {
		const struct limit_reg *l = &limit_regs[k];
		if (l->fn != g->function || l->idx != g->index)
			continue;
		uint32_t gv = reg_of(g, l->reg) & l->mask;
		uint32_t hv = reg_of(h, l->reg) & l->mask;
		if (gv > hv)
			return err_set(err, -ENOTSUP,
				       "CPUID leaf 0x%x.%u %s: the guest's %s is 0x%x, this host's 0x%x",
				       g->function, g->index, reg_names[l->reg],
				       l->what, gv, hv);
	}
	return 0;
}

int cpuid_check(const struct kvm_cpuid2 *guest, const struct kvm_cpuid2 *host,
		char *err)
{
	int r = cpuid_check_shape(guest, err);
	for (unsigned i = 0; i < guest->nent && !r; i++)
		r = check_entry(i, &guest->entries[i], host, err);
	return r;
}
