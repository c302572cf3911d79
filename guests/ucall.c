/*
 * ucall.c - messages to the host, reports, and the way out.
 *
 * A ucall is a struct ucall in guest memory whose guest-physical address
 * is written to PORT_UCALL (32-bit OUT): the write exits to the VMM, which
 * reads the struct before the guest continues.  Each CPU has its own
 * struct, so APs can report concurrently.
 */
#include "ucall.h"
#include "io.h"

bool have_ucall;

struct percpu *this_cpu(void)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	uintptr_t k = (uintptr_t)kstacks, u = (uintptr_t)ustacks;

	if (sp >= u && sp < u + sizeof(ustacks))
		return &percpu[(sp - u) / USTACK_SIZE];
	if (sp >= k && sp < k + sizeof(kstacks))
		return &percpu[(sp - k) / KSTACK_SIZE];
	return &percpu[0];
}

/* Under QEMU nothing answers on 0xf0 and the read returns all ones. */
void ucall_detect(void)
{
	have_ucall = inl(PORT_UCALL) == UCALL_SIGNATURE;
}

void ucall_send(uint32_t cmd, const char *file, uint32_t line,
		const char *msg, const uint64_t *args, unsigned nargs)
{
	struct ucall *uc;

	if (!have_ucall)
		return;
	uc = &this_cpu()->uc;
	memset(uc, 0, sizeof(*uc));
	uc->cmd = cmd;
	uc->line = line;
	if (nargs > ARRAY_SIZE(uc->args))
		nargs = ARRAY_SIZE(uc->args);
	for (unsigned i = 0; i < nargs; i++)
		uc->args[i] = args[i];
	if (file) {
		/* keep the tail of long paths: it names the file */
		size_t n = strlen(file);

		strlcpy_(uc->file, n >= sizeof(uc->file) ?
			 file + n - (sizeof(uc->file) - 1) : file,
			 sizeof(uc->file));
	}
	if (msg)
		strlcpy_(uc->msg, msg, sizeof(uc->msg));
	barrier();
	outl(PORT_UCALL, (uint32_t)(uintptr_t)uc);
}

/* A failure that the guest survives (e.g. one bad page). */
void guest_report(const char *file, int line, const char *msg,
		  uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3)
{
	uint64_t args[4] = { a0, a1, a2, a3 };

	ucall_send(UCALL_ASSERT, file, (uint32_t)line, msg, args, 4);
}

void guest_assert_fail(const char *file, int line, const char *expr,
		       uint64_t a0, uint64_t a1)
{
	printf_("ASSERT FAILED %s:%d: %s (0x%lx, 0x%lx) cpu=%u\n", file, line,
		expr, a0, a1, this_cpu()->id);
	guest_report(file, line, expr, a0, a1, 0, 0);
	guest_exit(EXIT_ASSERT);
}

void guest_exit(uint32_t code)
{
	cons_flush();
	outl(PORT_EXIT, code);
	/* Still here: no exit device.  Say so once and spin. */
	kprintf("exit(%u): no exit device at port 0x%x, spinning\n", code,
		PORT_EXIT);
	for (;;)
		cpu_relax();
}
