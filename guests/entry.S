/*
 * entry.S - multiboot header, 32-bit entry, switch to long mode.
 *
 * Everything here runs at CPL 0, which PVM emulates at ~1.3M instructions
 * per second, so the path is straight-line: the page tables for the low
 * 4 GiB are built by the assembler (static data), not by a loop at boot.
 *
 * Entry state (multiboot v1): 32-bit flat protected mode, paging off,
 * interrupts off, EAX = 0x2BADB002, EBX = physical address of the
 * multiboot information structure.  The stack pointer is undefined.
 */
#include "layout.h"

	.section .multiboot, "a"
	.balign 4
	.long MB_HEADER_MAGIC
	.long MB_HEADER_FLAGS
	.long -(MB_HEADER_MAGIC + MB_HEADER_FLAGS)

	.section .text.boot, "ax"
	.code32
	.globl _start
_start:
	cli
	cld
	movl %eax, mb_magic
	movl %ebx, mb_info
	xorl %esi, %esi			/* 0: bootstrap processor */
	jmp enter_long_mode

/* APs arrive here from the real-mode trampoline (trampoline.S). */
	.globl ap_entry32
ap_entry32:
	movw $SEL_KDATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movl $1, %esi			/* 1: application processor */

/* Shared by BSP and APs; ESI survives into 64-bit mode. */
enter_long_mode:
	lgdt gdt_ptr
	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	orl $(CR0_PG | CR0_WP | CR0_PE), %eax
	movl %eax, %cr0
	ljmp $SEL_KCODE64, $entry64

	.code64
entry64:
	movw $SEL_KDATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	xorl %eax, %eax
	movw %ax, %fs
	movw %ax, %gs
	testl %esi, %esi
	jnz ap_entry64
	leaq kstacks + KSTACK_SIZE(%rip), %rsp
	call boot_main
	jmp park

/*
 * An AP takes the next CPU id with a compare-and-swap on smp_door before it
 * touches any stack (ids index the per-CPU stacks).  Once the BSP has closed
 * the door (bit 63), late APs park: the working set is already split.
 */
ap_entry64:
1:	movq smp_door(%rip), %rax
	btq $SMP_DOOR_CLOSED_BIT, %rax
	jc park
	leaq 1(%rax), %rdx
	cmpq $MAX_CPUS, %rdx
	jae park
	lock cmpxchgq %rdx, smp_door(%rip)
	jne 1b
	movq %rdx, %rdi			/* cpu id, 1.. */
	leaq 1(%rdx), %rax
	imulq $KSTACK_SIZE, %rax
	leaq kstacks(%rip), %rsp
	addq %rax, %rsp
	call ap_main
	.globl park
park:
	cli
	hlt
	jmp park

/*
 * Identity map of the low 4 GiB with 2 MiB pages (RAM below the hole, and
 * the LAPIC/IOAPIC MMIO at the top).  U=1 everywhere: the workload runs at
 * CPL 3 and this is a test guest, so no isolation.  RAM above 4 GiB is
 * mapped in C (boot.c) from the multiboot memory map.
 */
#define PTE_P  0x001
#define PTE_W  0x002
#define PTE_U  0x004
#define PTE_PS 0x080
	.section .data.pagetables, "aw"
	.balign 4096
	.globl pml4, pdpt
pml4:
	.quad pdpt + (PTE_P | PTE_W | PTE_U)
	.fill 511, 8, 0
pdpt:
	.quad pd_low + 0x0000 + (PTE_P | PTE_W | PTE_U)
	.quad pd_low + 0x1000 + (PTE_P | PTE_W | PTE_U)
	.quad pd_low + 0x2000 + (PTE_P | PTE_W | PTE_U)
	.quad pd_low + 0x3000 + (PTE_P | PTE_W | PTE_U)
	.fill 508, 8, 0
pd_low:
	.set addr, 0
	.rept 2048
	.quad addr + (PTE_P | PTE_W | PTE_U | PTE_PS)
	.set addr, addr + 0x200000
	.endr

/*
 * GDT: one per system, TSS descriptors (one per CPU) are filled by
 * cpu_tables_init().  The 32-bit code segment serves the AP trampoline.
 */
	.data
	.balign 16
	.globl gdt, gdt_end, gdt_ptr
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08 kernel code, 64-bit */
	.quad 0x00cf92000000ffff	/* 0x10 kernel data */
	.quad 0x00cf9a000000ffff	/* 0x18 kernel code, 32-bit */
	.quad 0x00cff2000000ffff	/* 0x20 user data */
	.quad 0x00affa000000ffff	/* 0x28 user code, 64-bit */
	.fill 2 * MAX_CPUS, 8, 0	/* 0x30 TSS descriptors */
gdt_end:
	.balign 8
	.word 0, 0, 0
gdt_ptr:				/* 6 bytes in 32-bit mode, 10 in 64-bit */
	.word gdt_end - gdt - 1
	.quad gdt

	.globl mb_magic, mb_info, smp_door
	.balign 8
mb_magic:	.long 0
mb_info:	.long 0
smp_door:	.quad 0

	.section .note.GNU-stack, "", @progbits
