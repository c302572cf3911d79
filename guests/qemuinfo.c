/*
 * qemuinfo.c - workload=qemuinfo: check what a guest written for QEMU's PC
 * learns about its machine, the way such guests learn it, against what the
 * command line says to expect:
 *
 *   fw_cfg (ports 0x510/0x511): signature, ID, FW_CFG_NB_CPUS,
 *       FW_CFG_MAX_CPUS, FW_CFG_RAM_SIZE, the file directory;
 *   multiboot: the memory map, the modules (count, length, FNV-1a of the
 *       first module's bytes, its string's last word);
 *   the CPUs that came up (INIT-SIPI: multiboot has no CPU count).
 *
 * Keys: cpus=N mem=SIZE mods=N mod_len=BYTES mod_fnv=0xHASH mod_arg=WORD
 * (each check only when its key is given) and seconds=S: go on re-checking
 * for S seconds, reading RAM_SIZE one byte every 50 ms, so that a snapshot
 * or a migration lands in the middle of a fw_cfg read, and the module's
 * bytes, which travel as guest memory.  Then "qemuinfo: PASS" and exit 0,
 * or "qemuinfo: FAIL" and exit 1 (EXIT_VERIFY); each failed check is a
 * line on COM1 and a UCALL_ASSERT.  Runs at CPL 3, BSP only.
 */
#include "ucall.h"
#include "io.h"

#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_ID        0x01
#define FW_CFG_RAM_SIZE  0x03
#define FW_CFG_NB_CPUS   0x05
#define FW_CFG_MAX_CPUS  0x0f
#define FW_CFG_FILE_DIR  0x19

static unsigned failures;

static void fw_select(uint16_t key)
{
	outw(PORT_FW_CFG, key);
}

static uint8_t fw_byte(void)
{
	return inb(PORT_FW_CFG + 1);
}

/* n (<= 8) bytes of the selected item, little-endian. */
static uint64_t fw_le(unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)fw_byte() << (8 * i);
	return v;
}

static uint64_t fw_read_le(uint16_t key, unsigned n)
{
	fw_select(key);
	return fw_le(n);
}

static void check(const char *what, uint64_t got, uint64_t want)
{
	if (got == want)
		return;
	failures++;
	printf_("qemuinfo: FAIL %s: got %lu (0x%lx), want %lu (0x%lx)\n", what,
		got, got, want, want);
	guest_report(__FILE__, __LINE__, what, got, want, 0, 0);
}

static uint32_t fnv1a(const uint8_t *p, uint64_t n)
{
	uint32_t h = 2166136261u;

	for (uint64_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* Memory as the multiboot map tells it: the top of RAM below 4 GiB,
 * rounded up to 1 MiB (firmware may keep the last pages, as SeaBIOS does
 * under QEMU), plus all RAM above 4 GiB. */
static uint64_t multiboot_mem(void)
{
	uint64_t low_top = 0, high = 0;

	for (unsigned i = 0; i < boot.nram; i++) {
		uint64_t end = boot.ram[i].base + boot.ram[i].len;

		if (boot.ram[i].base >= 4 * GIB)
			high += boot.ram[i].len;
		else if (end > low_top)
			low_top = end;
	}
	return ALIGN_UP(low_top, MIB) + high;
}

static bool ends_with_word(const char *s, const char *w, size_t n)
{
	size_t len = strlen(s);

	return len > n && s[len - n - 1] == ' ' && !strncmp(s + len - n, w, n);
}

static void check_module(void)
{
	if (cfg.want_mods)
		check("multiboot mods_count", boot.nmods, cfg.want_mods);
	if (!boot.nmods)
		return;
	const uint8_t *p = (const uint8_t *)(uintptr_t)boot.mods[0].start;
	uint64_t len = boot.mods[0].end - boot.mods[0].start;

	if (cfg.mod_len)
		check("module length", len, cfg.mod_len);
	if (cfg.mod_fnv)
		check("module FNV-1a", fnv1a(p, len), cfg.mod_fnv);
	if (boot.mods[0].start % PAGE_SIZE)
		check("module start page-aligned", boot.mods[0].start % PAGE_SIZE, 0);
	if (cfg.mod_arg && !ends_with_word(boot.mods[0].string, cfg.mod_arg,
					   cfg.mod_arg_len)) {
		failures++;
		printf_("qemuinfo: FAIL module string \"%s\" does not end "
			"with \"%.*s\"\n", boot.mods[0].string,
			(int)cfg.mod_arg_len, cfg.mod_arg);
		guest_report(__FILE__, __LINE__, "module string", 0, 0, 0, 0);
	}
}

static void check_once(void)
{
	char sig[5] = { 0 };
	uint64_t id, ncpus, maxcpus, ram, nfiles;

	fw_select(FW_CFG_SIGNATURE);
	for (int i = 0; i < 4; i++)
		sig[i] = (char)fw_byte();
	id = fw_read_le(FW_CFG_ID, 4);
	ncpus = fw_read_le(FW_CFG_NB_CPUS, 2);
	maxcpus = fw_read_le(FW_CFG_MAX_CPUS, 2);
	ram = fw_read_le(FW_CFG_RAM_SIZE, 8);
	fw_select(FW_CFG_FILE_DIR);
	nfiles = 0;
	for (int i = 0; i < 4; i++) /* the count is big-endian */
		nfiles = nfiles << 8 | fw_byte();

	printf_("qemuinfo: fw_cfg sig=%s id=0x%lx cpus=%lu max_cpus=%lu "
		"ram=%luMiB files=%lu\n", sig, id, ncpus, maxcpus, ram / MIB,
		nfiles);
	printf_("qemuinfo: multiboot mem=%luMiB mods=%u cpus_started=%u\n",
		multiboot_mem() / MIB, boot.nmods, boot.ncpus);
	for (unsigned i = 0; i < boot.nmods && i < MAX_MODS; i++)
		printf_("qemuinfo: module %u at 0x%lx len %lu fnv 0x%x \"%s\"\n",
			i, boot.mods[i].start,
			boot.mods[i].end - boot.mods[i].start,
			fnv1a((const uint8_t *)(uintptr_t)boot.mods[i].start,
			      boot.mods[i].end - boot.mods[i].start),
			boot.mods[i].string);

	check("fw_cfg signature", memcmp(sig, "QEMU", 4) != 0, 0);
	check("fw_cfg ID traditional bit", id & 1, 1);
	check("fw_cfg max_cpus >= cpus", maxcpus >= ncpus, 1);
	if (cfg.want_cpus) {
		check("fw_cfg FW_CFG_NB_CPUS", ncpus, cfg.want_cpus);
		check("CPUs started", boot.ncpus, cfg.want_cpus);
	}
	if (cfg.want_mem) {
		check("fw_cfg FW_CFG_RAM_SIZE", ram, cfg.want_mem);
		check("multiboot memory map", multiboot_mem(), cfg.want_mem);
	}
	check_module();
}

/* Wait, draining the console meanwhile (cons_drain moves only a few bytes
 * per call). */
static void pause_us(uint64_t us)
{
	uint64_t end = rdtsc() + us * boot.tsc_khz / 1000;

	while (rdtsc() < end) {
		cons_drain();
		cpu_relax();
	}
}

/* Read RAM_SIZE slowly: a pause between bytes leaves the device with a
 * selected item and a read half done, which a snapshot or a migration
 * must carry. */
static void slow_read(uint64_t want)
{
	uint64_t v = 0;

	fw_select(FW_CFG_RAM_SIZE);
	for (unsigned i = 0; i < 8; i++) {
		pause_us(50000);
		v |= (uint64_t)fw_byte() << (8 * i);
	}
	check("fw_cfg RAM_SIZE read slowly", v, want);
}

void qemuinfo_main(void)
{
	uint64_t ram, end, round = 0;

	check_once();
	if (cfg.seconds) {
		ram = fw_read_le(FW_CFG_RAM_SIZE, 8);
		end = rdtsc() + cfg.seconds * tsc_hz();
		printf_("qemuinfo: re-checking for %lus\n", cfg.seconds);
		cons_flush(); /* a test waits for this line */
		while (rdtsc() < end) {
			unsigned before = failures;

			slow_read(ram);
			check_module();
			round++;
			if (failures != before)
				printf_("qemuinfo: round %lu failed\n", round);
		}
		printf_("qemuinfo: %lu rounds\n", round);
	}
	{
		uint64_t args[1] = { failures };

		ucall_send(UCALL_RESULT, __FILE__, __LINE__, "qemuinfo_failures",
			   args, 1);
	}
	printf_("qemuinfo: %s\n", failures ? "FAIL" : "PASS");
	guest_exit(failures ? EXIT_VERIFY : EXIT_OK);
}
