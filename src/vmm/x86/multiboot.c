#include "vmm/x86/multiboot.h"
#include "vmm/memory.h"
#include "util/log.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define MB_HEADER_MAGIC   0x1BADB002u
#define MB_SEARCH_BYTES   8192
#define MB_FLAG_PAGE_ALIGN (1u << 0)
#define MB_FLAG_MEMINFO   (1u << 1)
#define MB_FLAG_AOUT      (1u << 16)
#define MB_IMAGE_MAX      (256u << 20)

#define MBI_MEM      (1u << 0)
#define MBI_CMDLINE  (1u << 2)
#define MBI_MODS     (1u << 3)
#define MBI_MMAP     (1u << 6)
#define MBI_LOADER   (1u << 9)

struct mb_header {
	uint32_t magic, flags, checksum;
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr,
		 entry_addr;
};

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
	uint32_t mods_count, mods_addr, syms[4];
	uint32_t mmap_length, mmap_addr;
	uint32_t drives_length, drives_addr, config_table, boot_loader_name;
} __attribute__((packed));

struct mb_module {
	uint32_t mod_start, mod_end; /* end is exclusive, as GRUB and QEMU */
	uint32_t string, reserved;
} __attribute__((packed));

struct mb_mmap_entry {
	uint32_t size;
	uint64_t addr, len;
	uint32_t type;
} __attribute__((packed));

static int copy_to_guest(struct guest_memory *mem, uint64_t gpa,
			 const void *src, uint64_t filesz, uint64_t memsz,
			 uint64_t *kernel_end, char *err)
{
	uint8_t *dst = memory_gpa_to_hva(mem, gpa, memsz);
	if (!dst || memsz < filesz)
		return err_set(err, -EINVAL,
			       "image segment 0x%llx+0x%llx lies outside guest RAM",
			       (unsigned long long)gpa,
			       (unsigned long long)memsz);
	if (gpa < MB_CMDLINE_ADDR + MB_CMDLINE_MAX && gpa + memsz > MB_INFO_ADDR)
		return err_set(err, -EINVAL,
			       "image segment at 0x%llx overlaps the boot information",
			       (unsigned long long)gpa);
	memcpy(dst, src, filesz);
	memset(dst + filesz, 0, memsz - filesz);
	if (gpa + memsz > *kernel_end)
		*kernel_end = gpa + memsz;
	return 0;
}

static int load_aout_kludge(struct guest_memory *mem, const uint8_t *img,
			    size_t len, const struct mb_header *h,
			    size_t hdr_off, uint32_t *entry, uint64_t *kernel_end,
			    char *err)
{
	if (h->header_addr < h->load_addr || h->header_addr - h->load_addr > hdr_off)
		return err_set(err, -EINVAL,
			       "multiboot header: header_addr/load_addr inconsistent");
	size_t file_off = hdr_off - (h->header_addr - h->load_addr);
	uint64_t load_end = h->load_end_addr ? h->load_end_addr
					     : h->load_addr + (len - file_off);
	if (load_end < h->load_addr || load_end - h->load_addr > len - file_off)
		return err_set(err, -EINVAL,
			       "multiboot header: load_end_addr beyond the file");
	uint64_t filesz = load_end - h->load_addr;
	uint64_t end = h->bss_end_addr > load_end ? h->bss_end_addr : load_end;
	*entry = h->entry_addr;
	return copy_to_guest(mem, h->load_addr, img + file_off, filesz,
			     end - h->load_addr, kernel_end, err);
}

/* ELF32 and ELF64 alike: load every PT_LOAD at its physical address. */
static int load_elf(struct guest_memory *mem, const uint8_t *img, size_t len,
		    uint32_t *entry, uint64_t *kernel_end, char *err)
{
	if (len < EI_NIDENT || memcmp(img, ELFMAG, SELFMAG))
		return err_set(err, -ENOEXEC,
			       "not an ELF image and no a.out kludge in the multiboot header");
	int is64 = img[EI_CLASS] == ELFCLASS64;
	if (!is64 && img[EI_CLASS] != ELFCLASS32)
		return err_set(err, -ENOEXEC, "ELF: unknown class %u", img[EI_CLASS]);
	uint64_t phoff, e_entry;
	unsigned phnum, phentsize;
	if (is64) {
		const Elf64_Ehdr *eh = (const void *)img;
		if (len < sizeof(*eh) || eh->e_machine != EM_X86_64)
			return err_set(err, -ENOEXEC, "ELF64: not an x86-64 image");
		phoff = eh->e_phoff; phnum = eh->e_phnum;
		phentsize = eh->e_phentsize; e_entry = eh->e_entry;
		if (phentsize != sizeof(Elf64_Phdr))
			return err_set(err, -ENOEXEC, "ELF64: bad program header size");
	} else {
		const Elf32_Ehdr *eh = (const void *)img;
		if (len < sizeof(*eh) || eh->e_machine != EM_386)
			return err_set(err, -ENOEXEC, "ELF32: not an i386 image");
		phoff = eh->e_phoff; phnum = eh->e_phnum;
		phentsize = eh->e_phentsize; e_entry = eh->e_entry;
		if (phentsize != sizeof(Elf32_Phdr))
			return err_set(err, -ENOEXEC, "ELF32: bad program header size");
	}
	if (phoff > len || (uint64_t)phnum * phentsize > len - phoff)
		return err_set(err, -ENOEXEC, "ELF: program headers beyond the file");
	if (e_entry > UINT32_MAX)
		return err_set(err, -ENOEXEC, "ELF: entry point above 4 GiB");
	unsigned loaded = 0;
	for (unsigned i = 0; i < phnum; i++) {
		uint64_t type, off, paddr, filesz, memsz;
		const uint8_t *ph = img + phoff + (uint64_t)i * phentsize;
		if (is64) {
			const Elf64_Phdr *p = (const void *)ph;
			type = p->p_type; off = p->p_offset; paddr = p->p_paddr;
			filesz = p->p_filesz; memsz = p->p_memsz;
		} else {
			const Elf32_Phdr *p = (const void *)ph;
			type = p->p_type; off = p->p_offset; paddr = p->p_paddr;
			filesz = p->p_filesz; memsz = p->p_memsz;
		}
		if (type != PT_LOAD || memsz == 0)
			continue;
		if (off > len || filesz > len - off)
			return err_set(err, -ENOEXEC,
				       "ELF: segment %u beyond the end of the file", i);
		int r = copy_to_guest(mem, paddr, img + off, filesz, memsz,
				      kernel_end, err);
		if (r)
			return r;
		loaded++;
	}
	if (!loaded)
		return err_set(err, -ENOEXEC, "ELF: no loadable segment");
	*entry = (uint32_t)e_entry;
	return 0;
}

static void build_mmap(const struct guest_memory *mem, struct mb_info *mbi,
		       uint8_t *mmap_hva)
{
	struct mb_mmap_entry e[4];
	unsigned n = 0;
	uint64_t low_end = mem->slots[0].size;

	e[n++] = (struct mb_mmap_entry){ 20, 0, 0x9fc00, 1 };
	e[n++] = (struct mb_mmap_entry){ 20, 0x9fc00, 0x100000 - 0x9fc00, 2 };
	e[n++] = (struct mb_mmap_entry){ 20, 0x100000, low_end - 0x100000, 1 };
	if (mem->nslots > 1)
		e[n++] = (struct mb_mmap_entry){ 20, mem->slots[1].gpa,
						 mem->slots[1].size, 1 };
	memcpy(mmap_hva, e, n * sizeof(e[0]));
	mbi->mmap_addr = MB_MMAP_ADDR;
	mbi->mmap_length = n * sizeof(e[0]);
	mbi->mem_lower = 0x9fc00 / 1024;
	uint64_t upper = (low_end - 0x100000) / 1024;
	mbi->mem_upper = upper > UINT32_MAX ? UINT32_MAX : (uint32_t)upper;
}

#define PAGE_UP(x) (((x) + GUEST_PAGE_SIZE - 1) & ~(GUEST_PAGE_SIZE - 1))

/* The string a module is listed with: "PATH ARGS", as QEMU builds it from
 * -initrd "PATH ARGS" (GRUB likewise passes the whole module line). */
static size_t module_string(const struct multiboot_module *m, char *out,
			    size_t room)
{
	if (m->args && *m->args)
		return (size_t)snprintf(out, room, "%s %s", m->path, m->args);
	return (size_t)snprintf(out, room, "%s", m->path);
}

/*
 * Modules go page-aligned above the kernel (never below 1 MiB, where the
 * boot information lives), each on its own pages; after the last one comes
 * one page-aligned block with the module list and then the strings.  All
 * of it must lie in the RAM below the PC hole: module addresses are 32-bit.
 */
static int load_modules(struct guest_memory *mem, uint64_t kernel_end,
			const struct multiboot_module *mods, unsigned nmods,
			struct mb_info *mbi, char *err)
{
	uint64_t ram_end = mem->slots[0].gpa + mem->slots[0].size;
	uint64_t at = PAGE_UP(kernel_end > 0x100000 ? kernel_end : 0x100000);
	uint64_t start[MB_MAX_MODULES];
	size_t strings = 0;

	if (nmods > MB_MAX_MODULES)
		return err_set(err, -E2BIG, "%u modules: at most %d", nmods,
			       MB_MAX_MODULES);
	for (unsigned i = 0; i < nmods; i++) {
		const struct multiboot_module *m = &mods[i];
		if (m->len > ram_end || at > ram_end - m->len)
			return err_set(err, -ENOMEM,
				       "module %s (%zu bytes) does not fit in guest RAM: "
				       "it would end at 0x%llx, RAM below 4 GiB ends at 0x%llx",
				       m->path, m->len,
				       (unsigned long long)(at + m->len),
				       (unsigned long long)ram_end);
		start[i] = at;
		at = PAGE_UP(at + m->len);
		strings += module_string(m, NULL, 0) + 1;
	}
	uint64_t list = at, str = list + nmods * sizeof(struct mb_module);
	if (str + strings > ram_end)
		return err_set(err, -ENOMEM,
			       "the module list does not fit in guest RAM (needs up to 0x%llx)",
			       (unsigned long long)(str + strings));
	struct mb_module *ml = memory_gpa_to_hva(mem, list,
						 str + strings - list);
	char *strs = (char *)(ml + nmods);
	size_t used = 0;
	for (unsigned i = 0; i < nmods; i++) {
		const struct multiboot_module *m = &mods[i];
		if (m->len)
			memcpy(memory_gpa_to_hva(mem, start[i], m->len), m->data,
			       m->len);
		ml[i] = (struct mb_module){
			.mod_start = (uint32_t)start[i],
			.mod_end = (uint32_t)(start[i] + m->len),
			.string = (uint32_t)(str + used),
		};
		used += module_string(m, strs + used, strings - used) + 1;
	}
	mbi->mods_count = nmods;
	mbi->mods_addr = (uint32_t)list;
	mbi->flags |= MBI_MODS;
	return 0;
}

/* The kernel and the boot information without modules; *kernel_end is
 * where the image ends in guest memory (its bss included). */
static int load_kernel(struct guest_memory *mem, const uint8_t *img,
		       size_t len, const char *cmdline, uint32_t *entry_out,
		       uint64_t *kernel_end_out, char *err)
{
	const struct mb_header *h = NULL;
	size_t hdr_off = 0;
	int r;

	if (mem->slots[0].size < 2 * 1024 * 1024)
		return err_set(err, -EINVAL, "guest memory too small for multiboot");
	for (size_t off = 0; off + 12 <= len && off < MB_SEARCH_BYTES; off += 4) {
		const struct mb_header *c = (const void *)(img + off);
		if (c->magic == MB_HEADER_MAGIC) {
			h = c;
			hdr_off = off;
			break;
		}
	}
	if (!h)
		return err_set(err, -ENOEXEC,
			       "no multiboot header in the first 8 KiB of the image");
	if ((uint32_t)(h->magic + h->flags + h->checksum) != 0)
		return err_set(err, -ENOEXEC, "multiboot header checksum is wrong");
	uint32_t unsupported = h->flags & 0xffff &
			       ~(MB_FLAG_PAGE_ALIGN | MB_FLAG_MEMINFO);
	if (unsupported)
		return err_set(err, -ENOTSUP,
			       "multiboot header requires unsupported features 0x%x "
			       "(video mode?)", unsupported);
	if (cmdline && strlen(cmdline) >= MB_CMDLINE_MAX)
		return err_set(err, -E2BIG, "command line longer than %d bytes",
			       MB_CMDLINE_MAX - 1);

	uint32_t entry = 0;
	uint64_t kernel_end = 0;
	if (h->flags & MB_FLAG_AOUT) {
		if (hdr_off + sizeof(*h) > len)
			return err_set(err, -ENOEXEC, "multiboot header truncated");
		r = load_aout_kludge(mem, img, len, h, hdr_off, &entry,
				     &kernel_end, err);
	} else {
		r = load_elf(mem, img, len, &entry, &kernel_end, err);
	}
	if (r)
		return r;

	struct mb_info *mbi = memory_gpa_to_hva(mem, MB_INFO_ADDR, sizeof(*mbi));
	uint8_t *mmap = memory_gpa_to_hva(mem, MB_MMAP_ADDR, 4 * 24);
	char *loader = memory_gpa_to_hva(mem, MB_LOADER_ADDR, 16);
	char *cmd = memory_gpa_to_hva(mem, MB_CMDLINE_ADDR, MB_CMDLINE_MAX);
	memset(mbi, 0, sizeof(*mbi));
	build_mmap(mem, mbi, mmap);
	strcpy(loader, "ferry");
	snprintf(cmd, MB_CMDLINE_MAX, "%s", cmdline ? cmdline : "");
	mbi->cmdline = MB_CMDLINE_ADDR;
	mbi->boot_loader_name = MB_LOADER_ADDR;
	mbi->flags = MBI_MEM | MBI_CMDLINE | MBI_MMAP | MBI_LOADER;
	*entry_out = entry;
	*kernel_end_out = kernel_end;
	return 0;
}

static int load_all(struct guest_memory *mem, const char *kernel_name,
		    const uint8_t *img, size_t len, const char *cmdline,
		    const struct multiboot_module *mods, unsigned nmods,
		    struct multiboot_boot *boot, char *err)
{
	uint32_t entry = 0;
	uint64_t kernel_end = 0;
	int r = load_kernel(mem, img, len, cmdline, &entry, &kernel_end, err);
	if (r && kernel_name)
		err_prefix(err, r, "%s", kernel_name);
	if (!r && nmods)
		r = load_modules(mem, kernel_end, mods, nmods,
				 memory_gpa_to_hva(mem, MB_INFO_ADDR,
						   sizeof(struct mb_info)), err);
	if (r)
		return r;
	boot->entry = entry;
	boot->mbi = MB_INFO_ADDR;
	return 0;
}

int multiboot_load_image(struct guest_memory *mem, const uint8_t *img,
			 size_t len, const char *cmdline,
			 const struct multiboot_module *mods, unsigned nmods,
			 struct multiboot_boot *boot, char *err)
{
	return load_all(mem, NULL, img, len, cmdline, mods, nmods, boot, err);
}

/* Read a whole regular file of min..max bytes (what: "kernel", "module"). */
static int read_file(const char *path, const char *what, uint64_t min,
		     uint64_t max, uint8_t **out, size_t *out_len, char *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, -errno, "cannot open %s %s: %s", what, path,
			       strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(err, -EINVAL, "%s %s is not a regular file", what,
			       path);
	}
	if ((uint64_t)st.st_size < min || (uint64_t)st.st_size > max) {
		close(fd);
		return err_set(err, -EFBIG, "%s %s: size %lld is not %llu..%llu bytes",
			       what, path, (long long)st.st_size,
			       (unsigned long long)min, (unsigned long long)max);
	}
	uint8_t *img = malloc(st.st_size ? st.st_size : 1);
	if (!img) {
		close(fd);
		return err_set(err, -ENOMEM, "out of memory");
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, img + got, st.st_size - got);
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			free(img);
			close(fd);
			return err_set(err, -e, "reading %s: %s", path, strerror(e));
		}
		got += n;
	}
	close(fd);
	*out = img;
	*out_len = got;
	return 0;
}

int multiboot_load_file(struct guest_memory *mem, const char *path,
			const char *cmdline,
			const struct multiboot_module *mods, unsigned nmods,
			struct multiboot_boot *boot, char *err)
{
	struct multiboot_module loaded[MB_MAX_MODULES];
	uint64_t ram_below_4g = mem->slots[0].size;
	uint8_t *img = NULL;
	size_t len;
	unsigned n = 0;
	int r;

	if (nmods > MB_MAX_MODULES)
		return err_set(err, -E2BIG, "%u modules: at most %d", nmods,
			       MB_MAX_MODULES);
	r = read_file(path, "kernel", 1, MB_IMAGE_MAX, &img, &len, err);
	if (r)
		return r;
	/* A module larger than the RAM it must fit in is refused before
	 * it is read. */
	for (; n < nmods; n++) {
		loaded[n] = mods[n];
		/* An empty module is allowed, as with QEMU's -initrd. */
		r = read_file(mods[n].path, "module", 0, ram_below_4g,
			      (uint8_t **)&loaded[n].data, &loaded[n].len, err);
		if (r) {
			if (r == -EFBIG)
				err_set(err, r, "module %s does not fit in the %llu MiB "
					"of guest RAM below 4 GiB",
					mods[n].path,
					(unsigned long long)(ram_below_4g >> 20));
			goto out;
		}
	}
	r = load_all(mem, path, img, len, cmdline, loaded, nmods, boot, err);
out:
	for (unsigned i = 0; i < n; i++)
		free((void *)loaded[i].data);
	free(img);
	return r;
}
