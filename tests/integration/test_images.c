/*
 * Kernel images the multiboot loader must refuse: each ends `ferry run`
 * with exit status 120 and a message that names the problem.  The images
 * are made here, byte by byte, in the test's temporary directory.
 */
#include "harness/harness.h"

#include <elf.h>
#include <string.h>

#define MB_MAGIC 0x1BADB002u
#define T 20.0

TestSuite(images, H_FIXTURES, .timeout = 60);

static void expect_refused(const char *image, const char *needle,
			   const char *memory)
{
	char *err = NULL;
	int rc = h_run(T, NULL, &err, "run", "--kernel", image, "--memory",
		       memory, "--serial", "none", NULL);
	cr_expect_eq(rc, H_EXIT_VMM, "%s: exit status %d, wanted 120; stderr:\n%s",
		     image, rc, err);
	cr_expect(strstr(err, needle) != NULL, "%s: stderr lacks \"%s\":\n%s",
		  image, needle, err);
	free(err);
}

static void mb_header(uint32_t *h, uint32_t flags)
{
	h[0] = MB_MAGIC;
	h[1] = flags;
	h[2] = (uint32_t)-(MB_MAGIC + flags);
}

/*
 * An ELF32 i386 image with one PT_LOAD at @paddr; the multiboot header (if
 * @mb_flags is not ~0) sits right after the program header, inside the
 * segment, as in a real kernel.
 */
static const char *elf32_image(const char *name, uint32_t paddr,
			       uint32_t mb_flags, bool bad_checksum)
{
	uint8_t img[4096] = { 0 };
	Elf32_Ehdr *eh = (Elf32_Ehdr *)img;
	Elf32_Phdr *ph = (Elf32_Phdr *)(img + sizeof(*eh));
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_386;
	eh->e_version = EV_CURRENT;
	eh->e_entry = paddr + 0x100;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = 1;
	ph->p_type = PT_LOAD;
	ph->p_offset = 0;
	ph->p_vaddr = ph->p_paddr = paddr;
	ph->p_filesz = ph->p_memsz = sizeof(img);
	ph->p_flags = PF_R | PF_X;
	ph->p_align = 0x1000;
	if (mb_flags != ~0u) {
		uint32_t *h = (uint32_t *)(img + 0x60);
		mb_header(h, mb_flags);
		if (bad_checksum)
			h[2] ^= 0x100;
	}
	img[0x100] = 0xF4; /* hlt */
	const char *path = h_path(name);
	h_write_file(path, img, sizeof(img));
	return path;
}

/* An a.out-kludge image with explicit load addresses. */
static const char *aout_image(const char *name, uint32_t flags, uint32_t load)
{
	uint32_t h[8];
	mb_header(h, flags);
	h[3] = h[4] = load;               /* header_addr, load_addr */
	h[5] = h[6] = 0;                  /* load_end (whole file), bss_end */
	h[7] = load + 32;                 /* entry */
	uint8_t img[64] = { 0 };
	memcpy(img, h, sizeof(h));
	img[32] = 0xF4;
	const char *path = h_path(name);
	h_write_file(path, img, sizeof(img));
	return path;
}

Test(images, missing_file)
{
	expect_refused(h_path("no-such-kernel"), "No such file or directory", "64M");
	expect_refused(h_path("no-such-kernel"), "cannot open kernel", "64M");
}

Test(images, a_directory)
{
	expect_refused(h_dir(), "not a regular file", "64M");
}

Test(images, empty_file)
{
	const char *p = h_path("empty.img");
	h_write_file(p, "", 0);
	expect_refused(p, "size 0", "64M");
}

Test(images, random_bytes)
{
	uint8_t junk[16384];
	uint32_t x = 0x12345678;
	for (size_t i = 0; i < sizeof(junk); i++) {
		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		junk[i] = (uint8_t)x;
	}
	const char *p = h_path("random.img");
	h_write_file(p, junk, sizeof(junk));
	expect_refused(p, "no multiboot header", "64M");
}

Test(images, elf_without_multiboot_header)
{
	expect_refused(elf32_image("plain.elf", 0x100000, ~0u, false),
		       "no multiboot header in the first 8 KiB", "64M");
}

Test(images, bad_multiboot_checksum)
{
	expect_refused(elf32_image("badsum.elf", 0x100000, 0x3, true),
		       "checksum", "64M");
}

Test(images, header_requests_video_mode)
{
	/* flags bit 2: the loader must set a video mode. */
	expect_refused(elf32_image("video.elf", 0x100000, 0x7, false),
		       "video mode", "64M");
	expect_refused(aout_image("video.aout", 0x10004, 0x100000),
		       "unsupported features 0x4", "64M");
}

Test(images, elf_segment_beyond_ram)
{
	/* 112 MiB into a 64 MiB guest. */
	expect_refused(elf32_image("high.elf", 0x7000000, 0x3, false),
		       "outside guest RAM", "64M");
}

Test(images, aout_load_beyond_ram)
{
	expect_refused(aout_image("high.aout", 0x10000, 0x40000000),
		       "outside guest RAM", "64M");
}

Test(images, multiboot_header_but_not_elf)
{
	/* A valid header without the a.out kludge in something that is not
	 * an ELF file: the loader has no way to place it. */
	uint8_t img[256] = { 0 };
	mb_header((uint32_t *)img, 0x3);
	const char *p = h_path("notelf.img");
	h_write_file(p, img, sizeof(img));
	expect_refused(p, "not an ELF image", "64M");
}

Test(images, command_line_too_long)
{
	char *cmd = malloc(70000);
	memset(cmd, 'x', 69999);
	cmd[69999] = '\0';
	char *err = NULL;
	int rc = h_run(T, NULL, &err, "run", "--kernel", h_image_exit(0),
		       "--cmdline", cmd, "--serial", "none", NULL);
	cr_expect_eq(rc, H_EXIT_VMM, "exit %d; stderr:\n%s", rc, err);
	cr_expect(strstr(err, "command line longer than"), "stderr:\n%s", err);
	free(err);
	free(cmd);
}

Test(images, good_hand_made_image_still_boots)
{
	/* The control case for the tests above: the same generator with
	 * sane values gives an image that runs. */
	int rc = h_run(T, NULL, NULL, "run", "--kernel", h_image_exit(42),
		       "--memory", "64M", "--serial", "none", NULL);
	cr_expect_eq(rc, 42);
}
