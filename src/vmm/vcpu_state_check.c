/* Rules for one vCPU's state (state_check.h). */
#include "vmm/state_check.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>

#define BAD(err, ...) err_set(err, -EPROTO, __VA_ARGS__)

/* A u8 field that KVM reports as a truth value. */
#define CHECK_BOOL(err, what, v)                                          \
	do {                                                              \
		if ((v) > 1)                                              \
			return BAD(err, "%s is %u (0 or 1)", what,        \
				   (unsigned)(v));                        \
	} while (0)

const uint32_t vcpu_required_msrs[] = {
	0x174, 0x175, 0x176,            /* SYSENTER_CS, _ESP, _EIP */
	0xc0000081, 0xc0000082,         /* STAR, LSTAR */
	0xc0000083, 0xc0000084,         /* CSTAR, SYSCALL_MASK */
	0xc0000102,                     /* KERNEL_GS_BASE */
	0x10,                           /* TSC */
};
const unsigned vcpu_required_msrs_count =
	sizeof(vcpu_required_msrs) / sizeof(vcpu_required_msrs[0]);

int state_check_regs(const struct kvm_regs *r, char *err)
{
	/* Bit 1 always reads 1; 3, 5, 15 and 22..63 are reserved. */
	const uint64_t reserved = (1ULL << 3) | (1ULL << 5) | (1ULL << 15) |
				  ~((1ULL << 22) - 1);
	if (!(r->rflags & 2) || (r->rflags & reserved))
		return BAD(err, "regs: rflags 0x%llx is not a valid RFLAGS",
			   (unsigned long long)r->rflags);
	return 0;
}

static int check_segment(const char *name, const struct kvm_segment *s,
			 char *err)
{
	char what[32];
	if (s->type > 15)
		return BAD(err, "sregs: %s.type is %u", name, s->type);
	if (s->dpl > 3)
		return BAD(err, "sregs: %s.dpl is %u", name, s->dpl);
	const struct { const char *f; uint8_t v; } flags[] = {
		{ "present", s->present }, { "db", s->db }, { "s", s->s },
		{ "l", s->l }, { "g", s->g }, { "avl", s->avl },
		{ "unusable", s->unusable },
	};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		snprintf(what, sizeof(what), "sregs: %s.%s", name, flags[i].f);
		CHECK_BOOL(err, what, flags[i].v);
	}
	return 0;
}

#define CR0_KNOWN  0xe005003fULL /* PE MP EM TS ET NE, WP AM, NW CD PG */
#define CR0_PE     (1ULL << 0)
#define CR0_NW     (1ULL << 29)
#define CR0_CD     (1ULL << 30)
#define CR0_PG     (1ULL << 31)
#define CR4_PAE    (1ULL << 5)
/* Bit 15 and everything above FRED (32) are reserved. */
#define CR4_RESERVED ((1ULL << 15) | ~((1ULL << 33) - 1))
/* SCE, LME, LMA, NXE, SVME, LMSLE, FFXSR, TCE, MCOMMIT, INTWB, AUTOIBRS */
#define EFER_KNOWN 0x26fd01ULL
#define EFER_LME   (1ULL << 8)
#define EFER_LMA   (1ULL << 10)
#define APIC_BASE_RESERVED 0x2ffULL /* 0..7 and 9 */
#define APIC_BASE_EXTD (1ULL << 10)
#define APIC_BASE_EN   (1ULL << 11)

int state_check_sregs(const struct kvm_sregs *s, char *err)
{
	const struct { const char *n; const struct kvm_segment *s; } segs[] = {
		{ "cs", &s->cs }, { "ds", &s->ds }, { "es", &s->es },
		{ "fs", &s->fs }, { "gs", &s->gs }, { "ss", &s->ss },
		{ "tr", &s->tr }, { "ldt", &s->ldt },
	};
	for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
		int r = check_segment(segs[i].n, segs[i].s, err);
		if (r)
			return r;
	}
	if (s->cr0 & ~CR0_KNOWN)
		return BAD(err, "sregs: cr0 0x%llx has reserved bits 0x%llx",
			   (unsigned long long)s->cr0,
			   (unsigned long long)(s->cr0 & ~CR0_KNOWN));
	if ((s->cr0 & CR0_PG) && !(s->cr0 & CR0_PE))
		return BAD(err, "sregs: cr0 0x%llx has paging without protection",
			   (unsigned long long)s->cr0);
	if ((s->cr0 & CR0_NW) && !(s->cr0 & CR0_CD))
		return BAD(err, "sregs: cr0 0x%llx has NW without CD",
			   (unsigned long long)s->cr0);
	if (s->cr4 & CR4_RESERVED)
		return BAD(err, "sregs: cr4 0x%llx has reserved bits 0x%llx",
			   (unsigned long long)s->cr4,
			   (unsigned long long)(s->cr4 & CR4_RESERVED));
	if (s->cr8 > 15)
		return BAD(err, "sregs: cr8 is 0x%llx (a priority class, 0 to 15)",
			   (unsigned long long)s->cr8);
	if (s->efer & ~EFER_KNOWN)
		return BAD(err, "sregs: efer 0x%llx has reserved bits 0x%llx",
			   (unsigned long long)s->efer,
			   (unsigned long long)(s->efer & ~EFER_KNOWN));
	/* KVM's own rule (kvm_is_valid_sregs), named: long mode is LME with
	 * paging, and then needs PAE and LMA; outside it, neither LMA nor a
	 * 64-bit code segment. */
	if ((s->efer & EFER_LME) && (s->cr0 & CR0_PG)) {
		if (!(s->cr4 & CR4_PAE))
			return BAD(err, "sregs: long mode (efer.LME, cr0.PG) without cr4.PAE");
		if (!(s->efer & EFER_LMA))
			return BAD(err, "sregs: long mode (efer.LME, cr0.PG) without efer.LMA");
	} else {
		if (s->efer & EFER_LMA)
			return BAD(err, "sregs: efer.LMA outside long mode");
		if (s->cs.l)
			return BAD(err, "sregs: cs.l (64-bit code) outside long mode");
	}
	if (s->cs.l && s->cs.db)
		return BAD(err, "sregs: cs.l and cs.db are both set");
	if (s->apic_base & APIC_BASE_RESERVED)
		return BAD(err, "sregs: apic_base 0x%llx has reserved bits",
			   (unsigned long long)s->apic_base);
	if ((s->apic_base & APIC_BASE_EXTD) && !(s->apic_base & APIC_BASE_EN))
		return BAD(err, "sregs: apic_base 0x%llx has x2APIC without the APIC enabled",
			   (unsigned long long)s->apic_base);
	/* At most one external interrupt is being injected. */
	unsigned pending = 0;
	for (size_t i = 0; i < sizeof(s->interrupt_bitmap) / sizeof(s->interrupt_bitmap[0]); i++)
		pending += (unsigned)__builtin_popcountll(s->interrupt_bitmap[i]);
	if (pending > 1)
		return BAD(err, "sregs: interrupt_bitmap has %u interrupts pending (at most 1)",
			   pending);
	return 0;
}

int state_check_events(const struct kvm_vcpu_events *e, char *err)
{
	const uint32_t known = KVM_VCPUEVENT_VALID_NMI_PENDING |
			       KVM_VCPUEVENT_VALID_SIPI_VECTOR |
			       KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM |
			       KVM_VCPUEVENT_VALID_PAYLOAD |
			       KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
	if (e->flags & ~known)
		return BAD(err, "events: flags 0x%x has unknown bits 0x%x", e->flags,
			   e->flags & ~known);
	CHECK_BOOL(err, "events: exception.injected", e->exception.injected);
	CHECK_BOOL(err, "events: exception.pending", e->exception.pending);
	CHECK_BOOL(err, "events: exception.has_error_code", e->exception.has_error_code);
	CHECK_BOOL(err, "events: exception_has_payload", e->exception_has_payload);
	/* Vectors 0..31 are exceptions; 2 is the NMI, which is not one. */
	if ((e->exception.injected || e->exception.pending) &&
	    (e->exception.nr > 31 || e->exception.nr == 2))
		return BAD(err, "events: exception.nr %u is not an exception",
			   e->exception.nr);
	CHECK_BOOL(err, "events: interrupt.injected", e->interrupt.injected);
	CHECK_BOOL(err, "events: interrupt.soft", e->interrupt.soft);
	if (e->interrupt.shadow & ~(KVM_X86_SHADOW_INT_MOV_SS | KVM_X86_SHADOW_INT_STI))
		return BAD(err, "events: interrupt.shadow is 0x%x", e->interrupt.shadow);
	CHECK_BOOL(err, "events: nmi.injected", e->nmi.injected);
	/* A count since Linux 6.4: KVM keeps up to two NMIs pending. */
	if (e->nmi.pending > 2)
		return BAD(err, "events: nmi.pending is %u (at most 2)",
			   e->nmi.pending);
	CHECK_BOOL(err, "events: nmi.masked", e->nmi.masked);
	if (e->sipi_vector > 0xff)
		return BAD(err, "events: sipi_vector is 0x%x (a vector, 0 to 255)",
			   e->sipi_vector);
	CHECK_BOOL(err, "events: smi.smm", e->smi.smm);
	CHECK_BOOL(err, "events: smi.pending", e->smi.pending);
	CHECK_BOOL(err, "events: smi.smm_inside_nmi", e->smi.smm_inside_nmi);
	CHECK_BOOL(err, "events: smi.latched_init", e->smi.latched_init);
	CHECK_BOOL(err, "events: triple_fault.pending", e->triple_fault.pending);
	for (size_t i = 0; i < sizeof(e->reserved); i++)
		if (e->reserved[i])
			return BAD(err, "events: reserved byte %zu is not zero", i);
	return 0;
}

int state_check_mp_state(const struct kvm_mp_state *m, char *err)
{
	/* RUNNABLE, UNINITIALIZED, INIT_RECEIVED, HALTED, SIPI_RECEIVED: the
	 * x86 states outside SEV and Xen. */
	if (m->mp_state > KVM_MP_STATE_SIPI_RECEIVED)
		return BAD(err, "mp_state: mp_state %u is not an x86 vCPU state",
			   m->mp_state);
	return 0;
}

int state_check_debugregs(const struct kvm_debugregs *d, char *err)
{
	if (d->flags)
		return BAD(err, "debugregs: flags 0x%llx (must be 0)",
			   (unsigned long long)d->flags);
	if (d->dr6 >> 32)
		return BAD(err, "debugregs: dr6 0x%llx has bits above 31",
			   (unsigned long long)d->dr6);
	if (d->dr7 >> 32)
		return BAD(err, "debugregs: dr7 0x%llx has bits above 31",
			   (unsigned long long)d->dr7);
	return 0;
}

/* XCR0's own rules (the SDM's, which KVM's __kvm_set_xcr enforces). */
static int check_xcr0(const char *where, uint64_t v, uint64_t allowed,
		      char *err)
{
	const uint64_t sse = 1u << 1, avx = 1u << 2, bnd = 3u << 3,
		       avx512 = 7u << 5, amx = 3u << 17;
	if (!(v & 1))
		return BAD(err, "%s: XCR0 0x%llx lacks x87", where,
			   (unsigned long long)v);
	if (v & ~allowed)
		return BAD(err, "%s: XCR0 0x%llx has bits 0x%llx the guest's CPUID does not offer",
			   where, (unsigned long long)v,
			   (unsigned long long)(v & ~allowed));
	if ((v & avx) && !(v & sse))
		return BAD(err, "%s: XCR0 0x%llx has AVX without SSE", where,
			   (unsigned long long)v);
	if ((v & bnd) && (v & bnd) != bnd)
		return BAD(err, "%s: XCR0 0x%llx has half of MPX", where,
			   (unsigned long long)v);
	if ((v & avx512) && ((v & avx512) != avx512 || !(v & avx)))
		return BAD(err, "%s: XCR0 0x%llx has part of AVX-512 or AVX-512 without AVX",
			   where, (unsigned long long)v);
	if ((v & amx) && (v & amx) != amx)
		return BAD(err, "%s: XCR0 0x%llx has half of AMX", where,
			   (unsigned long long)v);
	return 0;
}

int state_check_xcrs(const struct kvm_xcrs *x, const struct vcpu_state_facts *f,
		     char *err)
{
	if (x->nr_xcrs > KVM_MAX_XCRS)
		return BAD(err, "xcrs: nr_xcrs is %u (at most %d)", x->nr_xcrs,
			   KVM_MAX_XCRS);
	if (x->flags)
		return BAD(err, "xcrs: flags 0x%x (must be 0)", x->flags);
	for (unsigned i = 0; i < x->nr_xcrs; i++) {
		/* KVM would skip any other silently. */
		if (x->xcrs[i].xcr != 0)
			return BAD(err, "xcrs: entry %u is XCR%u (only XCR0 exists)",
				   i, x->xcrs[i].xcr);
		int r = check_xcr0("xcrs", x->xcrs[i].value, f->xcr0, err);
		if (r)
			return r;
	}
	return 0;
}

/* The standard (uncompacted) XSAVE layout KVM_GET_XSAVE returns. */
#define XSAVE_MXCSR     24
#define XSAVE_HDR       512
#define XSAVE_HDR_LEN   64

int state_check_xsave(const void *xsave, size_t len,
		      const struct vcpu_state_facts *f, char *err)
{
	const uint8_t *p = xsave;
	uint32_t mxcsr;
	uint64_t hdr[XSAVE_HDR_LEN / 8];

	if (len < sizeof(struct kvm_xsave))
		return BAD(err, "xsave: %zu bytes (at least %zu)", len,
			   sizeof(struct kvm_xsave));
	memcpy(&mxcsr, p + XSAVE_MXCSR, 4);
	if (mxcsr >> 16)
		return BAD(err, "xsave: mxcsr 0x%x has reserved bits", mxcsr);
	memcpy(hdr, p + XSAVE_HDR, sizeof(hdr));
	/* x87 and SSE live in the legacy area every XSAVE image has (KVM
	 * reports them even where the CPU has no XSAVE at all). */
	uint64_t allowed = f->xcr0 | 3;
	if (hdr[0] & ~allowed)
		return BAD(err, "xsave: xstate_bv 0x%llx has components 0x%llx the guest's CPUID does not offer",
			   (unsigned long long)hdr[0],
			   (unsigned long long)(hdr[0] & ~allowed));
	if (hdr[1])
		return BAD(err, "xsave: xcomp_bv 0x%llx (the standard layout has 0)",
			   (unsigned long long)hdr[1]);
	for (size_t i = 2; i < XSAVE_HDR_LEN / 8; i++)
		if (hdr[i])
			return BAD(err, "xsave: header reserved word %zu is not zero",
				   i - 2);
	return 0;
}

static bool canonical(uint64_t v, unsigned bits)
{
	int64_t s = (int64_t)(v << (64 - bits)) >> (64 - bits);
	return (uint64_t)s == v;
}

static bool listed(const uint32_t *l, unsigned n, uint32_t index)
{
	for (unsigned i = 0; i < n; i++)
		if (l[i] == index)
			return true;
	return false;
}

int state_check_msrs(const struct kvm_msrs *m, const struct vcpu_state_facts *f,
		     char *err)
{
	/* MSRs holding linear addresses: KVM refuses a non-canonical one
	 * anyway, here it is named. */
	static const struct { uint32_t index; const char *name; } addr_msrs[] = {
		{ 0x175, "SYSENTER_ESP" }, { 0x176, "SYSENTER_EIP" },
		{ 0xc0000082, "LSTAR" }, { 0xc0000083, "CSTAR" },
		{ 0xc0000100, "FS_BASE" }, { 0xc0000101, "GS_BASE" },
		{ 0xc0000102, "KERNEL_GS_BASE" },
	};
	unsigned va_bits = f->va_bits ? f->va_bits : 48;

	if (m->nmsrs > f->nmsrs)
		return BAD(err, "msrs: %u MSRs, this host has %u", m->nmsrs,
			   f->nmsrs);
	for (unsigned i = 0; i < m->nmsrs; i++) {
		uint32_t idx = m->entries[i].index;
		if (!listed(f->msrs, f->nmsrs, idx))
			return BAD(err, "msrs: MSR 0x%x is not in this host's list", idx);
		for (unsigned j = 0; j < i; j++)
			if (m->entries[j].index == idx)
				return BAD(err, "msrs: MSR 0x%x appears twice", idx);
		for (size_t k = 0; k < sizeof(addr_msrs) / sizeof(addr_msrs[0]); k++)
			if (addr_msrs[k].index == idx &&
			    !canonical(m->entries[i].data, va_bits))
				return BAD(err, "msrs: %s (0x%x) = 0x%llx is not a canonical address",
					   addr_msrs[k].name, idx,
					   (unsigned long long)m->entries[i].data);
	}
	for (unsigned k = 0; k < vcpu_required_msrs_count; k++) {
		uint32_t idx = vcpu_required_msrs[k];
		bool have = false;
		for (unsigned i = 0; i < m->nmsrs && !have; i++)
			have = m->entries[i].index == idx;
		/* Required where this host can hold it at all. */
		if (!have && listed(f->msrs, f->nmsrs, idx))
			return BAD(err, "msrs: MSR 0x%x, which every guest has, is missing", idx);
	}
	return 0;
}

/* Local APIC registers: the 32-bit value at their offset in the page. */
static uint32_t apic_reg(const struct kvm_lapic_state *l, unsigned off)
{
	uint32_t v;
	memcpy(&v, l->regs + off, 4);
	return v;
}

int state_check_lapic(const struct kvm_lapic_state *l, char *err)
{
	/* KVM masks every guest write to these registers (apic_lvt_mask,
	 * kvm_lapic_reg_write): bits outside are never set in a real one. */
	enum { VEC = 0xff, MODE = 0x700, PEND = 1 << 12, POL = 1 << 13,
	       RIRR = 1 << 14, TRIG = 1 << 15, MASK = 1 << 16 };
	static const struct { unsigned off; const char *name; uint32_t ok; } regs[] = {
		{ 0x080, "TPR", 0xff },
		{ 0x0f0, "SVR", 0x13ff },
		{ 0x2f0, "LVT CMCI", VEC | MODE | PEND | MASK },
		{ 0x320, "LVT timer", VEC | PEND | MASK | (3u << 17) },
		{ 0x330, "LVT thermal", VEC | MODE | PEND | MASK },
		{ 0x340, "LVT performance counter", VEC | MODE | PEND | MASK },
		{ 0x350, "LVT LINT0", VEC | MODE | PEND | POL | RIRR | TRIG | MASK },
		{ 0x360, "LVT LINT1", VEC | MODE | PEND | POL | RIRR | TRIG | MASK },
		{ 0x370, "LVT error", VEC | PEND | MASK },
		{ 0x3e0, "timer divide configuration", 0xb },
	};
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		uint32_t v = apic_reg(l, regs[i].off);
		if (v & ~regs[i].ok)
			return BAD(err, "lapic: %s (0x%03x) = 0x%08x has reserved bits 0x%08x",
				   regs[i].name, regs[i].off, v, v & ~regs[i].ok);
	}
	/* (Timer mode 3 is reserved, but KVM keeps it if a guest writes it:
	 * such a guest still moves.) */
	return 0;
}
