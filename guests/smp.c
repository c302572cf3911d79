/*
 * smp.c - LAPIC set-up on the BSP and the start of the APs (CPL 0).
 *
 * Ferry provides no ACPI or MP tables, so the number of vCPUs is found by
 * asking: a broadcast INIT-SIPI-SIPI (all excluding self) and a count of
 * the APs that take a CPU id (entry.S, ap_entry64) within AP_WAIT_MS.
 */
#include "guest.h"
#include "io.h"

#define MSR_APIC_BASE     0x1b
#define APIC_BASE_ENABLE  (1ull << 11)
#define LAPIC_TPR         0x080
#define LAPIC_SVR         0x0f0
#define LAPIC_ICR_LO      0x300
#define LAPIC_ICR_HI      0x310
#define LAPIC_LVT0        0x350
#define LAPIC_LVT1        0x360
#define ICR_PENDING       (1u << 12)
#define ICR_ALL_BUT_SELF  (3u << 18)
#define ICR_ASSERT        (1u << 14)
#define ICR_INIT          (5u << 8)
#define ICR_STARTUP       (6u << 8)
#define IOAPIC_BASE       0xfec00000ull
#define AP_WAIT_MS        200

static uint64_t lapic;

/*
 * The PIC reaches the BSP through LINT0 in ExtINT mode.  KVM accepts PIC
 * interrupts only when LVT0 says so, and forces LVT entries masked while
 * the APIC is software-disabled, so enable it (SVR) first.  IOAPIC pins
 * are masked too, in case firmware routed the PIT there as well (double
 * ticks otherwise).
 */
void lapic_init_bsp(void)
{
	uint64_t msr = rdmsr(MSR_APIC_BASE);
	uint32_t n;

	if (!(msr & APIC_BASE_ENABLE))
		wrmsr(MSR_APIC_BASE, msr | APIC_BASE_ENABLE);
	lapic = msr & 0xffffff000ull;
	mmio_write32(lapic + LAPIC_SVR, 0x1ff); /* enabled, spurious 0xff */
	mmio_write32(lapic + LAPIC_TPR, 0);
	mmio_write32(lapic + LAPIC_LVT0, 0x700); /* ExtINT */
	mmio_write32(lapic + LAPIC_LVT1, 0x400); /* NMI */

	mmio_write32(IOAPIC_BASE, 1);
	n = ((mmio_read32(IOAPIC_BASE + 0x10) >> 16) & 0xff) + 1;
	if (n > 120) /* nothing there: reads as all ones */
		return;
	for (uint32_t i = 0; i < n; i++) {
		mmio_write32(IOAPIC_BASE, 0x10 + 2 * i);
		mmio_write32(IOAPIC_BASE + 0x10, 1u << 16);
	}
}

static void icr_send(uint32_t lo)
{
	mmio_write32(lapic + LAPIC_ICR_HI, 0);
	mmio_write32(lapic + LAPIC_ICR_LO, lo);
	for (int i = 0; i < 100000 && (mmio_read32(lapic + LAPIC_ICR_LO) & ICR_PENDING); i++)
		cpu_relax();
}

void smp_start_aps(void)
{
	uint64_t old, end;
	size_t n = (size_t)(tramp_end - tramp_start);

	memcpy((void *)TRAMPOLINE_ADDR, tramp_start, n);
	icr_send(ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_INIT);
	delay_us(10000);
	for (int i = 0; i < 2; i++) {
		icr_send(ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_STARTUP |
			 (TRAMPOLINE_ADDR >> 12));
		delay_us(200);
	}
	end = rdtsc() + AP_WAIT_MS * boot.tsc_khz;
	while (rdtsc() < end)
		cpu_relax();
	/* Close the door: APs that come later park (entry.S). */
	old = __atomic_fetch_or(&smp_door, 1ull << SMP_DOOR_CLOSED_BIT,
				__ATOMIC_SEQ_CST);
	boot.ncpus = 1 + (unsigned)(old & 0xffff);
}
