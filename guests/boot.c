/*
 * boot.c - ring-0 start of the BSP and the APs.
 *
 * PVM emulates CPL 0 at ~1.3M instructions/s, so this file does only what
 * needs the privilege: read the multiboot information, map RAM above 4 GiB,
 * load GDT/TSS/IDT, program PIC/PIT/LAPIC, start the APs, then drop to
 * CPL 3 (main.c), where all parsing and all work happen.
 */
#include "guest.h"
#include "io.h"

/* Multiboot v1 information structure (the part we read). */
struct mb_info {
	uint32_t flags;
	uint32_t mem_lower, mem_upper;  /* flags bit 0, KiB */
	uint32_t boot_device;           /* bit 1 */
	uint32_t cmdline;               /* bit 2 */
	uint32_t mods_count, mods_addr; /* bit 3 */
	uint32_t syms[4];               /* bits 4/5 */
	uint32_t mmap_length, mmap_addr; /* bit 6 */
} __attribute__((packed));

struct mb_mmap_entry {
	uint32_t size; /* of the rest of the entry */
	uint64_t addr, len;
	uint32_t type; /* 1 = available RAM */
} __attribute__((packed));

#define MBI_MEM     (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MODS    (1u << 3)

struct mb_module {
	uint32_t start, end, string, reserved;
} __attribute__((packed));
#define MBI_MMAP    (1u << 6)

extern uint32_t mb_magic, mb_info;

struct bootinfo boot;
struct percpu percpu[MAX_CPUS];
uint8_t kstacks[MAX_CPUS][KSTACK_SIZE] __attribute__((aligned(4096)));
uint8_t ustacks[MAX_CPUS][USTACK_SIZE] __attribute__((aligned(4096)));
static uint64_t high_pd[HIGH_PD_POOL][512] __attribute__((aligned(4096)));

static void add_ram(uint64_t base, uint64_t len)
{
	if (!len || boot.nram >= MAX_RAM_RANGES)
		return;
	boot.ram[boot.nram].base = base;
	boot.ram[boot.nram].len = len;
	boot.nram++;
	boot.ram_total += len;
	if (base + len > boot.ram_top)
		boot.ram_top = base + len;
}

/*
 * Copy what we need out of the multiboot structures now: they may live
 * where the AP trampoline or the working set will go.
 */
static void read_multiboot(void)
{
	const struct mb_info *mbi = (const struct mb_info *)(uintptr_t)mb_info;

	if (mbi->flags & MBI_CMDLINE)
		strlcpy_(boot.cmdline, (const char *)(uintptr_t)mbi->cmdline,
			 sizeof(boot.cmdline));
	if (mbi->flags & MBI_MODS) {
		const struct mb_module *m =
			(const void *)(uintptr_t)mbi->mods_addr;

		for (uint32_t i = 0; i < mbi->mods_count && i < MAX_MODS; i++) {
			boot.mods[i].start = m[i].start;
			boot.mods[i].end = m[i].end;
			if (m[i].string)
				strlcpy_(boot.mods[i].string,
					 (const char *)(uintptr_t)m[i].string,
					 sizeof(boot.mods[i].string));
		}
		boot.nmods = mbi->mods_count;
	}
	if (mbi->flags & MBI_MMAP) {
		uintptr_t p = mbi->mmap_addr, end = p + mbi->mmap_length;

		while (p + sizeof(struct mb_mmap_entry) <= end) {
			const struct mb_mmap_entry *e = (const void *)p;

			if (e->type == 1)
				add_ram(e->addr, e->len);
			p += e->size + 4;
		}
	}
	if (!boot.nram && (mbi->flags & MBI_MEM)) {
		add_ram(0, (uint64_t)mbi->mem_lower * 1024);
		add_ram(1 * MIB, (uint64_t)mbi->mem_upper * 1024);
	}
}

/*
 * The low 4 GiB are mapped statically (entry.S).  RAM above that gets
 * 1 GiB pages if the CPU has them, else 2 MiB pages from a static pool.
 */
static void map_high_ram(void)
{
	uint64_t gib, top = ALIGN_UP(boot.ram_top, GIB) / GIB;
	uint32_t a, b, c, d;

	cpuid(0x80000000, 0, &a, &b, &c, &d);
	if (a >= 0x80000001) {
		cpuid(0x80000001, 0, &a, &b, &c, &d);
		boot.pdpe1gb = d & (1u << 26);
	}
	if (top <= 4)
		return;
	if (top > 512)
		top = 512;
	if (!boot.pdpe1gb && top > 4 + HIGH_PD_POOL) {
		kprintf("boot: mapping only the first %u GiB of RAM\n",
			4 + HIGH_PD_POOL);
		top = 4 + HIGH_PD_POOL;
	}
	for (gib = 4; gib < top; gib++) {
		if (boot.pdpe1gb) {
			pdpt[gib] = (gib << 30) | 0x87;
			continue;
		}
		for (unsigned i = 0; i < 512; i++)
			high_pd[gib - 4][i] = (gib << 30) + ((uint64_t)i << 21) + 0x87;
		pdpt[gib] = (uintptr_t)high_pd[gib - 4] + 0x07;
	}
	write_cr3(read_cr3());
}

void boot_main(void)
{
	boot.tsc_boot = rdtsc();
	serial_init();
	if (mb_magic != MB_BOOT_MAGIC) {
		kprintf("ferry-testguest: bad multiboot magic 0x%x\n", mb_magic);
		guest_exit(EXIT_USAGE);
	}
	read_multiboot();
	map_high_ram();
	percpu[0].id = 0;
	idt_init();
	cpu_tables_init(0);
	pic_pit_init(); /* calibrates the TSC too */
	lapic_init_bsp();
	smp_start_aps();
	kprintf("boot: %u cpu(s), %lu MiB RAM, tsc %lu kHz%s, %lu ms at CPL 0\n",
		boot.ncpus, boot.ram_total / MIB, boot.tsc_khz,
		boot.tsc_calibrated ? "" : " (NOT calibrated)",
		(rdtsc() - boot.tsc_boot) / boot.tsc_khz);
	enter_user(bsp_user_main, (uintptr_t)ustacks[0] + USTACK_SIZE - 8, 0);
}

void ap_main(uint64_t id)
{
	percpu[id].id = (uint32_t)id;
	cpu_tables_init((unsigned)id);
	enter_user(ap_user_main, (uintptr_t)ustacks[id] + USTACK_SIZE - 8, id);
}
