/*
 * desc.c - IDT, and each CPU's TSS with its I/O permission bitmap.
 *
 * The TSS bitmap is how CPL 3 reaches the ports it needs (COM1, heartbeat,
 * ucall, exit) with IOPL=0: on PVM an IOPL of 3 set by the guest's own
 * iretq does not stick.  Every other port stays denied, so a stray access
 * shows up as #GP rather than as a surprise on some device.
 */
#include "guest.h"
#include "io.h"

struct idt_entry {
	uint16_t off0;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off1;
	uint32_t off2;
	uint32_t zero;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
static struct {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed)) idt_ptr;

extern uint64_t gdt[];

static void set_gate(unsigned v, void *handler)
{
	uint64_t a = (uintptr_t)handler;

	idt[v].off0 = (uint16_t)a;
	idt[v].sel = SEL_KCODE64;
	idt[v].ist = 0;
	idt[v].type = 0x8e; /* present, DPL 0, interrupt gate (IF off) */
	idt[v].off1 = (uint16_t)(a >> 16);
	idt[v].off2 = (uint32_t)(a >> 32);
}

/* Only the vectors that can fire get gates; anything else raises #GP with
 * the vector in the error code, which the #GP report shows. */
void idt_init(void)
{
	for (unsigned v = 0; v < 32; v++)
		set_gate(v, isr_stubs + 16 * v);
	set_gate(32, isr_timer);
	for (unsigned v = 33; v < 48; v++)
		set_gate(v, isr_ignore);
	set_gate(0xff, isr_ignore);
	idt_ptr.limit = sizeof(idt) - 1;
	idt_ptr.base = (uintptr_t)idt;
}

static void iomap_allow(struct tss *t, unsigned port, unsigned n)
{
	for (unsigned p = port; p < port + n; p++)
		t->iomap[p / 8] &= (uint8_t)~(1u << (p % 8));
}

void cpu_tables_init(unsigned id)
{
	struct tss *t = &percpu[id].tss;
	uint64_t base = (uintptr_t)t, limit = sizeof(*t) - 1;
	unsigned slot = (SEL_TSS0 / 8) + 2 * id;

	memset(t, 0, sizeof(*t));
	t->rsp[0] = (uintptr_t)kstacks[id] + KSTACK_SIZE;
	t->iomap_base = offsetof(struct tss, iomap);
	memset(t->iomap, 0xff, sizeof(t->iomap));
	iomap_allow(t, PORT_COM1, 8);
	iomap_allow(t, PORT_HEARTBEAT, 1);
	iomap_allow(t, PORT_UCALL, 8); /* ucall 0xf0-0xf3, exit 0xf4-0xf7 */
	iomap_allow(t, PORT_FW_CFG, 2); /* QEMU's fw_cfg, workload=qemuinfo */
	iomap_allow(t, PORT_RESUME, 4);

	/* 64-bit available TSS descriptor (type 9), 16 bytes */
	gdt[slot] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
		    (0x89ull << 40) | (((limit >> 16) & 0xf) << 48) |
		    (((base >> 24) & 0xff) << 56);
	gdt[slot + 1] = base >> 32;

	__asm__ volatile("ltr %w0" : : "r"((uint16_t)(SEL_TSS0 + 16 * id)));
	__asm__ volatile("lidt %0" : : "m"(idt_ptr));
}
