/*
 * fwcfg.h - QEMU's firmware configuration device (fw_cfg), its legacy I/O
 * interface only, as QEMU's PC has it (docs/specs/fw_cfg.rst in QEMU):
 *
 *   port 0x510  selector, 16-bit write: select an item, rewind to byte 0
 *   port 0x511  data, 8-bit read: the item's next byte (0 past its end)
 *
 * Items: the signature "QEMU", the ID (traditional interface, no DMA), the
 * RAM size, the CPU counts, and the file directory with the files Ferry
 * offers (etc/e820, the memory map).  Guests written for QEMU learn their
 * machine from these.  The selector and the read offset are device state:
 * saved, restored and migrated, so a read goes on where it stopped.
 */
#ifndef FERRY_FWCFG_H
#define FERRY_FWCFG_H

#include <stdint.h>

#define FW_CFG_PORT_SEL   0x510
#define FW_CFG_PORT_DATA  0x511

/* Item keys (selector values) of the spec that Ferry serves. */
#define FW_CFG_SIGNATURE  0x00 /* "QEMU" */
#define FW_CFG_ID         0x01 /* u32 LE: bit 0 traditional, bit 1 DMA */
#define FW_CFG_RAM_SIZE   0x03 /* u64 LE: guest RAM in bytes */
#define FW_CFG_NB_CPUS    0x05 /* u16 LE: vCPUs present */
#define FW_CFG_MAX_CPUS   0x0f /* u16 LE: vCPUs possible */
#define FW_CFG_FILE_DIR   0x19 /* u32 BE count, then struct fw_cfg_file */
#define FW_CFG_FILE_FIRST 0x20 /* the first file's key */

#define FW_CFG_ID_TRADITIONAL 0x1

/* One directory entry, all big-endian, as the spec lays it out. */
struct fw_cfg_file {
	uint32_t size;
	uint16_t select;
	uint16_t reserved;
	char name[56];
} __attribute__((packed));

struct vm;
struct device;
struct guest_memory;
struct fwcfg;

/**
 * fwcfg_new() - build the device for a machine of @ncpus vCPUs and the RAM
 * layout of @mem (only its slot layout is read), not yet on any bus.
 * Return: the device or NULL (out of memory).  Tests drive it through
 * fwcfg_device(fw)->ops directly; free it with ops->destroy.
 */
struct fwcfg *fwcfg_new(unsigned ncpus, const struct guest_memory *mem);
struct device *fwcfg_device(struct fwcfg *fw);

/**
 * fwcfg_create() - build the device for @vm and put it on its I/O bus.
 * Return: 0 or -errno.
 */
int fwcfg_create(struct vm *vm);

#endif
