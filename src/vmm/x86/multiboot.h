/*
 * multiboot.h - load a Multiboot v1 image (ELF32/ELF64 or a.out kludge) into
 * guest memory and build the boot information (command line, memory map),
 * as GRUB and QEMU's -kernel do, so one image runs under both VMMs.
 */
#ifndef FERRY_MULTIBOOT_H
#define FERRY_MULTIBOOT_H

#include <stddef.h>
#include <stdint.h>

struct guest_memory;

/* Where the boot information lives (below the 0x8000 a guest may use for
 * an AP trampoline, above the real-mode IVT). */
#define MB_INFO_ADDR     0x6000
#define MB_MMAP_ADDR     0x6800
#define MB_LOADER_ADDR   0x6f00
#define MB_CMDLINE_ADDR  0x7000
#define MB_CMDLINE_MAX   4096

struct multiboot_boot {
	uint32_t entry;  /* EIP at start */
	uint32_t mbi;    /* EBX at start */
};

/* Load image bytes already in memory (for tests) or a file. */
int multiboot_load_image(struct guest_memory *mem, const uint8_t *img,
			 size_t len, const char *cmdline,
			 struct multiboot_boot *boot, char *err);
int multiboot_load_file(struct guest_memory *mem, const char *path,
			const char *cmdline, struct multiboot_boot *boot,
			char *err);

#endif
