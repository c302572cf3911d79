/*
 * harness.h - integration-test harness: real `ferry` processes, real
 * sockets, real files, each test in its own temporary directory.
 *
 * Environment:
 *   FERRY        the VMM under test (default build-san/ferry if it exists,
 *                else build/ferry)
 *   FERRY_GUEST  the test guest image (default build/guests/testguest.elf)
 *   FERRY_KEEP   if set, temporary directories are kept (their path is
 *                printed) instead of removed at the end of each test
 *
 * Every wait is bounded.  On a timeout or a failure the harness prints what
 * the VMs wrote to stderr (and the tail of the serial console) before it
 * fails the test, and kills whatever is still running.  stderr of every
 * ferry process is scanned for sanitizer reports; one fails the test.
 *
 * Use H_FIXTURES in each Test's options (.init = h_setup, .fini = h_teardown).
 */
#ifndef FERRY_TEST_HARNESS_H
#define FERRY_TEST_HARNESS_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#define H_FIXTURES .init = h_setup, .fini = h_teardown

/* Exit codes of `ferry run` (src/main.c). */
#define H_EXIT_USAGE   2
#define H_EXIT_VMM     120
#define H_EXIT_STOPPED 1

void h_setup(void);
void h_teardown(void);

/* ---- time ---------------------------------------------------------------- */
double h_now(void);              /* CLOCK_MONOTONIC, seconds */
void h_sleep_ms(unsigned ms);

/*
 * h_wait_for(cond, timeout_s) - poll cond every 20 ms until it is true or
 * timeout_s have passed; evaluates to the last value of cond.
 */
#define h_wait_for(cond, timeout_s) ({					\
	double h_dl_ = h_now() + (timeout_s);				\
	bool h_ok_;							\
	while (!(h_ok_ = (cond)) && h_now() < h_dl_)			\
		h_sleep_ms(20);						\
	h_ok_; })

/* ---- paths and files ------------------------------------------------------ */
const char *h_ferry(void);
/* The guest image; skips the test (cr_skip_test) when it has not been built. */
const char *h_guest(void);
const char *h_dir(void);                  /* this test's temporary directory */
/* dir/name; the string lives until the end of the test. */
const char *h_path(const char *name);
/* Whole file as a NUL-terminated string (NULL if it cannot be read). */
char *h_read_file(const char *path, size_t *len);
void h_write_file(const char *path, const void *data, size_t len);
off_t h_file_size(const char *path);      /* -1 if missing */
bool h_file_contains(const char *path, const char *needle);

/* ---- hand-made multiboot images (generated per test, no blobs in git) ---- */
/* a.out-kludge image at 1 MiB whose code is @code (entry = 0x100020). */
const char *h_image_aout(const char *name, const uint8_t *code, size_t len);
/* mov al,code; out 0xf4,al; hlt: `ferry run` exits with @code. */
const char *h_image_exit(uint8_t code);
/* cli; hlt; jmp back: a guest that sleeps forever at no CPU cost. */
const char *h_image_halt(void);

/* ---- ferry processes --------------------------------------------------- */
enum {
	H_CONTROL   = 1 << 0, /* --control dir/NAME.sock */
	H_HEARTBEAT = 1 << 1, /* --heartbeat file:dir/NAME.hb */
	H_CONSOLE   = 1 << 2, /* --serial stdio with stdout to the serial file
				 and stdin from a pipe (h_console_send) */
	H_NO_SERIAL = 1 << 3, /* don't add a --serial option at all */
};

struct h_vm {
	char name[32];
	pid_t pid;
	unsigned flags;
	char serial[PATH_MAX];
	char control[PATH_MAX];
	char heartbeat[PATH_MAX];
	char err_path[PATH_MAX];  /* captured stderr */
	char out_path[PATH_MAX];  /* captured stdout (unless H_CONSOLE) */
	int console_fd;           /* H_CONSOLE: write end of the guest's stdin */
	bool exited;
	int status;               /* wait status once exited */
	double started;
	int port;                 /* h_incoming: the port it listens on */
};

/*
 * h_spawn() - start `ferry ARGS...` (NULL-terminated) with stdout and
 * stderr captured in dir/NAME.out and dir/NAME.err.  @flags as above add
 * the matching `run` options after the given ones (only meaningful for
 * `run`).  Fails the test if the process cannot be started.
 */
struct h_vm *h_spawn(const char *name, unsigned flags, ...)
	__attribute__((sentinel));
struct h_vm *h_spawnv(const char *name, unsigned flags, const char **args);
/* Why this machine cannot run guests (NULL: it can), and the skip that
 * h_spawnv applies to every `run --kernel` / `run --restore` there. */
const char *h_kvm_missing(void);
void h_require_kvm(void);

/*
 * h_boot() - `ferry run --kernel GUEST --cmdline CMDLINE [extra...]`
 * with the plumbing @flags ask for.
 */
struct h_vm *h_boot(const char *name, unsigned flags, const char *cmdline, ...)
	__attribute__((sentinel));

/* Restore dir/SNAPSHOT in a new process: `ferry run --restore PATH`. */
struct h_vm *h_restore(const char *name, unsigned flags, const char *snapshot,
		       ...) __attribute__((sentinel));

/*
 * h_vm_wait() - wait up to timeout_s for the process to exit.  Returns its
 * exit code, or 128+signal if it was killed by a signal.  On timeout the
 * process is killed with SIGKILL and the test fails.  Checks stderr for
 * sanitizer reports.
 */
int h_vm_wait(struct h_vm *vm, double timeout_s);
/* Has the process exited (non-blocking)? */
bool h_vm_exited(struct h_vm *vm);
/* End a VM politely: `quit` over the control socket if it has one, else
 * SIGTERM; then SIGKILL after a grace period.  Checks sanitizer reports. */
void h_vm_stop(struct h_vm *vm);
/* Captured stderr / stdout / serial output (malloc'd, never NULL). */
char *h_vm_stderr(struct h_vm *vm);
char *h_vm_serial(struct h_vm *vm);
/* Print a VM's stderr and the tail of its serial console to our stderr. */
void h_vm_dump(struct h_vm *vm);
/* Fail the test if a sanitizer reported anything in stderr. */
void h_vm_check_sanitizers(struct h_vm *vm);

/* Fail the test after dumping every VM of this test. */
#define h_fail(...) do { h_dump_all(); cr_assert_fail(__VA_ARGS__); } while (0)
void h_dump_all(void);

/* Assert a condition; on failure dump every VM then fail. */
#define h_assert(cond, ...) do {					\
	if (!(cond)) {							\
		h_dump_all();						\
		cr_assert_fail("assertion `" #cond "` failed: " __VA_ARGS__);	\
	} } while (0)

/*
 * h_run() - run `ferry ARGS...` to completion (bounded by timeout_s, then
 * SIGKILL and failure).  Returns the exit code; *out / *err, if not NULL,
 * receive captured stdout / stderr (malloc'd).
 */
int h_run(double timeout_s, char **out, char **err, ...)
	__attribute__((sentinel));

/* Serial console: wait until its output contains @needle. */
bool h_wait_serial(struct h_vm *vm, const char *needle, double timeout_s);
/* H_CONSOLE: type bytes into the guest's console. */
void h_console_send(struct h_vm *vm, const char *s);

/* ---- control socket ------------------------------------------------------ */
/*
 * h_qmp() - one request on a fresh connection: connect, skip the greeting,
 * send the line, read one reply line.  @fmt is printf-style JSON.  Returns
 * the whole parsed reply ({"return": ...} or {"error": ...}), a new
 * reference; fails the test on connection, timeout or parse errors.
 */
json_t *h_qmp(struct h_vm *vm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Send raw bytes (must end in '\n') and return the reply line parsed. */
json_t *h_qmp_raw(struct h_vm *vm, const char *line);
/* Raw reply line of a raw request (malloc'd), for exact-shape checks. */
char *h_qmp_raw_line(struct h_vm *vm, const char *line);
/* Like h_qmp() but the reply must be a return: gives the "return" value. */
json_t *h_qmp_ok(struct h_vm *vm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Like h_qmp() but the reply must be an error: gives the "error" value. */
json_t *h_qmp_err(struct h_vm *vm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Try to connect (true if the socket answers with a greeting). */
bool h_control_alive(struct h_vm *vm);

/* query-status .status (malloc'd). */
char *h_status(struct h_vm *vm);
/* query-vm .guest (new reference). */
json_t *h_guest_info(struct h_vm *vm);
/* One integer of query-vm .guest. */
uint64_t h_guest_u64(struct h_vm *vm, const char *key);
/* Wait until the guest says READY (query-vm guest.ready). */
void h_wait_ready(struct h_vm *vm, double timeout_s);
/* Wait until query-vm guest.@key >= @value; fails the test on timeout. */
uint64_t h_wait_guest_ge(struct h_vm *vm, const char *key, uint64_t value,
			 double timeout_s);
/* Wait until @n more PROGRESS ucalls have arrived. */
void h_wait_progress(struct h_vm *vm, unsigned n, double timeout_s);
/* snapshot-save to dir/NAME; returns the full path. */
const char *h_snapshot(struct h_vm *vm, const char *name);

/* ---- migration ----------------------------------------------------------- */
/*
 * h_incoming() - `ferry run --incoming tcp:127.0.0.1:0 [extra...]` (the
 * kernel picks a free port, so tests running side by side never collide)
 * with the plumbing @flags ask for; waits until it listens and sets
 * vm->port from its log.  Fails the test if it does not listen within 20 s.
 */
struct h_vm *h_incoming(const char *name, unsigned flags, ...)
	__attribute__((sentinel));
/* "tcp:127.0.0.1:PORT" (lives until the end of the test). */
const char *h_mig_uri(int port);
/* A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0). */
int h_free_port(void);
/*
 * h_qmp_try() - like h_qmp() but never fails the test: NULL if the VM is
 * gone, its socket does not answer or the reply is not a JSON object.
 */
json_t *h_qmp_try(struct h_vm *vm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* query-migrate's "return" (new reference); fails the test if no answer. */
json_t *h_query_migrate(struct h_vm *vm);
/*
 * h_wait_migration() - poll query-migrate until the status is completed,
 * failed or cancelled; returns that answer (new reference).  Fails the
 * test on timeout or if the source exits without a final status seen.
 * @last_guest, if not NULL, receives (a new reference to) the last query-vm
 * .guest seen on the source while polling, taken after the status.
 */
json_t *h_wait_migration(struct h_vm *src, double timeout_s,
			 json_t **last_guest);
/* Wait until vm's control socket answers (a destination's appears once the
 * guest runs there); fails the test if it exits first or on timeout. */
void h_wait_control(struct h_vm *vm, double timeout_s);
/* Wait until vm's stderr contains @needle (or it exits). */
bool h_wait_stderr(struct h_vm *vm, const char *needle, double timeout_s);

/*
 * h_memory_digest() - query-memory-digest's "return" (new reference):
 * {"algorithm", "digest", "regions": [{"gpa", "size", "digest"}, ...]}.
 * The VM must be paused (not running); fails the test on an error.
 */
json_t *h_memory_digest(struct h_vm *vm);
/*
 * h_assert_same_memory() - fail (naming the first region that differs)
 * unless both digests, whole and per region, are equal.  a and b are
 * h_memory_digest() answers, taken from paused VMs.
 */
void h_assert_same_memory(struct h_vm *va, json_t *a, struct h_vm *vb,
			  json_t *b);

/* ---- migration outcomes (harness/mig_helpers.c) ------------------------ */
/* Boot a verifying test guest (H_CONTROL | H_CONSOLE) and wait until it
 * has checked itself once. */
struct h_vm *h_boot_verifying(const char *name, const char *cmdline,
			      const char *memory, const char *vcpus);
/* query-status .status must be @want. */
void h_expect_status(struct h_vm *vm, const char *want);
/* A full-memory check requested now (console 'v') completes, and no check
 * so far found a bad page.  Needs H_CONSOLE. */
void h_expect_verifies(struct h_vm *vm);
/* The guest makes progress: two more reports, its clock advances. */
void h_expect_guest_runs(struct h_vm *vm);
/* The guest makes none for @ms, and query-status is not running. */
void h_expect_guest_frozen(struct h_vm *vm, unsigned ms);
/* The operator resumes a held source: `cont`, or `cont` with force if
 * plain cont is refused; it must then run. */
void h_operator_resumes(struct h_vm *vm);

/*
 * A TCP proxy (a thread, harness/proxy.c) between a migration source and
 * its destination: accepts one connection on its own port and forwards
 * bytes both ways to 127.0.0.1:target_port, injecting at most one fault:
 *
 *   H_PROXY_CUT    both connections are shut down and closed, as a broken
 *                  link would be
 *   H_PROXY_STALL  forwarding stops in stall_dirs (default both); the
 *                  stalled sender's socket is no longer read but stays
 *                  open, so its sends block and its reads wait, as behind
 *                  a hung peer
 *   H_PROXY_FLIP   one bit (0x04) of one byte towards the destination is
 *                  flipped: the byte at offset `after`, or at a record
 *                  the last byte of that record (its checksum)
 *
 * When: with record == 0, once `after` bytes went from source to
 * destination; else at the first record of that type (for RAM_PAGES, of a
 * round >= min_round) going in record_dir: before any of it is forwarded,
 * or right after it with record_passes.  The stream's framing is that of
 * docs/migration-stream.md.  Stopped at the end of the test.
 */
enum h_proxy_action { H_PROXY_NONE, H_PROXY_CUT, H_PROXY_STALL, H_PROXY_FLIP };
enum { H_TO_DEST = 1, H_TO_SOURCE = 2 };

struct h_proxy_fault {
	enum h_proxy_action action;
	uint64_t after;         /* byte trigger (record == 0) */
	uint32_t record;        /* record type trigger, e.g. 0x30 COMMIT */
	unsigned record_dir;    /* H_TO_DEST or H_TO_SOURCE */
	uint32_t min_round;     /* RAM_PAGES: the round at least */
	bool record_passes;     /* fire after the record, not before it */
	unsigned stall_dirs;    /* H_PROXY_STALL: 0 means both */
};

/* Migration record types (docs/migration-stream.md), for triggers. */
#define H_REC_RAM_PAGES 0x10u
#define H_REC_VCPU      0x03u
#define H_REC_DEVICE    0x02u
#define H_REC_STATE_END 0x20u
#define H_REC_COMMIT    0x30u
#define H_REC_READY     0x83u
#define H_REC_RUNNING   0x84u

struct h_proxy;
struct h_proxy *h_proxy_start_fault(int target_port,
				    const struct h_proxy_fault *f);
/* A plain proxy that cuts the link after cut_after bytes (0 = never). */
struct h_proxy *h_proxy_start(int target_port, uint64_t cut_after);
int h_proxy_port(struct h_proxy *p);
uint64_t h_proxy_bytes(struct h_proxy *p);   /* source -> destination */
bool h_proxy_was_cut(struct h_proxy *p);
bool h_proxy_fired(struct h_proxy *p);       /* the fault happened */
void h_proxy_cut(struct h_proxy *p);
/* Stall now, in dirs (H_TO_DEST | H_TO_SOURCE). */
void h_proxy_stall(struct h_proxy *p, unsigned dirs);
/* End every proxy of this test (h_teardown calls it). */
void h_proxies_stop(void);

/* ---- QEMU ----------------------------------------------------------------- */
/* Path of qemu-system-x86_64 if usable (KVM present), else NULL. */
const char *h_qemu(void);
/*
 * h_qemu_run() - run the guest under QEMU/KVM with -append @cmdline and the
 * serial console in dir/NAME.serial; bounded by timeout_s.  Returns QEMU's
 * exit status.
 */
int h_qemu_run(const char *name, const char *cmdline, double timeout_s);

#endif
