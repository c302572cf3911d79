/* Unit tests of fw_cfg: its port handlers driven directly, no KVM. */
#include <criterion/criterion.h>
#include <endian.h>
#include <string.h>

#include "devices/device.h"
#include "devices/fwcfg.h"
#include "util/buf.h"
#include "util/log.h"
#include "vmm/memory.h"
#include "vmm/io_unhandled.h"

static struct fwcfg *fw;
static struct device *dev;
static struct guest_memory layout;

static void setup(void)
{
	memory_layout(&layout, 5ULL << 30); /* two slots: below and above 4 GiB */
	fw = fwcfg_new(3, &layout);
	cr_assert(fw);
	dev = fwcfg_device(fw);
}

static void teardown(void) { dev->ops->destroy(dev); }

static void select_key(uint16_t key)
{
	uint16_t v = htole16(key);
	dev->ops->pio_out(dev, FW_CFG_PORT_SEL, &v, 2);
}

static uint8_t read_byte(void)
{
	uint8_t b = 0x5a;
	dev->ops->pio_in(dev, FW_CFG_PORT_DATA, &b, 1);
	return b;
}

static void read_bytes(void *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((uint8_t *)out)[i] = read_byte();
}

TestSuite(fwcfg, .init = setup, .fini = teardown);

Test(fwcfg, signature_is_QEMU_then_zeros_past_the_end)
{
	char sig[4];
	select_key(FW_CFG_SIGNATURE);
	read_bytes(sig, 4);
	cr_assert_eq(memcmp(sig, "QEMU", 4), 0);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(read_byte(), 0, "past the end reads 0");
}

Test(fwcfg, id_says_traditional_interface_without_dma)
{
	uint32_t id;
	select_key(FW_CFG_ID);
	read_bytes(&id, 4);
	cr_assert_eq(le32toh(id), 1);
	cr_assert_eq(read_byte(), 0);
}

Test(fwcfg, ram_size_is_64_bit_little_endian)
{
	uint8_t b[8];
	select_key(FW_CFG_RAM_SIZE);
	read_bytes(b, 8);
	/* 5 GiB = 0x1_4000_0000, least significant byte first */
	static const uint8_t want[8] = { 0, 0, 0, 0x40, 1, 0, 0, 0 };
	cr_assert_eq(memcmp(b, want, 8), 0);
	cr_assert_eq(read_byte(), 0);
}

Test(fwcfg, cpu_counts_are_16_bit_little_endian)
{
	select_key(FW_CFG_NB_CPUS);
	cr_assert_eq(read_byte(), 3);
	cr_assert_eq(read_byte(), 0);
	cr_assert_eq(read_byte(), 0, "only two bytes");
	select_key(FW_CFG_MAX_CPUS);
	cr_assert_eq(read_byte(), 3);
	cr_assert_eq(read_byte(), 0);
}

Test(fwcfg, selecting_rewinds_the_offset)
{
	select_key(FW_CFG_SIGNATURE);
	cr_assert_eq(read_byte(), 'Q');
	cr_assert_eq(read_byte(), 'E');
	select_key(FW_CFG_SIGNATURE);
	cr_assert_eq(read_byte(), 'Q', "a new selection starts at byte 0");
	select_key(FW_CFG_NB_CPUS);
	cr_assert_eq(read_byte(), 3);
	/* The write-channel bit is ignored for reads, as in QEMU. */
	select_key(0x4000 | FW_CFG_SIGNATURE);
	cr_assert_eq(read_byte(), 'Q');
}

Test(fwcfg, unknown_keys_read_zero)
{
	const uint16_t keys[] = { 0x02, 0x04, 0x18, 0x1f, 0x21, 0x3fff,
				  0x8000, 0x8000 | FW_CFG_SIGNATURE, 0xffff };
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		select_key(keys[k]);
		for (int i = 0; i < 4; i++)
			cr_assert_eq(read_byte(), 0, "key 0x%x", keys[k]);
	}
}

Test(fwcfg, only_the_spec_widths_are_decoded)
{
	uint32_t v = 0;
	select_key(FW_CFG_SIGNATURE);
	dev->ops->pio_in(dev, FW_CFG_PORT_DATA, &v, 2);
	cr_assert_eq(v, 0xffff, "a 16-bit data read is not decoded");
	v = 0;
	dev->ops->pio_in(dev, FW_CFG_PORT_SEL, &v, 2);
	cr_assert_eq(v, 0xffff, "the selector is write-only");
	uint8_t one = FW_CFG_NB_CPUS;
	dev->ops->pio_out(dev, FW_CFG_PORT_SEL, &one, 1); /* not a select */
	dev->ops->pio_out(dev, FW_CFG_PORT_DATA, &one, 1); /* ignored */
	cr_assert_eq(read_byte(), 'Q', "neither moved the read");
}

Test(fwcfg, file_directory_is_big_endian_and_lists_e820)
{
	uint32_t count;
	struct fw_cfg_file f;
	select_key(FW_CFG_FILE_DIR);
	read_bytes(&count, 4);
	cr_assert_eq(be32toh(count), 1);
	read_bytes(&f, sizeof(f));
	cr_assert_str_eq(f.name, "etc/e820");
	cr_assert_eq(be16toh(f.select), FW_CFG_FILE_FIRST);
	cr_assert_eq(be32toh(f.size), 2 * 20, "one entry per RAM slot");
	cr_assert_eq(read_byte(), 0);

	/* The file: the RAM ranges, little-endian {u64 addr, u64 len, u32 type}. */
	uint8_t e[40];
	select_key(FW_CFG_FILE_FIRST);
	read_bytes(e, sizeof(e));
	uint64_t addr, len;
	uint32_t type;
	memcpy(&addr, e, 8); memcpy(&len, e + 8, 8); memcpy(&type, e + 16, 4);
	cr_assert_eq(le64toh(addr), 0);
	cr_assert_eq(le64toh(len), 3ULL << 30);
	cr_assert_eq(le32toh(type), 1);
	memcpy(&addr, e + 20, 8); memcpy(&len, e + 28, 8);
	cr_assert_eq(le64toh(addr), 4ULL << 30);
	cr_assert_eq(le64toh(len), 2ULL << 30);
}

Test(fwcfg, save_load_continues_a_read_where_it_stopped)
{
	struct buf b;
	char err[ERR_MAX] = "";

	select_key(FW_CFG_RAM_SIZE);
	read_bytes((uint8_t[3]){ 0 }, 3); /* bytes 0..2 */
	buf_init(&b);
	dev->ops->save(dev, &b);
	cr_assert_eq(b.len, 6, "u16 selector + u32 offset");

	/* Another machine of the same shape, mid-way through nothing. */
	struct fwcfg *fw2 = fwcfg_new(3, &layout);
	struct device *d2 = fwcfg_device(fw2);
	cr_assert_eq(d2->ops->load(d2, 1, b.data, b.len, err), 0, "%s", err);
	uint8_t next = 0;
	d2->ops->pio_in(d2, FW_CFG_PORT_DATA, &next, 1);
	cr_assert_eq(next, 0x40, "byte 3 of 5 GiB, where the source stopped");
	d2->ops->pio_in(d2, FW_CFG_PORT_DATA, &next, 1);
	cr_assert_eq(next, 1);
	/* The source would have read the same. */
	cr_assert_eq(read_byte(), 0x40);

	cr_assert_neq(d2->ops->load(d2, 2, b.data, b.len, err), 0);
	cr_assert(strstr(err, "version 2"), "%s", err);
	cr_assert_neq(d2->ops->load(d2, 1, b.data, b.len - 1, err), 0);
	cr_assert(strstr(err, "malformed"), "%s", err);
	d2->ops->destroy(d2);
	buf_free(&b);
}

Test(io_unhandled, counts_per_address_and_reports_the_first_access_once)
{
	struct io_unhandled u = { 0 };
	cr_assert(io_unhandled_note(&u, IO_SPACE_PIO, 0x80, true));
	cr_assert_not(io_unhandled_note(&u, IO_SPACE_PIO, 0x80, true));
	cr_assert_not(io_unhandled_note(&u, IO_SPACE_PIO, 0x80, false));
	cr_assert(io_unhandled_note(&u, IO_SPACE_MMIO, 0x80, false),
		  "the same number in MMIO space is another address");
	cr_assert_eq(u.n, 2);
	cr_assert_eq(u.e[0].writes, 2);
	cr_assert_eq(u.e[0].reads, 1);
	cr_assert_eq(u.e[1].reads, 1);
	for (unsigned p = 0; p < IO_UNHANDLED_MAX + 5; p++)
		io_unhandled_note(&u, IO_SPACE_PIO, 0x1000 + p, false);
	cr_assert_eq(u.n, IO_UNHANDLED_MAX);
	cr_assert_eq(u.untracked, 7);
}
