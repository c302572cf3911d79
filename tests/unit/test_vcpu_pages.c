/*
 * vmm/x86/vcpu_pages.h: the pages a parked vCPU touches first, read from
 * page tables built here by hand in each paging mode (none, 32-bit with
 * a 4 MiB page, PAE, 4-level with 4 KiB and 2 MiB pages): every table
 * on the way and every page named, nothing outside RAM.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "util/log.h"
#include "vmm/memory.h"
#include "vmm/x86/vcpu_pages.h"

#define PG 4096ULL
#define P 1ULL
#define RW 2ULL
#define PS (1ULL << 7)

static struct guest_memory mem;

static void setup(void)
{
	char err[ERR_MAX] = "";
	memory_layout(&mem, 64ULL << 20);
	cr_assert_eq(memory_alloc(&mem, err), 0, "%s", err);
}

static void teardown(void)
{
	memory_free(&mem);
}

static void put64(uint64_t gpa, uint64_t v)
{
	memcpy(memory_gpa_to_hva(&mem, gpa, 8), &v, 8);
}

static void put32(uint64_t gpa, uint32_t v)
{
	memcpy(memory_gpa_to_hva(&mem, gpa, 4), &v, 4);
}

static bool has(const uint64_t *g, size_t n, uint64_t gpa)
{
	for (size_t i = 0; i < n; i++)
		if (g[i] == gpa)
			return true;
	return false;
}

static void no_duplicates(const uint64_t *g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(g[i] % PG, 0);
		for (size_t j = i + 1; j < n; j++)
			cr_assert_neq(g[i], g[j], "page 0x%llx twice", (unsigned long long)g[i]);
	}
}

TestSuite(vcpu_pages, .init = setup, .fini = teardown);

Test(vcpu_pages, long_mode_walks_every_level)
{
	struct vcpu_pages_state st = { 0 };
	/* PML4 at 0x10000, PDPT 0x11000, PD 0x12000, PT 0x13000; code at
	 * linear 0x400000 -> 0x20000 (4 KiB page), stack in a 2 MiB page
	 * at linear 0x600000 -> 0x800000. */
	put64(0x10000, 0x11000 | P | RW);
	put64(0x11000, 0x12000 | P | RW);
	put64(0x12000 + 2 * 8, 0x13000 | P | RW);      /* 0x400000 */
	put64(0x13000, 0x20000 | P | RW);              /* 0x400000 */
	put64(0x12000 + 3 * 8, 0x800000 | P | RW | PS); /* 0x600000 */
	st.sregs.cr0 = 0x80000001;
	st.sregs.cr4 = 0x20;
	st.sregs.efer = 0x500;
	st.sregs.cr3 = 0x10000;
	st.regs.rip = 0x400010;
	st.regs.rsp = 0x600100;
	uint64_t g[VCPU_PAGES_MAX];
	size_t n = vcpu_pages(&st, &mem, g, VCPU_PAGES_MAX);
	no_duplicates(g, n);
	uint64_t want[] = { 0x10000, 0x11000, 0x12000, 0x13000, 0x20000, 0x800000 };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert(has(g, n, want[i]), "0x%llx missing", (unsigned long long)want[i]);
	/* rsp - 8 lies in the same page; rip's neighbours are not mapped */
	cr_assert_eq(n, 6, "%zu pages", n);
}

Test(vcpu_pages, no_paging_and_32_bit_paging)
{
	struct vcpu_pages_state st = { 0 };
	/* No paging: linear is physical (CS base counts). */
	st.sregs.cr0 = 1;
	st.sregs.cs.base = 0x1000;
	st.regs.rip = 0x4000;          /* 0x5000 */
	st.regs.rsp = 0x9000;          /* 0x9000 and 0x8000 (rsp - 8) */
	uint64_t g[VCPU_PAGES_MAX];
	size_t n = vcpu_pages(&st, &mem, g, VCPU_PAGES_MAX);
	no_duplicates(g, n);
	cr_assert(has(g, n, 0x5000) && has(g, n, 0x9000) && has(g, n, 0x8000));

	/* 32-bit paging, PSE: PD at 0x30000; linear 0x400000 in a 4 MiB
	 * page at 0xc00000, linear 0x800000 through a PT at 0x31000. */
	memset(&st, 0, sizeof(st));
	put32(0x30000 + 1 * 4, 0xc00000 | P | RW | PS);
	put32(0x30000 + 2 * 4, 0x31000 | P | RW);
	put32(0x31000 + 0x10 * 4, 0x40000 | P | RW);
	st.sregs.cr0 = 0x80000001;
	st.sregs.cr4 = 0x10;
	st.sregs.cr3 = 0x30000;
	st.regs.rip = 0x400123;        /* 0xc00123 */
	st.regs.rsp = 0x810800;        /* 0x40800 */
	n = vcpu_pages(&st, &mem, g, VCPU_PAGES_MAX);
	no_duplicates(g, n);
	uint64_t want[] = { 0x30000, 0x31000, 0xc00000, 0x40000 };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert(has(g, n, want[i]), "0x%llx missing", (unsigned long long)want[i]);
}

Test(vcpu_pages, pae_paging_and_addresses_outside_ram)
{
	struct vcpu_pages_state st = { 0 };
	/* PDPT at 0x50020 (32-byte aligned), PD 0x51000, PT 0x52000. */
	put64(0x50020 + 0 * 8, 0x51000 | P);
	put64(0x51000 + 1 * 8, 0x52000 | P | RW);     /* 0x200000 */
	put64(0x52000 + 5 * 8, 0x60000 | P | RW);     /* 0x205000 */
	put64(0x51000 + 2 * 8, 0x7fe00000ULL | P | PS); /* outside RAM */
	st.sregs.cr0 = 0x80000001;
	st.sregs.cr4 = 0x20;
	st.sregs.cr3 = 0x50020;
	st.regs.rip = 0x205000;        /* 0x60000 */
	st.regs.rsp = 0x400010;        /* a page outside RAM: left out */
	uint64_t g[VCPU_PAGES_MAX];
	size_t n = vcpu_pages(&st, &mem, g, VCPU_PAGES_MAX);
	no_duplicates(g, n);
	uint64_t want[] = { 0x50000, 0x51000, 0x52000, 0x60000 };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert(has(g, n, want[i]), "0x%llx missing", (unsigned long long)want[i]);
	for (size_t i = 0; i < n; i++)
		cr_assert(memory_gpa_to_hva(&mem, g[i], PG), "0x%llx outside RAM",
			  (unsigned long long)g[i]);
	/* At most what the caller has room for. */
	cr_assert_leq(vcpu_pages(&st, &mem, g, 2), 2);
}
