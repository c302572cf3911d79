/*
 * exception.c - CPU exceptions: report and exit with code 3.
 *
 * Runs at CPL 0 (the IDT gates are interrupt gates, IF off).  The report
 * goes straight to COM1, polled: the buffered console may be stuck behind
 * whatever faulted.
 */
#include "guest.h"
#include "io.h"

struct exc_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

static const char *const names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
	"#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "?15",
	"#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "?22", "?23",
	"?24", "?25", "?26", "?27", "#HV", "#VC", "#SX", "?31",
};

static volatile int exc_lock;

void exception_handler(struct exc_frame *f)
{
	uint64_t cr2 = read_cr2();
	unsigned cpu = this_cpu()->id;
	uint64_t args[5] = { f->vector, f->rip, f->error, cr2, cpu };
	char msg[96];

	/* One report: a second CPU faulting at the same time just stops. */
	while (__atomic_exchange_n(&exc_lock, 1, __ATOMIC_ACQUIRE))
		for (;;)
			__asm__ volatile("cli; hlt");
	cons_flush_tries(1); /* what the workload said last, if we can */
	snprintf_(msg, sizeof(msg), "exception %lu (%s) at rip 0x%lx",
		  f->vector, names[f->vector & 31], f->rip);
	kprintf("\nEXCEPTION vector=%lu (%s) rip=0x%lx err=0x%lx cr2=0x%lx "
		"cs=0x%lx rsp=0x%lx rflags=0x%lx cpu=%u\n",
		f->vector, names[f->vector & 31], f->rip, f->error, cr2,
		f->cs, f->rsp, f->rflags, cpu);
	ucall_send(UCALL_ASSERT, "exception", (uint32_t)f->vector, msg, args, 5);
	outl(PORT_EXIT, EXIT_EXCEPTION);
	for (;;)
		__asm__ volatile("cli; hlt");
}
