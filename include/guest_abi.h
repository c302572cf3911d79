/*
 * guest_abi.h - the contract between Ferry's test guests and the host.
 *
 * Shared by the freestanding guests (guests/) and the VMM's devices
 * (src/devices/).  Everything here must also make sense under QEMU, so that
 * one guest image runs under both and the two VMMs can be compared:
 *
 *   port 0x3f8..0x3ff  COM1, a 16550A UART (IRQ 4): console and progress.
 *   port 0xe9          heartbeat port: one byte per heartbeat, the beat
 *                      counter mod 256 (it lives in guest RAM, so it travels
 *                      with the machine).  Consecutive beats differ by one;
 *                      late beats are skipped, not numbered, so a pause is
 *                      one silence with the sequence intact.  An observer
 *                      reads d = (b1 - b0) mod 256: 2..128 = d - 1 beats lost
 *                      on the way, 0 or > 128 = a repeat (the guest ran twice
 *                      from the same state: two copies).  Ferry: the
 *                      "heartbeat" device writes it to --heartbeat PATH.
 *                      QEMU: -device isa-debugcon,iobase=0xe9 with a chardev.
 *                      An outside observer timestamps bytes: the longest
 *                      silence is the downtime seen from outside.
 *   port 0xf4 (4 B)    exit port.  Ferry: `ferry run` exits with the value
 *                      written.  QEMU: isa-debug-exit,iobase=0xf4,iosize=4
 *                      exits with (value << 1) | 1, and so does Ferry with
 *                      `--exit-port isa-debug-exit`.
 *   port 0x510/0x511   QEMU's fw_cfg (selector, data): CPU count, RAM size.
 *                      Ferry offers it too; workload=qemuinfo reads it.
 *   port 0xf0 (4 B)    ucall port (Ferry's test device).  A 32-bit write of the
 *                      guest-physical address of a struct ucall hands one
 *                      message to the host.  A 32-bit read returns
 *                      UCALL_SIGNATURE under Ferry (all ones under QEMU, where
 *                      nothing answers), so the guest knows whether to use it.
 *   port 0xf8 (4 B)    resume generation (Ferry's test device, read only).  A
 *                      32-bit read returns a counter that is 0 on a fresh
 *                      boot and goes up by one each time this machine's
 *                      state is loaded into a VMM: a snapshot restore or an
 *                      incoming migration.  The VMM that loads the state
 *                      bumps it (the saved value is the one the guest last
 *                      saw; the bump never travels), so a guest that sees
 *                      it change knows it was moved or restored and checks
 *                      all its memory at once.  All ones (RESUME_GEN_ABSENT)
 *                      under QEMU, where nothing answers; the test guest
 *                      only reads it when the ucall port answered.
 *
 * All of these ports are reachable from CPL 3 through the TSS I/O permission
 * bitmap the guest sets up (see PLATFORM.md: IOPL via iretq does not work).
 */
#ifndef FERRY_GUEST_ABI_H
#define FERRY_GUEST_ABI_H

#include <stdint.h>

#define PORT_COM1         0x3f8
#define PORT_HEARTBEAT    0xe9
#define PORT_UCALL        0xf0
#define PORT_EXIT         0xf4
#define PORT_FW_CFG       0x510 /* QEMU's fw_cfg: selector; data at +1 */
#define PORT_RESUME       0xf8

#define RESUME_GEN_ABSENT 0xffffffffu /* what the resume port reads without Ferry */

#define UCALL_SIGNATURE   0x46455259u /* "FERY" */

enum ucall_cmd {
	UCALL_NONE = 0,
	UCALL_SYNC = 1,     /* reached a sync point: args[0] = stage number */
	UCALL_ASSERT = 2,   /* a check failed: file, line, msg; args[0..1] = values */
	UCALL_RESULT = 3,   /* a named result: msg = name, args[0] = value */
	UCALL_PROGRESS = 4, /* periodic counters, see enum progress_arg */
	UCALL_READY = 5,    /* workload running: args[0] = wss base gpa,
			       args[1] = wss bytes, args[2] = vcpus online */
	UCALL_PRINT = 6,    /* msg is a line of text */
};

/* Exit codes the test guest writes to PORT_EXIT. */
#define GUEST_EXIT_OK        0 /* seconds= reached, no verification error */
#define GUEST_EXIT_VERIFY    1 /* verification errors (or exit_on_error) */
#define GUEST_EXIT_USAGE     5 /* bad command line, working set too big (not
				* 2: that is ferry's own bad-command-line
				* status, which a guest's code never reads as) */
#define GUEST_EXIT_EXCEPTION 3 /* CPU exception (vector/rip in UCALL_ASSERT) */
#define GUEST_EXIT_ASSERT    4 /* GUEST_ASSERT failed */

/* args[] of UCALL_PROGRESS */
enum progress_arg {
	PROG_PAGES_WRITTEN = 0, /* total page writes since boot, all vCPUs */
	PROG_CHECKS_DONE = 1,   /* full verification passes completed */
	PROG_PAGES_CHECKED = 2, /* pages verified since boot */
	PROG_ERRORS = 3,        /* verification failures since boot */
	PROG_TICKS = 4,         /* timer interrupts received by the BSP */
	PROG_UPTIME_MS = 5,     /* guest's own clock (TSC), milliseconds */
	PROG_HEARTBEATS = 6,    /* heartbeats emitted */
	/* The resume generation (PORT_RESUME) the guest had seen when the
	 * last completed full pass started.  Equal to the VMM's current
	 * resume generation: a full pass over all pages has completed since
	 * the guest noticed its latest move or restore, and PROG_ERRORS
	 * includes what it found. */
	PROG_VERIFIED_RESUME = 7,
	PROG_NARGS = 8,
};

struct ucall {
	uint32_t cmd;       /* enum ucall_cmd */
	uint32_t line;      /* source line for UCALL_ASSERT */
	uint64_t args[8];
	char file[64];      /* NUL-terminated */
	char msg[128];      /* NUL-terminated */
} __attribute__((packed));

/*
 * Layout of every page a verifying guest owns (verify=1): a header the guest
 * can check, then the fill.  The checksum covers the whole page with the
 * checksum field taken as zero.
 */
struct verify_page_hdr {
	uint64_t gpa;        /* the page's own guest-physical address */
	uint32_t generation; /* times this page has been rewritten */
	uint32_t checksum;   /* see above */
} __attribute__((packed));

#define VERIFY_PAGE_SIZE 4096u
#define VERIFY_CSUM_SEED 0x9e3779b97f4a7c15ull

/*
 * The checksum: a Fletcher-style pair of 64-bit running sums over the
 * page's 512 little-endian 64-bit words (word 1 = generation | checksum<<32,
 * with the checksum half taken as zero), folded to 32 bits.  Cheap enough
 * to compute while writing the page, and order-sensitive through b.
 * The guest computes it on the fly with verify_csum_step/finish; host code
 * (tests, tools) can check a page with verify_page_checksum().
 */
static inline void verify_csum_step(uint64_t *a, uint64_t *b, uint64_t word)
{
	*a += word;
	*b += *a;
}

static inline uint32_t verify_csum_finish(uint64_t a, uint64_t b)
{
	uint64_t h = a ^ (b * 0xff51afd7ed558ccdull);

	return (uint32_t)(h ^ (h >> 32));
}

static inline uint32_t verify_page_checksum(const void *page)
{
	const uint64_t *w = (const uint64_t *)page;
	uint64_t a = VERIFY_CSUM_SEED, b = 0;
	unsigned i;

	verify_csum_step(&a, &b, w[0]);
	verify_csum_step(&a, &b, w[1] & 0xffffffffull);
	for (i = 2; i < VERIFY_PAGE_SIZE / 8; i++)
		verify_csum_step(&a, &b, w[i]);
	return verify_csum_finish(a, b);
}

#endif
