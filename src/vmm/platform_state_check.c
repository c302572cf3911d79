/* Rules for the VM-wide state KVM keeps: PIT, PICs, IOAPIC, kvmclock
 * (state_check.h). */
#include "vmm/state_check.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>

#define BAD(err, ...) err_set(err, -EPROTO, __VA_ARGS__)

#define CHECK_MAX(err, what, v, max)                                      \
	do {                                                              \
		if ((v) > (max))                                          \
			return BAD(err, "%s is %u (at most %u)", what,    \
				   (unsigned)(v), (unsigned)(max));       \
	} while (0)

int state_check_pit(const struct kvm_pit_state2 *p, char *err)
{
	char what[48];
	const uint32_t known = KVM_PIT_FLAGS_HPET_LEGACY |
			       KVM_PIT_FLAGS_SPEAKER_DATA_ON;
	if (p->flags & ~known)
		return BAD(err, "pit: flags 0x%x has unknown bits", p->flags);
	for (size_t i = 0; i < sizeof(p->reserved) / sizeof(p->reserved[0]); i++)
		if (p->reserved[i])
			return BAD(err, "pit: reserved word %zu is not zero", i);
	for (int i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *c = &p->channels[i];
		/* A 16-bit counter; 0 is loaded as 65536. */
		if (c->count > 0x10000)
			return BAD(err, "pit: channel %d count is %u (at most 65536)",
				   i, c->count);
		/* Modes 0..5 as programmed (KVM folds 6 and 7 onto 2 and 3);
		 * 0xff: never programmed since reset. */
		if (c->mode > 5 && c->mode != 0xff)
			return BAD(err, "pit: channel %d mode is %u", i, c->mode);
#define FIELD(name, max)                                                  \
		do {                                                      \
			snprintf(what, sizeof(what), "pit: channel %d " #name, i); \
			CHECK_MAX(err, what, c->name, max);               \
		} while (0)
		FIELD(rw_mode, 3);        /* 0 before programming, LSB/MSB/word */
		FIELD(read_state, 4);     /* RW_STATE_LSB .. WORD1 */
		FIELD(write_state, 4);
		FIELD(count_latched, 4);
		FIELD(status_latched, 1);
		FIELD(bcd, 1);
		FIELD(gate, 1);
#undef FIELD
	}
	return 0;
}

int state_check_pic(const struct kvm_pic_state *p, int chip, char *err)
{
	const char *name = chip == KVM_IRQCHIP_PIC_MASTER ? "pic master" : "pic slave";
	/* Which lines can be level-triggered is the chipset's, set by KVM
	 * when it creates the PICs; KVM_SET_IRQCHIP would take any. */
	uint8_t elcr_mask = chip == KVM_IRQCHIP_PIC_MASTER ? 0xf8 : 0xde;
	char what[48];

	if (p->elcr_mask != elcr_mask)
		return BAD(err, "%s: elcr_mask is 0x%02x (the chipset's is 0x%02x)",
			   name, p->elcr_mask, elcr_mask);
	if (p->elcr & ~elcr_mask)
		return BAD(err, "%s: elcr 0x%02x sets lines outside elcr_mask 0x%02x",
			   name, p->elcr, elcr_mask);
	if (p->irq_base & 7)
		return BAD(err, "%s: irq_base 0x%02x is not a multiple of 8", name,
			   p->irq_base);
#define FIELD(f, max)                                                     \
	do {                                                              \
		snprintf(what, sizeof(what), "%s: " #f, name);            \
		CHECK_MAX(err, what, p->f, max);                          \
	} while (0)
	FIELD(priority_add, 7);
	FIELD(init_state, 3);
	FIELD(read_reg_select, 1);
	FIELD(poll, 1);
	FIELD(special_mask, 1);
	FIELD(auto_eoi, 1);
	FIELD(rotate_on_auto_eoi, 1);
	FIELD(special_fully_nested_mode, 1);
	FIELD(init4, 1);
#undef FIELD
	return 0;
}

#define IOAPIC_BASE 0xfec00000ULL

int state_check_ioapic(const struct kvm_ioapic_state *io, char *err)
{
	/* KVM decodes the IOAPIC at base_address as restored: elsewhere it
	 * would answer on guest memory that is not its own. */
	if (io->base_address != IOAPIC_BASE)
		return BAD(err, "ioapic: base_address 0x%llx (the IOAPIC sits at 0x%llx)",
			   (unsigned long long)io->base_address, IOAPIC_BASE);
	CHECK_MAX(err, "ioapic: ioregsel", io->ioregsel, 0xff);
	CHECK_MAX(err, "ioapic: id", io->id, 0xf);
	if (io->irr >> KVM_IOAPIC_NUM_PINS)
		return BAD(err, "ioapic: irr 0x%x has pins beyond %d", io->irr,
			   KVM_IOAPIC_NUM_PINS - 1);
	return 0;
}

/* 2^62 ns is 146 years of guest uptime: more is a corrupt value, and
 * KVM's signed offset arithmetic would wrap near 2^63. */
#define KVMCLOCK_MAX (1ULL << 62)

int state_check_kvmclock(uint64_t clock_ns, char *err)
{
	if (clock_ns > KVMCLOCK_MAX)
		return BAD(err, "kvmclock: clock %llu ns is more than 146 years",
			   (unsigned long long)clock_ns);
	return 0;
}
