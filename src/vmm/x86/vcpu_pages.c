/*
 * vcpu_pages.c - see vcpu_pages.h.  The walk follows the SDM's four
 * paging modes (none, 32-bit, PAE, 4- and 5-level) far enough to name
 * pages; it checks only the present bits, since a page named wrongly
 * costs a page sent early, nothing more.
 */
#include "vmm/x86/vcpu_pages.h"
#include "vmm/vcpu.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>

#define PG 4096ULL
#define CR0_PG (1ULL << 31)
#define CR4_PSE (1ULL << 4)
#define CR4_PAE (1ULL << 5)
#define CR4_LA57 (1ULL << 12)
#define EFER_LMA (1ULL << 10)
#define PTE_P 1ULL
#define PTE_PS (1ULL << 7)
#define ADDR_MASK 0x000ffffffffff000ULL  /* bits 51:12 */
#define MSR_LSTAR 0xc0000082u
#define MSR_KERNEL_GS_BASE 0xc0000102u

int vcpu_pages_state(struct vcpu *v, struct vcpu_pages_state *st)
{
	/* A kvm_msrs with room for two entries, laid out by hand (a
	 * flexible array member may not sit inside another struct). */
	union {
		struct kvm_msrs msrs;
		uint8_t bytes[sizeof(struct kvm_msrs) + 2 * sizeof(struct kvm_msr_entry)];
	} m;

	memset(st, 0, sizeof(*st));
	if (ioctl(v->fd, KVM_GET_REGS, &st->regs) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &st->sregs) < 0)
		return -errno;
	memset(&m, 0, sizeof(m));
	m.msrs.nmsrs = 2;
	m.msrs.entries[0].index = MSR_KERNEL_GS_BASE;
	m.msrs.entries[1].index = MSR_LSTAR;
	/* Either may be absent (a 32-bit CPU model): KVM stops at the
	 * first it cannot read and says how many it did. */
	int n = ioctl(v->fd, KVM_GET_MSRS, &m);
	if (n >= 1)
		st->kernel_gs_base = m.msrs.entries[0].data;
	if (n >= 2)
		st->lstar = m.msrs.entries[1].data;
	return 0;
}

struct walk {
	const struct guest_memory *mem;
	uint64_t *gpas;
	size_t n, max;
};

static void add(struct walk *w, uint64_t gpa)
{
	gpa &= ~(PG - 1);
	if (!memory_gpa_to_hva(w->mem, gpa, PG))
		return;
	for (size_t i = 0; i < w->n; i++)
		if (w->gpas[i] == gpa)
			return;
	if (w->n < w->max)
		w->gpas[w->n++] = gpa;
}

/* The entry at gpa (size 4 or 8); false outside guest RAM. */
static bool entry(struct walk *w, uint64_t gpa, unsigned size, uint64_t *out)
{
	const void *p = memory_gpa_to_hva(w->mem, gpa, size);
	if (!p)
		return false;
	uint32_t v32;
	if (size == 4) {
		memcpy(&v32, p, 4);
		*out = v32;
	} else {
		memcpy(out, p, 8);
	}
	add(w, gpa);   /* the page-table page itself is read on the way */
	return true;
}

/* Linear to guest-physical under st's paging mode, adding every paging
 * structure read on the way; false if not mapped. */
static bool translate(struct walk *w, const struct vcpu_pages_state *st,
		      uint64_t lin, uint64_t *gpa)
{
	const struct kvm_sregs *s = &st->sregs;
	uint64_t e;

	if (!(s->cr0 & CR0_PG)) {
		*gpa = lin & 0xffffffffULL;
		return true;
	}
	if (s->efer & EFER_LMA) {
		int levels = s->cr4 & CR4_LA57 ? 5 : 4;
		uint64_t table = s->cr3 & ADDR_MASK;
		for (int l = levels; l >= 1; l--) {
			unsigned shift = 12 + 9 * (unsigned)(l - 1);
			uint64_t idx = (lin >> shift) & 511;
			if (!entry(w, table + idx * 8, 8, &e) || !(e & PTE_P))
				return false;
			if (l == 1 || ((l == 2 || l == 3) && (e & PTE_PS))) {
				uint64_t mask = (1ULL << shift) - 1;
				*gpa = ((e & ADDR_MASK) & ~mask) | (lin & mask);
				return true;
			}
			table = e & ADDR_MASK;
		}
		return false;
	}
	lin &= 0xffffffffULL;
	if (s->cr4 & CR4_PAE) {
		/* Four PDPTEs at CR3[31:5]. */
		if (!entry(w, (s->cr3 & 0xffffffe0ULL) + ((lin >> 30) & 3) * 8, 8, &e) ||
		    !(e & PTE_P))
			return false;
		if (!entry(w, (e & ADDR_MASK) + ((lin >> 21) & 511) * 8, 8, &e) ||
		    !(e & PTE_P))
			return false;
		if (e & PTE_PS) {
			*gpa = (e & ADDR_MASK & ~0x1fffffULL) | (lin & 0x1fffff);
			return true;
		}
		if (!entry(w, (e & ADDR_MASK) + ((lin >> 12) & 511) * 8, 8, &e) ||
		    !(e & PTE_P))
			return false;
		*gpa = (e & ADDR_MASK) | (lin & 0xfff);
		return true;
	}
	if (!entry(w, (s->cr3 & 0xfffff000ULL) + (lin >> 22) * 4, 4, &e) || !(e & PTE_P))
		return false;
	if ((e & PTE_PS) && (s->cr4 & CR4_PSE)) {
		/* PSE-36: bits 20:13 of the entry are bits 39:32 */
		*gpa = (e & 0xffc00000ULL) | (((e >> 13) & 0xff) << 32) | (lin & 0x3fffff);
		return true;
	}
	if (!entry(w, (e & 0xfffff000ULL) + ((lin >> 12) & 1023) * 4, 4, &e) ||
	    !(e & PTE_P))
		return false;
	*gpa = (e & 0xfffff000ULL) | (lin & 0xfff);
	return true;
}

static void page_of(struct walk *w, const struct vcpu_pages_state *st, uint64_t lin)
{
	uint64_t gpa;
	if (translate(w, st, lin, &gpa))
		add(w, gpa);
}

/* The stack an interrupt or exception switches to: RSP0 (ESP0) of the
 * task state segment. */
static bool tss_sp0(struct walk *w, const struct vcpu_pages_state *st, uint64_t *sp0)
{
	bool lm = st->sregs.efer & EFER_LMA;
	uint64_t lin = st->sregs.tr.base + 4, gpa;
	unsigned size = lm ? 8 : 4;
	if (st->sregs.tr.unusable || !st->sregs.tr.present ||
	    st->sregs.tr.limit < 4 + size - 1 || (lin & (PG - 1)) > PG - size ||
	    !translate(w, st, lin, &gpa))
		return false;
	const void *p = memory_gpa_to_hva(w->mem, gpa, size);
	if (!p)
		return false;
	uint32_t v32;
	if (lm) {
		memcpy(sp0, p, 8);
	} else {
		memcpy(&v32, p, 4);
		*sp0 = v32;
	}
	return true;
}

size_t vcpu_pages(const struct vcpu_pages_state *st, const struct guest_memory *mem,
		  uint64_t *gpas, size_t max)
{
	struct walk w = { .mem = mem, .gpas = gpas, .max = max };
	const struct kvm_sregs *s = &st->sregs;
	bool lm = s->efer & EFER_LMA;
	/* In long mode CS and SS have no base; elsewhere they do. */
	uint64_t cs = lm ? 0 : s->cs.base, ss = lm ? 0 : s->ss.base;
	uint64_t sp = ss + st->regs.rsp;

	/* The code around the instruction pointer: a loop's calls go to
	 * functions nearby. */
	for (int k = -2; k <= 2; k++)
		page_of(&w, st, cs + st->regs.rip + (uint64_t)(int64_t)k * PG);
	page_of(&w, st, sp);
	page_of(&w, st, sp - 8);          /* the next push may cross a page */
	page_of(&w, st, s->idt.base);
	page_of(&w, st, s->gdt.base);
	if (!s->tr.unusable && s->tr.present)
		page_of(&w, st, s->tr.base);
	uint64_t sp0;
	if (tss_sp0(&w, st, &sp0)) {
		page_of(&w, st, sp0 - 8);
		page_of(&w, st, sp0 - 64); /* an interrupt frame with an error code */
	}
	if (s->fs.base)
		page_of(&w, st, s->fs.base);
	if (s->gs.base)
		page_of(&w, st, s->gs.base);
	if (lm && st->kernel_gs_base)
		page_of(&w, st, st->kernel_gs_base);
	if (lm && st->lstar)
		page_of(&w, st, st->lstar);
	return w.n;
}
