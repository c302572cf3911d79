/*
 * fwcfg.c - QEMU's fw_cfg, legacy I/O interface (see fwcfg.h).
 *
 * Implemented from QEMU's docs/specs/fw_cfg.rst.  Every item is built once
 * from the machine's configuration, which a restore or a migration rebuilds
 * identically, so only the selector and the offset are state.
 */
#include "devices/fwcfg.h"
#include "devices/device.h"
#include "vmm/memory.h"
#include "vmm/vm.h"
#include "util/log.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The selector's top bits: the write channel (0x4000), which reads ignore
 * as QEMU does, and architecture-local items (0x8000), of which Ferry has
 * none (so they read as unknown keys). */
#define FW_CFG_WRITE_CHANNEL 0x4000
#define FW_CFG_MAX_ITEMS  8

struct fwcfg_item {
	uint16_t key;
	uint32_t len;
	uint8_t *data;
};

struct fwcfg {
	struct device dev;
	struct fwcfg_item items[FW_CFG_MAX_ITEMS];
	unsigned nitems;
	/* State: what the guest selected and how far it has read. */
	uint16_t selector;
	uint32_t offset;
};

/* An e820 entry as QEMU's etc/e820 file holds it (little-endian). */
struct fwcfg_e820 {
	uint64_t address, length;
	uint32_t type;
} __attribute__((packed));

static int add_item(struct fwcfg *fw, uint16_t key, const void *data,
		    uint32_t len)
{
	if (fw->nitems == FW_CFG_MAX_ITEMS)
		return -ENOSPC;
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, data, len);
	fw->items[fw->nitems++] = (struct fwcfg_item){ key, len, copy };
	return 0;
}

static const struct fwcfg_item *find_item(const struct fwcfg *fw,
					  uint16_t key)
{
	for (unsigned i = 0; i < fw->nitems; i++)
		if (fw->items[i].key == key)
			return &fw->items[i];
	return NULL;
}

static void fwcfg_out(struct device *d, uint16_t port, const void *data,
		      unsigned size)
{
	struct fwcfg *fw = (struct fwcfg *)d;

	/* Only a 16-bit write to the selector means anything; writes to
	 * the data port are ignored, as QEMU has done since 2.4. */
	if (port == FW_CFG_PORT_SEL && size == 2) {
		uint16_t v;
		memcpy(&v, data, 2);
		fw->selector = le16toh(v);
		fw->offset = 0;
	}
}

static void fwcfg_in(struct device *d, uint16_t port, void *data,
		     unsigned size)
{
	struct fwcfg *fw = (struct fwcfg *)d;

	/* The data port is 8 bits wide on x86; other accesses are not
	 * decoded and read all ones, like an empty port. */
	if (port != FW_CFG_PORT_DATA || size != 1) {
		memset(data, 0xff, size);
		return;
	}
	const struct fwcfg_item *it =
		find_item(fw, fw->selector & ~FW_CFG_WRITE_CHANNEL);
	uint8_t v = 0; /* an unknown item, or past its end, reads 0 */
	if (it && fw->offset < it->len)
		v = it->data[fw->offset++];
	*(uint8_t *)data = v;
}

/* State v1: u16 selector, u32 offset. */
static void fwcfg_save(struct device *d, struct buf *out)
{
	struct fwcfg *fw = (struct fwcfg *)d;
	buf_put_u16(out, fw->selector);
	buf_put_u32(out, fw->offset);
}

static int fwcfg_load(struct device *d, uint32_t version, const void *data,
		      size_t len, char *err)
{
	struct fwcfg *fw = (struct fwcfg *)d;
	struct cursor c;

	if (version != 1)
		return err_set(err, -EPROTO, "fw_cfg: unknown state version %u",
			       version);
	cursor_init(&c, data, len);
	uint16_t sel = cursor_u16(&c);
	uint32_t off = cursor_u32(&c);
	if (!cursor_done(&c))
		return err_set(err, -EPROTO, "fw_cfg: malformed state (%zu bytes)",
			       len);
	/* Both sides build the same items from the same machine; an offset
	 * beyond an item's end would only read zeros, so it is accepted. */
	fw->selector = sel;
	fw->offset = off;
	return 0;
}

static void fwcfg_destroy(struct device *d)
{
	struct fwcfg *fw = (struct fwcfg *)d;
	for (unsigned i = 0; i < fw->nitems; i++)
		free(fw->items[i].data);
	free(fw);
}

static const struct device_ops fwcfg_ops = {
	.name = "fw_cfg",
	.state_version = 1,
	.pio_in = fwcfg_in,
	.pio_out = fwcfg_out,
	.save = fwcfg_save,
	.load = fwcfg_load,
	.destroy = fwcfg_destroy,
};

/* Ferry's files, in directory order; each gets the next key from
 * FW_CFG_FILE_FIRST. */
static int add_files(struct fwcfg *fw, const struct guest_memory *mem)
{
	struct fwcfg_e820 e820[MEM_MAX_SLOTS];
	unsigned n = 0;
	for (unsigned i = 0; i < mem->nslots && i < MEM_MAX_SLOTS; i++)
		e820[n++] = (struct fwcfg_e820){
			.address = htole64(mem->slots[i].gpa),
			.length = htole64(mem->slots[i].size),
			.type = htole32(1), /* RAM */
		};
	static const char *const names[] = { "etc/e820" };
	const void *data[] = { e820 };
	uint32_t sizes[] = { n * (uint32_t)sizeof(e820[0]) };
	const unsigned nfiles = sizeof(names) / sizeof(names[0]);

	uint8_t dir[4 + sizeof(names) / sizeof(names[0]) *
		    sizeof(struct fw_cfg_file)];
	uint32_t count = htobe32(nfiles);
	memcpy(dir, &count, 4);
	for (unsigned i = 0; i < nfiles; i++) {
		struct fw_cfg_file f = {
			.size = htobe32(sizes[i]),
			.select = htobe16((uint16_t)(FW_CFG_FILE_FIRST + i)),
		};
		strncpy(f.name, names[i], sizeof(f.name) - 1);
		memcpy(dir + 4 + i * sizeof(f), &f, sizeof(f));
	}
	int r = add_item(fw, FW_CFG_FILE_DIR, dir, sizeof(dir));
	for (unsigned i = 0; i < nfiles && !r; i++)
		r = add_item(fw, (uint16_t)(FW_CFG_FILE_FIRST + i), data[i],
			     sizes[i]);
	return r;
}

struct fwcfg *fwcfg_new(unsigned ncpus, const struct guest_memory *mem)
{
	struct fwcfg *fw = calloc(1, sizeof(*fw));
	if (!fw)
		return NULL;
	fw->dev.ops = &fwcfg_ops;
	fw->dev.port_base = FW_CFG_PORT_SEL;
	fw->dev.port_count = 2;

	uint32_t id = htole32(FW_CFG_ID_TRADITIONAL);
	uint64_t ram = htole64(mem->ram_size);
	uint16_t cpus = htole16((uint16_t)ncpus);
	int r = add_item(fw, FW_CFG_SIGNATURE, "QEMU", 4);
	if (!r)
		r = add_item(fw, FW_CFG_ID, &id, 4);
	if (!r)
		r = add_item(fw, FW_CFG_RAM_SIZE, &ram, 8);
	if (!r)
		r = add_item(fw, FW_CFG_NB_CPUS, &cpus, 2);
	/* No CPU hotplug: as many possible as present. */
	if (!r)
		r = add_item(fw, FW_CFG_MAX_CPUS, &cpus, 2);
	if (!r)
		r = add_files(fw, mem);
	if (r) {
		fwcfg_destroy(&fw->dev);
		return NULL;
	}
	return fw;
}

struct device *fwcfg_device(struct fwcfg *fw) { return &fw->dev; }

int fwcfg_create(struct vm *vm)
{
	struct fwcfg *fw = fwcfg_new(vm->nvcpus, &vm->mem);
	if (!fw)
		return -ENOMEM;
	int r = vm_add_device(vm, &fw->dev);
	if (r)
		fwcfg_destroy(&fw->dev);
	return r;
}
