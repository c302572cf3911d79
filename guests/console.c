/*
 * console.c - COM1 (16550A at 0x3f8): polled output, a buffer for CPL 3.
 *
 * Every port access from the guest is a VM exit, and a progress line is
 * ~80 of them.  Writing it in one go would stall the BSP's heartbeat, so
 * CPL 3 code appends to a ring buffer and the BSP's service loop drains a
 * few bytes per call (DRAIN_STEP).  Boot and exception messages are
 * written directly (kputs/kprintf): they are rare and must not be lost.
 * Lines end in a bare '\n', which keeps logs easy to match.
 */
#include "guest.h"
#include "io.h"

#define COM1_DATA (PORT_COM1 + 0)
#define COM1_IER  (PORT_COM1 + 1)
#define COM1_FCR  (PORT_COM1 + 2)
#define COM1_LCR  (PORT_COM1 + 3)
#define COM1_MCR  (PORT_COM1 + 4)
#define COM1_LSR  (PORT_COM1 + 5)
#define LSR_DR    0x01
#define LSR_THRE  0x20
#define FIFO_SIZE 16
#define DRAIN_STEP 8 /* bytes per cons_drain(): ~9 exits, ~0.2 ms */

#define CONS_SIZE 16384 /* power of two */
static char cons_buf[CONS_SIZE];
static volatile uint32_t cons_head, cons_tail; /* free-running indices */
static volatile int cons_lock, drain_lock;

static void spin_lock(volatile int *l)
{
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		while (*l)
			cpu_relax();
}

static bool spin_trylock(volatile int *l)
{
	return !__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE);
}

static void spin_unlock(volatile int *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* No interrupts (IER=0, OUT2 off): the guest polls LSR. */
void serial_init(void)
{
	outb(COM1_IER, 0x00);
	outb(COM1_LCR, 0x80);  /* DLAB */
	outb(COM1_DATA, 0x01); /* 115200 baud */
	outb(COM1_IER, 0x00);
	outb(COM1_LCR, 0x03);  /* 8N1 */
	outb(COM1_FCR, 0x07);  /* FIFO on, both cleared */
	outb(COM1_MCR, 0x03);  /* DTR, RTS */
}

static void serial_putc(char c)
{
	/* Bounded: a UART that never reports THRE must not hang the guest. */
	for (int i = 0; i < 100000 && !(inb(COM1_LSR) & LSR_THRE); i++)
		cpu_relax();
	outb(COM1_DATA, (uint8_t)c);
}

void kputs(const char *s)
{
	for (; *s; s++)
		serial_putc(*s);
}

void kprintf(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf_(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	kputs(buf);
}

int serial_getc_nowait(void)
{
	if (!(inb(COM1_LSR) & LSR_DR))
		return -1;
	return inb(COM1_DATA);
}

/* Caller holds drain_lock. */
static void drain_some(unsigned max)
{
	uint32_t head = cons_head, tail = cons_tail;
	unsigned n = 0;

	if (head == tail || !(inb(COM1_LSR) & LSR_THRE))
		return;
	/* THRE with the FIFO enabled means the whole FIFO is free. */
	while (tail != head && n < max) {
		outb(COM1_DATA, (uint8_t)cons_buf[tail % CONS_SIZE]);
		tail++;
		n++;
	}
	__atomic_store_n(&cons_tail, tail, __ATOMIC_RELEASE);
}

void cons_drain(void)
{
	if (cons_head == cons_tail || !spin_trylock(&drain_lock))
		return;
	drain_some(DRAIN_STEP);
	spin_unlock(&drain_lock);
}

void cons_flush(void)
{
	cons_flush_tries(1000000);
}

/* Bounded wait for the lock: the holder may be the code we interrupted. */
void cons_flush_tries(int tries)
{
	for (int i = 0; i < tries; i++) {
		if (spin_trylock(&drain_lock)) {
			for (int j = 0; j < 1000000 && cons_head != cons_tail; j++)
				drain_some(FIFO_SIZE);
			spin_unlock(&drain_lock);
			return;
		}
		cpu_relax();
	}
}

static void cons_putc_locked(char c)
{
	/* Full: drain synchronously rather than lose text (drainers never
	 * take cons_lock, so this cannot deadlock). */
	while (cons_head - cons_tail >= CONS_SIZE)
		cons_flush();
	cons_buf[cons_head % CONS_SIZE] = c;
	__atomic_store_n(&cons_head, cons_head + 1, __ATOMIC_RELEASE);
}

void cons_write(const char *s, size_t n)
{
	spin_lock(&cons_lock);
	for (size_t i = 0; i < n; i++)
		cons_putc_locked(s[i]);
	spin_unlock(&cons_lock);
}

void printf_(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf_(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	cons_write(buf, (size_t)n);
}
