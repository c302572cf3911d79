/*
 * Safety holes of issue 6, section 2, each reproduced: a console nobody
 * reads, a half-started VM, a restored VM and the file underneath, VMM
 * writes during a hand-over.  Those that need a guest are skipped on a
 * machine without KVM (the harness says so).
 */
#include "harness/harness.h"
#include "harness/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

TestSuite(safety, H_FIXTURES, .timeout = 120);

static uint64_t u64_at(json_t *obj, const char *a, const char *b)
{
	json_t *o = json_object_get(obj, a);
	return (uint64_t)json_integer_value(json_object_get(o, b));
}

/*
 * A guest that writes to COM1 as fast as it can, while the other end of
 * the console is a FIFO the test holds open and never reads.  Before the
 * console was buffered, the vCPU blocked in write() holding the I/O lock
 * and `stop`, `snapshot-save` and SIGTERM never returned.
 */
Test(safety, full_console_does_not_hang_the_vmm)
{
	/* mov dx,0x3f8; mov al,'x'; 1: out dx,al; jmp 1b */
	static const uint8_t spam[] = { 0x66, 0xBA, 0xF8, 0x03, 0xB0, 0x78,
					0xEE, 0xEB, 0xFD };
	const char *img = h_image_aout("spam.img", spam, sizeof(spam));
	const char *fifo = h_path("console.fifo");
	cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
	/* The reader exists (so ferry's open succeeds) and never reads. */
	int rd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	cr_assert_geq(rd, 0);
	char serial[PATH_MAX + 8];
	snprintf(serial, sizeof(serial), "file:%s", fifo);
	struct h_vm *vm = h_spawn("vm", H_CONTROL | H_NO_SERIAL, "run",
				  "--kernel", img, "--memory", "64M",
				  "--serial", serial, NULL);
	h_wait_control(vm, 30);

	/* The pipe and the VMM's buffer fill; then bytes are dropped, and
	 * counted where a user can see it. */
	uint64_t dropped = 0;
	h_assert(h_wait_for(({
		json_t *r = h_qmp_ok(vm, "{\"execute\":\"query-vm\"}");
		dropped = u64_at(r, "serial", "dropped-bytes");
		json_decref(r);
		dropped > 0; }), 60), "serial.dropped-bytes stays 0");

	/* Everything that waits for the vCPUs still returns. */
	double t0 = h_now();
	json_decref(h_qmp_ok(vm, "{\"execute\":\"stop\"}"));
	char *st = h_status(vm);
	h_assert(!strcmp(st, "paused"), "status %s after stop", st);
	free(st);
	h_snapshot(vm, "full-console.snap");
	json_decref(h_qmp_ok(vm, "{\"execute\":\"cont\"}"));
	h_assert(h_now() - t0 < 10, "stop/snapshot/cont took %.1f s", h_now() - t0);

	t0 = h_now();
	kill(vm->pid, SIGTERM);
	int rc = h_vm_wait(vm, 10);
	h_assert(rc == 128 + SIGTERM, "exit %d after SIGTERM", rc);
	h_assert(h_now() - t0 < 5, "SIGTERM took %.1f s", h_now() - t0);
	close(rd);
}

/*
 * vm_start is all or nothing: when vCPU thread 2 of 3 cannot be created,
 * vCPU 0 must not have run a single instruction.  The hook waits 200 ms
 * before failing, so without the start gate vCPU 0 would surely have run
 * its first `out` to the heartbeat port.
 */
Test(safety, failed_vcpu_thread_runs_no_guest_code)
{
	/* mov al,'A'; out 0xe9,al; 1: hlt; jmp 1b */
	static const uint8_t beat[] = { 0xB0, 0x41, 0xE6, 0xE9, 0xF4, 0xEB, 0xFD };
	const char *img = h_image_aout("beat.img", beat, sizeof(beat));
	struct h_vm *vm = h_spawn("vm", H_HEARTBEAT, "run", "--kernel", img,
				  "--memory", "64M", "--vcpus", "3",
				  "--x-fail-vcpu-thread", "2", NULL);
	int rc = h_vm_wait(vm, 30);
	h_assert(rc == H_EXIT_VMM, "exit %d, wanted %d", rc, H_EXIT_VMM);
	h_assert(h_file_contains(vm->err_path, "vCPU thread 2"),
		 "the error does not name the thread that failed");
	h_assert(h_file_size(vm->heartbeat) == 0,
		 "vCPU 0 ran guest code (%lld heartbeat bytes) although the "
		 "start failed", (long long)h_file_size(vm->heartbeat));
}

/* The same image with every thread created: the heartbeat byte arrives,
 * so the test above can tell. */
Test(safety, the_beat_image_beats)
{
	static const uint8_t beat[] = { 0xB0, 0x41, 0xE6, 0xE9, 0xF4, 0xEB, 0xFD };
	const char *img = h_image_aout("beat.img", beat, sizeof(beat));
	struct h_vm *vm = h_spawn("vm", H_HEARTBEAT | H_CONTROL, "run", "--kernel",
				  img, "--memory", "64M", "--vcpus", "3", NULL);
	h_wait_control(vm, 30);
	h_assert(h_wait_for(h_file_size(vm->heartbeat) == 1, 30),
		 "no heartbeat from the beat image");
	h_vm_stop(vm);
}

Test(safety, x_fail_vcpu_thread_needs_an_index)
{
	char *err = NULL;
	int rc = h_run(20, NULL, &err, "run", "--kernel", h_image_halt(),
		       "--x-fail-vcpu-thread", "one", NULL);
	h_assert(rc == H_EXIT_USAGE && strstr(err, "x-fail-vcpu-thread"),
		 "exit %d, stderr: %s", rc, err);
	free(err);
}

/* ---- a destination that never answers READY ------------------------------ */

struct stall_dest {
	int listen_fd, port;
	struct w_buf accept;    /* ACCEPT, empty: made here, sent by the thread */
	volatile bool stop;
	pthread_t thread;
};

/* Accept one source, ACCEPT its HELLO at once, then read and discard
 * everything and never say READY. */
static void *stall_dest_thread(void *arg)
{
	struct stall_dest *d = arg;
	int fd = accept(d->listen_fd, NULL, NULL);
	if (fd < 0)
		return NULL;
	if (write(fd, d->accept.p, d->accept.len) != (ssize_t)d->accept.len)
		goto out;
	static uint8_t sink[1 << 16];
	while (!d->stop) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) > 0 && read(fd, sink, sizeof(sink)) <= 0)
			break;
	}
out:
	close(fd);
	return NULL;
}

static struct stall_dest *stall_dest_start(void)
{
	struct stall_dest *d = calloc(1, sizeof(*d));
	d->listen_fd = h_listen_local(&d->port);
	cr_assert(d->listen_fd >= 0, "listen: %s", strerror(-d->listen_fd));
	w_put_record(&d->accept, 0x81, NULL, 0);
	pthread_create(&d->thread, NULL, stall_dest_thread, d);
	return d;
}

static void stall_dest_stop(struct stall_dest *d)
{
	d->stop = true;
	shutdown(d->listen_fd, SHUT_RDWR);
	pthread_join(d->thread, NULL);
	close(d->listen_fd);
	w_free(&d->accept);
	free(d);
}

/*
 * Stop-and-copy has a deadline: a destination that takes the whole machine
 * and never answers READY makes the migration fail within ~10 s and the
 * guest run again here.  While the source waits, the VM is held, and a VMM
 * write to guest memory is refused (after the final dirty harvest it would
 * never be sent); afterwards it is accepted again.
 */
Test(safety, ready_deadline_and_no_memory_write_during_handover)
{
	struct h_vm *vm = h_spawn("src", H_CONTROL, "run", "--kernel",
				  h_image_halt(), "--memory", "64M", NULL);
	h_wait_control(vm, 30);
	struct stall_dest *d = stall_dest_start();
	json_decref(h_qmp_ok(vm, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"tcp:127.0.0.1:%d\"}}", d->port));
	h_assert(h_wait_for(({ char *s = h_status(vm);
			       bool f = !strcmp(s, "finish-migrate");
			       free(s); f; }), 30),
		 "the source never reached stop-and-copy");
	double t_held = h_now();
	json_t *e = h_qmp_err(vm, "{\"execute\":\"x-guest-memory-write\","
			      "\"arguments\":{\"gpa\":4096,\"hex\":\"ff\"}}");
	const char *desc = json_string_value(json_object_get(e, "desc"));
	h_assert(desc && strstr(desc, "migration"),
		 "a write during the hand-over was not refused clearly: %s", desc);
	json_decref(e);

	json_t *q = h_wait_migration(vm, 30, NULL);
	const char *st = json_string_value(json_object_get(q, "status"));
	const char *why = json_string_value(json_object_get(q, "error-desc"));
	h_assert(st && !strcmp(st, "failed") && why && strstr(why, "READY"),
		 "wanted failed with an error-desc about READY, got %s: %s", st, why);
	h_assert(h_now() - t_held < 20, "the source waited %.1f s for READY",
		 h_now() - t_held);
	json_t *h = json_object_get(json_object_get(q, "ferry"), "handover");
	h_assert(json_is_false(json_object_get(h, "commit-sent")), "COMMIT sent?");
	json_decref(q);
	char *s = h_status(vm);
	h_assert(!strcmp(s, "running"), "status %s after the failed hand-over", s);
	free(s);
	json_decref(h_qmp_ok(vm, "{\"execute\":\"x-guest-memory-write\","
			     "\"arguments\":{\"gpa\":4096,\"hex\":\"ff\"}}"));
	stall_dest_stop(d);
	h_vm_stop(vm);
}
