/*
 * timer.c - 8259 PIC, 8254 PIT, TSC calibration (CPL 0, BSP).
 *
 * Nothing is assumed about firmware: Ferry has no BIOS, so both chips are
 * programmed from scratch.  The PIT ticks at 100 Hz on IRQ 0, remapped to
 * vector 32; the TSC is calibrated once against PIT channel 2 so that CPL 3
 * code can tell time with rdtsc alone.
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

/*
 * Channel 2 in mode 0 counts down once with its gate (port 0x61 bit 0)
 * high; its output shows in port 0x61 bit 5 at terminal count.
 */
void tsc_calibrate(void)
{
	const unsigned latch = PIT_HZ / (1000 / CALIBRATE_MS);
	uint64_t t0, t1;
	uint8_t v = inb(0x61);
	unsigned i;

	outb(0x61, (v & ~0x02) | 0x01); /* gate on, speaker off */
	outb(0x43, 0xb0);               /* channel 2, lo/hi, mode 0 */
	outb(0x42, latch & 0xff);
	outb(0x42, latch >> 8);
	t0 = rdtsc();
	/* ~1 us per emulated iteration: the cap is far beyond 20 ms */
	for (i = 0; i < 2000000 && !(inb(0x61) & 0x20); i++)
		;
	t1 = rdtsc();
	outb(0x61, v & ~0x03);
	if (i < 2000000 && t1 > t0) {
		boot.tsc_khz = (t1 - t0) / CALIBRATE_MS;
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
