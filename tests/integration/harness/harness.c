/*
 * harness.c - see harness.h.
 *
 * Criterion runs every test in its own process, so the per-test state here
 * (temporary directory, the VMs started) is plain globals.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>

#define H_MAX_VMS    256  /* the soak: a process per hop */
#define H_MAX_PATHS  256
#define H_QMP_TIMEOUT_S 30.0  /* snapshot-save of a busy 512M guest included */
#define H_STOP_GRACE_S  15.0  /* sanitizer builds exit slowly (leak check) */

static bool vm_stop_quietly(struct h_vm *vm);
static bool sanitizer_report(struct h_vm *vm, char *msg, size_t size);

static char g_dir[256]; /* short: Unix socket paths live in it */
static struct h_vm *g_vms[H_MAX_VMS];
static unsigned g_nvms;
static char *g_paths[H_MAX_PATHS];
static unsigned g_npaths;

/* ---- time ---------------------------------------------------------------- */

double h_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void h_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- setup / teardown ----------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

void h_setup(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(g_dir, sizeof(g_dir), "%s/ferry-it-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(g_dir))
		cr_assert_fail("mkdtemp(%s): %s", g_dir, strerror(errno));
	/* Sanitizer reports must be visible in stderr and must not be
	 * mistaken for a guest's exit code: we detect them by text. */
	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66", 0);
	setenv("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=66", 0);
	signal(SIGPIPE, SIG_IGN);
}

void h_teardown(void)
{
	h_proxies_stop();
	h_hb_stop_all();
	/* Politely first, so that sanitizer builds get to run their leak
	 * check; a report then fails the test. */
	const char *hung = NULL;
	for (unsigned i = 0; i < g_nvms; i++) {
		if (g_vms[i]->console_fd >= 0)
			close(g_vms[i]->console_fd);
		g_vms[i]->console_fd = -1;
		if (!vm_stop_quietly(g_vms[i]) && !hung)
			hung = g_vms[i]->name;
	}
	/* Reports are read before the directory goes away; failing here
	 * still fails the test. */
	char report[512] = "";
	for (unsigned i = 0; i < g_nvms && !report[0]; i++)
		if (sanitizer_report(g_vms[i], report, sizeof(report)))
			h_vm_dump(g_vms[i]);
	if (hung && !report[0])
		h_dump_all();
	if (getenv("FERRY_KEEP"))
		fprintf(stderr, "harness: kept %s\n", g_dir);
	else if (g_dir[0])
		nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	g_nvms = 0;
	if (report[0])
		cr_assert_fail("%s", report);
	if (hung)
		cr_assert_fail("%s: did not end on quit/SIGTERM (killed)", hung);
}

/* ---- paths and files ------------------------------------------------------ */

const char *h_ferry(void)
{
	const char *e = getenv("FERRY");
	if (e && *e)
		return e;
	if (access("build-san/ferry", X_OK) == 0)
		return "build-san/ferry";
	return "build/ferry";
}

const char *h_guest(void)
{
	const char *e = getenv("FERRY_GUEST");
	const char *g = e && *e ? e : "build/guests/testguest.elf";
	if (access(g, R_OK) != 0)
		cr_skip_test("test guest %s not built (make build/guests/testguest.elf)", g);
	return g;
}

const char *h_dir(void) { return g_dir; }

static const char *keep_str(char *s)
{
	if (g_npaths < H_MAX_PATHS)
		g_paths[g_npaths++] = s;
	return s;
}

const char *h_path(const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", g_dir, name) < 0)
		cr_assert_fail("out of memory");
	return keep_str(p);
}

/* A formatted string that lives until the end of the test. */
static const char *keep_fmt(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static const char *keep_fmt(const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		cr_assert_fail("out of memory");
	va_end(ap);
	return keep_str(p);
}

char *h_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
	}
	close(fd);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

void h_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		cr_assert_fail("cannot create %s: %s", path, strerror(errno));
	const uint8_t *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n <= 0)
			cr_assert_fail("writing %s: %s", path, strerror(errno));
		p += n;
		len -= n;
	}
	close(fd);
}

off_t h_file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) < 0 ? -1 : st.st_size;
}

bool h_file_contains(const char *path, const char *needle)
{
	char *s = h_read_file(path, NULL);
	bool found = s && strstr(s, needle);
	free(s);
	return found;
}

/* ---- hand-made images --------------------------------------------------- */

const char *h_image_aout(const char *name, const uint8_t *code, size_t len)
{
	uint32_t h[8] = { 0x1BADB002u, 0x10000u, 0, 0x100000, 0x100000, 0, 0,
			  0x100020 };
	h[2] = (uint32_t)-(h[0] + h[1]);
	uint8_t img[4096];
	cr_assert_leq(len, sizeof(img) - sizeof(h));
	memcpy(img, h, sizeof(h));
	memcpy(img + sizeof(h), code, len);
	const char *path = h_path(name);
	h_write_file(path, img, sizeof(h) + len);
	return path;
}

const char *h_image_exit(uint8_t code)
{
	uint8_t c[] = { 0xB0, code, 0xE6, 0xF4, 0xF4 }; /* mov al,N; out; hlt */
	char name[32];
	snprintf(name, sizeof(name), "exit%u.img", code);
	return h_image_aout(name, c, sizeof(c));
}

const char *h_image_halt(void)
{
	uint8_t c[] = { 0xFA, 0xF4, 0xEB, 0xFC }; /* cli; 1: hlt; jmp 1b */
	return h_image_aout("halt.img", c, sizeof(c));
}

/* ---- processes ------------------------------------------------------------ */

static void register_vm(struct h_vm *vm)
{
	if (g_nvms == H_MAX_VMS)
		cr_assert_fail("harness: too many processes in one test");
	g_vms[g_nvms++] = vm;
}

/*
 * A machine without KVM (no /dev/kvm, or a KVM module that did not bind,
 * as kvm_pvm does on a host running with PTI) cannot run a guest: tests
 * that need one are skipped, loudly, with the reason.  Everything that
 * runs without a guest (options, control commands, an incoming
 * destination waiting, the stream checks before HELLO) still runs.
 */
const char *h_kvm_missing(void)
{
	static int checked;
	static char why[160];
	if (!checked) {
		int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			snprintf(why, sizeof(why), "needs KVM: /dev/kvm: %s",
				 strerror(errno));
		else
			close(fd);
		checked = 1;
	}
	return why[0] ? why : NULL;
}

void h_require_kvm(void)
{
	const char *why = h_kvm_missing();
	if (why) {
		fprintf(stderr, "SKIP: %s\n", why);
		cr_skip_test("%s", why);
	}
}

struct h_vm *h_spawnv(const char *name, unsigned flags, const char **args)
{
	struct h_vm *vm = calloc(1, sizeof(*vm));
	const char *argv[64];
	unsigned n = 0;
	int pipefd[2] = { -1, -1 };

	snprintf(vm->name, sizeof(vm->name), "%s", name);
	vm->flags = flags;
	vm->console_fd = -1;
	snprintf(vm->serial, sizeof(vm->serial), "%s/%s.serial", g_dir, name);
	snprintf(vm->err_path, sizeof(vm->err_path), "%s/%s.err", g_dir, name);
	snprintf(vm->out_path, sizeof(vm->out_path), "%s/%s.out", g_dir, name);
	if (flags & H_CONTROL)
		snprintf(vm->control, sizeof(vm->control), "%s/%s.sock", g_dir, name);
	if (flags & H_HEARTBEAT)
		snprintf(vm->heartbeat, sizeof(vm->heartbeat), "%s/%s.hb", g_dir, name);

	argv[n++] = h_ferry();
	for (; *args && n < 40; args++)
		argv[n++] = *args;
	char serial_opt[PATH_MAX + 8], hb_opt[PATH_MAX + 8];
	if (flags & H_CONSOLE) {
		argv[n++] = "--serial";
		argv[n++] = "stdio";
		snprintf(vm->out_path, sizeof(vm->out_path), "%s", vm->serial);
		if (pipe2(pipefd, O_CLOEXEC) < 0)
			cr_assert_fail("pipe: %s", strerror(errno));
	} else if (!(flags & H_NO_SERIAL)) {
		snprintf(serial_opt, sizeof(serial_opt), "file:%s", vm->serial);
		argv[n++] = "--serial";
		argv[n++] = serial_opt;
	}
	if (flags & H_HEARTBEAT) {
		snprintf(hb_opt, sizeof(hb_opt), "file:%s", vm->heartbeat);
		argv[n++] = "--heartbeat";
		argv[n++] = hb_opt;
	}
	if (flags & H_CONTROL) {
		argv[n++] = "--control";
		argv[n++] = vm->control;
	}
	argv[n] = NULL;

	int out = open(vm->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = open(vm->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0 || err < 0)
		cr_assert_fail("cannot create output files in %s", g_dir);

	fflush(NULL);
	vm->started = h_now();
	pid_t pid = fork();
	if (pid < 0)
		cr_assert_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		int in = pipefd[0] >= 0 ? pipefd[0] : open("/dev/null", O_RDONLY);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		/* Die with the test: a test killed by Criterion's timeout
		 * must not leave VMs running. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], (char *const *)argv);
		dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out);
	close(err);
	if (pipefd[0] >= 0) {
		close(pipefd[0]);
		vm->console_fd = pipefd[1];
	}
	vm->pid = pid;
	register_vm(vm);
	return vm;
}

#define COLLECT_ARGS(arr, first, ap) do {				\
	unsigned n_ = 0;						\
	for (const char *a_ = (first); a_ && n_ < 40;			\
	     a_ = va_arg(ap, const char *))				\
		(arr)[n_++] = a_;					\
	(arr)[n_] = NULL;						\
} while (0)

struct h_vm *h_spawn(const char *name, unsigned flags, ...)
{
	const char *args[48];
	va_list ap;
	va_start(ap, flags);
	COLLECT_ARGS(args, va_arg(ap, const char *), ap);
	va_end(ap);
	return h_spawnv(name, flags, args);
}

struct h_vm *h_boot(const char *name, unsigned flags, const char *cmdline, ...)
{
	const char *args[48] = { "run", "--kernel", h_guest(), "--cmdline",
				 cmdline };
	va_list ap;
	va_start(ap, cmdline);
	COLLECT_ARGS(args + 5, va_arg(ap, const char *), ap);
	va_end(ap);
	return h_spawnv(name, flags, args);
}

struct h_vm *h_restore(const char *name, unsigned flags, const char *snapshot,
		       ...)
{
	const char *args[48] = { "run", "--restore", snapshot };
	va_list ap;
	va_start(ap, snapshot);
	COLLECT_ARGS(args + 3, va_arg(ap, const char *), ap);
	va_end(ap);
	return h_spawnv(name, flags, args);
}

static int decode_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

bool h_vm_exited(struct h_vm *vm)
{
	if (vm->exited)
		return true;
	int st;
	pid_t r = waitpid(vm->pid, &st, WNOHANG);
	if (r == vm->pid) {
		vm->exited = true;
		vm->status = st;
	}
	return vm->exited;
}

char *h_vm_stderr(struct h_vm *vm)
{
	char *s = h_read_file(vm->err_path, NULL);
	return s ? s : strdup("");
}

char *h_vm_serial(struct h_vm *vm)
{
	char *s = h_read_file(vm->serial, NULL);
	return s ? s : strdup("");
}

void h_vm_dump(struct h_vm *vm)
{
	char *e = h_vm_stderr(vm), *s = h_vm_serial(vm);
	size_t sl = strlen(s);
	const char *tail = sl > 3000 ? s + sl - 3000 : s;
	fprintf(stderr,
		"==== %s (pid %d, %s) stderr ====\n%s"
		"==== %s serial (last 3000 bytes) ====\n%s\n==== end %s ====\n",
		vm->name, (int)vm->pid,
		vm->exited ? "exited" : "running", e, vm->name, tail, vm->name);
	free(e);
	free(s);
}

/* A ferry that ended because this machine has no KVM skips the test
 * instead of failing it: what the test meant to check never ran.  One that
 * ended with 0 did not die of it (a destination that refused a source for
 * want of /dev/kvm, then quit as asked). */
static void skip_if_died_for_kvm(struct h_vm *vm)
{
	if (!h_kvm_missing() || !vm->exited || decode_status(vm->status) == 0)
		return;
	char *e = h_vm_stderr(vm);
	bool kvm = e && strstr(e, "cannot open /dev/kvm");
	free(e);
	if (kvm)
		h_require_kvm();
}

void h_assert_failed(const char *cond, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cr_assert_fail("assertion `%s` failed: %s", cond, msg);
}

void h_dump_all(void)
{
	for (unsigned i = 0; i < g_nvms; i++) {
		h_vm_exited(g_vms[i]);
		skip_if_died_for_kvm(g_vms[i]);
	}
	for (unsigned i = 0; i < g_nvms; i++)
		h_vm_dump(g_vms[i]);
}

static bool sanitizer_report(struct h_vm *vm, char *msg, size_t size)
{
	static const char *const marks[] = {
		"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
		"runtime error:", "WARNING: ThreadSanitizer", "LeakSanitizer:",
	};
	char *e = h_vm_stderr(vm);
	bool found = false;
	for (size_t i = 0; !found && i < sizeof(marks) / sizeof(marks[0]); i++) {
		if (strstr(e, marks[i])) {
			snprintf(msg, size, "%s: sanitizer report (\"%s\") in stderr",
				 vm->name, marks[i]);
			found = true;
		}
	}
	free(e);
	return found;
}

void h_vm_check_sanitizers(struct h_vm *vm)
{
	char msg[512];
	if (sanitizer_report(vm, msg, sizeof(msg))) {
		h_vm_dump(vm);
		cr_assert_fail("%s", msg);
	}
}

int h_vm_wait(struct h_vm *vm, double timeout_s)
{
	double dl = h_now() + timeout_s;
	while (!h_vm_exited(vm)) {
		if (h_now() >= dl) {
			kill(vm->pid, SIGKILL);
			int st;
			waitpid(vm->pid, &st, 0);
			vm->exited = true;
			vm->status = st;
			h_dump_all();
			cr_assert_fail("%s: did not exit within %.0f s (killed)",
				       vm->name, timeout_s);
		}
		h_sleep_ms(10);
	}
	skip_if_died_for_kvm(vm);
	h_vm_check_sanitizers(vm);
	return decode_status(vm->status);
}

static bool wait_exit_quietly(struct h_vm *vm, double timeout_s)
{
	double dl = h_now() + timeout_s;
	while (!h_vm_exited(vm) && h_now() < dl)
		h_sleep_ms(10);
	return vm->exited;
}

static int qmp_connect(const char *path, double timeout_s, char **greeting);

/* Stop without failing the test; returns false if it had to be killed. */
static bool vm_stop_quietly(struct h_vm *vm)
{
	if (h_vm_exited(vm))
		return true;
	if (vm->control[0]) {
		int fd = qmp_connect(vm->control, 2.0, NULL);
		if (fd >= 0) {
			const char *q = "{\"execute\":\"quit\"}\n";
			if (write(fd, q, strlen(q)) < 0)
				(void)0;
			wait_exit_quietly(vm, H_STOP_GRACE_S);
			close(fd);
		}
	}
	if (!vm->exited) {
		kill(vm->pid, SIGTERM);
		wait_exit_quietly(vm, H_STOP_GRACE_S);
	}
	if (!vm->exited) {
		kill(vm->pid, SIGKILL);
		waitpid(vm->pid, &vm->status, 0);
		vm->exited = true;
		return false;
	}
	return true;
}

void h_vm_stop(struct h_vm *vm)
{
	if (!vm_stop_quietly(vm)) {
		h_vm_dump(vm);
		cr_assert_fail("%s: did not end on quit/SIGTERM (killed)", vm->name);
	}
	h_vm_check_sanitizers(vm);
}

int h_run(double timeout_s, char **out, char **err, ...)
{
	static unsigned seq;
	char name[32];
	const char *args[48];
	va_list ap;
	va_start(ap, err);
	COLLECT_ARGS(args, va_arg(ap, const char *), ap);
	va_end(ap);
	snprintf(name, sizeof(name), "run%u", seq++);
	struct h_vm *vm = h_spawnv(name, H_NO_SERIAL, args);
	int code = h_vm_wait(vm, timeout_s);
	if (out)
		*out = h_read_file(vm->out_path, NULL);
	if (err)
		*err = h_vm_stderr(vm);
	/* Done with it: unlist it so that many runs fit in one test. */
	if (g_nvms && g_vms[g_nvms - 1] == vm) {
		g_nvms--;
		free(vm);
	}
	return code;
}

bool h_wait_serial(struct h_vm *vm, const char *needle, double timeout_s)
{
	h_wait_for(h_file_contains(vm->serial, needle) || h_vm_exited(vm),
		   timeout_s);
	return h_file_contains(vm->serial, needle);
}

void h_console_send(struct h_vm *vm, const char *s)
{
	cr_assert_geq(vm->console_fd, 0, "%s has no console pipe (H_CONSOLE)",
		      vm->name);
	size_t len = strlen(s);
	if (write(vm->console_fd, s, len) != (ssize_t)len)
		cr_assert_fail("%s: console write: %s", vm->name, strerror(errno));
}

/* ---- control socket ------------------------------------------------------ */

static int read_line(int fd, char **line, double deadline)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		int ms = (int)((deadline - h_now()) * 1000);
		if (ms <= 0) {
			free(buf);
			return -ETIMEDOUT;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		/* Byte by byte: the greeting and a reply must not be read
		 * into one buffer and lost. */
		char c;
		ssize_t k = read(fd, &c, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			free(buf);
			return k < 0 ? -errno : -ECONNRESET;
		}
		if (c == '\n') {
			buf[n] = '\0';
			*line = buf;
			return 0;
		}
		if (n + 1 >= cap)
			buf = realloc(buf, cap *= 2);
		buf[n++] = c;
	}
}

static int qmp_connect(const char *path, double timeout_s, char **greeting)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	char *g = NULL;
	int r = read_line(fd, &g, h_now() + timeout_s);
	if (r < 0) {
		close(fd);
		return r;
	}
	if (greeting)
		*greeting = g;
	else
		free(g);
	return fd;
}

bool h_control_alive(struct h_vm *vm)
{
	int fd = qmp_connect(vm->control, 2.0, NULL);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Connect, retrying while the VM is starting up (the socket appears after
 * the machine is built). */
static int qmp_connect_vm(struct h_vm *vm)
{
	h_assert(vm->control[0], "%s has no control socket (H_CONTROL)", vm->name);
	double dl = h_now() + 20.0;
	int fd;
	for (;;) {
		fd = qmp_connect(vm->control, H_QMP_TIMEOUT_S, NULL);
		if (fd >= 0)
			return fd;
		if (h_vm_exited(vm))
			h_fail("%s: exited (status %d) while a control connection "
			       "was being made", vm->name, decode_status(vm->status));
		if ((fd != -ENOENT && fd != -ECONNREFUSED) || h_now() > dl)
			h_fail("%s: cannot connect to %s: %s", vm->name,
			       vm->control, strerror(-fd));
		h_sleep_ms(20);
	}
}

char *h_qmp_raw_line(struct h_vm *vm, const char *line)
{
	int fd = qmp_connect_vm(vm);
	size_t len = strlen(line), off = 0;
	while (off < len) {
		ssize_t n = write(fd, line + off, len - off);
		if (n <= 0)
			h_fail("%s: control write: %s", vm->name, strerror(errno));
		off += n;
	}
	char *reply = NULL;
	int r = read_line(fd, &reply, h_now() + H_QMP_TIMEOUT_S);
	close(fd);
	if (r < 0)
		h_fail("%s: no reply to %s: %s", vm->name, line, strerror(-r));
	return reply;
}

json_t *h_qmp_raw(struct h_vm *vm, const char *line)
{
	char *reply = h_qmp_raw_line(vm, line);
	json_error_t e;
	json_t *j = json_loads(reply, 0, &e);
	if (!j || !json_is_object(j))
		h_fail("%s: reply is not a JSON object: %s (%s)", vm->name,
		       reply, e.text);
	free(reply);
	return j;
}

static json_t *qmp_v(struct h_vm *vm, const char *fmt, va_list ap)
{
	char *req;
	if (vasprintf(&req, fmt, ap) < 0)
		cr_assert_fail("out of memory");
	size_t l = strlen(req);
	req = realloc(req, l + 2);
	if (!l || req[l - 1] != '\n') {
		req[l] = '\n';
		req[l + 1] = '\0';
	}
	json_t *j = h_qmp_raw(vm, req);
	free(req);
	return j;
}

json_t *h_qmp(struct h_vm *vm, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	json_t *j = qmp_v(vm, fmt, ap);
	va_end(ap);
	return j;
}

json_t *h_qmp_ok(struct h_vm *vm, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	json_t *j = qmp_v(vm, fmt, ap);
	va_end(ap);
	json_t *ret = json_object_get(j, "return");
	if (!ret) {
		char *s = json_dumps(j, JSON_COMPACT);
		h_fail("%s: expected a return, got %s (request %s)", vm->name, s, fmt);
	}
	json_incref(ret);
	json_decref(j);
	return ret;
}

json_t *h_qmp_err(struct h_vm *vm, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	json_t *j = qmp_v(vm, fmt, ap);
	va_end(ap);
	json_t *e = json_object_get(j, "error");
	if (!e || !json_is_string(json_object_get(e, "class")) ||
	    !json_is_string(json_object_get(e, "desc"))) {
		char *s = json_dumps(j, JSON_COMPACT);
		h_fail("%s: expected {\"error\":{\"class\",\"desc\"}}, got %s "
		       "(request %s)", vm->name, s, fmt);
	}
	json_incref(e);
	json_decref(j);
	return e;
}

const char *h_str(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : "";
}

json_int_t h_int(json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

char *h_dump(json_t *j)
{
	return j ? json_dumps(j, JSON_COMPACT) : strdup("null");
}

void h_quit_ok(struct h_vm *vm)
{
	json_decref(h_qmp_ok(vm, "{\"execute\":\"quit\"}"));
	int rc = h_vm_wait(vm, 20);
	h_assert(rc == 0, "%s exited %d after quit", vm->name, rc);
}

char *h_status(struct h_vm *vm)
{
	json_t *r = h_qmp_ok(vm, "{\"execute\":\"query-status\"}");
	const char *s = json_string_value(json_object_get(r, "status"));
	h_assert(s, "query-status without a status string");
	char *d = strdup(s);
	json_decref(r);
	return d;
}

json_t *h_guest_info(struct h_vm *vm)
{
	json_t *r = h_qmp_ok(vm, "{\"execute\":\"query-vm\"}");
	json_t *g = json_object_get(r, "guest");
	h_assert(json_is_object(g), "query-vm has no \"guest\" object");
	json_incref(g);
	json_decref(r);
	return g;
}

uint64_t h_guest_u64(struct h_vm *vm, const char *key)
{
	json_t *g = h_guest_info(vm);
	json_t *v = json_object_get(g, key);
	if (!json_is_integer(v)) {
		char *s = json_dumps(g, JSON_COMPACT);
		h_fail("query-vm guest.%s is not an integer: %s", key, s);
	}
	uint64_t x = (uint64_t)json_integer_value(v);
	json_decref(g);
	return x;
}

static bool guest_ready(struct h_vm *vm)
{
	if (h_vm_exited(vm))
		return false;
	json_t *g = h_guest_info(vm);
	bool r = json_is_true(json_object_get(g, "ready"));
	json_decref(g);
	return r;
}

void h_wait_ready(struct h_vm *vm, double timeout_s)
{
	if (!h_wait_for(guest_ready(vm) || h_vm_exited(vm), timeout_s) ||
	    h_vm_exited(vm))
		h_fail("%s: guest not READY within %.0f s (%s)", vm->name,
		       timeout_s, vm->exited ? "process exited" : "still running");
}

uint64_t h_wait_guest_ge(struct h_vm *vm, const char *key, uint64_t value,
			 double timeout_s)
{
	uint64_t v = 0;
	if (!h_wait_for(h_vm_exited(vm) || (v = h_guest_u64(vm, key)) >= value,
			timeout_s) || v < value)
		h_fail("%s: guest.%s stayed at %llu, wanted >= %llu within %.0f s%s",
		       vm->name, key, (unsigned long long)v,
		       (unsigned long long)value, timeout_s,
		       vm->exited ? " (process exited)" : "");
	return v;
}

uint64_t h_wait_resume_verified(struct h_vm *vm, double timeout_s)
{
	double dl = h_now() + timeout_s;
	for (;;) {
		json_t *g = h_guest_info(vm);
		uint64_t gen = json_integer_value(json_object_get(g, "resume-generation"));
		uint64_t ver = json_integer_value(json_object_get(g,
						  "verified-resume-generation"));
		uint64_t errors = json_integer_value(json_object_get(g, "errors"));
		json_decref(g);
		h_assert(gen >= 1, "%s: resume-generation 0: not moved or restored",
			 vm->name);
		if (ver >= gen)
			return errors;
		if (h_now() > dl)
			h_fail("%s: no full pass after the move within %.0f s "
			       "(resume-generation %llu, verified %llu)", vm->name,
			       timeout_s, (unsigned long long)gen,
			       (unsigned long long)ver);
		h_sleep_ms(20);
	}
}

void h_wait_progress(struct h_vm *vm, unsigned n, double timeout_s)
{
	uint64_t base = h_guest_u64(vm, "progress-reports");
	h_wait_guest_ge(vm, "progress-reports", base + n, timeout_s);
}

const char *h_snapshot(struct h_vm *vm, const char *name)
{
	const char *path = h_path(name);
	json_t *r = h_qmp_ok(vm, "{\"execute\":\"snapshot-save\","
			     "\"arguments\":{\"path\":\"%s\"}}", path);
	json_decref(r);
	h_assert(h_file_size(path) > 0, "snapshot %s missing after snapshot-save",
		 path);
	return path;
}

/* ---- migration ----------------------------------------------------------- */

#define H_LISTEN_MARK "waiting for an incoming migration on "

struct h_vm *h_incoming(const char *name, unsigned flags, ...)
{
	const char *args[48] = { "run", "--incoming", "tcp:127.0.0.1:0" };
	va_list ap;
	va_start(ap, flags);
	COLLECT_ARGS(args + 3, va_arg(ap, const char *), ap);
	va_end(ap);
	struct h_vm *vm = h_spawnv(name, flags, args);
	/* The port is the kernel's choice: read it back from the log line
	 * "... waiting for an incoming migration on HOST:PORT". */
	char *e = NULL, *at = NULL;
	double dl = h_now() + 20.0;
	for (;;) {
		free(e);
		e = h_vm_stderr(vm);
		at = strstr(e, H_LISTEN_MARK);
		if (at && strchr(at, '\n'))
			break;
		if (h_vm_exited(vm) || h_now() > dl) {
			free(e);
			h_fail("%s: not listening for a migration within 20 s (%s)",
			       vm->name, vm->exited ? "exited" : "still running");
		}
		h_sleep_ms(10);
	}
	char *nl = strchr(at, '\n');
	*nl = '\0';
	char *colon = strrchr(at, ':');
	vm->port = colon ? atoi(colon + 1) : 0;
	free(e);
	h_assert(vm->port > 0 && vm->port < 65536, "%s: no port in its log line",
		 vm->name);
	return vm;
}

const char *h_mig_uri(int port)
{
	char *p;
	if (asprintf(&p, "tcp:127.0.0.1:%d", port) < 0)
		cr_assert_fail("out of memory");
	return keep_str(p);
}

int h_listen_local(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

int h_free_port(void)
{
	int port = 0;
	int fd = h_listen_local(&port);
	if (fd < 0)
		cr_assert_fail("cannot find a free port: %s", strerror(-fd));
	close(fd);
	return port;
}

json_t *h_qmp_try(struct h_vm *vm, const char *fmt, ...)
{
	if (!vm->control[0] || h_vm_exited(vm))
		return NULL;
	char *req;
	va_list ap;
	va_start(ap, fmt);
	int l = vasprintf(&req, fmt, ap);
	va_end(ap);
	if (l < 0)
		return NULL;
	int fd = qmp_connect(vm->control, 5.0, NULL);
	if (fd < 0) {
		free(req);
		return NULL;
	}
	bool ok = write(fd, req, l) == l && write(fd, "\n", 1) == 1;
	free(req);
	char *reply = NULL;
	if (ok && read_line(fd, &reply, h_now() + H_QMP_TIMEOUT_S) < 0)
		reply = NULL;
	close(fd);
	if (!reply)
		return NULL;
	json_t *j = json_loads(reply, 0, NULL);
	free(reply);
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

json_t *h_query_migrate(struct h_vm *vm)
{
	return h_qmp_ok(vm, "{\"execute\":\"query-migrate\"}");
}

static bool mig_final(const char *st)
{
	return st && (!strcmp(st, "completed") || !strcmp(st, "failed") ||
		      !strcmp(st, "cancelled"));
}

json_t *h_wait_migration(struct h_vm *src, double timeout_s,
			 json_t **last_guest)
{
	double dl = h_now() + timeout_s;
	json_t *guest = NULL, *ret = NULL;
	const char *st = NULL;
	for (;;) {
		json_t *r = h_qmp_try(src, "{\"execute\":\"query-migrate\"}");
		json_t *q = r ? json_object_get(r, "return") : NULL;
		if (q) {
			st = json_string_value(json_object_get(q, "status"));
			json_incref(q);
			json_decref(ret);
			ret = q;
		}
		json_decref(r);
		/* The guest's counters after the status: once "completed"
		 * they are the last the source will ever have. */
		if (last_guest) {
			json_t *v = h_qmp_try(src, "{\"execute\":\"query-vm\"}");
			json_t *g = v ? json_object_get(json_object_get(v, "return"),
							"guest") : NULL;
			if (json_is_object(g)) {
				json_incref(g);
				json_decref(guest);
				guest = g;
			}
			json_decref(v);
		}
		if (q && mig_final(st))
			break;
		if (h_vm_exited(src)) {
			char *s = ret ? json_dumps(ret, JSON_COMPACT) : strdup("nothing");
			h_fail("%s: exited (status %d) before query-migrate showed a "
			       "final status; last seen %s", src->name,
			       decode_status(src->status), s);
		}
		if (h_now() > dl) {
			char *s = ret ? json_dumps(ret, JSON_COMPACT) : strdup("nothing");
			h_fail("%s: migration not finished within %.0f s; last "
			       "query-migrate %s", src->name, timeout_s, s);
		}
		h_sleep_ms(20);
	}
	if (last_guest)
		*last_guest = guest;
	return ret;
}

void h_wait_control(struct h_vm *vm, double timeout_s)
{
	if (!h_wait_for(h_vm_exited(vm) || h_control_alive(vm), timeout_s) ||
	    h_vm_exited(vm))
		h_fail("%s: control socket did not come up within %.0f s (%s)",
		       vm->name, timeout_s,
		       vm->exited ? "process exited" : "still running");
}

bool h_wait_stderr(struct h_vm *vm, const char *needle, double timeout_s)
{
	h_wait_for(h_file_contains(vm->err_path, needle) || h_vm_exited(vm),
		   timeout_s);
	return h_file_contains(vm->err_path, needle);
}

/* ---- memory digests ------------------------------------------------------ */

json_t *h_memory_digest(struct h_vm *vm)
{
	json_t *d = h_qmp_ok(vm, "{\"execute\":\"query-memory-digest\"}");
	h_assert(json_is_string(json_object_get(d, "digest")) &&
		 json_is_array(json_object_get(d, "regions")),
		 "%s: query-memory-digest answered without digest or regions",
		 vm->name);
	return d;
}

void h_assert_same_memory(struct h_vm *va, json_t *a, struct h_vm *vb,
			  json_t *b)
{
	json_t *ra = json_object_get(a, "regions"), *rb = json_object_get(b, "regions");
	h_assert(json_array_size(ra) == json_array_size(rb),
		 "%s has %zu memory regions, %s %zu", va->name,
		 json_array_size(ra), vb->name, json_array_size(rb));
	for (size_t i = 0; i < json_array_size(ra); i++) {
		json_t *x = json_array_get(ra, i), *y = json_array_get(rb, i);
		long long gpa = json_integer_value(json_object_get(x, "gpa"));
		h_assert(json_equal(json_object_get(x, "gpa"), json_object_get(y, "gpa")) &&
			 json_equal(json_object_get(x, "size"), json_object_get(y, "size")),
			 "memory region %zu differs in place or size between %s and %s",
			 i, va->name, vb->name);
		h_assert(json_equal(json_object_get(x, "digest"),
				    json_object_get(y, "digest")),
			 "guest RAM differs: region %zu at 0x%llx hashes to %s on %s "
			 "and %s on %s", i, gpa,
			 json_string_value(json_object_get(x, "digest")), va->name,
			 json_string_value(json_object_get(y, "digest")), vb->name);
	}
	h_assert(json_equal(json_object_get(a, "algorithm"), json_object_get(b, "algorithm")) &&
		 json_equal(json_object_get(a, "digest"), json_object_get(b, "digest")),
		 "guest RAM digests differ: %s on %s, %s on %s",
		 json_string_value(json_object_get(a, "digest")), va->name,
		 json_string_value(json_object_get(b, "digest")), vb->name);
}

/* ---- QEMU ----------------------------------------------------------------- */

static const char *qemu_binary(void)
{
	static const char *const cands[] = { "/usr/bin/qemu-system-x86_64",
					     "/usr/local/bin/qemu-system-x86_64" };
	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		if (access(cands[i], X_OK) == 0)
			return cands[i];
	return NULL;
}

const char *h_qemu(void)
{
	return h_kvm_missing() ? NULL : qemu_binary();
}

const char *h_qemu_tcg(void)
{
	return qemu_binary();
}

struct h_vm *h_qemu_start(const char *name, const char *cmdline,
			  const struct h_qemu_opts *o)
{
	static const struct h_qemu_opts defaults = { 0 };
	const char *qemu = o && o->kvm ? h_qemu() : h_qemu_tcg();
	const char *argv[48];
	unsigned n = 0;

	if (!o)
		o = &defaults;
	h_assert(qemu, "no qemu-system-x86_64%s", o->kvm ? " or no KVM" : "");
	struct h_vm *vm = calloc(1, sizeof(*vm));
	h_assert(vm, "out of memory");
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	vm->console_fd = -1;
	snprintf(vm->serial, sizeof(vm->serial), "%s/%s.serial", g_dir, name);
	snprintf(vm->err_path, sizeof(vm->err_path), "%s/%s.err", g_dir, name);
	snprintf(vm->out_path, sizeof(vm->out_path), "%s/%s.out", g_dir, name);

	const char *mem = o->memory ? o->memory : "128M";
	char name_buf[80];
	argv[n++] = qemu;
	if (o->kvm)
		argv[n++] = "-enable-kvm";
	argv[n++] = "-m";
	argv[n++] = mem;
	if (o->smp) {
		argv[n++] = "-smp";
		argv[n++] = o->smp;
	}
	if (o->initrd) {
		argv[n++] = "-initrd";
		argv[n++] = o->initrd;
	}
	if (o->shared_ram) {
		/* Guest RAM in a file both QEMU and the test map: the test
		 * can change guest memory behind the guest's back. */
		snprintf(name_buf, sizeof(name_buf), "%s.ram", name);
		argv[n++] = "-object";
		argv[n++] = keep_fmt("memory-backend-file,id=ram,size=%s,"
				       "mem-path=%s,share=on", mem,
				       h_path(name_buf));
		argv[n++] = "-machine";
		argv[n++] = "memory-backend=ram";
	}
	argv[n++] = "-display";
	argv[n++] = "none";
	argv[n++] = "-nodefaults";
	argv[n++] = "-no-user-config";
	argv[n++] = "-no-reboot";
	argv[n++] = "-serial";
	argv[n++] = keep_fmt("file:%s", vm->serial);
	argv[n++] = "-kernel";
	argv[n++] = h_guest();
	argv[n++] = "-append";
	argv[n++] = cmdline;
	argv[n++] = "-device";
	argv[n++] = "isa-debug-exit,iobase=0xf4,iosize=4";
	if (o->heartbeat) {
		bool sock = !strncmp(o->heartbeat, "unix:", 5);
		h_assert(sock || !strncmp(o->heartbeat, "file:", 5),
			 "heartbeat '%s': file:PATH or unix:PATH", o->heartbeat);
		snprintf(vm->heartbeat, sizeof(vm->heartbeat), "%s",
			 o->heartbeat + 5);
		argv[n++] = "-chardev";
		argv[n++] = keep_fmt("%s,id=hb,path=%s", sock ? "socket" : "file",
				       vm->heartbeat);
		argv[n++] = "-device";
		argv[n++] = "isa-debugcon,iobase=0xe9,chardev=hb";
	}
	if (o->qmp) {
		snprintf(name_buf, sizeof(name_buf), "%s.qmp", name);
		argv[n++] = "-qmp";
		argv[n++] = keep_fmt("unix:%s,server=on,wait=off",
				       h_path(name_buf));
	}
	if (o->incoming) {
		argv[n++] = "-incoming";
		argv[n++] = o->incoming;
	}
	argv[n] = NULL;

	int out = open(vm->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = open(vm->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(out);
	close(err);
	h_assert(pid > 0, "fork: %s", strerror(errno));
	vm->pid = pid;
	vm->started = h_now();
	register_vm(vm);
	return vm;
}

int h_qemu_wait(struct h_vm *vm, double timeout_s)
{
	double dl = h_now() + timeout_s;
	while (!h_vm_exited(vm)) {
		if (h_now() >= dl) {
			kill(vm->pid, SIGKILL);
			waitpid(vm->pid, &vm->status, 0);
			vm->exited = true;
			h_dump_all();
			cr_assert_fail("%s: QEMU did not exit within %.0f s (killed)",
				       vm->name, timeout_s);
		}
		h_sleep_ms(20);
	}
	return decode_status(vm->status);
}

int h_qemu_run(const char *name, const char *cmdline, double timeout_s)
{
	struct h_qemu_opts o = { .kvm = true, .memory = "512M" };
	return h_qemu_wait(h_qemu_start(name, cmdline, &o), timeout_s);
}

int h_qemu_tcg_run(const char *name, const char *cmdline, double timeout_s)
{
	return h_qemu_wait(h_qemu_start(name, cmdline, NULL), timeout_s);
}

/* Read QMP lines until one is not an event. */
static json_t *qemu_qmp_reply(struct h_vm *vm, int fd, const char *what)
{
	for (;;) {
		char *line = NULL;
		int r = read_line(fd, &line, h_now() + H_QMP_TIMEOUT_S);
		if (r < 0)
			h_fail("%s: no QMP reply to %s: %s", vm->name, what,
			       strerror(-r));
		json_t *j = json_loads(line, 0, NULL);
		if (!j || !json_is_object(j))
			h_fail("%s: QMP reply is not a JSON object: %s", vm->name,
			       line);
		free(line);
		if (!json_object_get(j, "event"))
			return j;
		json_decref(j);
	}
}

json_t *h_qemu_qmp(struct h_vm *vm, const char *execute, const char *args)
{
	char path[80], *req = NULL;
	int fd = -ENOENT;

	snprintf(path, sizeof(path), "%s.qmp", vm->name);
	double dl = h_now() + 20;
	while ((fd = qmp_connect(h_path(path), H_QMP_TIMEOUT_S, NULL)) < 0) {
		if (h_vm_exited(vm) || h_now() > dl)
			h_fail("%s: no QMP socket at %s: %s", vm->name,
			       h_path(path), strerror(-fd));
		h_sleep_ms(20);
	}
	const char *caps = "{\"execute\":\"qmp_capabilities\"}\n";
	h_assert(write(fd, caps, strlen(caps)) == (ssize_t)strlen(caps),
		 "QMP write: %s", strerror(errno));
	json_decref(qemu_qmp_reply(vm, fd, "qmp_capabilities"));
	if (asprintf(&req, "{\"execute\":\"%s\"%s%s}\n", execute,
		     args ? ",\"arguments\":" : "", args ? args : "") < 0)
		cr_assert_fail("out of memory");
	h_assert(write(fd, req, strlen(req)) == (ssize_t)strlen(req),
		 "QMP write: %s", strerror(errno));
	json_t *j = qemu_qmp_reply(vm, fd, execute);
	close(fd);
	json_t *ret = json_object_get(j, "return");
	if (!ret) {
		char *s = json_dumps(j, JSON_COMPACT);
		h_fail("%s: %s: %s", vm->name, req, s);
	}
	json_incref(ret);
	json_decref(j);
	free(req);
	return ret;
}

void h_qemu_ram_write(struct h_vm *vm, uint64_t gpa, const void *data,
		      size_t len)
{
	char name[80];
	snprintf(name, sizeof(name), "%s.ram", vm->name);
	int fd = open(h_path(name), O_RDWR | O_CLOEXEC);
	h_assert(fd >= 0, "%s: %s (shared_ram?)", h_path(name), strerror(errno));
	h_assert(pwrite(fd, data, len, (off_t)gpa) == (ssize_t)len,
		 "write guest RAM at 0x%llx: %s", (unsigned long long)gpa,
		 strerror(errno));
	close(fd);
}

void h_qemu_ram_read(struct h_vm *vm, uint64_t gpa, void *data, size_t len)
{
	char name[80];
	snprintf(name, sizeof(name), "%s.ram", vm->name);
	int fd = open(h_path(name), O_RDONLY | O_CLOEXEC);
	h_assert(fd >= 0, "%s: %s (shared_ram?)", h_path(name), strerror(errno));
	h_assert(pread(fd, data, len, (off_t)gpa) == (ssize_t)len,
		 "read guest RAM at 0x%llx: %s", (unsigned long long)gpa,
		 strerror(errno));
	close(fd);
}
