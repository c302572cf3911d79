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
#define CALIBRATE_MS 20u

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

	/* channel 0, lobyte/hibyte, mode 2 (rate generator) */
	outb(0x43, 0x34);
	outb(0x40, (PIT_HZ / TIMER_HZ) & 0xff);
	outb(0x40, (PIT_HZ / TIMER_HZ) >> 8);
}

/* Latch and read channel 0's current count. */
static uint32_t pit0_count(void)
{
	uint8_t lo, hi;

	outb(0x43, 0x00);
	lo = inb(0x40);
	hi = inb(0x40);
	return lo | (uint32_t)hi << 8;
}

/*
 * Count PIT input clocks on channel 0 (already running in mode 2 with
 * period PIT_HZ / TIMER_HZ) by reading its counter back, until 20 ms have
 * passed, and compare with the TSC.  Channel 2, the classic choice, needs
 * port 0x61 for its gate and output, and KVM emulates 0x61 in the kernel
 * only when the PIT is created with KVM_PIT_SPEAKER_DUMMY; channel 0
 * needs nothing but the PIT itself.  Polls are a few microseconds apart
 * (emulated), far less than the 10 ms period, so no wrap is missed.
 */
void tsc_calibrate(void)
{
	const uint32_t period = PIT_HZ / TIMER_HZ;
	const uint32_t want = PIT_HZ / 1000 * CALIBRATE_MS;
	uint32_t prev = pit0_count(), elapsed = 0, i;
	uint64_t t0 = rdtsc(), t1;

	for (i = 0; i < 2000000 && elapsed < want && prev <= period; i++) {
		uint32_t cur = pit0_count();

		if (cur > period)
			break; /* not a PIT counting our period */
		elapsed += cur <= prev ? prev - cur : prev + period - cur;
		prev = cur;
	}
	t1 = rdtsc();
	if (elapsed >= want && t1 > t0) {
		boot.tsc_khz = (t1 - t0) * PIT_HZ / elapsed / 1000;
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
