/*
 * layout.h - constants shared by the guest's assembly and C code.
 *
 * Only #defines here: this file is included from .S files.
 */
#ifndef GUEST_LAYOUT_H
#define GUEST_LAYOUT_H

/* Multiboot v1: we ask for memory information (bit 1) and page-aligned
 * modules (bit 0); no a.out kludge, the loader reads our ELF32 headers. */
#define MB_HEADER_MAGIC   0x1BADB002
#define MB_HEADER_FLAGS   0x00000003
#define MB_BOOT_MAGIC     0x2BADB002

#define MAX_CPUS          32
#define KSTACK_SIZE       8192   /* ring 0: interrupts, exceptions, set-up */
#define USTACK_SIZE       16384  /* ring 3: the workload */

/* GDT layout (see gdt in entry.S) */
#define SEL_KCODE64       0x08
#define SEL_KDATA         0x10
#define SEL_KCODE32       0x18   /* used by the AP trampoline only */
#define SEL_UDATA         0x23   /* 0x20 | RPL 3 */
#define SEL_UCODE64       0x2b   /* 0x28 | RPL 3 */
#define SEL_TSS0          0x30   /* 16-byte TSS descriptor per CPU */
#define GDT_SIZE          (SEL_TSS0 + 16 * MAX_CPUS)

/* Real-mode AP trampoline: SIPI vector 0x08 starts APs at 0x8000. */
#define TRAMPOLINE_ADDR   0x8000

#define CR0_PE            0x00000001
#define CR0_WP            0x00010000
#define CR0_PG            0x80000000
#define CR4_PAE           0x00000020
#define MSR_EFER          0xC0000080
#define EFER_LME          0x00000100

/* Page directories for RAM above 4 GiB when 1 GiB pages are unavailable:
 * one per GiB, so 2 MiB pages reach 4 + HIGH_PD_POOL GiB. */
#define HIGH_PD_POOL      60

/* Marks the AP check-in word closed (bit 63); see ap_entry64. */
#define SMP_DOOR_CLOSED_BIT 63

#endif
