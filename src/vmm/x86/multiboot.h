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

/* Modules (QEMU's -initrd "FILE ARGS,FILE2"): at most this many. */
#define MB_MAX_MODULES   32

/**
 * struct multiboot_module - one boot module.
 * @path: its file; the guest sees the string "PATH ARGS" (or "PATH"), as
 *        with QEMU's -initrd "PATH ARGS".
 * @args: NULL or its arguments.
 * @data, @len: its bytes (multiboot_load_file reads them from @path).
 */
struct multiboot_module {
	const char *path;
	const char *args;
	const void *data;
	size_t len;
};

struct multiboot_boot {
	uint32_t entry;  /* EIP at start */
	uint32_t mbi;    /* EBX at start */
};

/**
 * multiboot_load_image() - load an image already in memory (for tests),
 * its @nmods modules page-aligned above it, and the boot information
 * (flags bit 3, mods_count and mods_addr when there are modules).
 * Return: 0, or -errno with a message in @err (a module that does not fit
 * in RAM below 4 GiB: -ENOMEM).
 */
int multiboot_load_image(struct guest_memory *mem, const uint8_t *img,
			 size_t len, const char *cmdline,
			 const struct multiboot_module *mods, unsigned nmods,
			 struct multiboot_boot *boot, char *err);
/**
 * multiboot_load_file() - as multiboot_load_image(), reading the kernel
 * from @path and each module from its @path (@data/@len are ignored).
 */
int multiboot_load_file(struct guest_memory *mem, const char *path,
			const char *cmdline,
			const struct multiboot_module *mods, unsigned nmods,
			struct multiboot_boot *boot, char *err);

#endif
