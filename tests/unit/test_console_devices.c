/*
 * The console and heartbeat devices with an outside reader that never
 * reads, driven through the port I/O bus as a vCPU drives them (vm_pio),
 * on a VM without KVM (only the bus, the I/O lock and the devices).  The
 * reproduction of "a full console hangs the VMM": every access must return
 * at once, and what could not go out is counted.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "devices/device.h"
#include "devices/heartbeat.h"
#include "devices/uart8250.h"
#include "guest_abi.h"
#include "util/log.h"
#include "util/outbuf.h"
#include "vmm/vm.h"

static char dir[64];

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN); /* as ferry does */
	snprintf(dir, sizeof(dir), "/tmp/ferry-console-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(console_devices, .init = setup, .fini = teardown, .timeout = 30);

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static struct vm *bus_only_vm(void)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->io_lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->kvm_fd = vm->vm_fd = -1;
	return vm;
}

static void end_vm(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ndevices; i++)
		vm->devices[i]->ops->destroy(vm->devices[i]);
	free(vm);
}

/* n single-byte OUTs to port; returns the longest one, in seconds. */
static double outs(struct vm *vm, uint16_t port, unsigned n)
{
	double worst = 0;
	for (unsigned i = 0; i < n; i++) {
		uint8_t c = 'a' + i % 26;
		double t0 = now_s();
		vm_pio(vm, port, true, &c, 1);
		double dt = now_s() - t0;
		if (dt > worst)
			worst = dt;
	}
	return worst;
}

Test(console_devices, serial_to_a_fifo_nobody_reads)
{
	char fifo[96], backend[128];
	snprintf(fifo, sizeof(fifo), "%s/console", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	int rd = open(fifo, O_RDONLY | O_NONBLOCK);
	cr_assert_geq(rd, 0);
	snprintf(backend, sizeof(backend), "file:%s", fifo);

	struct vm *vm = bus_only_vm();
	struct uart *u = NULL;
	char err[ERR_MAX] = "";
	cr_assert_eq(uart_create(vm, backend, &u, err), 0, "%s", err);
	vm->uart = u;

	unsigned n = 400000; /* far more than the pipe and the buffer hold */
	double t0 = now_s();
	double worst = outs(vm, PORT_COM1, n);
	cr_assert_lt(worst, 1.0, "one OUT to COM1 took %.3f s", worst); /* blocking: never returns */
	cr_assert_lt(now_s() - t0, 10.0);

	/* The I/O lock is free between accesses: stop and snapshots get it. */
	cr_assert_eq(pthread_mutex_trylock(&vm->io_lock), 0);
	pthread_mutex_unlock(&vm->io_lock);

	struct outbuf_stats st;
	uart_output_stats(u, &st);
	cr_assert_gt(st.dropped, 0, "nothing dropped");
	cr_assert_eq(st.written + st.queued + st.dropped, n);

	/* The guest still sees an empty transmitter: it never waits. */
	uint8_t lsr = 0;
	vm_pio(vm, PORT_COM1 + 5, false, &lsr, 1);
	cr_assert_eq(lsr & 0x60, 0x60, "LSR 0x%02x: THR not empty", lsr);

	t0 = now_s();
	end_vm(vm); /* flushes for at most its bound, then gives up */
	cr_assert_lt(now_s() - t0, 2.0, "teardown took %.1f s", now_s() - t0);
	close(rd);
}

Test(console_devices, heartbeat_to_a_socket_nobody_reads)
{
	char path[96], backend[128];
	snprintf(path, sizeof(path), "%s/hb.sock", dir);
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert_eq(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(ls, 1), 0);
	snprintf(backend, sizeof(backend), "unix:%s", path);

	struct vm *vm = bus_only_vm();
	struct heartbeat *hb = NULL;
	char err[ERR_MAX] = "";
	cr_assert_eq(heartbeat_create(vm, backend, &hb, err), 0, "%s", err);
	vm->heartbeat = hb;
	int obs = accept(ls, NULL, NULL); /* connected, never reads */
	cr_assert_geq(obs, 0);

	unsigned n = 2000000;
	double worst = outs(vm, PORT_HEARTBEAT, n);
	cr_assert_lt(worst, 1.0, "one heartbeat took %.3f s", worst); /* blocking: never returns */
	cr_assert_eq(heartbeat_count(hb), n);
	struct outbuf_stats st;
	heartbeat_output_stats(hb, &st);
	cr_assert_gt(st.dropped, 0);
	cr_assert_eq(st.written + st.queued + st.dropped, n);
	end_vm(vm);
	close(obs);
	close(ls);
}

/* A UART state whose registers hold bits no guest write can leave there
 * is refused, naming the register; the device keeps its own state. */
Test(console_devices, uart_state_with_impossible_bits_is_refused)
{
	struct vm *vm = bus_only_vm();
	struct uart *u = NULL;
	char err[ERR_MAX] = "", backend[128];
	snprintf(backend, sizeof(backend), "file:%s/out", dir);
	cr_assert_eq(uart_create(vm, backend, &u, err), 0, "%s", err);
	struct device *d = vm_find_device(vm, "uart8250");
	cr_assert(d);
	struct buf good;
	buf_init(&good);
	d->ops->save(d, &good);
	cr_assert_eq(d->ops->load(d, 1, good.data, good.len, err), 0, "%s", err);

	static const struct { unsigned reg; uint8_t v; const char *needle; } bad[] = {
		{ 0, 0x10, "ier 0x10" }, { 1, 0x02, "fcr 0x02" },
		{ 3, 0x20, "mcr 0x20" }, { 4, 0x01, "lsr_err 0x01" },
		{ 9, 0x02, "thr_interrupt 0x02" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf b;
		buf_init(&b);
		buf_put(&b, good.data, good.len);
		b.data[bad[i].reg] = bad[i].v;
		cr_expect_eq(d->ops->load(d, 1, b.data, b.len, err), -EPROTO,
			     "%s accepted", bad[i].needle);
		cr_expect(strstr(err, bad[i].needle), "'%s' does not name %s",
			  err, bad[i].needle);
		buf_free(&b);
	}
	buf_free(&good);
	end_vm(vm);
}
