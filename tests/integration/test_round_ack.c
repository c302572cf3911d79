/*
 * Round-ack from a destination that lies (docs/migration-stream.md): the
 * source keeps one round unconfirmed and takes confirmations in order, so
 * one for a round it never sent fails the migration with a clear reason,
 * and the guest runs on at the source.  The destination here is this
 * test: it agrees to round-ack, then answers round 0 with round 7.
 */
#include "harness/harness.h"
#include "harness/wire.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(round_ack, H_FIXTURES, .timeout = 120);

#define REC_ROUND_END 0x11u
#define REC_ACCEPT    0x81u
#define REC_ROUND_ACK 0x86u
#define PREAMBLE_LEN  32u   /* magic 8 | version | role | session 16 */

struct liar {
	int listen_fd, port;
	uint32_t acked_as;  /* the round the lie names */
	bool saw_round_end;
	pthread_t thread;
};

static void *liar_thread(void *arg)
{
	struct liar *l = arg;
	int fd = accept(l->listen_fd, NULL, NULL);
	if (fd < 0)
		return NULL;
	uint8_t pre[PREAMBLE_LEN];
	uint32_t type, len;
	char *p = NULL;
	if (!w_recv_all(fd, pre, sizeof(pre), 20) ||
	    !w_recv_record(fd, &type, &p, &len, 20))
		goto out;
	free(p);
	p = NULL;
	static const char accept_json[] = "{\"capabilities\":{\"round-ack\":true}}";
	struct w_buf b = { 0 };
	w_put_record(&b, REC_ACCEPT, accept_json, sizeof(accept_json) - 1);
	w_send_all(fd, b.p, b.len);
	w_free(&b);
	/* Read on to round 0's end, then confirm a round never sent. */
	while (w_recv_record(fd, &type, &p, &len, 30)) {
		free(p);
		p = NULL;
		if (type != REC_ROUND_END)
			continue;
		l->saw_round_end = true;
		struct w_buf a = { 0 };
		w_put_record(&a, REC_ROUND_ACK, &l->acked_as, sizeof(l->acked_as));
		w_send_all(fd, a.p, a.len);
		w_free(&a);
		break;
	}
	w_wait_closed(fd, 30);
out:
	free(p);
	close(fd);
	return NULL;
}

Test(round_ack, a_confirmation_out_of_order_fails_the_migration_not_the_guest)
{
	struct h_vm *vm = h_spawn("src", H_CONTROL, "run", "--kernel",
				  h_image_halt(), "--memory", "64M", NULL);
	h_wait_control(vm, 30);
	struct liar l = { .acked_as = 7 };
	l.listen_fd = h_listen_local(&l.port);
	cr_assert(l.listen_fd >= 0, "listen: %s", strerror(-l.listen_fd));
	pthread_create(&l.thread, NULL, liar_thread, &l);

	json_decref(h_qmp_ok(vm, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"tcp:127.0.0.1:%d\"}}", l.port));
	json_t *q = h_wait_migration(vm, 60, NULL);
	char *s = h_dump(q);
	const char *why = json_string_value(json_object_get(q, "error-desc"));
	h_assert(!strcmp(h_str(q, "status"), "failed") && why &&
		 strstr(why, "ROUND_ACK out of order") && strstr(why, "expected round 0"),
		 "wanted a failure naming the out-of-order confirmation: %s", s);
	free(s);
	json_decref(q);
	pthread_join(l.thread, NULL);
	close(l.listen_fd);
	h_assert(l.saw_round_end, "the source never ended round 0");
	char *st = h_status(vm);
	h_assert(!strcmp(st, "running"), "status %s after the failed migration", st);
	free(st);
	h_vm_stop(vm);
}
