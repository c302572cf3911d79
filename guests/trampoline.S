/*
 * trampoline.S - real-mode start of the application processors.
 *
 * smp.c copies tramp_start..tramp_end to TRAMPOLINE_ADDR (0x8000) and sends
 * SIPI vector 0x08, so APs begin here with CS=0x0800, IP=0.  The code only
 * loads the main GDT and enters 32-bit protected mode; ap_entry32 in the
 * image does the rest along the BSP's own path to long mode.
 * Position-independent except for the absolute addresses of gdt and
 * ap_entry32, which are below 4 GiB.
 */
#include "layout.h"

	.section .rodata.trampoline, "a"
	.code16
	.globl tramp_start, tramp_end
tramp_start:
	cli
	cld
	jmp 1f
	.balign 8
tramp_gdtr:
	.word GDT_SIZE - 1
	.long gdt
1:
	xorw %ax, %ax
	movw %ax, %ds
	lgdtl TRAMPOLINE_ADDR + (tramp_gdtr - tramp_start)
	movl %cr0, %eax
	orl $CR0_PE, %eax
	movl %eax, %cr0
	ljmpl $SEL_KCODE32, $ap_entry32
tramp_end:

	.section .note.GNU-stack, "", @progbits
