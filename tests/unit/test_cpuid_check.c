/*
 * The CPUID rule (vmm/cpuid_check.h): a guest's CPUID list, as a source or
 * a snapshot hands it over, checked against a host's supported list the
 * way KVM will read it (the first entry that matches a leaf wins).  The
 * host here is a small Intel-like table; each bad guest is the host's
 * own list with one thing changed, and its error must name the leaf.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include "vmm/cpuid_check.h"
#include "util/log.h"

#define SIG KVM_CPUID_FLAG_SIGNIFCANT_INDEX

static const struct kvm_cpuid_entry2 host_entries[] = {
	{ .function = 0, .eax = 0xd, .ebx = 0x756e6547, .ecx = 0x6c65746e,
	  .edx = 0x49656e69 },
	{ .function = 1, .eax = 0x906ea, .ebx = 0x00000800,
	  .ecx = 0xf7fa3223, .edx = 0x0f8bfbff },
	{ .function = 4, .index = 0, .flags = SIG, .eax = 0x121 },
	{ .function = 4, .index = 1, .flags = SIG, .eax = 0x122 },
	{ .function = 6, .eax = 0x4 },
	{ .function = 7, .index = 0, .flags = SIG, .eax = 1,
	  .ebx = 0x029c67af, .ecx = 0x40000008, .edx = 0xbc000400 },
	{ .function = 7, .index = 1, .flags = SIG, .eax = 0x10 },
	{ .function = 0xb, .index = 0, .flags = SIG, .eax = 1, .ebx = 1,
	  .ecx = 0x100 },
	{ .function = 0xb, .index = 1, .flags = SIG, .eax = 4, .ebx = 1,
	  .ecx = 0x201 },
	{ .function = 0xd, .index = 0, .flags = SIG, .eax = 0x7,
	  .ebx = 0x340, .ecx = 0x340 },
	{ .function = 0xd, .index = 1, .flags = SIG, .eax = 0xf },
	{ .function = 0xd, .index = 2, .flags = SIG, .eax = 0x100,
	  .ebx = 0x240 },
	{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b,
	  .ecx = 0x564b4d56, .edx = 0x4d },
	{ .function = 0x40000001, .eax = 0x01007afb },
	{ .function = 0x80000000, .eax = 0x80000008 },
	{ .function = 0x80000001, .ecx = 0x121, .edx = 0x2c100800 },
	{ .function = 0x80000007, .edx = 0x100 },
	{ .function = 0x80000008, .eax = 0x3027, .ebx = 0x01000000 },
};
#define HOST_N (sizeof(host_entries) / sizeof(host_entries[0]))

static struct kvm_cpuid2 *list(const struct kvm_cpuid_entry2 *e, unsigned n)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (n + 2) * sizeof(*e));
	cr_assert_not_null(c);
	c->nent = n;
	memcpy(c->entries, e, n * sizeof(*e));
	return c;
}

static struct kvm_cpuid2 *host(void) { return list(host_entries, HOST_N); }

static struct kvm_cpuid_entry2 *entry(struct kvm_cpuid2 *c, uint32_t fn,
				      uint32_t idx)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	cr_assert_fail("no entry 0x%x.%u in the test table", fn, idx);
	return NULL;
}

/* Put @e at position @at, moving the rest down. */
static void insert(struct kvm_cpuid2 *c, unsigned at,
		   struct kvm_cpuid_entry2 e)
{
	memmove(&c->entries[at + 1], &c->entries[at],
		(c->nent - at) * sizeof(e));
	c->entries[at] = e;
	c->nent++;
}

static void expect(struct kvm_cpuid2 *g, int want, const char *needle)
{
	struct kvm_cpuid2 *h = host();
	char err[ERR_MAX] = "";
	int r = cpuid_check(g, h, err);
	if (want) {
		cr_expect_eq(r, want, "returned %d, wanted %d (%s)", r, want,
			     err);
		cr_expect(strstr(err, needle), "error '%s' does not name '%s'",
			  err, needle);
	} else {
		cr_expect_eq(r, 0, "refused: %s", err);
	}
	free(h);
	free(g);
}

Test(cpuid_check, the_hosts_own_list_passes)
{
	expect(host(), 0, NULL);
}

/* The hole of issue 9: KVM uses the first entry for leaf 1 (a leaf without
 * sub-leaves matches whatever index it carries), so an entry claiming every
 * feature, put before the real one with index 1, is what the guest gets. */
Test(cpuid_check, leaf_1_index_1_before_the_real_one)
{
	struct kvm_cpuid2 *g = host();
	insert(g, 1, (struct kvm_cpuid_entry2){ .function = 1, .index = 1,
			.eax = 0x906ea, .ecx = 0xffffffff, .edx = 0xffffffff });
	expect(g, -EPROTO, "leaf 0x1");
}

/* The same entry after the real one is never read by KVM: refused too, so
 * that no entry of the list is left unchecked. */
Test(cpuid_check, shadowed_entry_after_the_real_one)
{
	struct kvm_cpuid2 *g = host();
	insert(g, 2, (struct kvm_cpuid_entry2){ .function = 1 });
	expect(g, -EPROTO, "leaf 0x1.0) repeats or contradicts entry 1");
}

/* A leaf that has sub-leaves here, given to the guest as one without:
 * KVM would answer every sub-leaf of 0xd with it. */
Test(cpuid_check, subleaf_flag_dropped)
{
	struct kvm_cpuid2 *g = host();
	struct kvm_cpuid2 *only = list(host_entries, 9);
	only->entries[only->nent++] = (struct kvm_cpuid_entry2){
		.function = 0xd, .eax = 0x7 };
	free(g);
	expect(only, -EPROTO, "leaf 0xd has sub-leaves here");
}

/* One table row per rule: change one register of one entry of the
 * host's list, expect the refusal to name what changed. */
struct bad_case {
	const char *name;
	uint32_t fn, idx;
	int reg;            /* 0..3: eax..edx; 4: flags; 5: index */
	uint32_t or_bits;
	int want;
	const char *needle;
};

static const struct bad_case bad_cases[] = {
	{ "leaf 1 ecx feature", 1, 0, 2, 1u << 2, -ENOTSUP, "leaf 0x1.0 ecx bits 0x00000004" },
	{ "leaf 1 edx feature", 1, 0, 3, 1u << 30, -ENOTSUP, "leaf 0x1.0 edx" },
	{ "leaf 7.0 ebx (AVX-512F)", 7, 0, 1, 1u << 16, -ENOTSUP, "leaf 0x7.0 ebx" },
	{ "leaf 7.1 eax, a sub-leaf the old check skipped", 7, 1, 0, 1u << 4 | 1u << 5, -ENOTSUP, "leaf 0x7.1 eax bits 0x00000020" },
	{ "leaf 0xd.0 XCR0 bits (AVX-512)", 0xd, 0, 0, 0xe0, -ENOTSUP, "leaf 0xd.0 eax" },
	{ "leaf 0xd.1 XSAVES", 0xd, 1, 0, 0x10, -ENOTSUP, "leaf 0xd.1 eax" },
	{ "KVM paravirtual features", 0x40000001, 0, 0, 1u << 20, -ENOTSUP, "leaf 0x40000001.0 eax" },
	{ "extended features", 0x80000001, 0, 2, 1u << 2, -ENOTSUP, "leaf 0x80000001.0 ecx" },
	{ "invariant TSC", 0x80000007, 0, 3, 0x200, -ENOTSUP, "leaf 0x80000007.0 edx" },
	{ "highest basic leaf", 0, 0, 0, 0x10, -ENOTSUP, "highest basic leaf" },
	{ "highest extended leaf", 0x80000000, 0, 0, 0x80, -ENOTSUP, "highest extended leaf" },
	{ "physical address width", 0x80000008, 0, 0, 0x34, -ENOTSUP, "physical address width" },
	{ "vendor", 0, 0, 1, 0x1000, -ENOTSUP, "vendor" },
	{ "unknown flag", 4, 1, 4, 0x100, -EPROTO, "unknown flags 0x101" },
	{ "index on a leaf without sub-leaves", 6, 0, 5, 3, -EPROTO, "leaf 0x6 has no sub-leaves but says index 3" },
};

/* Every row must be refused, each with its own words. */
Test(cpuid_check, bad_entry_table)
{
	for (size_t k = 0; k < sizeof(bad_cases) / sizeof(bad_cases[0]); k++) {
		const struct bad_case *c = &bad_cases[k];
		struct kvm_cpuid2 *g = host();
		struct kvm_cpuid_entry2 *e = entry(g, c->fn, c->idx);
		switch (c->reg) {
		case 0: e->eax |= c->or_bits; break;
		case 1: e->ebx |= c->or_bits; break;
		case 2: e->ecx |= c->or_bits; break;
		case 3: e->edx |= c->or_bits; break;
		case 4: e->flags |= c->or_bits; break;
		default: e->index |= c->or_bits; break;
		}
		struct kvm_cpuid2 *h = host();
		char err[ERR_MAX] = "";
		int r = cpuid_check(g, h, err);
		cr_expect_eq(r, c->want, "%s: returned %d, wanted %d (%s)",
			     c->name, r, c->want, err);
		cr_expect(strstr(err, c->needle), "%s: error '%s' does not name '%s'",
			  c->name, err, c->needle);
		free(g);
		free(h);
	}
}

/* A leaf the host does not have at all: a sub-leaf of 0xd beyond the
 * host's (an XSAVE component), a leaf 0x12 (SGX), and leaf 4 sub-leaf 7. */
Test(cpuid_check, leaves_the_host_cannot_offer)
{
	static const struct kvm_cpuid_entry2 extra[] = {
		{ .function = 0xd, .index = 9, .flags = SIG, .eax = 8 },
		{ .function = 0x12, .eax = 1 },
		{ .function = 4, .index = 7, .flags = SIG },
	};
	static const char *const names[] = { "leaf 0xd.9", "leaf 0x12.0", "leaf 0x4.7" };
	for (size_t i = 0; i < 3; i++) {
		struct kvm_cpuid2 *g = host();
		g->entries[g->nent++] = extra[i];
		expect(g, -ENOTSUP, names[i]);
	}
}

/* HTT is set by this ferry for SMP guests, whatever the host says. */
Test(cpuid_check, htt_is_ours)
{
	struct kvm_cpuid2 *g = host();
	entry(g, 1, 0)->edx |= 1u << 28;
	expect(g, 0, NULL);
}

/* Fewer features and a shorter list than the host: fine. */
Test(cpuid_check, a_subset_passes)
{
	struct kvm_cpuid2 *g = host();
	entry(g, 7, 0)->ebx = 0;
	entry(g, 1, 0)->ecx &= ~0xff;
	g->nent -= 3;
	expect(g, 0, NULL);
}

Test(cpuid_check, empty_or_huge_list)
{
	struct kvm_cpuid2 *g = host();
	g->nent = 0;
	expect(g, -EPROTO, "0 entries");
	g = host();
	g->nent = 257;
	expect(g, -EPROTO, "257 entries");
}
