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
/* CPU seconds (user + system, guest time included) the threads of @vm
 * named @name have used so far, from /proc; fails the test if it has
 * none of that name. */
double h_thread_cpu_s(struct h_vm *vm, const char *name);
/* Resident memory of @vm now (VmRSS), MiB. */
double h_rss_mib(struct h_vm *vm);

/* Fail the test after dumping every VM of this test. */
#define h_fail(...) do { h_dump_all(); cr_assert_fail(__VA_ARGS__); } while (0)
void h_dump_all(void);

/* Assert a condition; on failure dump every VM then fail.  The
 * condition's text is an argument, not part of the format: a '%' in it
 * (an sscanf pattern) must not be read as a conversion. */
#define h_assert(cond, ...) do {					\
	if (!(cond)) {							\
		h_dump_all();						\
		h_assert_failed(#cond, __VA_ARGS__);			\
	} } while (0)
void h_assert_failed(const char *cond, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

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

/* obj.key as a string ("" when absent or not a string). */
const char *h_str(json_t *obj, const char *key);
/* obj.key as an integer (0 when absent). */
json_int_t h_int(json_t *obj, const char *key);
/* j as one line of JSON for a message (malloc'd; "null" for NULL). */
char *h_dump(json_t *j);
/* `quit` over the control socket; the process must then end with 0. */
void h_quit_ok(struct h_vm *vm);

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
/*
 * h_wait_resume_verified() - wait until a moved or restored guest has
 * checked all its pages there: query-vm guest.verified-resume-generation
 * reached guest.resume-generation (>= 1; see PORT_RESUME in guest_abi.h).
 * Returns guest.errors as reported at the end of that pass.  Fails the
 * test on timeout or when the VM was never moved (generation 0).
 */
uint64_t h_wait_resume_verified(struct h_vm *vm, double timeout_s);
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
/* A TCP listener on 127.0.0.1 with a port the kernel picks (*port); the
 * fd, or -errno. */
int h_listen_local(int *port);
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
/* Migrate @src to @dst keeping the source ("x-keep-source": true), with
 * the source's parameters as set; the migration must complete within
 * @timeout_s.  Returns the source's last query-migrate (new reference). */
json_t *h_migrate_kept(struct h_vm *src, struct h_vm *dst, double timeout_s);
/*
 * h_expect_same_memory() - RAM equality from outside after a completed
 * migration: the source kept ("x-keep-source": true, postmigrate) and
 * the destination started --paused hash alike, region by region; then
 * the source quits (status 0) and the destination is told `cont`.
 */
void h_expect_same_memory(struct h_vm *src, struct h_vm *dst);
/*
 * With release-ram the source's memory is not the guest's once post-copy
 * gave it away, so the oracle is taken before: h_release_ram_and_pause()
 * sets the capability on @src, pauses it and returns its digest;
 * h_expect_memory_was() checks the --paused destination's digest against
 * it, then tells the destination `cont` and expects the guest's full
 * check to pass there.
 */
json_t *h_release_ram_and_pause(struct h_vm *src);
void h_expect_memory_was(struct h_vm *src, json_t *before, struct h_vm *dst);
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

/* ---- heartbeats (harness/heartbeat.c) ------------------------------------ */
/*
 * The guest writes its beat counter mod 256 to port 0xe9, one byte per beat
 * (include/guest_abi.h), so consecutive bytes differ by exactly 1.  For two
 * consecutive beats b0, b1 (in arrival order), d = (b1 - b0) mod 256:
 *   d == 1                        in sequence;
 *   2 <= d <= H_HB_MAX_LOST + 1   a sequence gap: d - 1 beats lost on the
 *                                 way (the guest never skips a number, so
 *                                 the host or the link dropped them);
 *   d == 0 or d > H_HB_MAX_LOST+1 a repeat: the counter went back (by
 *                                 256 - d): the guest ran twice from the
 *                                 same state, i.e. two copies.
 * (More than H_HB_MAX_LOST beats lost in one place reads as a repeat: the
 * byte cannot tell them apart.)
 * Downtime from outside: with arrival times (an observer), max_gap_ms is
 * the longest interval between the arrivals of two consecutive beats, in
 * the observer's clock; it includes one beat period.  A pause of the guest
 * shows as one such gap with the sequence intact (late beats are skipped,
 * not numbered).  Files have no times: max_gap_ms < 0.
 */
#define H_HB_MAX_LOST 127

struct h_hb_result {
	size_t beats;          /* bytes scanned */
	uint64_t gaps;         /* places where beats are missing */
	uint64_t lost;         /* beats missing in those places */
	uint64_t repeats;      /* places where the counter went back */
	double max_gap_ms;     /* longest silence; < 0: no times or < 2 beats */
	double max_gap_end;    /* h_now() when the beat ending it arrived */
	size_t first_bad;      /* index of the first beat out of sequence, or
				  SIZE_MAX */
};

/* The check itself, on @n beats (@t: arrival times in h_now() seconds, or
 * NULL). */
void h_hb_scan(const uint8_t *seq, const double *t, size_t n,
	       struct h_hb_result *r);
/*
 * h_heartbeat_check() - check the beats in @path: a heartbeat file (ferry
 * --heartbeat file:PATH, vm->heartbeat with H_HEARTBEAT, a QEMU chardev
 * file; *max_gap_ms = -1) or the socket path of an observer of this test
 * (its whole timeline, timed).  Any out-pointer may be NULL.  Returns the
 * number of beats.
 */
size_t h_heartbeat_check(const char *path, uint64_t *gaps, uint64_t *repeats,
			 double *max_gap_ms);
/* Several files as one timeline, in order (e.g. a migration's source then
 * its destination: the destination must go on where the source stopped). */
void h_hb_check_files(struct h_hb_result *r, const char *path, ...)
	__attribute__((sentinel));

/*
 * An observer: a thread listening on dir/NAME.hbsock that timestamps every
 * byte as it arrives.  Any number of connections one after another or at
 * once (a migration's source and destination) form one timeline.  Pass
 * h_hb_observer_path() to ferry as --heartbeat unix:PATH, or to QEMU as
 * -chardev socket,id=hb,path=PATH.  Stopped at the end of the test.
 */
struct h_hb_observer;
struct h_hb_observer *h_hb_observe(const char *name);
const char *h_hb_observer_path(struct h_hb_observer *o);
unsigned h_hb_observer_connections(struct h_hb_observer *o);
/* The beats that arrived in [t_from, t_to] (h_now() times). */
void h_hb_observer_result(struct h_hb_observer *o, double t_from, double t_to,
			  struct h_hb_result *r);
/* Called by h_teardown. */
void h_hb_stop_all(void);

/* ---- QEMU ----------------------------------------------------------------- */
/* Path of qemu-system-x86_64 if usable with KVM, else NULL. */
const char *h_qemu(void);
/* Path of qemu-system-x86_64 if installed (TCG, software emulation, needs
 * no KVM: the same multiboot image runs, slower), else NULL. */
const char *h_qemu_tcg(void);

struct h_qemu_opts {
	bool kvm;              /* -enable-kvm (h_qemu()); false: TCG */
	const char *memory;    /* -m, default "128M" */
	const char *smp;       /* -smp, default QEMU's (1) */
	const char *initrd;    /* -initrd: multiboot modules, "FILE ARGS,FILE2" */
	/* 0xe9 through isa-debugcon: NULL none, "file:PATH" (a chardev file)
	 * or "unix:PATH" (a chardev socket connecting to a listener, e.g. an
	 * h_hb_observe() path).  PATH ends up in vm->heartbeat. */
	const char *heartbeat;
	bool qmp;              /* -qmp on dir/NAME.qmp, for h_qemu_qmp() */
	bool shared_ram;       /* guest RAM in dir/NAME.ram (memory-backend-file,
				  share=on): h_qemu_ram_read/write */
	const char *incoming;  /* -incoming URI (e.g. "tcp:127.0.0.1:PORT") */
};
/*
 * h_qemu_start() - start QEMU (in the background) on the test guest with
 * -append @cmdline, serial console in vm->serial, isa-debug-exit on 0xf4.
 * @o may be NULL (TCG, 128M, nothing else).  h_vm_exited/h_vm_stop work
 * on the result (stop: SIGTERM).
 */
struct h_vm *h_qemu_start(const char *name, const char *cmdline,
			  const struct h_qemu_opts *o);
/* Wait for QEMU to exit (kill and fail after timeout_s); its exit status
 * (isa-debug-exit: (guest code << 1) | 1). */
int h_qemu_wait(struct h_vm *vm, double timeout_s);
/*
 * h_qemu_run() - run the guest under QEMU/KVM (512M) to its end, bounded by
 * timeout_s.  Returns QEMU's exit status.  h_qemu_tcg_run: the same under
 * TCG with the h_qemu_start defaults.
 */
int h_qemu_run(const char *name, const char *cmdline, double timeout_s);
int h_qemu_tcg_run(const char *name, const char *cmdline, double timeout_s);
/* One QMP command on a fresh connection (capabilities negotiated, events
 * skipped); @args is a JSON object text or NULL.  Returns "return" (new
 * reference); fails the test on an error reply. */
json_t *h_qemu_qmp(struct h_vm *vm, const char *execute, const char *args);
/* Guest-physical memory of a shared_ram QEMU (below 3 GiB, where RAM
 * offset = gpa on the pc machine). */
void h_qemu_ram_write(struct h_vm *vm, uint64_t gpa, const void *data,
		      size_t len);
void h_qemu_ram_read(struct h_vm *vm, uint64_t gpa, void *data, size_t len);

#endif
