/*
 * A destination (`ferry run --incoming`) fed crafted bytes: damaged,
 * truncated or lying streams must be rejected with a message that names
 * the problem.  Before the destination has accepted a source, such a peer
 * is dropped and the destination goes on waiting for the real one; after
 * it, the migration fails and the process ends with 120.
 *
 * The framing is rebuilt (harness/wire.c) from docs/migration-stream.md,
 * not from the VMM's headers, so that the document is what these tests
 * hold the code to.
 */
#include "harness/harness.h"
#include "harness/wire.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <linux/kvm.h>

TestSuite(migration_stream, H_FIXTURES, .timeout = 60);

/* docs/migration-stream.md */
#define MAGIC      "FERRYMIG"
#define VERSION    2u
#define ROLE_MAIN  1u
#define ROLE_PAGE_REQUESTS 3u
#define ROLE_BULK_PAGES 4u
#define PREAMBLE_LEN 32  /* magic, version, role, session id */
#define REC_HELLO     0x01u
#define REC_RAM_PAGES 0x10u
#define REC_ROUND_END 0x11u
#define REC_RAM_AHEAD 0x13u
#define REC_ACCEPT    0x81u
#define REC_REFUSE    0x82u
#define REC_ERROR     0x85u

/*
 * Send @b to a fresh destination, close, and expect it to end with 120
 * and a message containing @needle on stderr.
 */
static struct h_vm *feed(const struct w_buf *b, bool keep_open, int *fd_out)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	int fd = w_connect(dst->port);
	w_send_all(fd, b->p, b->len);
	if (keep_open)
		*fd_out = fd;
	else
		close(fd);
	return dst;
}

/* Rejected after ACCEPT: the migration fails and the process ends. */
static void expect_rejected(struct h_vm *dst, const char *needle)
{
	int rc = h_vm_wait(dst, 30);
	char *e = h_vm_stderr(dst);
	h_assert(rc == H_EXIT_VMM, "destination exited %d, wanted %d; stderr: %s",
		 rc, H_EXIT_VMM, e);
	h_assert(strcasestr(e, needle), "stderr does not mention '%s': %s", needle,
		 e);
	h_assert(!h_control_alive(dst), "the control socket outlived the process");
	free(e);
}

/* The next record on the return path is REFUSE, and it says @needle. */
static void expect_refuse_record(int fd, const char *needle)
{
	uint32_t type, len;
	char *why = NULL;
	h_assert(w_recv_record(fd, &type, &why, &len, 20),
		 "no REFUSE on the return path");
	h_assert(type == REC_REFUSE && strstr(why, needle),
		 "wanted REFUSE saying \"%s\", got 0x%x '%s'", needle, type, why);
	free(why);
}

/* Rejected in the handshake: the peer is dropped with a message naming
 * the problem, and the destination still waits for a source. */
static void expect_dropped(struct h_vm *dst, const char *needle)
{
	h_assert(h_wait_stderr(dst, "dropped, still waiting for the source", 30),
		 "the peer was not dropped");
	char *e = h_vm_stderr(dst);
	h_assert(strcasestr(e, needle), "stderr does not mention '%s': %s", needle,
		 e);
	free(e);
	h_assert(!h_vm_exited(dst), "the destination ended");
	json_t *q = h_query_migrate(dst);
	h_assert(!strcmp(json_string_value(json_object_get(q, "status")) ?: "",
			 "setup"), "the destination is not waiting any more");
	json_decref(q);
	json_decref(h_qmp_ok(dst, "{\"execute\":\"quit\"}"));
	int rc = h_vm_wait(dst, 20);
	h_assert(rc == 0, "destination exited %d after quit", rc);
}

/* ---- the tests ------------------------------------------------------------- */

Test(migration_stream, bad_magic)
{
	struct w_buf b = { 0 };
	w_put(&b, "FERRYMIX", 8);
	w_put_u32(&b, VERSION);
	w_put_record_x(&b, REC_HELLO, "{}", 2, 0);
	expect_dropped(feed(&b, false, NULL), "magic");
	free(b.p);
}

Test(migration_stream, unknown_version_is_refused)
{
	struct w_buf b = { 0 };
	w_put_preamble(&b, 999);
	w_put_record_x(&b, REC_HELLO, "{}", 2, 0);
	int fd;
	struct h_vm *dst = feed(&b, true, &fd);
	/* The source is told why, on the return path. */
	expect_refuse_record(fd, "999");
	close(fd);
	expect_dropped(dst, "version 999");
	free(b.p);
}

Test(migration_stream, record_with_bad_checksum)
{
	struct w_buf b = { 0 };
	const char *hello = "{\"memory\": 16777216}";
	w_put_preamble(&b, VERSION);
	w_put_record_x(&b, REC_HELLO, hello, strlen(hello), 0x00010000u);
	expect_dropped(feed(&b, false, NULL), "checksum");
	free(b.p);
}

Test(migration_stream, truncated_record_then_close)
{
	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	w_put_u32(&b, REC_HELLO);
	w_put_u32(&b, 1000);           /* claims 1000 bytes ... */
	w_put(&b, "{\"memory\": ", 11); /* ... sends 11, then hangs up */
	expect_dropped(feed(&b, false, NULL), "closed");
	free(b.p);
}

Test(migration_stream, truncated_preamble_then_close)
{
	struct w_buf b = { 0 };
	w_put(&b, "FERR", 4);
	expect_dropped(feed(&b, false, NULL), "closed");
	free(b.p);
}

/* Version 1 (magic and version only) is still read: the destination gets
 * as far as parsing its HELLO. */
Test(migration_stream, previous_version_is_accepted)
{
	struct w_buf b = { 0 };
	const char *junk = "not json";
	w_put(&b, MAGIC, 8);
	w_put_u32(&b, 1);
	w_put_record_x(&b, REC_HELLO, junk, strlen(junk), 0);
	expect_dropped(feed(&b, false, NULL), "JSON");
	free(b.p);
}

Test(migration_stream, unknown_role_is_rejected)
{
	struct w_buf b = { 0 };
	w_put_preamble_role(&b, VERSION, 77);
	int fd;
	struct h_vm *dst = feed(&b, true, &fd);
	/* A ferry peer (right magic and version) is told why. */
	expect_refuse_record(fd, "connection role 77 is unknown");
	close(fd);
	expect_dropped(dst, "role 77");
	free(b.p);
}

/*
 * A bulk-pages connection naming a session this destination has not
 * accepted (here: none yet) is refused with a reason that names the role
 * and the session, and the destination goes on waiting: the real source,
 * connecting next, is served (ACCEPT, or REFUSE where no VM can be built).
 */
Test(migration_stream, secondary_connection_of_an_unknown_session_is_refused)
{
	struct w_buf b = { 0 };
	w_put_preamble_role(&b, VERSION, ROLE_BULK_PAGES);
	int fd;
	struct h_vm *dst = feed(&b, true, &fd);
	/* w_put_preamble_role's fixed session id */
	expect_refuse_record(fd, "bulk-pages connection for session fe77010203040506");
	close(fd);
	h_assert(h_wait_stderr(dst, "dropped, still waiting for the source", 30),
		 "the peer was not dropped");
	h_assert(!h_vm_exited(dst), "the destination ended");

	int real = w_connect(dst->port);
	struct w_buf h = { 0 };
	w_put_plausible_hello(&h);
	w_send_all(real, h.p, h.len);
	w_free(&h);
	uint32_t type = 0, len;
	char *why = NULL;
	h_assert(w_recv_record(real, &type, &why, &len, 20), "the source got no answer");
	h_assert(type == REC_ACCEPT || type == REC_REFUSE, "HELLO answered with 0x%x '%s'",
		 type, why);
	h_assert(type == REC_ACCEPT || !strstr(why, "session"),
		 "the source was refused for the other's session: %s", why);
	free(why);
	close(real);
	if (type == REC_ACCEPT) {
		/* A KVM host built the VM; the source hanging up ends it. */
		h_vm_wait(dst, 30);
	} else {
		json_decref(h_qmp_ok(dst, "{\"execute\":\"quit\"}"));
		h_assert(h_vm_wait(dst, 20) == 0, "destination did not quit cleanly");
	}
	free(b.p);
}

/* A page-request connection before any migration: refused, and told. */
Test(migration_stream, secondary_role_without_a_migration_is_refused)
{
	struct w_buf b = { 0 };
	w_put_preamble_role(&b, VERSION, ROLE_PAGE_REQUESTS);
	int fd;
	struct h_vm *dst = feed(&b, true, &fd);
	expect_refuse_record(fd, "page-requests");
	close(fd);
	expect_dropped(dst, "page-requests");
	free(b.p);
}

/* Capabilities are negotiated before any VM is built: a source that
 * insists on one this ferry does not know is refused, and told which. */
Test(migration_stream, unknown_mandatory_capability_is_refused)
{
	struct w_buf b = { 0 };
	const char *hello = "{\"memory\": 16777216, \"capabilities\": "
			    "{\"warp-drive\": {\"value\": true, \"mandatory\": true}}}";
	w_put_preamble(&b, VERSION);
	w_put_record_x(&b, REC_HELLO, hello, strlen(hello), 0);
	int fd;
	struct h_vm *dst = feed(&b, true, &fd);
	expect_refuse_record(fd, "'warp-drive'");
	close(fd);
	expect_dropped(dst, "warp-drive");
	free(b.p);
}

Test(migration_stream, hello_with_garbage_json)
{
	struct w_buf b = { 0 };
	const char *junk = "{\"memory\": 5368, \"vcpus\": [}}garbage";
	w_put_preamble(&b, VERSION);
	w_put_record_x(&b, REC_HELLO, junk, strlen(junk), 0);
	expect_dropped(feed(&b, false, NULL), "JSON");
	free(b.p);
}

/* A HELLO describing a 16 MiB, 1-vCPU machine with @devices (the inside
 * of a JSON list); the rest as a real source sends it. */
static void put_hello_with_devices(struct w_buf *b, const char *devices)
{
	char hello[2048];
	int n = snprintf(hello, sizeof(hello),
		"{\"memory\": 16777216, \"vcpus\": 1, \"page-size\": 4096,"
		" \"slots\": [{\"gpa\": 0, \"size\": 16777216}],"
		" \"vcpu-state-version\": 1, \"devices\": [%s],"
		" \"cpuid\": [{\"function\": 0, \"index\": 0, \"flags\": 0,"
		" \"eax\": 13, \"ebx\": 0, \"ecx\": 0, \"edx\": 0}],"
		" \"exit-port\": \"ferry\"}", devices);
	w_put_record_x(b, REC_HELLO, hello, (uint32_t)n, 0);
}

/* A device this ferry does not have, or at a state version it lacks: the
 * HELLO is refused (the same check and message as a snapshot's restore),
 * before /dev/kvm is opened, so this runs on any host. */
Test(migration_stream, unknown_device_or_version_in_hello_is_refused)
{
	static const struct { const char *devices, *needle; } cases[] = {
		{ "{\"name\": \"uart8250\", \"version\": 1},"
		  "{\"name\": \"virtio-gpu\", \"version\": 1}",
		  "devices[1].name: device 'virtio-gpu' is unknown to this ferry" },
		{ "{\"name\": \"uart8250\", \"version\": 7}",
		  "devices[0].version: device 'uart8250' state version 7 is unknown "
		  "to this ferry (it has 1)" },
	};
	for (size_t i = 0; i < 2; i++) {
		struct w_buf b = { 0 };
		w_put_preamble(&b, VERSION);
		put_hello_with_devices(&b, cases[i].devices);
		int fd;
		struct h_vm *dst = feed(&b, true, &fd);
		expect_refuse_record(fd, cases[i].needle);
		close(fd);
		expect_dropped(dst, cases[i].needle);
		free(b.p);
	}
}

/* --max-memory is checked before /dev/kvm as well, in binary units. */
Test(migration_stream, hello_larger_than_max_memory_is_refused)
{
	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	put_hello_with_devices(&b, "");
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--max-memory", "8M", NULL);
	int fd = w_connect(dst->port);
	w_send_all(fd, b.p, b.len);
	const char *want = "the VM has 16.0 MiB of memory; this destination "
			   "hosts at most 8.0 MiB";
	expect_refuse_record(fd, want);
	close(fd);
	expect_dropped(dst, want);
	free(b.p);
}

/* A destination whose memory was prepared (--prealloc) takes a VM of
 * that size only: said before /dev/kvm, in REFUSE and in its log. */
Test(migration_stream, hello_other_than_prealloc_size_is_refused)
{
	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	put_hello_with_devices(&b, "");
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--memory", "8M", "--prealloc",
				      NULL);
	int fd = w_connect(dst->port);
	w_send_all(fd, b.p, b.len);
	const char *want = "this destination prepared 8.0 MiB of guest memory "
			   "(--memory with --prealloc), but the VM has 16.0 MiB";
	expect_refuse_record(fd, want);
	close(fd);
	expect_dropped(dst, want);
	free(b.p);
}

Test(migration_stream, first_record_not_hello)
{
	struct w_buf b = { 0 };
	uint8_t end[12] = { 0 };
	w_put_preamble(&b, VERSION);
	w_put_record_x(&b, REC_ROUND_END, end, sizeof(end), 0);
	expect_dropped(feed(&b, false, NULL), "HELLO");
	free(b.p);
}

/*
 * A HELLO the destination accepts: the one a real source sends.  A small
 * VM (the halting hand-made guest) is asked to migrate to a socket of
 * ours; we keep its HELLO and hang up (that migration fails, as it should).
 * One stream: the pages the tests then write go on the main connection.
 */
static char *real_hello(uint32_t *len)
{
	struct h_vm *src = h_spawn("hsrc", H_CONTROL, "run", "--kernel",
				   h_image_halt(), "--memory", "16M", NULL);
	h_wait_control(src, 20);
	int port, ls = h_listen_local(&port);
	h_assert(ls >= 0, "listen: %s", strerror(-ls));
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\",\"multifd-channels\":1}}", h_mig_uri(port)));
	struct pollfd pf = { .fd = ls, .events = POLLIN };
	h_assert(poll(&pf, 1, 20000) == 1, "the source did not connect");
	int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	h_assert(fd >= 0, "accept: %s", strerror(errno));
	close(ls);
	char pre[PREAMBLE_LEN];
	uint32_t version, role;
	h_assert(w_recv_all(fd, pre, PREAMBLE_LEN, 20) && !memcmp(pre, MAGIC, 8),
		 "the source's stream does not start with the preamble");
	memcpy(&version, pre + 8, 4);
	memcpy(&role, pre + 12, 4);
	h_assert(version == VERSION && role == ROLE_MAIN,
		 "the source's preamble says version %u role %u", version, role);
	uint32_t type;
	char *hello = NULL;
	h_assert(w_recv_record(fd, &type, &hello, len, 20) && type == REC_HELLO,
		 "the source's first record is not HELLO");
	close(fd);
	json_t *q = h_wait_migration(src, 30, NULL);
	h_assert(!strcmp(json_string_value(json_object_get(q, "status")), "failed"),
		 "a migration whose peer hung up after HELLO did not fail");
	json_decref(q);
	return hello;
}

Test(migration_stream, ram_pages_outside_guest_memory)
{
	uint32_t hlen;
	char *hello = real_hello(&hlen);
	json_t *h = json_loadb(hello, hlen, 0, NULL);
	h_assert(json_integer_value(json_object_get(h, "memory")) == 16 << 20,
		 "HELLO of a 16M VM says memory %lld",
		 (long long)json_integer_value(json_object_get(h, "memory")));
	json_decref(h);

	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	w_put_record_x(&b, REC_HELLO, hello, hlen, 0);
	int fd;
	struct h_vm *dst = feed(&b, true, &fd);
	uint32_t type, len;
	char *reply = NULL;
	h_assert(w_recv_record(fd, &type, &reply, &len, 20),
		 "no answer to a real HELLO");
	h_assert(type == REC_ACCEPT, "a real HELLO got 0x%x '%s', wanted ACCEPT",
		 type, reply);
	free(reply);

	/* One page at 1 GiB in a 16 MiB guest, well formed otherwise. */
	struct w_buf r = { 0 }, rec = { 0 };
	uint8_t page[4096];
	memset(page, 0xa5, sizeof(page));
	w_put_u32(&r, 0);           /* round */
	w_put_u32(&r, 1);           /* count */
	w_put_u64(&r, 1ULL << 30);  /* descriptor: gpa, no flags */
	w_put(&r, page, sizeof(page));
	w_put_record_x(&rec, REC_RAM_PAGES, r.p, (uint32_t)r.len, 0);
	w_send_all(fd, rec.p, rec.len);
	expect_rejected(dst, "outside guest memory");
	close(fd);
	free(r.p);
	free(rec.p);
	free(b.p);
	free(hello);
}

/* ---- through the fault-injecting proxy ----------------------------------- */

/* A destination reached through @px; the stream is sent and the socket
 * kept open, so only the proxy's fault can end it. */
static struct h_vm *feed_through(const struct w_buf *b,
				 const struct h_proxy_fault *f, int *fd,
				 struct h_proxy **px, const char *const *extra)
{
	const char *args[8] = { NULL };
	for (int i = 0; extra && extra[i] && i < 7; i++)
		args[i] = extra[i];
	struct h_vm *dst = h_incoming("dst", H_CONTROL, args[0], args[1],
				      args[2], args[3], args[4], args[5], NULL);
	*px = h_proxy_start_fault(dst->port, f);
	*fd = w_connect(h_proxy_port(*px));
	w_send_all(*fd, b->p, b->len);
	return dst;
}

/*
 * One bit flipped on the wire, inside HELLO's payload: the destination
 * names a checksum mismatch, drops that peer and waits on.  The same bytes through a proxy that flips
 * nothing are read as far as the JSON, which is garbage on purpose (a
 * good HELLO would need KVM next): the proxy's flip, not the stream, is
 * what the checksum caught.
 */
Test(migration_stream, bit_flipped_in_transit_is_a_checksum_mismatch)
{
	const char *junk = "{\"memory\": 16777216, \"vcpus\": [}}";
	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	size_t hello_at = b.len;
	w_put_record_x(&b, REC_HELLO, junk, strlen(junk), 0);

	struct h_proxy *px;
	int fd;
	/* The 6th byte of HELLO's payload. */
	struct h_proxy_fault flip = { .action = H_PROXY_FLIP,
				      .after = hello_at + 8 + 5 };
	struct h_vm *dst = feed_through(&b, &flip, &fd, &px, NULL);
	expect_dropped(dst, "checksum");
	h_assert(h_proxy_fired(px), "the proxy flipped nothing");
	close(fd);

	struct h_proxy_fault none = { 0 };
	dst = feed_through(&b, &none, &fd, &px, NULL);
	expect_dropped(dst, "JSON");
	close(fd);
	free(b.p);
}

/* A flip in a record's checksum field (the proxy's record trigger). */
Test(migration_stream, checksum_field_flipped_in_transit)
{
	const char *hello = "{\"memory\": 16777216}";
	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	w_put_record_x(&b, REC_HELLO, hello, strlen(hello), 0);
	struct h_proxy *px;
	int fd;
	struct h_proxy_fault flip = { .action = H_PROXY_FLIP, .record = REC_HELLO,
				      .record_dir = H_TO_DEST };
	struct h_vm *dst = feed_through(&b, &flip, &fd, &px, NULL);
	expect_dropped(dst, "checksum");
	h_assert(h_proxy_fired(px), "the proxy flipped nothing");
	close(fd);
	free(b.p);
}

/*
 * A peer that stalls in the middle of the preamble (the proxy stops
 * forwarding, the connection stays open) is dropped at the destination's
 * handshake deadline, and the destination waits on for the real source.
 */
Test(migration_stream, stalled_peer_ends_at_the_handshake_deadline)
{
	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	struct h_proxy *px;
	int fd;
	struct h_proxy_fault stall = { .action = H_PROXY_STALL, .after = 6 };
	static const char *const opts[] = { "--handshake-timeout", "2", NULL };
	struct h_vm *dst = feed_through(&b, &stall, &fd, &px, opts);
	double t0 = h_now();
	h_assert(h_wait_for(h_proxy_fired(px), 5), "the proxy did not stall");
	h_assert(h_wait_stderr(dst, "HELLO within", 15),
		 "no handshake deadline was reported within 15 s");
	double took = h_now() - t0;
	h_assert(took >= 1.5 && took < 8,
		 "the 2 s handshake deadline ended the stalled peer after %.1f s",
		 took);
	h_assert(!h_proxy_was_cut(px), "the proxy cut instead of stalling");
	h_assert(!h_vm_exited(dst), "the destination gave up instead of "
		 "waiting on for the real source");
	h_assert(h_control_alive(dst), "the waiting destination does not answer");
	close(fd);
	free(b.p);
}

/* A destination that has no VM yet has no memory to hash: it says so,
 * and goes on waiting. */
Test(migration_stream, memory_digest_refused_before_the_vm_exists)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	h_wait_control(dst, 20);
	json_t *e = h_qmp_err(dst, "{\"execute\":\"query-memory-digest\"}");
	const char *desc = json_string_value(json_object_get(e, "desc"));
	h_assert(desc && strstr(desc, "VM"),
		 "query-memory-digest without a VM: '%s'", desc ? desc : "");
	json_decref(e);
	h_assert(!h_vm_exited(dst) && h_control_alive(dst),
		 "the destination did not survive the refused command");
}

/*
 * An accepted source that goes silent: after --idle-timeout the
 * destination gives up, tells the source why with ERROR, and ends.
 */
Test(migration_stream, silent_source_after_accept_times_out)
{
	uint32_t hlen;
	char *hello = real_hello(&hlen);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--idle-timeout", "1",
				      NULL);
	int fd = w_connect(dst->port);
	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	w_put_record_x(&b, REC_HELLO, hello, hlen, 0);
	w_send_all(fd, b.p, b.len);
	uint32_t type, len;
	char *reply = NULL;
	h_assert(w_recv_record(fd, &type, &reply, &len, 20) && type == REC_ACCEPT,
		 "a real HELLO was not accepted");
	free(reply);
	double t0 = h_now();
	h_assert(w_recv_record(fd, &type, &reply, &len, 20),
		 "no ERROR on the return path after the idle timeout");
	double took = h_now() - t0;
	h_assert(type == REC_ERROR && strstr(reply, "1.00 s"),
		 "wanted ERROR naming the 1.00 s idle timeout, got 0x%x '%s'",
		 type, reply);
	h_assert(took > 0.8, "gave up after %.2f s with a 1 s idle timeout", took);
	free(reply);
	close(fd);
	expect_rejected(dst, "sent nothing for 1.00 s");
	free(b.p);
	free(hello);
}

/* ---- a destination that trusts no byte (issue 9) --------------------------- */

/* Send @b and expect REFUSE naming @needle on the return path, then the
 * peer dropped with the same words and the destination still waiting.
 * All of these are judged before KVM is opened, so they run anywhere. */
static void expect_refused(const struct w_buf *b, const char *needle,
			   double within_s)
{
	int fd;
	struct h_vm *dst = feed(b, true, &fd);
	double t0 = h_now();
	expect_refuse_record(fd, needle);
	h_assert(h_now() - t0 < within_s, "the refusal took %.1f s",
		 h_now() - t0);
	close(fd);
	expect_dropped(dst, needle);
}

/* A complete machine description of @memory bytes in one slot, with
 * @cpuid (a JSON array), as a real source's HELLO has it. */
static void put_hello_for(struct w_buf *b, unsigned long long memory,
			  const char *cpuid)
{
	char *hello = NULL;
	int n = asprintf(&hello,
			 "{\"memory\": %llu, \"vcpus\": 1, \"page-size\": 4096,"
			 " \"slots\": [{\"gpa\": 0, \"size\": %llu}],"
			 " \"vcpu-state-version\": 1, \"devices\": [], \"cpuid\": %s,"
			 " \"exit-port\": \"ferry\"}", memory, memory, cpuid);
	h_assert(n > 0, "asprintf");
	w_put_preamble(b, VERSION);
	w_put_record_x(b, REC_HELLO, hello, strlen(hello), 0);
	free(hello);
}

#define LEAF0 "{\"function\": 0, \"index\": 0, \"flags\": 0, \"eax\": 13," \
	" \"ebx\": 1970169159, \"ecx\": 1818588270, \"edx\": 1231384169}"
#define LEAF1 "{\"function\": 1, \"index\": 0, \"flags\": 0, \"eax\": 591594," \
	" \"ebx\": 2048, \"ecx\": 0, \"edx\": 0}"

/* A HELLO that claims 1 MiB: refused on its header, long before its
 * payload could arrive (only 1 KiB of it is ever sent), and well within
 * the 10 s handshake deadline it would otherwise wait out. */
Test(migration_stream, oversized_hello_is_refused_unread)
{
	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	w_put_u32(&b, REC_HELLO);
	w_put_u32(&b, 1u << 20);
	char junk[1024];
	memset(junk, ' ', sizeof(junk));
	w_put(&b, junk, sizeof(junk));
	expect_refused(&b, "HELLO of 1048576 bytes", 5);
	free(b.p);
}

/* No --max-memory: a guest larger than this host can give is refused. */
Test(migration_stream, memory_beyond_the_host_is_refused)
{
	struct w_buf b = { 0 };
	put_hello_for(&b, 1ULL << 40, "[" LEAF0 ", " LEAF1 "]");
	expect_refused(&b, "this host can give", 10);
	free(b.p);
}

/* Issue 9's CPUID hole: an entry for leaf 1 with index 1, all features
 * set, before the real one.  KVM would give the guest that one. */
Test(migration_stream, cpuid_entry_hidden_before_the_real_one_is_refused)
{
	struct w_buf b = { 0 };
	put_hello_for(&b, 16ULL << 20,
		      "[" LEAF0 ", {\"function\": 1, \"index\": 1, \"flags\": 0,"
		      " \"eax\": 591594, \"ebx\": 0, \"ecx\": 4294967295,"
		      " \"edx\": 4294967295}, " LEAF1 "]");
	expect_refused(&b, "leaf 0x1 has no sub-leaves but says index 1", 10);
	free(b.p);
}

Test(migration_stream, cpuid_entry_repeated_is_refused)
{
	struct w_buf b = { 0 };
	put_hello_for(&b, 16ULL << 20, "[" LEAF0 ", " LEAF1 ", " LEAF1 "]");
	expect_refused(&b, "CPUID entry 2 (leaf 0x1.0) repeats or contradicts entry 1", 10);
	free(b.p);
}

Test(migration_stream, cpuid_value_beyond_32_bits_is_refused)
{
	struct w_buf b = { 0 };
	put_hello_for(&b, 16ULL << 20,
		      "[{\"function\": 4294967297, \"index\": 0, \"flags\": 0,"
		      " \"eax\": 0, \"ebx\": 0, \"ecx\": 0, \"edx\": 0}]");
	expect_refused(&b, "cpuid entry 0: 'function'", 10);
	free(b.p);
}

/* After ACCEPT (a KVM host): a PIT state no KVM can have produced is
 * refused before it reaches KVM, naming the field, and the migration
 * fails. */
Test(migration_stream, lying_pit_state_is_refused)
{
	uint32_t hlen;
	char *hello = real_hello(&hlen);
	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	w_put_record_x(&b, REC_HELLO, hello, hlen, 0);
	int fd;
	struct h_vm *dst = feed(&b, true, &fd);
	uint32_t type, len;
	char *reply = NULL;
	h_assert(w_recv_record(fd, &type, &reply, &len, 20) && type == REC_ACCEPT,
		 "a real HELLO was not accepted");
	free(reply);

	/* DEVICE: u32 name length, name, u32 version, struct kvm_pit_state2 */
	struct kvm_pit_state2 pit = { 0 };
	pit.channels[0].mode = 9;
	pit.channels[0].count = 0x10000;
	struct w_buf dev = { 0 }, rec = { 0 };
	w_put_u32(&dev, 3);
	w_put(&dev, "pit", 3);
	w_put_u32(&dev, 1);
	w_put(&dev, &pit, sizeof(pit));
	w_put_record_x(&rec, 0x02 /* DEVICE */, dev.p, (uint32_t)dev.len, 0);
	w_send_all(fd, rec.p, rec.len);
	expect_rejected(dst, "pit: channel 0 mode is 9");
	close(fd);
	free(dev.p);
	free(rec.p);
	free(b.p);
	free(hello);
}

/* A key twice in HELLO: which one would each reader take?  Refused. */
Test(migration_stream, hello_with_a_key_twice_is_refused)
{
	struct w_buf b = { 0 };
	const char *hello = "{\"memory\": 16777216, \"memory\": 1099511627776}";
	w_put_preamble(&b, VERSION);
	w_put_record_x(&b, REC_HELLO, hello, strlen(hello), 0);
	expect_dropped(feed(&b, false, NULL), "duplicate");
	free(b.p);
}

/* ---- compressed pages (docs/migration-stream.md, encodings 1 and 2) ------- */

/* A real HELLO whose capabilities ask for @compression (mandatory), fed to
 * a fresh destination; returns it with the ACCEPT read, fd kept open. */
static struct h_vm *accepted_with(const char *compression, int *fd)
{
	uint32_t hlen;
	char *hello = real_hello(&hlen);
	json_t *h = json_loadb(hello, hlen, 0, NULL);
	h_assert(json_is_object(json_object_get(h, "capabilities")),
		 "the real HELLO has no capabilities");
	json_object_set_new(json_object_get(h, "capabilities"), "compression",
			    json_pack("{s:s, s:b}", "value", compression,
				      "mandatory", 1));
	char *txt = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	free(hello);
	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	w_put_record_x(&b, REC_HELLO, txt, (uint32_t)strlen(txt), 0);
	free(txt);
	struct h_vm *dst = feed(&b, true, fd);
	free(b.p);
	uint32_t type, len;
	char *reply = NULL;
	h_assert(w_recv_record(*fd, &type, &reply, &len, 20), "no answer to HELLO");
	json_t *acc = type == REC_ACCEPT ? json_loads(reply, 0, NULL) : NULL;
	const char *agreed = json_string_value(json_object_get(
		json_object_get(acc, "capabilities"), "compression"));
	h_assert(agreed && !strcmp(agreed, compression),
		 "wanted ACCEPT agreeing to %s, got 0x%x '%s'", compression, type, reply);
	json_decref(acc);
	free(reply);
	return dst;
}

/* One RAM_PAGES record: page 0, its data as @data with @encoding. */
static void send_one_page(int fd, uint16_t encoding, const void *data, size_t len)
{
	struct w_buf r = { 0 }, rec = { 0 };
	uint16_t count = 1;
	w_put_u32(&r, 0);            /* round */
	w_put(&r, &count, 2);
	w_put(&r, &encoding, 2);
	w_put_u64(&r, 0);            /* gpa 0, no flags */
	w_put(&r, data, len);
	w_put_record_x(&rec, REC_RAM_PAGES, r.p, (uint32_t)r.len, 0);
	w_send_all(fd, rec.p, rec.len);
	free(r.p);
	free(rec.p);
}

/* Agreed zstd, then bytes that are no zstd frame: the migration fails
 * naming it (the record's CRC is right: only the codec can tell). */
Test(migration_stream, corrupt_zstd_batch_is_rejected)
{
	int fd;
	struct h_vm *dst = accepted_with("zstd", &fd);
	uint8_t junk[512];
	memset(junk, 0x5c, sizeof(junk));
	send_one_page(fd, 1, junk, sizeof(junk));
	expect_rejected(dst, "does not start with a valid zstd frame header");
	close(fd);
}

/* Agreed lz4: a block that decodes to less than the page it claims. */
Test(migration_stream, short_lz4_batch_is_rejected)
{
	int fd;
	struct h_vm *dst = accepted_with("lz4", &fd);
	/* An LZ4 block of 5 literal bytes: token 0x50, then them. */
	static const uint8_t block[] = { 0x50, 'f', 'e', 'r', 'r', 'y' };
	send_one_page(fd, 2, block, sizeof(block));
	expect_rejected(dst, "lz4 data decompresses to 5 bytes where its descriptors need 4096");
	close(fd);
}

/* ---- why an accepted migration ended (needs KVM for the ACCEPT) ------------ */

/* A destination that has accepted @hello (a real source's); *fd is the
 * stream, right after ACCEPT. */
static struct h_vm *accepted_destination(const char *hello, uint32_t hlen,
					 int *fd)
{
	uint32_t type, len;
	char *reply = NULL;
	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	w_put_record_x(&b, REC_HELLO, hello, hlen, 0);
	struct h_vm *dst = feed(&b, true, fd);
	h_assert(w_recv_record(*fd, &type, &reply, &len, 20) && type == REC_ACCEPT,
		 "a real HELLO was not accepted");
	free(reply);
	free(b.p);
	return dst;
}

/* The source's ERROR is the destination's reason, in the source's words;
 * a reason that does not name its side gets "the source ended ...". */
Test(migration_stream, the_source_says_why_it_ended)
{
	static const struct { const char *sent, *logged; } cases[] = {
		{ "the source cancelled the migration (migrate-cancel there); the "
		  "guest stays at the source",
		  "incoming migration failed: the source cancelled the migration "
		  "(migrate-cancel there); the guest stays at the source" },
		{ "disk on fire",
		  "incoming migration failed: the source ended the migration: disk on fire" },
	};
	uint32_t hlen;
	char *hello = real_hello(&hlen);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd;
		struct h_vm *dst = accepted_destination(hello, hlen, &fd);
		struct w_buf e = { 0 };
		w_put_record_x(&e, REC_ERROR, cases[i].sent, strlen(cases[i].sent), 0);
		w_send_all(fd, e.p, e.len);
		expect_rejected(dst, cases[i].logged);
		close(fd);
		free(e.p);
	}
	free(hello);
}

/* Hanging up without ERROR is a source that could not say why. */
Test(migration_stream, a_source_that_hangs_up_is_named)
{
	uint32_t hlen;
	char *hello = real_hello(&hlen);
	int fd;
	struct h_vm *dst = accepted_destination(hello, hlen, &fd);
	close(fd);
	expect_rejected(dst, "the source closed the connection without saying why");
	free(hello);
}

/* ---- fault-ahead's list (needs KVM for the ACCEPT) ------------------------ */

/* RAM_AHEAD with one run: npages at gpa. */
static void send_ahead(int fd, uint64_t gpa, uint64_t npages)
{
	struct w_buf r = { 0 }, rec = { 0 };
	w_put_u32(&r, 1);   /* count */
	w_put_u32(&r, 0);   /* reserved */
	w_put_u64(&r, gpa);
	w_put_u64(&r, npages);
	w_put_record_x(&rec, REC_RAM_AHEAD, r.p, (uint32_t)r.len, 0);
	w_send_all(fd, rec.p, rec.len);
	free(r.p);
	free(rec.p);
}

/* A real source offers fault-ahead and a fresh destination agrees; a
 * list naming memory the guest does not have ends the migration naming
 * the run. */
Test(migration_stream, ram_ahead_outside_guest_memory)
{
	uint32_t hlen, type, len;
	char *hello = real_hello(&hlen), *reply = NULL;
	struct w_buf b = { 0 };
	w_put_preamble(&b, VERSION);
	w_put_record_x(&b, REC_HELLO, hello, hlen, 0);
	int fd;
	struct h_vm *dst = feed(&b, true, &fd);
	h_assert(w_recv_record(fd, &type, &reply, &len, 20) && type == REC_ACCEPT,
		 "a real HELLO was not accepted");
	json_t *acc = json_loads(reply, 0, NULL);
	h_assert(json_is_true(json_object_get(json_object_get(acc, "capabilities"),
					      "fault-ahead")),
		 "ACCEPT does not agree to fault-ahead: %s", reply);
	json_decref(acc);
	free(reply);
	send_ahead(fd, 1ULL << 30, 16);   /* at 1 GiB in a 16 MiB guest */
	expect_rejected(dst, "RAM_AHEAD run 0: 16 pages at 0x40000000 is not page "
			"aligned, empty or outside one memory slot");
	close(fd);
	free(b.p);
	free(hello);
}

/* A source that did not offer it (an older one) sends no list: one that
 * comes anyway is refused. */
Test(migration_stream, ram_ahead_not_agreed)
{
	uint32_t hlen;
	char *hello = real_hello(&hlen);
	json_t *h = json_loadb(hello, hlen, 0, NULL);
	json_object_del(json_object_get(h, "capabilities"), "fault-ahead");
	char *txt = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	int fd;
	struct h_vm *dst = accepted_destination(txt, (uint32_t)strlen(txt), &fd);
	send_ahead(fd, 0, 1);
	expect_rejected(dst, "RAM_AHEAD, but fault-ahead was not agreed");
	close(fd);
	free(txt);
	free(hello);
}
