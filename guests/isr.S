/*
 * isr.S - interrupt and exception entry points, and the drop to CPL 3.
 *
 * Each of these runs at CPL 0 (emulated), so the timer path is a handful of
 * instructions: it only counts and acknowledges the PIC.
 */
#include "layout.h"

	.text
	.code64

/* Exceptions 0..31: 16-byte stubs, so stub(v) = isr_stubs + 16 * v. */
	.balign 16
	.globl isr_stubs
isr_stubs:
	.set vec, 0
	.rept 32
	.balign 16
	.if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	pushq $vec			/* the CPU pushed an error code */
	.else
	pushq $0
	pushq $vec
	.endif
	jmp exc_common
	.set vec, vec + 1
	.endr

exc_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rdi
	cld
	call exception_handler		/* does not return */
	jmp park

/* PIT via PIC IRQ0 -> vector 32, BSP only. */
	.globl isr_timer
isr_timer:
	pushq %rax
	lock incq ticks(%rip)
	movb $0x20, %al
	outb %al, $0x20			/* non-specific EOI to the master PIC */
	popq %rax
	iretq

/* Masked PIC lines, PIC spurious IRQ 7/15 (need no EOI), LAPIC spurious. */
	.globl isr_ignore
isr_ignore:
	iretq

/*
 * void enter_user(void (*fn)(uint64_t), uint64_t rsp, uint64_t arg)
 * iretq to fn(arg) at CPL 3 with IF=1 and IOPL=0: port access from CPL 3
 * goes through the TSS I/O bitmap (IOPL via iretq does not work on PVM).
 */
	.globl enter_user
enter_user:
	movw $SEL_UDATA, %ax
	movw %ax, %ds
	movw %ax, %es
	pushq $SEL_UDATA		/* ss */
	pushq %rsi			/* rsp */
	pushq $0x202			/* rflags: IF */
	pushq $SEL_UCODE64		/* cs */
	pushq %rdi			/* rip */
	movq %rdx, %rdi
	xorl %eax, %eax
	xorl %esi, %esi
	xorl %edx, %edx
	iretq

	.section .note.GNU-stack, "", @progbits
