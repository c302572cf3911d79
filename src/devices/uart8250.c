/*
 * A 16550A as the guest sees it: registers, the receive FIFO and the
 * interrupt line.  Output goes through at once into a bounded buffer that
 * never blocks (util/outbuf.h), so THR is always empty (LSR.THRE|TEMT), a
 * polling guest never waits, and a console nobody reads costs the guest
 * its output (counted), never its vCPU.
 */
#include "devices/uart8250.h"
#include "devices/device.h"
#include "vmm/vm.h"
#include "guest_abi.h"
#include "util/log.h"
#include "util/outbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UART_IRQ 4
#define UART_RX_FIFO 64  /* >= the 16 bytes of a 16550A FIFO */
#define UART_OUT_BUFFER (64u << 10) /* console bytes held while the reader lags */
#define UART_CLOSE_FLUSH_MS 500     /* at exit, what a live reader still gets */

/* Register offsets and bits (National Semiconductor PC16550D data sheet). */
enum { REG_RBR_THR, REG_IER, REG_IIR_FCR, REG_LCR, REG_MCR, REG_LSR,
       REG_MSR, REG_SCR };
#define IER_RDI   0x01
#define IER_THRI  0x02
#define IER_RLSI  0x04
#define IIR_NONE  0x01
#define IIR_THRI  0x02
#define IIR_RDI   0x04
#define IIR_RLSI  0x06
#define IIR_FIFO  0xc0
#define FCR_FIFO_ENABLE 0x01
#define FCR_CLEAR_RX    0x02
#define LCR_DLAB  0x80
#define LSR_DR    0x01
#define LSR_OE    0x02
#define LSR_THRE  0x20
#define LSR_TEMT  0x40
#define MCR_LOOP  0x10
#define MSR_CTS_DSR_DCD 0xb0

struct uart {
	struct device dev;
	struct outbuf *out;     /* NULL: output discarded (serial none) */
	int in_fd;
	/* Guest-visible state (saved). */
	uint8_t ier, fcr, lcr, mcr, lsr_err, msr, scr, dll, dlm;
	bool thr_interrupt;     /* THR-empty interrupt pending */
	uint8_t rx[UART_RX_FIFO];
	unsigned rx_head, rx_count;
	bool irq_level;
};

static struct uart *to_uart(struct device *d) { return (struct uart *)d; }

static uint8_t uart_iir(const struct uart *u)
{
	uint8_t fifo = (u->fcr & FCR_FIFO_ENABLE) ? IIR_FIFO : 0;
	if ((u->ier & IER_RLSI) && (u->lsr_err & LSR_OE))
		return IIR_RLSI | fifo;
	if ((u->ier & IER_RDI) && u->rx_count)
		return IIR_RDI | fifo;
	if ((u->ier & IER_THRI) && u->thr_interrupt)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

static void uart_update_irq(struct uart *u)
{
	bool level = !(uart_iir(u) & IIR_NONE);
	if (level != u->irq_level) {
		u->irq_level = level;
		vm_set_irq(u->dev.vm, UART_IRQ, level);
	}
}

static void uart_emit(struct uart *u, uint8_t c)
{
	/* Never waits: this runs on a vCPU thread holding the I/O lock. */
	if (u->out)
		outbuf_write(u->out, &c, 1);
}

static size_t uart_rx_push(struct uart *u, const uint8_t *data, size_t len)
{
	size_t n = 0;
	while (n < len && u->rx_count < UART_RX_FIFO) {
		u->rx[(u->rx_head + u->rx_count) % UART_RX_FIFO] = data[n++];
		u->rx_count++;
	}
	return n;
}

static void uart_out(struct device *d, uint16_t port, const void *data,
		     unsigned size)
{
	struct uart *u = to_uart(d);
	uint8_t v = *(const uint8_t *)data;
	(void)size;

	switch (port - PORT_COM1) {
	case REG_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			u->dll = v;
		} else if (u->mcr & MCR_LOOP) {
			uart_rx_push(u, &v, 1);
		} else {
			uart_emit(u, v);
			/* Sent at once: THR is empty again. */
			u->thr_interrupt = true;
		}
		break;
	case REG_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
		} else {
			/* Enabling THRI with THR empty raises it at once. */
			if (!(u->ier & IER_THRI) && (v & IER_THRI))
				u->thr_interrupt = true;
			u->ier = v & 0x0f;
		}
		break;
	case REG_IIR_FCR:
		if (v & FCR_CLEAR_RX)
			u->rx_count = 0;
		u->fcr = v & 0xc9;
		break;
	case REG_LCR: u->lcr = v; break;
	case REG_MCR: u->mcr = v & 0x1f; break;
	case REG_SCR: u->scr = v; break;
	default: break; /* LSR, MSR are read-only */
	}
	uart_update_irq(u);
}

static void uart_in(struct device *d, uint16_t port, void *data,
		    unsigned size)
{
	struct uart *u = to_uart(d);
	uint8_t v = 0;

	switch (port - PORT_COM1) {
	case REG_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			v = u->dll;
		} else if (u->rx_count) {
			v = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % UART_RX_FIFO;
			u->rx_count--;
		}
		break;
	case REG_IER: v = (u->lcr & LCR_DLAB) ? u->dlm : u->ier; break;
	case REG_IIR_FCR:
		v = uart_iir(u);
		/* Reading IIR acknowledges a THR-empty interrupt. */
		if ((v & 0x0f) == IIR_THRI)
			u->thr_interrupt = false;
		break;
	case REG_LCR: v = u->lcr; break;
	case REG_MCR: v = u->mcr; break;
	case REG_LSR:
		v = LSR_THRE | LSR_TEMT | u->lsr_err |
		    (u->rx_count ? LSR_DR : 0);
		u->lsr_err = 0; /* error bits clear on read */
		break;
	case REG_MSR:
		v = (u->mcr & MCR_LOOP) ? (uint8_t)((u->mcr & 0x0f) << 4)
					: (u->msr | MSR_CTS_DSR_DCD);
		break;
	case REG_SCR: v = u->scr; break;
	}
	memset(data, 0, size);
	*(uint8_t *)data = v;
	uart_update_irq(u);
}

/* State v1: ier fcr lcr mcr lsr_err msr scr dll dlm thr_interrupt,
 * then rx_count and the FIFO bytes in order. */
static void uart_save(struct device *d, struct buf *out)
{
	struct uart *u = to_uart(d);
	uint8_t regs[] = { u->ier, u->fcr, u->lcr, u->mcr, u->lsr_err,
			   u->msr, u->scr, u->dll, u->dlm, u->thr_interrupt };
	buf_put(out, regs, sizeof(regs));
	buf_put_u32(out, u->rx_count);
	for (unsigned i = 0; i < u->rx_count; i++)
		buf_put_u8(out, u->rx[(u->rx_head + i) % UART_RX_FIFO]);
}

static int uart_load(struct device *d, uint32_t version, const void *data,
		     size_t len, char *err)
{
	struct uart *u = to_uart(d);
	struct cursor c;
	uint8_t regs[10];

	if (version != 1)
		return err_set(err, -EPROTO, "uart8250: unknown state version %u",
			       version);
	cursor_init(&c, data, len);
	cursor_get(&c, regs, sizeof(regs));
	uint32_t n = cursor_u32(&c);
	if (c.short_read || n > UART_RX_FIFO || n != c.left)
		return err_set(err, -EPROTO, "uart8250: malformed state (%zu bytes)",
			       len);
	/* The bits a guest write can leave set (uart_out's masks). */
	static const struct { const char *name; uint8_t ok; } fields[10] = {
		{ "ier", 0x0f }, { "fcr", 0xc9 }, { "lcr", 0xff }, { "mcr", 0x1f },
		{ "lsr_err", LSR_OE }, { "msr", 0xff }, { "scr", 0xff },
		{ "dll", 0xff }, { "dlm", 0xff }, { "thr_interrupt", 0x01 },
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (regs[i] & ~fields[i].ok)
			return err_set(err, -EPROTO,
				       "uart8250: %s 0x%02x has bits a guest cannot set (0x%02x)",
				       fields[i].name, regs[i], regs[i] & ~fields[i].ok);
	u->ier = regs[0]; u->fcr = regs[1]; u->lcr = regs[2];
	u->mcr = regs[3]; u->lsr_err = regs[4]; u->msr = regs[5];
	u->scr = regs[6]; u->dll = regs[7]; u->dlm = regs[8];
	u->thr_interrupt = regs[9];
	u->rx_head = 0;
	u->rx_count = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t b = cursor_u8(&c);
		uart_rx_push(u, &b, 1);
	}
	u->irq_level = false;
	uart_update_irq(u);
	return 0;
}

static void uart_destroy(struct device *d)
{
	struct uart *u = to_uart(d);
	outbuf_close(u->out, UART_CLOSE_FLUSH_MS);
	free(u);
}

static const struct device_ops uart_ops = {
	.name = "uart8250",
	.state_version = 1,
	.pio_in = uart_in,
	.pio_out = uart_out,
	.save = uart_save,
	.load = uart_load,
	.destroy = uart_destroy,
};

int uart_check_backend(const char *backend, char *err)
{
	if (!strcmp(backend, "stdio") || !strcmp(backend, "none") ||
	    (!strncmp(backend, "file:", 5) && backend[5]))
		return 0;
	return err_set(err, -EINVAL,
		       "serial: '%s' is not stdio, file:PATH or none", backend);
}

int uart_create(struct vm *vm, const char *backend, struct uart **out,
		char *err)
{
	int r = uart_check_backend(backend, err);
	if (r)
		return r;

	struct uart *u = calloc(1, sizeof(*u));
	if (!u)
		return err_set(err, -ENOMEM, "out of memory");
	u->dev.ops = &uart_ops;
	u->dev.port_base = PORT_COM1;
	u->dev.port_count = 8;
	u->in_fd = -1;
	u->thr_interrupt = false;

	if (!strcmp(backend, "stdio")) {
		u->in_fd = STDIN_FILENO;
		r = outbuf_open(&u->out, STDOUT_FILENO, false, UART_OUT_BUFFER,
				"serial", err);
		if (r) {
			free(u);
			return r;
		}
	} else if (!strncmp(backend, "file:", 5) && backend[5]) {
		int fd = open(backend + 5,
			      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd < 0) {
			int e = errno;
			free(u);
			return err_set(err, -e, "serial: cannot open %s: %s",
				       backend + 5, strerror(e));
		}
		r = outbuf_open(&u->out, fd, true, UART_OUT_BUFFER, "serial", err);
		if (r) {
			close(fd);
			free(u);
			return r;
		}
	}
	r = vm_add_device(vm, &u->dev);
	if (r) {
		uart_destroy(&u->dev);
		return err_set(err, r, "too many devices");
	}
	*out = u;
	return 0;
}

int uart_input_fd(struct uart *u) { return u->in_fd; }

bool uart_drain(struct uart *u, unsigned max_ms)
{
	return !u || !u->out || outbuf_drain(u->out, max_ms);
}

void uart_output_stats(struct uart *u, struct outbuf_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (u && u->out)
		outbuf_get_stats(u->out, st);
}

size_t uart_rx_space(struct uart *u)
{
	pthread_mutex_lock(&u->dev.vm->io_lock);
	size_t n = UART_RX_FIFO - u->rx_count;
	pthread_mutex_unlock(&u->dev.vm->io_lock);
	return n;
}

size_t uart_receive(struct uart *u, const void *data, size_t len)
{
	pthread_mutex_lock(&u->dev.vm->io_lock);
	size_t n = uart_rx_push(u, data, len);
	if (n < len)
		u->lsr_err |= LSR_OE;
	uart_update_irq(u);
	pthread_mutex_unlock(&u->dev.vm->io_lock);
	return n;
}
