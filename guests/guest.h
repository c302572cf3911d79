/*
 * guest.h - shared declarations of the Ferry test guest.
 *
 * Who runs what: boot.c, desc.c, timer.c, smp.c and exception.c run at
 * CPL 0 (emulated on PVM, so kept short); everything else runs at CPL 3.
 * All memory is identity-mapped and user-accessible.
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest_abi.h"
#include "layout.h"

#define PAGE_SIZE 4096ul
#define MIB (1024ul * 1024)
#define GIB (1024ul * MIB)

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define noreturn __attribute__((noreturn))

/* Exit codes written to PORT_EXIT (guest_abi.h documents them). */
#define EXIT_OK        GUEST_EXIT_OK
#define EXIT_VERIFY    GUEST_EXIT_VERIFY
#define EXIT_USAGE     GUEST_EXIT_USAGE
#define EXIT_EXCEPTION GUEST_EXIT_EXCEPTION
#define EXIT_ASSERT    GUEST_EXIT_ASSERT

/* 64-bit TSS with an I/O bitmap that covers ports 0..0x3ff (128 bytes)
 * plus the terminating 0xff byte the CPU may read past the last port. */
#define IOMAP_PORTS 0x520 /* up to fw_cfg's 0x510-0x511 */
struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
	uint8_t iomap[IOMAP_PORTS / 8 + 1];
} __attribute__((packed));

enum workload { WL_IDLE, WL_DIRTY, WL_EXIT, WL_FAULT, WL_QEMUINFO };
enum pattern { PAT_SEQ, PAT_RANDOM, PAT_HOT };
enum fill { FILL_COUNTER, FILL_RANDOM, FILL_ZERO };

struct config {
	enum workload workload;
	uint64_t wss;           /* bytes */
	uint64_t rate;          /* MiB/s for the whole guest, 0 = unlimited */
	enum pattern pattern;
	enum fill fill;
	bool verify;
	uint64_t verify_ms;
	uint64_t heartbeat_us;  /* 0 = no heartbeats */
	uint64_t seconds;       /* 0 = run forever */
	bool exit_on_error;
	uint32_t exit_code;     /* workload=exit */
	uint64_t corrupt;       /* self-test: damage pages before pass 1 */
	/* workload=qemuinfo: what the machine should say (qemuinfo.c) */
	uint64_t want_cpus, want_mem, want_mods, mod_len, mod_fnv;
	const char *mod_arg;    /* in boot.cmdline, mod_arg_len bytes */
	size_t mod_arg_len;
};

#define MAX_RAM_RANGES 32
#define MAX_MODS 4
struct bootinfo {
	/* multiboot modules (flags bit 3), copied at boot */
	unsigned nmods;
	struct { uint64_t start, end; char string[128]; } mods[MAX_MODS];
	char cmdline[1024];
	struct { uint64_t base, len; } ram[MAX_RAM_RANGES];
	unsigned nram;
	uint64_t ram_total, ram_top;
	uint64_t tsc_khz;
	uint64_t tsc_boot;      /* TSC at boot_main */
	unsigned ncpus;         /* BSP + APs that checked in */
	bool pdpe1gb;
	bool tsc_calibrated;
};

/*
 * Per-CPU state.  Counters are written by their owner only and read by the
 * BSP (aligned 64-bit stores are atomic on x86).
 */
struct percpu {
	struct tss tss;
	uint32_t id;
	volatile uint32_t online;       /* reached CPL 3 */
	volatile uint32_t init_done;    /* its part of the working set is laid out */
	/* this CPU's share of the working set */
	uint64_t base;                  /* gpa of its first page */
	uint64_t npages;
	uint32_t *gen;                  /* expected generation per page */
	uint64_t rng;
	uint64_t seq;                   /* counter fill */
	uint64_t cursor;                /* pattern=seq position */
	uint64_t rate_acc;              /* rate limiter credit, page * tsc */
	uint64_t rate_last;
	unsigned fail_lines;            /* VERIFY FAIL lines printed this pass */
	volatile uint64_t pages_written;
	volatile uint64_t pages_checked;
	volatile uint64_t errors;
	volatile uint64_t verify_done;  /* last verify epoch completed */
	struct ucall uc;
} __attribute__((aligned(64)));

extern struct bootinfo boot;
extern struct config cfg;
extern struct percpu percpu[MAX_CPUS];
extern uint8_t kstacks[MAX_CPUS][KSTACK_SIZE];
extern uint8_t ustacks[MAX_CPUS][USTACK_SIZE];
extern volatile uint64_t ticks;
extern volatile uint64_t smp_door;
extern bool have_ucall;
extern char _image_start[], _end[];

/* The current CPU, from the stack we are on (kernel or user). */
struct percpu *this_cpu(void);

/* lib.c */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
void strlcpy_(char *d, const char *s, size_t n);
int vsnprintf_(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf_(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* console.c: COM1 */
void serial_init(void);
void kputs(const char *s);                /* polled, any CPL */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cons_write(const char *s, size_t n); /* buffered, CPL 3 */
void printf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cons_drain(void);                    /* a little, cheap if idle */
void cons_flush(void);                    /* everything, polled */
void cons_flush_tries(int tries);
int serial_getc_nowait(void);             /* -1 if nothing */

/* ucall.c */
void ucall_detect(void);
void ucall_send(uint32_t cmd, const char *file, uint32_t line,
		const char *msg, const uint64_t *args, unsigned nargs);
void guest_report(const char *file, int line, const char *msg,
		  uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3);
noreturn void guest_assert_fail(const char *file, int line, const char *expr,
				uint64_t a0, uint64_t a1);
noreturn void guest_exit(uint32_t code);

/* desc.c */
void idt_init(void);
void cpu_tables_init(unsigned id);

/* timer.c */
void pic_pit_init(void);
void tsc_calibrate(void);
void delay_us(uint64_t us);
uint64_t tsc_hz(void);

/* smp.c */
void lapic_init_bsp(void);
void smp_start_aps(void);

/* entry/isr.S */
noreturn void enter_user(void (*fn)(uint64_t), uint64_t rsp, uint64_t arg);
extern char isr_stubs[], isr_timer[], isr_ignore[];
extern char tramp_start[], tramp_end[];
extern uint64_t pml4[512], pdpt[512];

/* cmdline.c */
int cmdline_parse(const char *s, struct config *c, char *err, size_t errsz);
const char *workload_name(enum workload w);
const char *pattern_name(enum pattern p);
const char *fill_name(enum fill f);

/* workload.c, verify.c */
void workload_setup(unsigned ncpus);
void part_init(struct percpu *pc, void (*service)(void));
void write_one_page(struct percpu *pc);
bool rate_allows(struct percpu *pc, uint64_t now);
void verify_part(struct percpu *pc, void (*service)(void));
void verify_bad_header(struct percpu *pc, uint64_t idx);

/* qemuinfo.c */
noreturn void qemuinfo_main(void);

/* main.c */
noreturn void bsp_user_main(uint64_t unused);
noreturn void ap_user_main(uint64_t id);

#endif
