/* uart8250.h - a 16550A UART at COM1 (0x3f8, IRQ 4): the serial console. */
#ifndef FERRY_UART8250_H
#define FERRY_UART8250_H

#include <stdbool.h>
#include <stddef.h>

struct vm;
struct uart;
struct outbuf_stats;

/**
 * uart_check_backend() - whether @backend is a serial backend's spelling,
 * without opening anything (so that a bad --serial is a command-line
 * error, found before the VM exists).
 * Return: 0, or -EINVAL with @err saying what is accepted.
 */
int uart_check_backend(const char *backend, char *err);

/* backend: "stdio" (stdout/stdin), "file:PATH" (output only), "none". */
int uart_create(struct vm *vm, const char *backend, struct uart **out,
		char *err);
/* The fd the host should read console input from, or -1. */
int uart_input_fd(struct uart *u);
/* Console output so far: written, dropped (nobody read it in time),
 * queued.  All zero for "none". */
void uart_output_stats(struct uart *u, struct outbuf_stats *st);
/* Wait up to @max_ms for queued output to go out; true when none is left. */
bool uart_drain(struct uart *u, unsigned max_ms);
/* How many bytes the receive side can take now. */
size_t uart_rx_space(struct uart *u);
/* Feed console input (host -> guest); returns bytes taken. */
size_t uart_receive(struct uart *u, const void *data, size_t len);

#endif
