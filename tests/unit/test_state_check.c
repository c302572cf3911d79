/*
 * The state rules (vmm/state_check.h), without KVM: a state as a real
 * 64-bit guest's KVM_GET_* would return it passes; each table row breaks
 * one field and the refusal must name that field.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/state_check.h"
#include "util/log.h"

/* ---- vCPU ----------------------------------------------------------------- */

static const uint32_t host_msrs[] = {
	0x10, 0x174, 0x175, 0x176, 0x1a0, 0x277,
	0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, 0xc0000102,
	0x4b564d00, 0x4b564d01,
};

static const struct vcpu_state_facts facts = {
	.msrs = host_msrs, .nmsrs = sizeof(host_msrs) / sizeof(host_msrs[0]),
	.xcr0 = 0x7, .va_bits = 48,
};

static struct kvm_sregs good_sregs(void)
{
	struct kvm_segment code = { .selector = 8, .type = 11, .present = 1,
				    .s = 1, .l = 1, .g = 1, .limit = 0xffffffff };
	struct kvm_segment data = { .selector = 16, .type = 3, .present = 1,
				    .s = 1, .db = 1, .g = 1, .limit = 0xffffffff };
	struct kvm_sregs s = {
		.cs = code, .ds = data, .es = data, .fs = data, .gs = data,
		.ss = data,
		.tr = { .type = 11, .present = 1, .limit = 0x67 },
		.ldt = { .type = 2, .present = 1, .unusable = 1 },
		.cr0 = 0x80050033, .cr3 = 0x1000, .cr4 = 0x6a0, .cr8 = 0,
		.efer = 0xd01, .apic_base = 0xfee00900,
	};
	return s;
}

static struct kvm_vcpu_events good_events(void)
{
	struct kvm_vcpu_events e = { .flags = KVM_VCPUEVENT_VALID_SHADOW };
	e.interrupt.shadow = KVM_X86_SHADOW_INT_STI;
	return e;
}

static struct kvm_lapic_state good_lapic(void)
{
	struct kvm_lapic_state l = { 0 };
	uint32_t v;
#define SET(off, val) (v = (val), memcpy(l.regs + (off), &v, 4))
	SET(0x0f0, 0x1ff);          /* SVR: enabled, spurious vector 0xff */
	SET(0x320, 0x200ec);        /* timer: periodic, vector 0xec */
	SET(0x350, 0x700);          /* LINT0: ExtINT */
	SET(0x360, 0x400);          /* LINT1: NMI */
	SET(0x370, 0x10000);        /* error: masked */
	SET(0x3e0, 0xb);            /* divide by 1 */
	return l;
}

static struct kvm_msrs *msrs_of(const uint32_t *idx, const uint64_t *val,
				unsigned n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
	m->nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		m->entries[i].index = idx[i];
		m->entries[i].data = val ? val[i] : 0;
	}
	return m;
}

static void expect_refused(int r, const char *err, const char *needle,
			   const char *what)
{
	cr_expect_eq(r, -EPROTO, "%s: returned %d (%s)", what, r, err);
	cr_expect(strstr(err, needle), "%s: '%s' does not name '%s'", what,
		  err, needle);
}

Test(state_check, good_vcpu_state_passes)
{
	char err[ERR_MAX] = "";
	struct kvm_regs regs = { .rflags = 0x202, .rip = 0x100000 };
	struct kvm_sregs s = good_sregs();
	struct kvm_vcpu_events e = good_events();
	e.nmi.pending = 2; /* KVM may hold two */
	struct kvm_mp_state mp = { KVM_MP_STATE_HALTED };
	struct kvm_debugregs d = { .dr6 = 0xffff0ff0, .dr7 = 0x400 };
	struct kvm_xcrs x = { .nr_xcrs = 1, .xcrs = { { .xcr = 0, .value = 7 } } };
	struct kvm_lapic_state l = good_lapic();
	struct kvm_msrs *m = msrs_of(host_msrs, NULL, facts.nmsrs);
	cr_expect_eq(state_check_regs(&regs, err), 0, "%s", err);
	cr_expect_eq(state_check_sregs(&s, err), 0, "%s", err);
	cr_expect_eq(state_check_events(&e, err), 0, "%s", err);
	cr_expect_eq(state_check_mp_state(&mp, err), 0, "%s", err);
	cr_expect_eq(state_check_debugregs(&d, err), 0, "%s", err);
	cr_expect_eq(state_check_xcrs(&x, &facts, err), 0, "%s", err);
	cr_expect_eq(state_check_lapic(&l, err), 0, "%s", err);
	cr_expect_eq(state_check_msrs(m, &facts, err), 0, "%s", err);
	free(m);
}

/* The reset state of a vCPU (real mode, no paging) passes too. */
Test(state_check, reset_state_passes)
{
	char err[ERR_MAX] = "";
	struct kvm_segment seg = { .type = 3, .present = 1, .s = 1, .limit = 0xffff };
	struct kvm_segment cs = seg;
	cs.type = 11;
	cs.selector = 0xf000;
	cs.base = 0xffff0000;
	struct kvm_sregs s = { .cs = cs, .ds = seg, .es = seg, .fs = seg,
			       .gs = seg, .ss = seg,
			       .tr = { .type = 11, .present = 1, .limit = 0xffff },
			       .ldt = { .type = 2, .present = 1, .limit = 0xffff },
			       .cr0 = 0x60000010, .apic_base = 0xfee00900 };
	cr_expect_eq(state_check_sregs(&s, err), 0, "%s", err);
}

struct sregs_case { const char *name; void (*bad)(struct kvm_sregs *); const char *needle; };

static void cr0_reserved(struct kvm_sregs *s) { s->cr0 |= 1u << 20; }
static void cr0_pg_no_pe(struct kvm_sregs *s) { s->cr0 &= ~1ULL; s->efer &= ~0x500ULL; s->cs.l = 0; }
static void cr0_nw_no_cd(struct kvm_sregs *s) { s->cr0 |= 1u << 29; }
static void cr0_high(struct kvm_sregs *s) { s->cr0 |= 1ULL << 40; }
static void cr4_reserved(struct kvm_sregs *s) { s->cr4 |= 1u << 15; }
static void cr8_big(struct kvm_sregs *s) { s->cr8 = 16; }
static void efer_reserved(struct kvm_sregs *s) { s->efer |= 1u << 3; }
static void lm_no_pae(struct kvm_sregs *s) { s->cr4 &= ~0x20ULL; }
static void lm_no_lma(struct kvm_sregs *s) { s->efer &= ~0x400ULL; }
static void lma_outside(struct kvm_sregs *s) { s->cr0 &= ~(1ULL << 31); s->cs.l = 0; }
static void cs_l_outside(struct kvm_sregs *s) { s->cr0 &= ~(1ULL << 31); s->efer &= ~0x400ULL; }
static void cs_l_and_db(struct kvm_sregs *s) { s->cs.db = 1; }
static void apic_reserved(struct kvm_sregs *s) { s->apic_base |= 1; }
static void apic_extd(struct kvm_sregs *s) { s->apic_base = 0xfee00400; }
static void two_irqs(struct kvm_sregs *s) { s->interrupt_bitmap[0] = 0x3; }
static void seg_dpl(struct kvm_sregs *s) { s->ss.dpl = 4; }
static void seg_type(struct kvm_sregs *s) { s->tr.type = 16; }
static void seg_flag(struct kvm_sregs *s) { s->gs.g = 2; }

static const struct sregs_case sregs_cases[] = {
	{ "cr0 reserved bit", cr0_reserved, "cr0 0x80150033 has reserved bits 0x100000" },
	{ "cr0 bit above 31", cr0_high, "cr0 0x10080050033 has reserved bits" },
	{ "paging without PE", cr0_pg_no_pe, "paging without protection" },
	{ "NW without CD", cr0_nw_no_cd, "NW without CD" },
	{ "cr4 bit 15", cr4_reserved, "cr4 0x86a0 has reserved bits 0x8000" },
	{ "cr8 16", cr8_big, "cr8 is 0x10" },
	{ "efer bit 3", efer_reserved, "efer 0xd09 has reserved bits 0x8" },
	{ "long mode without PAE", lm_no_pae, "without cr4.PAE" },
	{ "long mode without LMA", lm_no_lma, "without efer.LMA" },
	{ "LMA without paging", lma_outside, "efer.LMA outside long mode" },
	{ "64-bit cs outside long mode", cs_l_outside, "cs.l (64-bit code) outside long mode" },
	{ "cs.l with cs.db", cs_l_and_db, "cs.l and cs.db" },
	{ "apic_base reserved bit", apic_reserved, "apic_base 0xfee00901 has reserved bits" },
	{ "x2APIC without the APIC", apic_extd, "x2APIC without the APIC enabled" },
	{ "two pending interrupts", two_irqs, "interrupt_bitmap has 2 interrupts" },
	{ "ss.dpl 4", seg_dpl, "ss.dpl is 4" },
	{ "tr.type 16", seg_type, "tr.type is 16" },
	{ "gs.g 2", seg_flag, "gs.g is 2" },
};

Test(state_check, bad_sregs_table)
{
	for (size_t i = 0; i < sizeof(sregs_cases) / sizeof(sregs_cases[0]); i++) {
		struct kvm_sregs s = good_sregs();
		char err[ERR_MAX] = "";
		sregs_cases[i].bad(&s);
		expect_refused(state_check_sregs(&s, err), err,
			       sregs_cases[i].needle, sregs_cases[i].name);
		cr_expect(strncmp(err, "sregs: ", 7) == 0, "%s", err);
	}
}

Test(state_check, bad_regs)
{
	char err[ERR_MAX] = "";
	struct kvm_regs r = { .rflags = 0x200 };   /* bit 1 clear */
	expect_refused(state_check_regs(&r, err), err, "rflags 0x200", "bit 1");
	r.rflags = 0x202 | (1ULL << 22);
	expect_refused(state_check_regs(&r, err), err, "rflags 0x400202", "bit 22");
}

struct events_case { const char *name; void (*bad)(struct kvm_vcpu_events *); const char *needle; };

static void ev_flags(struct kvm_vcpu_events *e) { e->flags |= 0x40; }
static void ev_exc_nr(struct kvm_vcpu_events *e) { e->exception.injected = 1; e->exception.nr = 32; }
static void ev_exc_nmi(struct kvm_vcpu_events *e) { e->exception.pending = 1; e->exception.nr = 2; }
static void ev_exc_bool(struct kvm_vcpu_events *e) { e->exception.has_error_code = 2; }
static void ev_int_bool(struct kvm_vcpu_events *e) { e->interrupt.injected = 7; }
static void ev_shadow(struct kvm_vcpu_events *e) { e->interrupt.shadow = 4; }
static void ev_nmi(struct kvm_vcpu_events *e) { e->nmi.masked = 3; }
static void ev_nmi_pending(struct kvm_vcpu_events *e) { e->nmi.pending = 3; }
static void ev_sipi(struct kvm_vcpu_events *e) { e->sipi_vector = 0x100; }
static void ev_smi(struct kvm_vcpu_events *e) { e->smi.smm = 2; }
static void ev_triple(struct kvm_vcpu_events *e) { e->triple_fault.pending = 9; }
static void ev_reserved(struct kvm_vcpu_events *e) { e->reserved[5] = 1; }

static const struct events_case events_cases[] = {
	{ "unknown flag", ev_flags, "flags 0x44 has unknown bits 0x40" },
	{ "exception 32", ev_exc_nr, "exception.nr 32" },
	{ "NMI as an exception", ev_exc_nmi, "exception.nr 2" },
	{ "has_error_code 2", ev_exc_bool, "exception.has_error_code is 2" },
	{ "interrupt.injected 7", ev_int_bool, "interrupt.injected is 7" },
	{ "shadow 4", ev_shadow, "interrupt.shadow is 0x4" },
	{ "nmi.masked 3", ev_nmi, "nmi.masked is 3" },
	{ "three NMIs pending", ev_nmi_pending, "nmi.pending is 3 (at most 2)" },
	{ "sipi vector 256", ev_sipi, "sipi_vector is 0x100" },
	{ "smi.smm 2", ev_smi, "smi.smm is 2" },
	{ "triple fault 9", ev_triple, "triple_fault.pending is 9" },
	{ "reserved byte", ev_reserved, "reserved byte 5" },
};

Test(state_check, bad_events_table)
{
	for (size_t i = 0; i < sizeof(events_cases) / sizeof(events_cases[0]); i++) {
		struct kvm_vcpu_events e = good_events();
		char err[ERR_MAX] = "";
		events_cases[i].bad(&e);
		expect_refused(state_check_events(&e, err), err,
			       events_cases[i].needle, events_cases[i].name);
		cr_expect(strncmp(err, "events: ", 8) == 0, "%s", err);
	}
}

Test(state_check, bad_mp_state_and_debugregs)
{
	char err[ERR_MAX] = "";
	struct kvm_mp_state mp = { 7 };
	expect_refused(state_check_mp_state(&mp, err), err, "mp_state 7", "mp_state");
	struct kvm_debugregs d = { .dr6 = 1ULL << 32 };
	expect_refused(state_check_debugregs(&d, err), err, "dr6 0x100000000", "dr6");
	d.dr6 = 0;
	d.dr7 = 1ULL << 40;
	expect_refused(state_check_debugregs(&d, err), err, "dr7", "dr7");
	d.dr7 = 0;
	d.flags = 1;
	expect_refused(state_check_debugregs(&d, err), err, "debugregs: flags", "flags");
}

Test(state_check, bad_xcrs)
{
	static const struct { uint32_t nr, flags, xcr; uint64_t value; const char *needle; } cases[] = {
		{ 17, 0, 0, 7, "nr_xcrs is 17" },
		{ 1, 1, 0, 7, "xcrs: flags 0x1" },
		{ 1, 0, 1, 7, "entry 0 is XCR1" },
		{ 1, 0, 0, 6, "lacks x87" },
		{ 1, 0, 0, 0x5, "AVX without SSE" },
		{ 1, 0, 0, 0xe7, "bits 0xe0 the guest's CPUID does not offer" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kvm_xcrs x = { .nr_xcrs = cases[i].nr, .flags = cases[i].flags };
		x.xcrs[0].xcr = cases[i].xcr;
		x.xcrs[0].value = cases[i].value;
		char err[ERR_MAX] = "";
		expect_refused(state_check_xcrs(&x, &facts, err), err,
			       cases[i].needle, cases[i].needle);
	}
	/* With AVX-512 offered, half of it is still wrong. */
	struct vcpu_state_facts wide = facts;
	wide.xcr0 = 0xe7;
	struct kvm_xcrs x = { .nr_xcrs = 1, .xcrs = { { .value = 0x67 } } };
	char err[ERR_MAX] = "";
	expect_refused(state_check_xcrs(&x, &wide, err), err, "part of AVX-512", "avx512");
	x.xcrs[0].value = 0xe7;
	cr_expect_eq(state_check_xcrs(&x, &wide, err), 0, "%s", err);
}

Test(state_check, xsave_header)
{
	uint8_t *xs = calloc(1, 4096);
	uint64_t v;
	uint32_t mxcsr = 0x1f80;
	char err[ERR_MAX] = "";
	memcpy(xs + 24, &mxcsr, 4);
	v = 0x7;
	memcpy(xs + 512, &v, 8);
	cr_expect_eq(state_check_xsave(xs, 4096, &facts, err), 0, "%s", err);
	expect_refused(state_check_xsave(xs, 1024, &facts, err), err,
		       "xsave: 1024 bytes", "short");
	v = 0x20007;  /* AMX tile data: not offered */
	memcpy(xs + 512, &v, 8);
	expect_refused(state_check_xsave(xs, 4096, &facts, err), err,
		       "xstate_bv 0x20007 has components 0x20000", "xstate_bv");
	v = 0x7;
	memcpy(xs + 512, &v, 8);
	v = 1ULL << 63;
	memcpy(xs + 520, &v, 8);
	expect_refused(state_check_xsave(xs, 4096, &facts, err), err, "xcomp_bv", "xcomp_bv");
	v = 0;
	memcpy(xs + 520, &v, 8);
	xs[512 + 40] = 1;
	expect_refused(state_check_xsave(xs, 4096, &facts, err), err,
		       "header reserved word 3", "reserved");
	xs[512 + 40] = 0;
	mxcsr = 0x10000;
	memcpy(xs + 24, &mxcsr, 4);
	expect_refused(state_check_xsave(xs, 4096, &facts, err), err, "mxcsr 0x10000", "mxcsr");
	free(xs);
}

Test(state_check, msrs)
{
	char err[ERR_MAX] = "";
	struct kvm_msrs *m = msrs_of(host_msrs, NULL, facts.nmsrs);

	/* An MSR this host does not list (IA32_DEBUGCTL here). */
	m->entries[5].index = 0x1d9;
	expect_refused(state_check_msrs(m, &facts, err), err,
		       "MSR 0x1d9 is not in this host's list", "unlisted");
	/* Twice the same. */
	m->entries[5].index = 0x10;
	expect_refused(state_check_msrs(m, &facts, err), err,
		       "MSR 0x10 appears twice", "twice");
	free(m);

	/* Without LSTAR, which every 64-bit guest has. */
	uint32_t fewer[] = { 0x10, 0x174, 0x175, 0x176, 0xc0000081,
			     0xc0000083, 0xc0000084, 0xc0000102 };
	m = msrs_of(fewer, NULL, 8);
	expect_refused(state_check_msrs(m, &facts, err), err,
		       "MSR 0xc0000082, which every guest has, is missing", "LSTAR");
	/* ... unless this host cannot hold LSTAR at all. */
	struct vcpu_state_facts no_lstar = facts;
	uint32_t list2[] = { 0x10, 0x174, 0x175, 0x176, 0xc0000081,
			     0xc0000083, 0xc0000084, 0xc0000102 };
	no_lstar.msrs = list2;
	no_lstar.nmsrs = 8;
	cr_expect_eq(state_check_msrs(m, &no_lstar, err), 0, "%s", err);
	free(m);

	/* A non-canonical LSTAR. */
	uint64_t vals[sizeof(host_msrs) / sizeof(host_msrs[0])] = { 0 };
	vals[7] = 0x0000800000000000ULL; /* host_msrs[7] is LSTAR */
	m = msrs_of(host_msrs, vals, facts.nmsrs);
	expect_refused(state_check_msrs(m, &facts, err), err,
		       "LSTAR (0xc0000082) = 0x800000000000 is not a canonical address",
		       "canonical");
	/* The same value is canonical with 57-bit addresses. */
	struct vcpu_state_facts la57 = facts;
	la57.va_bits = 57;
	cr_expect_eq(state_check_msrs(m, &la57, err), 0, "%s", err);
	free(m);

	/* More MSRs than the host has at all. */
	m = msrs_of(host_msrs, NULL, facts.nmsrs);
	m->nmsrs = 1000;
	expect_refused(state_check_msrs(m, &facts, err), err, "1000 MSRs", "count");
	free(m);
}

Test(state_check, lapic)
{
	static const struct { unsigned off; uint32_t val; const char *needle; } cases[] = {
		{ 0x080, 0x100, "TPR (0x080) = 0x00000100" },
		{ 0x0f0, 0x21ff, "SVR (0x0f0)" },
		{ 0x320, 0x800ec, "LVT timer (0x320) = 0x000800ec has reserved bits 0x00080000" },
		{ 0x350, 0x20700, "LVT LINT0" },
		{ 0x370, 0x10700, "LVT error (0x370)" },
		{ 0x3e0, 0x4, "timer divide configuration" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kvm_lapic_state l = good_lapic();
		memcpy(l.regs + cases[i].off, &cases[i].val, 4);
		char err[ERR_MAX] = "";
		expect_refused(state_check_lapic(&l, err), err, cases[i].needle,
			       cases[i].needle);
	}
}

/* ---- platform -------------------------------------------------------------- */

static struct kvm_pit_state2 good_pit(void)
{
	struct kvm_pit_state2 p = { 0 };
	p.channels[0] = (struct kvm_pit_channel_state){ .count = 0x10000,
		.rw_mode = 3, .read_state = 3, .write_state = 3, .mode = 2,
		.gate = 1 };
	p.channels[1] = (struct kvm_pit_channel_state){ .mode = 0xff, .gate = 1 };
	p.channels[2] = (struct kvm_pit_channel_state){ .mode = 0xff };
	return p;
}

Test(state_check, pit)
{
	char err[ERR_MAX] = "";
	struct kvm_pit_state2 p = good_pit();
	cr_expect_eq(state_check_pit(&p, err), 0, "%s", err);
	static const struct { int field; uint32_t v; const char *needle; } cases[] = {
		{ 0, 0x10001, "channel 1 count is 65537" },
		{ 1, 6, "channel 1 mode is 6" },
		{ 2, 4, "channel 1 rw_mode is 4" },
		{ 3, 5, "channel 1 read_state is 5" },
		{ 4, 2, "channel 1 gate is 2" },
		{ 5, 2, "channel 1 bcd is 2" },
		{ 6, 4, "flags 0x4" },
		{ 7, 1, "reserved word 0" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p = good_pit();
		struct kvm_pit_channel_state *c = &p.channels[1];
		switch (cases[i].field) {
		case 0: c->count = cases[i].v; break;
		case 1: c->mode = (uint8_t)cases[i].v; break;
		case 2: c->rw_mode = (uint8_t)cases[i].v; break;
		case 3: c->read_state = (uint8_t)cases[i].v; break;
		case 4: c->gate = (uint8_t)cases[i].v; break;
		case 5: c->bcd = (uint8_t)cases[i].v; break;
		case 6: p.flags = cases[i].v; break;
		default: p.reserved[0] = cases[i].v; break;
		}
		expect_refused(state_check_pit(&p, err), err, cases[i].needle,
			       cases[i].needle);
	}
}

Test(state_check, pic)
{
	char err[ERR_MAX] = "";
	struct kvm_pic_state m = { .irq_base = 0x20, .elcr_mask = 0xf8,
				   .imr = 0xff, .init4 = 1 };
	struct kvm_pic_state s = { .irq_base = 0x28, .elcr = 0x0c,
				   .elcr_mask = 0xde, .init4 = 1 };
	cr_expect_eq(state_check_pic(&m, KVM_IRQCHIP_PIC_MASTER, err), 0, "%s", err);
	cr_expect_eq(state_check_pic(&s, KVM_IRQCHIP_PIC_SLAVE, err), 0, "%s", err);

	struct kvm_pic_state b = m;
	b.elcr_mask = 0xff;
	expect_refused(state_check_pic(&b, KVM_IRQCHIP_PIC_MASTER, err), err,
		       "pic master: elcr_mask is 0xff", "elcr_mask");
	b = s;
	b.elcr = 0x01;
	expect_refused(state_check_pic(&b, KVM_IRQCHIP_PIC_SLAVE, err), err,
		       "pic slave: elcr 0x01", "elcr");
	b = m;
	b.irq_base = 0x21;
	expect_refused(state_check_pic(&b, KVM_IRQCHIP_PIC_MASTER, err), err,
		       "irq_base 0x21", "irq_base");
	b = m;
	b.priority_add = 8;
	expect_refused(state_check_pic(&b, KVM_IRQCHIP_PIC_MASTER, err), err,
		       "priority_add is 8", "priority_add");
	b = m;
	b.init_state = 4;
	expect_refused(state_check_pic(&b, KVM_IRQCHIP_PIC_MASTER, err), err,
		       "init_state is 4", "init_state");
	b = m;
	b.special_fully_nested_mode = 2;
	expect_refused(state_check_pic(&b, KVM_IRQCHIP_PIC_MASTER, err), err,
		       "special_fully_nested_mode is 2", "sfnm");
}

Test(state_check, ioapic)
{
	char err[ERR_MAX] = "";
	struct kvm_ioapic_state io = { .base_address = 0xfec00000, .irr = 1 };
	io.redirtbl[0].bits = 0x10000; /* masked */
	cr_expect_eq(state_check_ioapic(&io, err), 0, "%s", err);
	struct kvm_ioapic_state b = io;
	b.base_address = 0x1000;
	expect_refused(state_check_ioapic(&b, err), err, "base_address 0x1000", "base");
	b = io;
	b.ioregsel = 0x100;
	expect_refused(state_check_ioapic(&b, err), err, "ioregsel is 256", "ioregsel");
	b = io;
	b.id = 16;
	expect_refused(state_check_ioapic(&b, err), err, "ioapic: id is 16", "id");
	b = io;
	b.irr = 1u << 24;
	expect_refused(state_check_ioapic(&b, err), err, "irr 0x1000000", "irr");
}

Test(state_check, kvmclock)
{
	char err[ERR_MAX] = "";
	cr_expect_eq(state_check_kvmclock(123456789, err), 0, "%s", err);
	expect_refused(state_check_kvmclock(~0ULL, err), err, "kvmclock: clock", "clock");
}
