/*
 * The control socket of a running ferry: QMP shapes, stop/cont with the
 * guest really stopping, errors that leave the VM running, quit, `ferry ctl`.
 */
#include "harness/harness.h"

#include "snapshot/snapshot_format.h"

#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#define BOOT_S 60.0

TestSuite(control, H_FIXTURES, .timeout = 120);

/* A VM that sleeps in hlt: control tests that need no guest activity. */
static struct h_vm *halted_vm(void)
{
	struct h_vm *vm = h_spawn("vm", H_CONTROL, "run", "--kernel",
				  h_image_halt(), "--memory", "64M", NULL);
	h_assert(h_wait_for(h_control_alive(vm) || h_vm_exited(vm), 20) &&
		 !h_vm_exited(vm), "control socket never came up");
	return vm;
}

Test(control, greeting_is_qmp)
{
	struct h_vm *vm = halted_vm();
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, vm->control);
	h_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
	char buf[512] = "";
	size_t n = 0;
	double dl = h_now() + 10;
	while (!memchr(buf, '\n', n) && n < sizeof(buf) - 1 && h_now() < dl) {
		ssize_t k = recv(fd, buf + n, sizeof(buf) - 1 - n, MSG_DONTWAIT);
		if (k > 0)
			n += k;
		else
			h_sleep_ms(10);
	}
	buf[n] = '\0';
	close(fd);
	json_t *g = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	h_assert(g && json_is_object(json_object_get(g, "QMP")),
		 "greeting is not {\"QMP\":...}: %s", buf);
	json_t *qmp = json_object_get(g, "QMP");
	h_assert(json_is_object(json_object_get(qmp, "version")), "%s", buf);
	h_assert(json_is_array(json_object_get(qmp, "capabilities")), "%s", buf);
	json_decref(g);
}

Test(control, socket_mode_is_0600)
{
	struct h_vm *vm = halted_vm();
	struct stat st;
	h_assert(stat(vm->control, &st) == 0, "stat %s", vm->control);
	h_assert(S_ISSOCK(st.st_mode), "not a socket");
	h_assert((st.st_mode & 0777) == 0600, "mode %o, wanted 600",
		 st.st_mode & 0777);
}

Test(control, query_status_shape_matches_qemu)
{
	struct h_vm *vm = halted_vm();
	char *line = h_qmp_raw_line(vm, "{\"execute\":\"query-status\"}\n");
	json_t *j = json_loads(line, 0, NULL);
	h_assert(j, "not JSON: %s", line);
	/* QEMU: {"return": {"status": "running", "singlestep": false,
	 * "running": true}} and nothing else at the top level. */
	h_assert(json_object_size(j) == 1, "extra members: %s", line);
	json_t *r = json_object_get(j, "return");
	h_assert(json_is_object(r), "%s", line);
	h_assert(json_is_string(json_object_get(r, "status")) &&
		 !strcmp(json_string_value(json_object_get(r, "status")), "running"),
		 "%s", line);
	h_assert(json_is_true(json_object_get(r, "running")), "%s", line);
	h_assert(json_is_false(json_object_get(r, "singlestep")), "%s", line);
	json_decref(j);
	free(line);
}

Test(control, id_is_echoed)
{
	struct h_vm *vm = halted_vm();
	json_t *j = h_qmp(vm, "{\"execute\":\"query-status\",\"id\":\"abc\"}");
	h_assert(json_is_string(json_object_get(j, "id")) &&
		 !strcmp(json_string_value(json_object_get(j, "id")), "abc"),
		 "id not echoed");
	json_decref(j);
	j = h_qmp(vm, "{\"execute\":\"nope\",\"id\":7}");
	h_assert(json_integer_value(json_object_get(j, "id")) == 7 &&
		 json_object_get(j, "error"), "id not echoed on an error");
	json_decref(j);
}

Test(control, several_requests_on_one_connection)
{
	struct h_vm *vm = halted_vm();
	/* Two requests in one write: two replies, in order. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, vm->control);
	h_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
	const char *req = "{\"execute\":\"query-status\",\"id\":1}\n"
			  "{\"execute\":\"query-vm\",\"id\":2}\n";
	h_assert(write(fd, req, strlen(req)) == (ssize_t)strlen(req), "write");
	char buf[8192];
	size_t n = 0;
	unsigned lines = 0;
	double dl = h_now() + 10;
	while (lines < 3 && n < sizeof(buf) - 1 && h_now() < dl) {
		ssize_t k = recv(fd, buf + n, sizeof(buf) - 1 - n, MSG_DONTWAIT);
		if (k > 0) {
			for (ssize_t i = 0; i < k; i++)
				lines += buf[n + i] == '\n';
			n += k;
		} else {
			h_sleep_ms(10);
		}
	}
	buf[n] = '\0';
	close(fd);
	h_assert(lines == 3, "wanted greeting + 2 replies, got:\n%s", buf);
	char *second = strchr(buf, '\n') + 1, *third = strchr(second, '\n') + 1;
	json_t *a = json_loads(second, JSON_DISABLE_EOF_CHECK, NULL);
	json_t *b = json_loads(third, JSON_DISABLE_EOF_CHECK, NULL);
	h_assert(a && json_integer_value(json_object_get(a, "id")) == 1, "%s", buf);
	h_assert(b && json_integer_value(json_object_get(b, "id")) == 2, "%s", buf);
	json_decref(a);
	json_decref(b);
}

Test(control, errors_leave_the_vm_running)
{
	struct h_vm *vm = halted_vm();
	static const struct { const char *req, *cls, *desc; } cases[] = {
		/* Malformed but complete: an object left open would, as in QMP,
		 * wait for the rest of its bytes. */
		{ "{\"execute\":\"query-status\",}\n", NULL, NULL },
		{ "not json at all\n", NULL, NULL },
		{ "[1,2,3]\n", NULL, "JSON object" },
		{ "{\"arguments\":{}}\n", NULL, "lacks member 'execute'" },
		{ "{\"execute\":42}\n", NULL, "'execute' must be a string" },
		{ "{\"execute\":\"query-status\",\"bogus\":1}\n", NULL,
		  "'bogus' is unexpected" },
		{ "{\"execute\":\"no-such-command\"}\n", "CommandNotFound", NULL },
		{ "{\"execute\":\"snapshot-save\"}\n", NULL, "path" },
		{ "{\"execute\":\"snapshot-save\",\"arguments\":{\"path\":5}}\n",
		  NULL, "path" },
		{ "{\"execute\":\"snapshot-save\",\"arguments\":{\"path\":\"\"}}\n",
		  NULL, "empty" },
		{ "{\"execute\":\"snapshot-save\",\"arguments\":"
		  "{\"path\":\"/nonexistent/dir/x.snap\"}}\n", NULL, "cannot create" },
		{ "{\"execute\":\"query-status\",\"arguments\":{\"x\":1}}\n", NULL,
		  "'x' is unexpected" },
		{ "{\"execute\":\"x-guest-memory-write\",\"arguments\":"
		  "{\"gpa\":\"0x1000\",\"hex\":\"00\"}}\n", NULL, "gpa" },
		{ "{\"execute\":\"x-guest-memory-write\",\"arguments\":"
		  "{\"gpa\":-1,\"hex\":\"00\"}}\n", NULL, "gpa" },
		{ "{\"execute\":\"x-guest-memory-write\",\"arguments\":"
		  "{\"gpa\":4096,\"hex\":\"zz\"}}\n", NULL, NULL },
		{ "{\"execute\":\"x-guest-memory-write\",\"arguments\":"
		  "{\"gpa\":4096,\"hex\":\"abc\"}}\n", NULL, NULL },
		{ "{\"execute\":\"x-guest-memory-write\",\"arguments\":"
		  "{\"gpa\":68719476736,\"hex\":\"00\"}}\n", NULL,
		  "not inside guest RAM" },
		{ "{\"execute\":\"x-guest-memory-write\",\"arguments\":"
		  "{\"gpa\":67108863,\"hex\":\"0000\"}}\n", NULL,
		  "not inside guest RAM" },
		{ "{\"execute\":\"qmp_capabilities\",\"arguments\":"
		  "{\"enable\":[\"oob\"]}}\n", NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = h_qmp_raw(vm, cases[i].req);
		json_t *e = json_object_get(j, "error");
		char *s = json_dumps(j, JSON_COMPACT);
		h_assert(json_is_object(e), "request %s got %s", cases[i].req, s);
		const char *cls = json_string_value(json_object_get(e, "class"));
		const char *desc = json_string_value(json_object_get(e, "desc"));
		h_assert(cls && desc && *desc, "request %s: error without "
			 "class/desc: %s", cases[i].req, s);
		if (cases[i].cls)
			h_assert(!strcmp(cls, cases[i].cls), "request %s: class %s, "
				 "wanted %s", cases[i].req, cls, cases[i].cls);
		if (cases[i].desc)
			h_assert(strstr(desc, cases[i].desc), "request %s: desc "
				 "\"%s\" lacks \"%s\"", cases[i].req, desc,
				 cases[i].desc);
		free(s);
		json_decref(j);
		h_assert(!h_vm_exited(vm), "VM exited after %s", cases[i].req);
	}
	char *st = h_status(vm);
	h_assert(!strcmp(st, "running"), "status %s after the errors", st);
	free(st);
	/* A request line too long to be one is refused as a whole, and the
	 * connection goes on. */
	size_t big = 4u << 20;
	char *line = malloc(big + 2);
	memset(line, ' ', big);
	memcpy(line, "{\"execute\":\"query-status\",\"id\":\"", 32);
	line[big - 2] = '"';
	line[big - 1] = '}';
	line[big] = '\n';
	line[big + 1] = '\0';
	json_t *j = h_qmp_raw(vm, line);
	h_assert(json_object_get(j, "error") || json_object_get(j, "return"),
		 "no reply to a 4 MiB line");
	json_decref(j);
	free(line);
	st = h_status(vm);
	h_assert(!strcmp(st, "running"), "status %s after the long line", st);
	free(st);
}

Test(control, memory_write_lands_in_guest_memory)
{
	/* Write into the halted guest and snapshot: the bytes are in the
	 * file's memory area at their guest-physical offset. */
	struct h_vm *vm = halted_vm();
	json_decref(h_qmp_ok(vm, "{\"execute\":\"x-guest-memory-write\","
			     "\"arguments\":{\"gpa\":%u,\"hex\":\"%s\"}}",
			     0x200000u, "46455252592d54455354"));
	const char *snap = h_snapshot(vm, "m.snap");
	size_t len;
	char *img = h_read_file(snap, &len);
	uint64_t mem_off;
	memcpy(&mem_off, img + offsetof(struct snap_header, mem_offset), 8);
	h_assert(mem_off + 0x200000 + 10 <= len, "snapshot too small");
	h_assert(!memcmp(img + mem_off + 0x200000, "FERRY-TEST", 10),
		 "written bytes not in the snapshot's memory image");
	free(img);
}

static bool progress_reports_stay(struct h_vm *vm, unsigned ms)
{
	uint64_t a = h_guest_u64(vm, "progress-reports");
	uint64_t p = h_guest_u64(vm, "uptime-ms");
	h_sleep_ms(ms);
	return h_guest_u64(vm, "progress-reports") == a &&
	       h_guest_u64(vm, "uptime-ms") == p;
}

Test(control, stop_and_cont)
{
	struct h_vm *vm = h_boot("vm", H_CONTROL | H_HEARTBEAT,
				 "workload=dirty wss=8M heartbeat_us=1000", NULL);
	h_wait_ready(vm, BOOT_S);
	h_wait_progress(vm, 1, 10);

	json_decref(h_qmp_ok(vm, "{\"execute\":\"stop\"}"));
	json_t *r = h_qmp_ok(vm, "{\"execute\":\"query-status\"}");
	h_assert(!strcmp(json_string_value(json_object_get(r, "status")), "paused"),
		 "status after stop");
	h_assert(json_is_false(json_object_get(r, "running")), "running after stop");
	json_decref(r);
	/* stop twice is fine, as in QMP */
	json_decref(h_qmp_ok(vm, "{\"execute\":\"stop\"}"));
	h_sleep_ms(100); /* heartbeats in flight */
	off_t hb0 = h_file_size(vm->heartbeat);
	h_assert(progress_reports_stay(vm, 2500), "the guest kept reporting "
		 "progress while stopped");
	h_assert(h_file_size(vm->heartbeat) == hb0, "heartbeats while stopped");

	json_decref(h_qmp_ok(vm, "{\"execute\":\"cont\"}"));
	char *st = h_status(vm);
	h_assert(!strcmp(st, "running"), "status after cont: %s", st);
	free(st);
	h_wait_progress(vm, 2, 10);
	h_assert(h_file_size(vm->heartbeat) > hb0, "no heartbeats after cont");
	h_assert(h_guest_u64(vm, "errors") == 0, "errors after stop/cont");
	/* The pause is a silence, not a break in the beat sequence. */
	uint64_t gaps = 1, repeats = 1;
	h_heartbeat_check(vm->heartbeat, &gaps, &repeats, NULL);
	h_assert(gaps == 0 && repeats == 0, "heartbeats across stop/cont: "
		 "%llu gaps, %llu repeats", (unsigned long long)gaps,
		 (unsigned long long)repeats);
	/* cont on a running VM is fine too */
	json_decref(h_qmp_ok(vm, "{\"execute\":\"cont\"}"));
}

Test(control, paused_start_and_cont)
{
	struct h_vm *vm = h_boot("vm", H_CONTROL, "workload=idle", "--paused", NULL);
	h_assert(h_wait_for(h_control_alive(vm) || h_vm_exited(vm), 20) &&
		 !h_vm_exited(vm), "control socket never came up");
	json_t *r = h_qmp_ok(vm, "{\"execute\":\"query-status\"}");
	const char *s = json_string_value(json_object_get(r, "status"));
	h_assert(s && (!strcmp(s, "prelaunch") || !strcmp(s, "paused")),
		 "status %s with --paused", s);
	h_assert(json_is_false(json_object_get(r, "running")), "running");
	json_decref(r);
	h_sleep_ms(500);
	h_assert(!h_file_contains(vm->serial, "ferry-testguest"),
		 "guest ran while paused");
	json_decref(h_qmp_ok(vm, "{\"execute\":\"cont\"}"));
	h_wait_ready(vm, BOOT_S);
}

Test(control, quit_ends_with_zero)
{
	struct h_vm *vm = h_boot("vm", H_CONTROL, "workload=idle", NULL);
	h_wait_ready(vm, BOOT_S);
	json_t *r = h_qmp(vm, "{\"execute\":\"quit\",\"id\":1}");
	h_assert(json_is_object(json_object_get(r, "return")), "quit not acked");
	json_decref(r);
	int rc = h_vm_wait(vm, 20);
	cr_expect_eq(rc, 0, "exit %d after quit", rc);
	cr_expect(h_file_size(vm->control) < 0, "socket file left behind");
}

Test(control, quit_while_paused)
{
	struct h_vm *vm = halted_vm();
	json_decref(h_qmp_ok(vm, "{\"execute\":\"stop\"}"));
	json_decref(h_qmp_ok(vm, "{\"execute\":\"quit\"}"));
	cr_expect_eq(h_vm_wait(vm, 20), 0);
}

Test(control, query_vm_shape)
{
	struct h_vm *vm = halted_vm();
	json_t *r = h_qmp_ok(vm, "{\"execute\":\"query-vm\"}");
	h_assert(json_integer_value(json_object_get(r, "memory")) == 64 << 20,
		 "memory");
	h_assert(json_integer_value(json_object_get(r, "vcpus")) == 1, "vcpus");
	h_assert(json_is_array(json_object_get(r, "memory-slots")) &&
		 json_array_size(json_object_get(r, "memory-slots")) >= 1, "slots");
	json_t *g = json_object_get(r, "guest");
	static const char *const keys[] = {
		"wss-base", "wss-bytes", "vcpus-online", "pages-written",
		"checks-done", "pages-checked", "errors", "ticks", "uptime-ms",
		"heartbeats", "progress-reports", "syncs", "asserts",
		"resume-generation", "verified-resume-generation",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		h_assert(json_is_integer(json_object_get(g, keys[i])), "guest.%s",
			 keys[i]);
	h_assert(json_is_false(json_object_get(g, "ready")), "ready");
	/* A fresh machine: never moved or restored. */
	h_assert(json_integer_value(json_object_get(g, "resume-generation")) == 0,
		 "resume-generation of a fresh VM");
	h_assert(json_is_string(json_object_get(g, "last-assert")), "last-assert");
	/* Console and heartbeat output are never waited for; what was lost
	 * is counted. */
	static const char *const outs[] = { "serial", "heartbeat" };
	for (size_t i = 0; i < 2; i++) {
		json_t *o = json_object_get(r, outs[i]);
		h_assert(json_is_integer(json_object_get(o, "written-bytes")) &&
			 json_is_integer(json_object_get(o, "dropped-bytes")) &&
			 json_is_integer(json_object_get(o, "queued-bytes")) &&
			 json_is_boolean(json_object_get(o, "broken")),
			 "%s output counters", outs[i]);
	}
	json_decref(r);
}

Test(control, ferry_ctl_prints_one_line)
{
	struct h_vm *vm = halted_vm();
	char *out = NULL, *err = NULL;
	int rc = h_run(20, &out, &err, "ctl", "--control", vm->control,
		       "{\"execute\":\"query-status\"}", NULL);
	cr_expect_eq(rc, 0, "ctl exit %d; stderr %s", rc, err);
	size_t l = strlen(out);
	cr_expect(l > 1 && out[l - 1] == '\n' && !memchr(out, '\n', l - 1),
		  "not exactly one line: [%s]", out);
	json_t *j = json_loads(out, 0, NULL);
	cr_expect(j && json_is_true(json_object_get(json_object_get(j, "return"),
						    "running")), "%s", out);
	json_decref(j);
	free(out);
	free(err);

	rc = h_run(20, &out, &err, "ctl", "--control", vm->control,
		   "{\"execute\":\"no-such-command\"}", NULL);
	cr_expect_eq(rc, 1, "ctl exit %d for an error reply", rc);
	j = json_loads(out, 0, NULL);
	cr_expect(j && json_object_get(j, "error"), "%s", out);
	json_decref(j);
	free(out);
	free(err);

	rc = h_run(20, &out, &err, "ctl", "--control", vm->control,
		   "this is not json", NULL);
	cr_expect(rc == 1 || rc == 2, "ctl exit %d for a malformed request", rc);
	free(out);
	free(err);
	h_assert(!h_vm_exited(vm), "VM gone after ferry ctl");
}

Test(control, stale_socket_is_replaced_live_one_refused)
{
	/* A socket file left by a dead process is taken over... */
	const char *path = h_path("vm.sock");
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	h_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind");
	close(fd); /* the file stays, nobody listens */
	struct h_vm *vm = halted_vm();
	h_assert(!strcmp(vm->control, path), "harness naming changed");
	/* ...a live one is not. */
	char *err = NULL;
	int rc = h_run(20, NULL, &err, "run", "--kernel", h_image_halt(),
		       "--memory", "16M", "--serial", "none", "--control",
		       vm->control, NULL);
	cr_expect_eq(rc, H_EXIT_VMM, "second ferry on a live socket: exit %d", rc);
	cr_expect(strstr(err, "control socket"), "stderr:\n%s", err);
	free(err);
	h_assert(h_control_alive(vm), "first VM's socket broken by the second");
}
