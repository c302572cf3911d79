/* Unit tests for the multiboot loader, on images built in memory. */
#include <criterion/criterion.h>
#include <elf.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>

#include "util/log.h"
#include "vmm/memory.h"
#include "vmm/x86/multiboot.h"

static struct guest_memory mem;
static char err[ERR_MAX];

static void setup(void)
{
	memory_layout(&mem, 16 << 20);
	cr_assert_eq(memory_alloc(&mem, err), 0, "%s", err);
}

static void teardown(void) { memory_free(&mem); }

/* An a.out-kludge image: header at offset 0, code at offset 32. */
static size_t aout_image(uint8_t *img, uint32_t flags, uint32_t load,
			 uint32_t bss_end)
{
	uint32_t h[8] = { 0x1BADB002, flags, 0, load, load, 0, bss_end,
			  load + 32 };
	h[2] = -(h[0] + h[1]);
	memcpy(img, h, sizeof(h));
	static const uint8_t code[] = { 0xB0, 42, 0xE6, 0xF4, 0xF4 };
	memcpy(img + 32, code, sizeof(code));
	return 32 + sizeof(code);
}

TestSuite(multiboot, .init = setup, .fini = teardown);

Test(multiboot, aout_kludge_loads_and_builds_info)
{
	uint8_t img[64] = { 0 };
	struct multiboot_boot boot;
	size_t n = aout_image(img, 0x10002, 0x100000, 0x101000);

	uint8_t *bss = memory_gpa_to_hva(&mem, 0x100800, 1);
	*bss = 0x55; /* must be cleared as bss */
	cr_assert_eq(multiboot_load_image(&mem, img, n, "workload=idle x=1", NULL, 0,
					  &boot, err), 0, "%s", err);
	cr_assert_eq(boot.entry, 0x100020);
	cr_assert_eq(boot.mbi, MB_INFO_ADDR);
	cr_assert_eq(memcmp(memory_gpa_to_hva(&mem, 0x100020, 5), img + 32, 5), 0);
	cr_assert_eq(*bss, 0);

	uint32_t *mbi = memory_gpa_to_hva(&mem, MB_INFO_ADDR, 88);
	cr_assert(mbi[0] & (1 << 0), "mem_lower/upper valid");
	cr_assert(mbi[0] & (1 << 2), "cmdline valid");
	cr_assert(mbi[0] & (1 << 6), "mmap valid");
	cr_assert_eq(mbi[1], 639);
	cr_assert_eq(mbi[2], (16 << 10) - 1024);
	cr_assert_str_eq((char *)memory_gpa_to_hva(&mem, mbi[4], 1),
			 "workload=idle x=1");
	/* Memory map: low RAM, the BIOS area, RAM from 1 MiB. */
	cr_assert_eq(mbi[11], 3 * 24);
	uint8_t *mm = memory_gpa_to_hva(&mem, mbi[12], 72);
	uint64_t addr, len;
	uint32_t type;
	memcpy(&addr, mm + 48 + 4, 8);
	memcpy(&len, mm + 48 + 12, 8);
	memcpy(&type, mm + 48 + 20, 4);
	cr_assert_eq(addr, 0x100000);
	cr_assert_eq(len, (16 << 20) - 0x100000);
	cr_assert_eq(type, 1);
}

Test(multiboot, memory_above_4g_is_in_the_map)
{
	struct guest_memory big;
	struct multiboot_boot boot;
	uint8_t img[64] = { 0 };

	memory_layout(&big, 5ULL << 30);
	cr_assert_eq(big.nslots, 2);
	cr_assert_eq(big.slots[0].size, 3ULL << 30);
	cr_assert_eq(big.slots[1].gpa, 4ULL << 30);
	cr_assert_eq(big.slots[1].size, 2ULL << 30);
	cr_assert_eq(memory_alloc(&big, err), 0, "%s", err);
	size_t n = aout_image(img, 0x10000, 0x100000, 0);
	cr_assert_eq(multiboot_load_image(&big, img, n, "", NULL, 0, &boot, err), 0, "%s", err);
	uint32_t *mbi = memory_gpa_to_hva(&big, MB_INFO_ADDR, 88);
	cr_assert_eq(mbi[11], 4 * 24);
	uint8_t *mm = memory_gpa_to_hva(&big, mbi[12], 96);
	uint64_t addr;
	memcpy(&addr, mm + 72 + 4, 8);
	cr_assert_eq(addr, 4ULL << 30);
	memory_free(&big);
}

Test(multiboot, rejects_bad_images)
{
	uint8_t img[8192 + 64];
	struct multiboot_boot boot;

	memset(img, 0, sizeof(img));
	cr_assert_neq(multiboot_load_image(&mem, img, sizeof(img), "", NULL, 0, &boot, err), 0);
	cr_assert(strstr(err, "no multiboot header"), "%s", err);

	size_t n = aout_image(img, 0x10000, 0x100000, 0);
	img[8] ^= 1; /* checksum */
	cr_assert_neq(multiboot_load_image(&mem, img, n, "", NULL, 0, &boot, err), 0);
	cr_assert(strstr(err, "checksum"), "%s", err);

	n = aout_image(img, 0x10004, 0x100000, 0); /* video mode */
	cr_assert_neq(multiboot_load_image(&mem, img, n, "", NULL, 0, &boot, err), 0);
	cr_assert(strstr(err, "unsupported"), "%s", err);

	n = aout_image(img, 0x10000, 0x2000000, 0); /* beyond 16 MiB RAM */
	cr_assert_neq(multiboot_load_image(&mem, img, n, "", NULL, 0, &boot, err), 0);
	cr_assert(strstr(err, "outside guest RAM"), "%s", err);

	n = aout_image(img, 0x10000, 0x6000, 0); /* over the boot info */
	cr_assert_neq(multiboot_load_image(&mem, img, n, "", NULL, 0, &boot, err), 0);
	cr_assert(strstr(err, "boot information"), "%s", err);

	char *longcmd = malloc(5000);
	memset(longcmd, 'a', 4999);
	longcmd[4999] = 0;
	n = aout_image(img, 0x10000, 0x100000, 0);
	cr_assert_neq(multiboot_load_image(&mem, img, n, longcmd, NULL, 0, &boot, err), 0);
	cr_assert(strstr(err, "command line"), "%s", err);
	free(longcmd);
}

Test(multiboot, elf32_segments)
{
	uint8_t img[4096] = { 0 };
	struct multiboot_boot boot;
	Elf32_Ehdr *eh = (Elf32_Ehdr *)img;
	Elf32_Phdr *ph = (Elf32_Phdr *)(img + sizeof(*eh));

	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	eh->e_machine = EM_386;
	eh->e_entry = 0x200010;
	eh->e_phoff = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = 1;
	ph->p_type = PT_LOAD;
	ph->p_offset = 1024;
	ph->p_paddr = 0x200000;
	ph->p_filesz = 256;
	ph->p_memsz = 8192;
	uint32_t h[3] = { 0x1BADB002, 0, -0x1BADB002u };
	memcpy(img + 1024, h, sizeof(h)); /* header inside the segment */
	img[1024 + 16] = 0xf4;
	cr_assert_eq(multiboot_load_image(&mem, img, sizeof(img), "", NULL, 0, &boot, err), 0,
		     "%s", err);
	cr_assert_eq(boot.entry, 0x200010);
	cr_assert_eq(*(uint8_t *)memory_gpa_to_hva(&mem, 0x200010, 1), 0xf4);

	ph->p_filesz = 100000; /* beyond the file */
	cr_assert_neq(multiboot_load_image(&mem, img, sizeof(img), "", NULL, 0, &boot, err), 0);
	cr_assert(strstr(err, "beyond the end"), "%s", err);
}

/* ---- modules (QEMU's -initrd "FILE ARGS,FILE2") ---------------------- */

struct mbi_mod { uint32_t start, end, string, reserved; };

static const struct mbi_mod *mods_of(uint32_t *count)
{
	uint32_t *mbi = memory_gpa_to_hva(&mem, MB_INFO_ADDR, 88);
	cr_assert(mbi[0] & (1 << 3), "flags bit 3 (mods) must be set");
	*count = mbi[5];
	return memory_gpa_to_hva(&mem, mbi[6], *count * 16);
}

Test(multiboot, modules_are_page_aligned_above_the_kernel_and_listed)
{
	uint8_t img[64] = { 0 };
	struct multiboot_boot boot;
	/* kernel occupies 0x100000..0x103000 (bss included) */
	size_t n = aout_image(img, 0x10002, 0x100000, 0x103000);
	static const char one[] = "first module";
	uint8_t *two = malloc(5000);
	for (int i = 0; i < 5000; i++)
		two[i] = (uint8_t)i;
	struct multiboot_module mods[3] = {
		{ .path = "/tmp/one.txt", .args = "arg1 arg2", .data = one,
		  .len = sizeof(one) - 1 },
		{ .path = "two.bin", .args = NULL, .data = two, .len = 5000 },
		{ .path = "three", .args = "", .data = "x", .len = 1 },
	};
	cr_assert_eq(multiboot_load_image(&mem, img, n, "k", mods, 3, &boot, err),
		     0, "%s", err);
	uint32_t count;
	const struct mbi_mod *m = mods_of(&count);
	cr_assert_eq(count, 3);
	cr_assert_eq(m[0].start, 0x103000, "first module right after the kernel");
	cr_assert_eq(m[0].end, 0x103000 + sizeof(one) - 1, "end is exclusive");
	cr_assert_eq(m[1].start, 0x104000, "page-aligned after the first");
	cr_assert_eq(m[1].end, 0x104000 + 5000);
	cr_assert_eq(m[2].start, 0x106000);
	cr_assert_eq(m[2].end, 0x106001);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(m[i].start % 4096, 0);
	cr_assert_eq(memcmp(memory_gpa_to_hva(&mem, m[0].start, 12), one, 12), 0);
	cr_assert_eq(memcmp(memory_gpa_to_hva(&mem, m[1].start, 5000), two, 5000), 0);
	cr_assert_str_eq((char *)memory_gpa_to_hva(&mem, m[0].string, 1),
			 "/tmp/one.txt arg1 arg2");
	cr_assert_str_eq((char *)memory_gpa_to_hva(&mem, m[1].string, 1), "two.bin");
	cr_assert_str_eq((char *)memory_gpa_to_hva(&mem, m[2].string, 1), "three");
	/* The list and strings lie after the last module, not over it. */
	uint32_t *mbi = memory_gpa_to_hva(&mem, MB_INFO_ADDR, 88);
	cr_assert_geq(mbi[6], m[2].end);
	cr_assert_eq(mbi[6] % 4096, 0);
	/* The kernel's command line is untouched. */
	cr_assert_str_eq((char *)memory_gpa_to_hva(&mem, mbi[4], 1), "k");
	free(two);
}

Test(multiboot, no_modules_leaves_flag_bit_3_clear)
{
	uint8_t img[64] = { 0 };
	struct multiboot_boot boot;
	size_t n = aout_image(img, 0x10000, 0x100000, 0);
	cr_assert_eq(multiboot_load_image(&mem, img, n, "", NULL, 0, &boot, err), 0);
	uint32_t *mbi = memory_gpa_to_hva(&mem, MB_INFO_ADDR, 88);
	cr_assert_eq(mbi[0] & (1 << 3), 0);
	cr_assert_eq(mbi[5], 0);
}

Test(multiboot, a_module_too_big_for_memory_is_refused)
{
	uint8_t img[64] = { 0 };
	struct multiboot_boot boot;
	size_t n = aout_image(img, 0x10000, 0x100000, 0);
	/* 16 MiB of RAM: 15 MiB fits above the 1 MiB kernel, 16 MiB does not. */
	size_t big = 16u << 20;
	void *data = calloc(1, big);
	struct multiboot_module m = { .path = "huge.img", .data = data, .len = big };
	cr_assert_neq(multiboot_load_image(&mem, img, n, "", &m, 1, &boot, err), 0);
	cr_assert(strstr(err, "huge.img") && strstr(err, "does not fit"), "%s", err);
	m.len = (15u << 20) - 4096 - 4096; /* room left for the list */
	cr_assert_eq(multiboot_load_image(&mem, img, n, "", &m, 1, &boot, err), 0,
		     "%s", err);
	free(data);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	cr_assert(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

Test(multiboot, modules_from_files_and_a_missing_file)
{
	char dir[] = "/tmp/ferry-mb-XXXXXX";
	cr_assert(mkdtemp(dir));
	char kpath[64], mpath[64], bigpath[64];
	snprintf(kpath, sizeof(kpath), "%s/kernel", dir);
	snprintf(mpath, sizeof(mpath), "%s/mod", dir);
	snprintf(bigpath, sizeof(bigpath), "%s/big", dir);
	uint8_t img[64] = { 0 };
	size_t n = aout_image(img, 0x10000, 0x100000, 0);
	write_file(kpath, img, n);
	write_file(mpath, "hello module\n", 13);
	struct multiboot_boot boot;

	struct multiboot_module m = { .path = mpath, .args = "a=1" };
	cr_assert_eq(multiboot_load_file(&mem, kpath, "", &m, 1, &boot, err), 0,
		     "%s", err);
	uint32_t count;
	const struct mbi_mod *mm = mods_of(&count);
	cr_assert_eq(count, 1);
	cr_assert_eq(mm[0].end - mm[0].start, 13);
	cr_assert_eq(memcmp(memory_gpa_to_hva(&mem, mm[0].start, 13),
			    "hello module\n", 13), 0);
	char want[96];
	snprintf(want, sizeof(want), "%s a=1", mpath);
	cr_assert_str_eq((char *)memory_gpa_to_hva(&mem, mm[0].string, 1), want);

	/* An empty module is listed with start == end, as QEMU does. */
	write_file(mpath, "", 0);
	cr_assert_eq(multiboot_load_file(&mem, kpath, "", &m, 1, &boot, err), 0,
		     "%s", err);
	mm = mods_of(&count);
	cr_assert_eq(count, 1);
	cr_assert_eq(mm[0].end, mm[0].start);

	struct multiboot_module missing = { .path = "/nonexistent/ferry-module" };
	cr_assert_neq(multiboot_load_file(&mem, kpath, "", &missing, 1, &boot, err), 0);
	cr_assert(strstr(err, "cannot open module /nonexistent/ferry-module"), "%s", err);

	/* A file larger than the guest's RAM is refused before it is read. */
	FILE *f = fopen(bigpath, "wb");
	cr_assert(f);
	cr_assert_eq(ftruncate(fileno(f), 17 << 20), 0);
	fclose(f);
	struct multiboot_module big = { .path = bigpath };
	cr_assert_neq(multiboot_load_file(&mem, kpath, "", &big, 1, &boot, err), 0);
	cr_assert(strstr(err, "does not fit") && strstr(err, "16 MiB"), "%s", err);
	unlink(kpath);
	unlink(mpath);
	unlink(bigpath);
	rmdir(dir);
}
