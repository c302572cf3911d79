/*
 * timer.c - 8259 PIC, 8254 PIT, TSC calibration (CPL 0, BSP).
 *
 * Nothing is assumed about firmware: Ferry has no BIOS, so both chips are
 * programmed from scratch.  The PIT ticks at 100 Hz on IRQ 0, remapped to
 * vector 32; the TSC is calibrated once against the PIT so that CPL 3 code
 * can tell time with rdtsc alone.
 */
#include "guest.h"
#include "io.h"

#define PIT_HZ       1193182u
#define TIMER_HZ     100u
#define CALIBRATE_MS 10u
#define CALIBRATE_RUNS 5

volatile uint64_t ticks; /* incremented by isr_timer (isr.S) */

void pic_pit_init(void)
{
	/* ICW1..4: edge, cascade, vectors 32..47, slave on IRQ 2, 8086 mode */
	outb(0x20, 0x11);
	outb(0xa0, 0x11);
	outb(0x21, 0x20);
	outb(0xa1, 0x28);
	outb(0x21, 0x04);
	outb(0xa1, 0x02);
	outb(0x21, 0x01);
	outb(0xa1, 0x01);
	outb(0x21, 0xfe); /* only IRQ 0 (PIT) */
	outb(0xa1, 0xff);

	tsc_calibrate();

	/* channel 0, lobyte/hibyte, mode 2 (rate generator) at TIMER_HZ */
	outb(0x43, 0x34);
	outb(0x40, (PIT_HZ / TIMER_HZ) & 0xff);
	outb(0x40, (PIT_HZ / TIMER_HZ) >> 8);
}

/* Latch and read channel 0's current count (0 reads back for 65536). */
static uint32_t pit0_count(void)
{
	uint8_t lo, hi;
	uint32_t v;

	outb(0x43, 0x00);
	lo = inb(0x40);
	hi = inb(0x40);
	v = lo | (uint32_t)hi << 8;
	return v ? v : 0x10000;
}

/*
 * One measurement: count PIT input clocks on channel 0 (mode 2, period
 * 0x10000) by reading the counter back until CALIBRATE_MS have passed, and
 * return TSC kHz, or 0.  If the vCPU is descheduled for longer than a PIT
 * period (55 ms) between two polls, a wrap is missed and the PIT time comes
 * out short: errors only ever make the result too high.
 */
static uint64_t calibrate_once(void)
{
	const uint32_t period = 0x10000;
	const uint32_t want = PIT_HZ / 1000 * CALIBRATE_MS;
	uint32_t prev = pit0_count(), elapsed = 0, i;
	uint64_t t0 = rdtsc(), t1;

	for (i = 0; i < 1000000 && elapsed < want; i++) {
		uint32_t cur = pit0_count();

		elapsed += cur <= prev ? prev - cur : prev + period - cur;
		prev = cur;
	}
	t1 = rdtsc();
	if (elapsed < want || t1 <= t0)
		return 0;
	return (t1 - t0) * PIT_HZ / elapsed / 1000;
}

/*
 * Calibrate against PIT channel 0 read back, not channel 2: channel 2
 * needs port 0x61 for its gate and output, which KVM emulates in the
 * kernel only when the PIT is created with KVM_PIT_SPEAKER_DUMMY.  The host
 * may preempt the vCPU (seen under Ferry with busy host CPUs: results 1.5x
 * to 3x too high), so take the lowest of CALIBRATE_RUNS measurements.
 */
void tsc_calibrate(void)
{
	uint64_t best = 0;

	outb(0x43, 0x34); /* channel 0, lo/hi, mode 2, period 0x10000 */
	outb(0x40, 0);
	outb(0x40, 0);
	for (int run = 0; run < CALIBRATE_RUNS; run++) {
		uint64_t khz = calibrate_once();

		if (khz && (!best || khz < best))
			best = khz;
	}
	if (best) {
		boot.tsc_khz = best;
		boot.tsc_calibrated = true;
	} else {
		boot.tsc_khz = 2000000; /* a guess, reported in the boot line */
	}
}

uint64_t tsc_hz(void)
{
	return boot.tsc_khz * 1000;
}

void delay_us(uint64_t us)
{
	uint64_t end = rdtsc() + us * boot.tsc_khz / 1000;

	while (rdtsc() < end)
		cpu_relax();
}
