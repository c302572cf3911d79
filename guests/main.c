/*
 * main.c - the workload at CPL 3: set-up, the per-CPU loop, and the BSP's
 * duties (heartbeat, console, progress, verification passes, the end).
 *
 * The BSP calls bsp_service() between every page it writes or checks:
 * rdtsc plus a few compares when nothing is due, so the heartbeat keeps
 * its period to within about one page write (or one console drain step).
 * Port I/O from CPL 3 costs ~20-25 us per access under QEMU/PVM, so
 * everything that touches a port is rationed.
 */
#include "ucall.h"
#include "io.h"

struct config cfg;

static uint64_t hz;                 /* TSC ticks per second */
static uint64_t wss_base, wss_pages;
static volatile uint32_t go;        /* BSP -> APs: parts assigned */
static volatile uint64_t verify_epoch; /* BSP -> all: pass requested */

/* BSP-only state */
static uint64_t hb_interval, next_hb, hb_count, next_input;
static uint8_t hb_seq;
static uint64_t t_start, next_sec, next_verify, verify_interval;
static uint64_t last_pages, last_sec_tsc;
static uint64_t last_now;
static bool ready, verify_wanted, time_up, pass_active, final_pass;
static uint64_t pass_no, pass_err_base, checks_done;
/* Resume generation (PORT_RESUME): the last one seen, the one the current
 * pass started under, and the one of the last completed pass. */
static uint32_t resume_seen, pass_resume;
static uint64_t verified_resume;

#define SUM(field) ({							\
	uint64_t __s = 0;						\
	for (unsigned __i = 0; __i < boot.ncpus; __i++)		\
		__s += percpu[__i].field;				\
	__s; })

static void progress(uint64_t now, bool print)
{
	uint64_t pages = SUM(pages_written), errors = SUM(errors);
	uint64_t dt_ms = (now - last_sec_tsc) / boot.tsc_khz;
	uint64_t mibps = dt_ms ? (pages - last_pages) * 4 * 1000 / dt_ms / 1024 : 0;
	uint64_t args[PROG_NARGS] = { 0 };

	if (print)
		printf_("progress: t=%lus pages=%lu checks=%lu errors=%lu "
			"ticks=%lu hb=%lu mibps=%lu\n", (now - t_start) / hz,
			pages, checks_done, errors, ticks, hb_count, mibps);
	last_pages = pages;
	last_sec_tsc = now;
	args[PROG_PAGES_WRITTEN] = pages;
	args[PROG_CHECKS_DONE] = checks_done;
	args[PROG_PAGES_CHECKED] = SUM(pages_checked);
	args[PROG_ERRORS] = errors;
	args[PROG_TICKS] = ticks;
	args[PROG_UPTIME_MS] = (now - boot.tsc_boot) / boot.tsc_khz;
	args[PROG_HEARTBEATS] = hb_count;
	args[PROG_VERIFIED_RESUME] = verified_resume;
	ucall_send(UCALL_PROGRESS, __FILE__, __LINE__, "", args, PROG_NARGS);
}

/*
 * Moved or restored (the VMM bumped the resume generation when it loaded
 * this machine's state): check every page at once, rather than at the next
 * periodic pass, so that what the move got wrong is found before the
 * workload rewrites it and before anyone trusts the copy.  Only where the
 * ucall port answered (Ferry): under QEMU nothing is at the port.
 */
static void resume_check(void)
{
	uint32_t g;

	if (!have_ucall)
		return;
	g = inl(PORT_RESUME);
	if (g == resume_seen || g == RESUME_GEN_ABSENT)
		return;
	printf_("resume: generation %u (was %u): %s\n", g, resume_seen,
		cfg.verify ? "full verification pass" : "verify=0, no pass");
	resume_seen = g;
	if (cfg.verify)
		verify_wanted = true;
}

/*
 * Late heartbeats are not caught up: after a pause (say, the stop phase of
 * a migration) the outside observer should see one gap, not a burst.
 */
static void bsp_service(void)
{
	uint64_t now = rdtsc();

	/* A TSC that went backwards (a careless restore after migration)
	 * would otherwise make every "now - start" huge: shift the clock. */
	if (now < last_now) {
		uint64_t d = last_now - now;

		t_start -= d;
		last_sec_tsc -= d;
		next_hb -= d;
		next_sec -= d;
		next_verify -= d;
		next_input -= d;
	}
	last_now = now;

	if (hb_interval && now >= next_hb) {
		outb(PORT_HEARTBEAT, hb_seq++);
		hb_count++;
		next_hb += hb_interval;
		if (next_hb <= now)
			next_hb = now + hb_interval;
	}
	/* 'v' on COM1 asks for a pass now, and so does a move (resume
	 * generation); each poll is a VM exit (~20 us) */
	if (now >= next_input) {
		next_input = now + hz / 100;
		if (serial_getc_nowait() == 'v')
			verify_wanted = true;
		resume_check();
	}
	cons_drain();
	if (!ready)
		return;
	if (now >= next_sec) {
		next_sec += hz;
		if (next_sec <= now)
			next_sec = now + hz;
		progress(now, true);
	}
	if (cfg.verify && now >= next_verify) {
		verify_wanted = true;
		next_verify = now + verify_interval;
	}
	if (cfg.seconds && now - t_start >= cfg.seconds * hz)
		time_up = true;
}

static noreturn void finish(void)
{
	uint64_t errors = SUM(errors);
	uint64_t now = rdtsc();

	progress(now, false); /* final counters for the host */
	printf_("done: t=%lus pages=%lu checks=%lu errors=%lu exit=%u\n",
		(now - t_start) / hz, SUM(pages_written), checks_done, errors,
		errors ? EXIT_VERIFY : EXIT_OK);
	guest_exit(errors ? EXIT_VERIFY : EXIT_OK);
}

/* Starts passes (periodic, on 'v', final) and reports them when all CPUs
 * have checked their parts. */
static void bsp_verify_control(void)
{
	if (!cfg.verify) {
		if (verify_wanted) {
			printf_("verify: not enabled (verify=0)\n");
			verify_wanted = false;
		}
		if (time_up)
			finish();
		return;
	}
	if (!pass_active && (verify_wanted || time_up)) {
		verify_wanted = false;
		final_pass = time_up;
		pass_active = true;
		pass_err_base = SUM(errors);
		pass_resume = resume_seen;
		pass_no++;
		__atomic_store_n(&verify_epoch, pass_no, __ATOMIC_RELEASE);
		return;
	}
	if (pass_active) {
		uint64_t errs;
		bool news;

		for (unsigned i = 0; i < boot.ncpus; i++)
			if (percpu[i].verify_done != pass_no)
				return;
		pass_active = false;
		checks_done++;
		news = pass_resume != verified_resume;
		verified_resume = pass_resume;
		errs = SUM(errors) - pass_err_base;
		if (!errs)
			printf_("verify: pass %lu ok (%lu pages)\n", pass_no,
				wss_pages);
		else
			printf_("verify: pass %lu FAILED: %lu bad of %lu pages\n",
				pass_no, errs, wss_pages);
		if (final_pass)
			finish();
		/* After a move the host learns at once that the guest has
		 * checked itself there (other passes wait for the next
		 * report: the count of reports stays about one a second). */
		if (news)
			progress(rdtsc(), false);
	}
}

/*
 * corrupt=N: a self-test of the checker.  Right before the first pass the
 * BSP flips a byte in N of its own pages behind the checksum's back; that
 * pass must then report exactly N bad pages (and the guest exit with 1).
 */
static void corrupt_pages(struct percpu *pc)
{
	uint64_t n = cfg.corrupt < pc->npages ? cfg.corrupt : pc->npages;

	for (uint64_t i = 0; i < n; i++)
		((volatile uint8_t *)(pc->base + i * PAGE_SIZE))[100] ^= 0x5a;
	if (n)
		printf_("corrupt: damaged %lu page(s) at 0x%lx\n", n, pc->base);
}

static noreturn void run(struct percpu *pc, bool bsp)
{
	bool dirty = cfg.workload == WL_DIRTY;

	pc->rate_last = rdtsc();
	for (;;) {
		uint64_t epoch = verify_epoch;

		if (bsp) {
			bsp_service();
			bsp_verify_control();
		}
		if (cfg.verify && pc->verify_done != epoch) {
			if (bsp && epoch == 1)
				corrupt_pages(pc);
			verify_part(pc, bsp ? bsp_service : NULL);
			__atomic_store_n(&pc->verify_done, epoch, __ATOMIC_RELEASE);
			continue;
		}
		if (dirty && rate_allows(pc, rdtsc()))
			write_one_page(pc);
		else
			cpu_relax();
	}
}

static void prepare_part(struct percpu *pc, bool bsp)
{
	pc->rng = (0x9e3779b97f4a7c15ull * (pc->id + 1)) ^ rdtsc();
	if (!pc->rng)
		pc->rng = 1;
	if (cfg.verify)
		part_init(pc, bsp ? bsp_service : NULL);
	__atomic_store_n(&pc->init_done, 1, __ATOMIC_RELEASE);
}

void ap_user_main(uint64_t id)
{
	struct percpu *pc = &percpu[id];

	__atomic_store_n(&pc->online, 1, __ATOMIC_RELEASE);
	while (!go)
		cpu_relax();
	prepare_part(pc, false);
	run(pc, false);
}

/*
 * The working set goes after the image (and the generation table), in the
 * first RAM range where it fits in one piece, 2 MiB aligned.
 */
static int layout_wss(char *err, size_t errsz)
{
	uint64_t floor = ALIGN_UP((uintptr_t)_end, PAGE_SIZE), gen_bytes;
	uint32_t *gen;
	unsigned n = boot.ncpus;
	uint64_t first = 0;

	wss_pages = cfg.wss / PAGE_SIZE;
	if (wss_pages < n) {
		snprintf_(err, errsz, "wss=%lu is less than one page per cpu",
			  cfg.wss);
		return -1;
	}
	if (wss_pages >> 32) {
		snprintf_(err, errsz, "wss=%lu is too large", cfg.wss);
		return -1;
	}
	gen = (uint32_t *)floor;
	gen_bytes = cfg.verify ? ALIGN_UP(wss_pages * 4, PAGE_SIZE) : 0;
	floor = ALIGN_UP(floor + gen_bytes, 2 * MIB);
	wss_base = 0;
	for (unsigned i = 0; i < boot.nram; i++) {
		uint64_t lo = boot.ram[i].base, hi = lo + boot.ram[i].len;

		if (lo < floor)
			lo = floor;
		lo = ALIGN_UP(lo, 2 * MIB);
		if (lo < hi && hi - lo >= cfg.wss) {
			wss_base = lo;
			break;
		}
	}
	if (!wss_base) {
		snprintf_(err, errsz, "wss=%lu MiB does not fit in RAM (%lu MiB)",
			  cfg.wss / MIB, boot.ram_total / MIB);
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		struct percpu *pc = &percpu[i];

		pc->npages = wss_pages / n + (i < wss_pages % n ? 1 : 0);
		pc->base = wss_base + first * PAGE_SIZE;
		pc->gen = gen + first;
		first += pc->npages;
	}
	if (cfg.verify)
		memset(gen, 0, gen_bytes);
	return 0;
}

void bsp_user_main(uint64_t unused)
{
	struct percpu *pc = &percpu[0];
	char err[160];
	uint64_t t;

	(void)unused;
	pc->online = 1;
	hz = tsc_hz();
	ucall_detect();
	if (have_ucall)
		resume_seen = inl(PORT_RESUME);
	if (cmdline_parse(boot.cmdline, &cfg, err, sizeof(err))) {
		printf_("ferry-testguest: error: %s (cmdline \"%s\")\n", err,
			boot.cmdline);
		guest_exit(EXIT_USAGE);
	}
	/* APs that took an id are on their way to CPL 3; give them 2 s. */
	t = rdtsc();
	for (unsigned i = 1; i < boot.ncpus; i++)
		while (!percpu[i].online) {
			GUEST_ASSERT_2(rdtsc() - t < 2 * hz, i, boot.ncpus);
			cpu_relax();
		}

	printf_("ferry-testguest: cpus=%u mem=%luMiB workload=%s wss=%luMiB "
		"rate=%lu pattern=%s fill=%s verify=%u heartbeat_us=%lu "
		"seconds=%lu tsc_khz=%lu host=%s\n", boot.ncpus,
		boot.ram_total / MIB, workload_name(cfg.workload),
		cfg.wss / MIB, cfg.rate, pattern_name(cfg.pattern),
		fill_name(cfg.fill), cfg.verify, cfg.heartbeat_us, cfg.seconds,
		boot.tsc_khz, have_ucall ? "ferry" : "other");

	if (cfg.workload == WL_EXIT) {
		printf_("exit: code %u\n", cfg.exit_code);
		guest_exit(cfg.exit_code);
	}
	if (cfg.workload == WL_QEMUINFO)
		qemuinfo_main();
	if (cfg.workload == WL_FAULT) {
		printf_("fault: executing ud2 at CPL 3\n");
		cons_flush();
		__asm__ volatile("ud2");
	}
	if (layout_wss(err, sizeof(err))) {
		printf_("ferry-testguest: error: %s\n", err);
		guest_exit(EXIT_USAGE);
	}
	workload_setup(boot.ncpus);

	hb_interval = cfg.heartbeat_us * hz / 1000000;
	next_hb = rdtsc() + hb_interval;
	verify_interval = cfg.verify_ms * hz / 1000;
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	prepare_part(pc, true);
	for (unsigned i = 1; i < boot.ncpus; i++)
		while (!percpu[i].init_done) {
			bsp_service();
			cpu_relax();
		}

	printf_("workload: base=0x%lx bytes=%lu pages=%lu cpus=%u\n", wss_base,
		wss_pages * PAGE_SIZE, wss_pages, boot.ncpus);
	printf_("READY\n");
	{
		uint64_t args[3] = { wss_base, wss_pages * PAGE_SIZE, boot.ncpus };

		ucall_send(UCALL_READY, __FILE__, __LINE__, "", args, 3);
	}
	t_start = last_sec_tsc = rdtsc();
	last_pages = SUM(pages_written);
	next_sec = t_start + hz;
	next_verify = t_start + verify_interval;
	ready = true;
	run(pc, true);
}
