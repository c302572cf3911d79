/*
 * ferry - command line only: parse, wire, run.
 *
 *   ferry run --kernel IMAGE [--memory 512M] [--vcpus N] [--cmdline "..."]
 *             [--serial stdio|file:PATH|none] [--heartbeat none|file:P|unix:P]
 *             [--control PATH] [--paused] [--no-shutdown]
 *             [--module FILE[,ARGS]]... [--exit-port ferry|isa-debug-exit]
 *   ferry run --restore FILE [--serial ...] [--heartbeat ...] [--control ...]
 *   ferry run --incoming tcp:HOST:PORT|defer [--max-memory SIZE]
 *             [--handshake-timeout S] [--idle-timeout S] [--paused] ...
 *   ferry ctl --control PATH '<json>'
 */
#include "control/control.h"
#include "devices/heartbeat.h"
#include "devices/uart8250.h"
#include "migration/caps.h"
#include "migration/channel.h"
#include "migration/destination.h"
#include "migration/incoming.h"
#include "migration/secure.h"
#include "migration/migration.h"
#include "snapshot/snapshot.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/units.h"
#include "vmm/dirty_ring.h"
#include "vmm/exit_status.h"
#include "vmm/instance.h"
#include "vmm/machine_desc.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/prealloc.h"
#include "vmm/x86/multiboot.h"

#include <errno.h>
#include <getopt.h>
#include <math.h> /* isfinite: a macro, no libm */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>

/* A destination's defaults: a connection has this long to send its
 * preamble and HELLO; an accepted source may stay silent this long. */
#define HANDSHAKE_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_MS      30000


struct run_opts {
	struct vm_config cfg;
	const char *control;
	const char *restore;
	const char *incoming;   /* URI, or NULL with defer */
	bool defer;             /* --incoming defer: migrate-incoming says where */
	uint64_t max_memory;
	uint64_t handshake_ms, idle_ms;
	const char *dest_only;  /* an option for a destination only, if given */
	bool paused;
	bool no_shutdown;
	bool have_machine_opts; /* --kernel/--vcpus/--cmdline/... given */
	bool memory_given;      /* --memory given */
	bool prealloc;          /* --prealloc: guest RAM faulted in while waiting */
	struct multiboot_module modules[MB_MAX_MODULES]; /* --module */
	unsigned nmodules;
	const char *tls_creds;  /* --tls-creds DIR */
	const char *tls_psk;    /* --tls-psk FILE */
};

#define FERRY_VERSION "0.1"

/* `ferry --help`, and what a bad command line prints: the commands. */
static void usage(FILE *f)
{
	fprintf(f,
		"usage: ferry run --kernel IMAGE [options]       boot a guest\n"
		"       ferry run --restore SNAPSHOT [options]   continue a snapshot\n"
		"       ferry run --incoming tcp:HOST:PORT|tcp::PORT|defer [options]\n"
		"                                                wait for a migrating guest\n"
		"       ferry migrate --control PATH --to tcp:HOST:PORT [--wait] [...]\n"
		"       ferry ctl --control PATH COMMAND [KEY=VALUE...] | JSON | -\n"
		"       ferry -h|--help, ferry -V|--version\n"
		"`ferry run --help`, `ferry migrate --help` and `ferry ctl --help` say more.\n");
}

/* `ferry run --help`: every option. */
static void run_help(FILE *f)
{
	fprintf(f,
		"usage: ferry run --kernel IMAGE [--memory SIZE] [--vcpus N] [--cmdline STR]\n"
		"                 [--module FILE[,ARGS]]... [--exit-port ferry|isa-debug-exit]\n"
		"                 [common options]\n"
		"       ferry run --restore SNAPSHOT [common options]\n"
		"       ferry run --incoming tcp:HOST:PORT|tcp::PORT|defer [--max-memory SIZE]\n"
		"                 [--memory SIZE --prealloc]\n"
		"                 [--handshake-timeout SECONDS] [--idle-timeout SECONDS]\n"
		"                 [common options]\n"
		"\n"
		"The machine (with --kernel only; a snapshot or a migration brings its own):\n"
		"  --kernel IMAGE        a Multiboot v1 image (ELF32, ELF64 or a.out kludge)\n"
		"  --memory SIZE         guest RAM, at least 2M, a multiple of 4K, not more\n"
		"                        than the host's RAM and swap (default 512M)\n"
		"  --vcpus N             1 to %d vCPUs (default 1)\n"
		"  --cmdline STR         the guest's command line (multiboot)\n"
		"  --module FILE[,ARGS]  a multiboot module, seen as \"FILE ARGS\"\n"
		"                        (repeatable, at most %d)\n"
		"  --exit-port ferry|isa-debug-exit\n"
		"                        what writing V to port 0xf4 means: exit with V\n"
		"                        (ferry, the default) or with (V << 1) | 1 (QEMU's\n"
		"                        isa-debug-exit)\n"
		"\n"
		"Where the machine comes from instead:\n"
		"  --restore SNAPSHOT    continue a snapshot written by snapshot-save\n"
		"  --incoming URI        wait for a migration: tcp:HOST:PORT, tcp::PORT (any\n"
		"                        address) or defer (migrate-incoming gives the URI)\n"
		"\n"
		"For a destination only (refused without --incoming):\n"
		"  --max-memory SIZE     refuse a VM with more RAM than this\n"
		"  --prealloc            with --memory SIZE: fault in SIZE of guest RAM\n"
		"                        (huge pages where the host has them) while\n"
		"                        waiting, so that the migration lands in memory\n"
		"                        already there (QEMU's -mem-prealloc); only a VM\n"
		"                        of exactly SIZE is accepted\n"
		"  --handshake-timeout SECONDS\n"
		"                        a connection has this long to send its preamble\n"
		"                        and HELLO (with TLS: its handshake and those),\n"
		"                        else it is dropped (default 10)\n"
		"  --idle-timeout SECONDS\n"
		"                        an accepted source silent this long fails the\n"
		"                        migration (default 30)\n"
		"  --x-fault POINT       (tests) die on purpose at round0, round1, device,\n"
		"                        before-commit, after-ready or after-commit\n"
		"  --x-no-userfaultfd    (tests) act as a host without userfaultfd: refuse\n"
		"                        post-copy\n"
		"\n"
		"Common options:\n"
		"  --serial stdio|file:PATH|none\n"
		"                        the 16550A UART at 0x3f8 (default stdio)\n"
		"  --heartbeat none|file:PATH|unix:PATH\n"
		"                        where bytes written to port 0xe9 go (default none)\n"
		"  --control PATH        the control socket (QMP-shaped JSON, mode 0600)\n"
		"  --paused              start (or arrive) with the vCPUs stopped; `cont`\n"
		"                        starts them\n"
		"  --no-shutdown         keep the process after the guest shuts down\n"
		"  --tls-creds DIR       every migration connection, in or out, is TLS 1.3\n"
		"                        with X.509 certificates from DIR (as QEMU's\n"
		"                        tls-creds-x509: ca-cert.pem, server-cert.pem,\n"
		"                        server-key.pem, client-cert.pem, client-key.pem)\n"
		"  --tls-psk FILE        the same with the pre-shared key in FILE (QEMU's\n"
		"                        keys.psk: IDENTITY:HEXKEY); excludes --tls-creds\n"
		"  --dirty-ring N        track the pages a migration must resend with\n"
		"                        KVM's dirty ring of N entries per vCPU (a power\n"
		"                        of two, 256 to 65536; QEMU's dirty-ring-size)\n"
		"                        instead of the bitmap; 0 or without: the bitmap.\n"
		"                        A KVM without a ring falls back to the bitmap\n"
		"  --verbose             log debugging detail\n"
		"  --x-fail-vcpu-thread K\n"
		"                        (tests) creating vCPU thread K fails\n"
		"  -h, --help            this text\n"
		"  -V, --version         the version\n"
		"\n"
		"SIZE is a number of bytes with an optional suffix K, M, G or T, binary\n"
		"(1K = 1024; 512M, 512MB and 512MiB alike).  SECONDS may have decimals\n"
		"(2.5), more than 0 and at most 86400.\n"
		"\n"
		"Exit status: the guest's code when it exits through the exit port\n"
		"(0 to 255, other than 2, 120, 130 and 143); 1 when the guest failed\n"
		"without a code that can be passed on (a triple fault, a code past 255\n"
		"or one of ferry's own); 2 for a bad command line; 120 when the VMM\n"
		"fails; 130 after SIGINT, 143 after SIGTERM; 0 after `quit`.\n",
		VM_MAX_VCPUS, MB_MAX_MODULES);
}

/* Seconds with decimals, as milliseconds (at least 1, at most a day). */
static int parse_seconds(const char *opt, const char *s, uint64_t *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v <= 0 || v > 86400) {
		fprintf(stderr, "ferry: %s: '%s' is not a number of seconds "
				"(more than 0, at most 86400; e.g. 10 or 2.5)\n",
			opt, s);
		return -EINVAL;
	}
	*ms = (uint64_t)(v * 1000 + 0.5);
	if (*ms == 0)
		*ms = 1;
	return 0;
}

/* --x-no-userfaultfd: the answer of a host that cannot do post-copy. */
static int no_userfaultfd(char *why)
{
	return err_set(why, -ENOSYS, "post-copy needs userfaultfd: it is switched off "
		       "here (--x-no-userfaultfd)");
}

static int parse_run_opts(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "memory", required_argument, NULL, 'm' },
		{ "prealloc", no_argument, NULL, 'R' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "cmdline", required_argument, NULL, 'a' },
		{ "serial", required_argument, NULL, 's' },
		{ "heartbeat", required_argument, NULL, 'b' },
		{ "control", required_argument, NULL, 'C' },
		{ "restore", required_argument, NULL, 'r' },
		{ "incoming", required_argument, NULL, 'i' },
		{ "max-memory", required_argument, NULL, 'M' },
		{ "x-fault", required_argument, NULL, 'F' },
		{ "x-no-userfaultfd", no_argument, NULL, 'U' },
		{ "handshake-timeout", required_argument, NULL, 'H' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "x-fail-vcpu-thread", required_argument, NULL, 'T' },
		{ "dirty-ring", required_argument, NULL, 'D' },
		{ "module", required_argument, NULL, 'o' },
		{ "exit-port", required_argument, NULL, 'e' },
		{ "tls-creds", required_argument, NULL, 'x' },
		{ "tls-psk", required_argument, NULL, 'p' },
		{ "paused", no_argument, NULL, 'P' },
		{ "no-shutdown", no_argument, NULL, 'N' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	uint64_t v;
	int c;

	o->cfg.ram_size = 512ULL << 20;
	o->cfg.vcpus = 1;
	o->cfg.serial = "stdio";
	o->cfg.heartbeat = "none";
	o->handshake_ms = HANDSHAKE_TIMEOUT_MS;
	o->idle_ms = IDLE_TIMEOUT_MS;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'k': o->cfg.kernel = optarg; o->have_machine_opts = true; break;
		case 'a': o->cfg.cmdline = optarg; o->have_machine_opts = true; break;
		case 'm':
			if (parse_size(optarg, &v) || v == 0) {
				fprintf(stderr, "ferry: --memory: '%s' is not a size (e.g. 512M, 4G)\n",
					optarg);
				return -EINVAL;
			}
			o->cfg.ram_size = v;
			o->memory_given = true;
			break;
		case 'R':
			o->prealloc = true;
			o->dest_only = "--prealloc";
			break;
		case 'c':
			if (parse_uint(optarg, VM_MAX_VCPUS, &v) || v == 0) {
				fprintf(stderr, "ferry: --vcpus: '%s' is not a number from 1 to %d\n",
					optarg, VM_MAX_VCPUS);
				return -EINVAL;
			}
			o->cfg.vcpus = (unsigned)v;
			o->have_machine_opts = true;
			break;
		case 'o': {
			/* FILE[,ARGS]: the guest sees "FILE ARGS", as with
			 * QEMU's -initrd "FILE ARGS". */
			if (o->nmodules == MB_MAX_MODULES) {
				fprintf(stderr, "ferry: --module: at most %d modules\n",
					MB_MAX_MODULES);
				return -EINVAL;
			}
			struct multiboot_module *m = &o->modules[o->nmodules++];
			char *comma = strchr(optarg, ',');
			if (comma)
				*comma = '\0';
			m->path = optarg;
			m->args = comma ? comma + 1 : NULL;
			if (!*m->path) {
				fprintf(stderr, "ferry: --module: FILE is empty\n");
				return -EINVAL;
			}
			o->have_machine_opts = true;
			break;
		}
		case 'e':
			if (vm_parse_exit_port(optarg, &o->cfg.exit_port)) {
				fprintf(stderr, "ferry: --exit-port: '%s' is not ferry or isa-debug-exit\n",
					optarg);
				return -EINVAL;
			}
			o->have_machine_opts = true;
			break;
		case 'D':
			if (parse_uint(optarg, DIRTY_RING_MAX_ENTRIES, &v) ||
			    !dirty_ring_size_ok(v)) {
				fprintf(stderr, "ferry: --dirty-ring: '%s' is not 0 (off) or a "
					"power of two from %d to %d\n", optarg,
					DIRTY_RING_MIN_ENTRIES, DIRTY_RING_MAX_ENTRIES);
				return -EINVAL;
			}
			o->cfg.dirty_ring = (uint32_t)v;
			break;
		case 's': o->cfg.serial = optarg; break;
		case 'b': o->cfg.heartbeat = optarg; break;
		case 'C': o->control = optarg; break;
		case 'r': o->restore = optarg; break;
		case 'i': o->incoming = optarg; break;
		case 'M':
			if (parse_size(optarg, &v) || v == 0) {
				fprintf(stderr, "ferry: --max-memory: '%s' is not a size\n", optarg);
				return -EINVAL;
			}
			o->max_memory = v;
			o->dest_only = "--max-memory";
			break;
		case 'F': {
			enum incoming_fault f;
			if (incoming_parse_fault(optarg, &f)) {
				fprintf(stderr, "ferry: --x-fault: unknown point '%s'\n", optarg);
				return -EINVAL;
			}
			incoming_set_fault(f);
			o->dest_only = "--x-fault";
			break;
		}
		case 'U':
			mig_caps_set_postcopy_check(no_userfaultfd);
			o->dest_only = "--x-no-userfaultfd";
			break;
		case 'H':
			if (parse_seconds("--handshake-timeout", optarg, &o->handshake_ms))
				return -EINVAL;
			o->dest_only = "--handshake-timeout";
			break;
		case 'I':
			if (parse_seconds("--idle-timeout", optarg, &o->idle_ms))
				return -EINVAL;
			o->dest_only = "--idle-timeout";
			break;
		case 'T':
			if (parse_uint(optarg, VM_MAX_VCPUS - 1, &v)) {
				fprintf(stderr, "ferry: --x-fail-vcpu-thread: '%s' is not a vCPU index\n",
					optarg);
				return -EINVAL;
			}
			vm_set_start_fault((int)v);
			break;
		case 'P': o->paused = true; break;
		case 'x': o->tls_creds = optarg; break;
		case 'p': o->tls_psk = optarg; break;
		case 'N': o->no_shutdown = true; break;
		case 'v': log_set_level(LOG_DEBUG); break;
		case 'h': run_help(stdout); exit(0);
		case 'V': printf("ferry " FERRY_VERSION "\n"); exit(0);
		case ':':
			fprintf(stderr, "ferry: option '%s' needs a value\n", argv[optind - 1]);
			return -EINVAL;
		default:
			fprintf(stderr, "ferry: unknown option '%s'; "
					"`ferry run --help` lists them\n", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ferry: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (o->incoming && !strcmp(o->incoming, "defer")) {
		o->defer = true;
	} else if (o->incoming) {
		struct mig_uri u;
		char err[ERR_MAX];
		if (channel_parse_uri(o->incoming, &u, err)) {
			fprintf(stderr, "ferry: --incoming: %s (or 'defer')\n", err);
			return -EINVAL;
		}
	}
	/* Spelling only: opening and connecting are the VMM's business
	 * (and a failure there is a VMM failure, not a usage error). */
	char err[ERR_MAX];
	if (uart_check_backend(o->cfg.serial, err) ||
	    heartbeat_check_target(o->cfg.heartbeat, err)) {
		fprintf(stderr, "ferry: --%s\n", err);
		return -EINVAL;
	}
	if (o->dest_only && !o->incoming) {
		fprintf(stderr, "ferry: %s applies to a destination only "
				"(with --incoming)\n", o->dest_only);
		return -EINVAL;
	}
	if (o->tls_creds && o->tls_psk) {
		fprintf(stderr, "ferry: --tls-creds and --tls-psk exclude each other\n");
		return -EINVAL;
	}
	if (o->restore && o->incoming) {
		fprintf(stderr, "ferry: --restore and --incoming exclude each other\n");
		return -EINVAL;
	}
	if (o->prealloc && !o->memory_given) {
		fprintf(stderr, "ferry: --prealloc needs --memory SIZE: the guest RAM "
				"of the VM that will arrive\n");
		return -EINVAL;
	}
	if (o->prealloc && o->max_memory && o->cfg.ram_size > o->max_memory) {
		fprintf(stderr, "ferry: --memory with --prealloc is more than --max-memory\n");
		return -EINVAL;
	}
	if ((o->restore || o->incoming) &&
	    (o->have_machine_opts || (o->memory_given && !o->prealloc))) {
		fprintf(stderr, "ferry: --%s takes the machine from the %s; "
				"drop --kernel/--memory/--vcpus/--cmdline/--module/--exit-port"
				"%s\n",
			o->restore ? "restore" : "incoming",
			o->restore ? "snapshot" : "migration stream",
			o->incoming ? " (--memory goes with --prealloc only)" : "");
		return -EINVAL;
	}
	if (!o->restore && !o->incoming && !o->cfg.kernel) {
		fprintf(stderr, "ferry: --kernel IMAGE (or --restore FILE, or --incoming URI) is required\n");
		return -EINVAL;
	}
	if (o->cfg.ram_size % GUEST_PAGE_SIZE || o->cfg.ram_size < (2ULL << 20)) {
		fprintf(stderr, "ferry: --memory must be at least 2M and a multiple of 4K\n");
		return -EINVAL;
	}
	/* The guest would be killed by the OOM killer once it touched
	 * what is not there.  All of RAM and swap, not what is free now:
	 * guest memory is reserved lazily. */
	uint64_t host = machine_host_memory_total();
	if (!o->restore && (!o->incoming || o->prealloc) && host &&
	    o->cfg.ram_size > host) {
		char want[UNITS_LEN], have[UNITS_LEN];
		fprintf(stderr, "ferry: --memory: %s is more than this host's "
				"%s of RAM and swap\n",
			units_size(want, sizeof(want), (double)o->cfg.ram_size),
			units_size(have, sizeof(have), (double)host));
		return -EINVAL;
	}
	return 0;
}

/* Feed console input to the UART while it has room. */
static bool pump_console(struct vm *vm, int fd)
{
	uint8_t in[64];
	size_t room = uart_rx_space(vm->uart);
	if (!room)
		return true;
	ssize_t n = read(fd, in, room < sizeof(in) ? room : sizeof(in));
	if (n <= 0)
		return n < 0 && errno == EINTR; /* EOF: stop watching */
	uart_receive(vm->uart, in, (size_t)n);
	return true;
}

/* The main thread watches signals, console input and the VM's state until
 * something asks the VMM to end. */
static int main_loop(struct vm *vm, int sig_fd, const struct run_opts *o)
{
	int in_fd = uart_input_fd(vm->uart);
	bool reported = false;

	for (;;) {
		struct pollfd p[2] = { { .fd = sig_fd, .events = POLLIN },
				       { .fd = in_fd, .events = POLLIN } };
		bool want_input = in_fd >= 0 && uart_rx_space(vm->uart);
		int n = poll(p, want_input ? 2 : 1, 20);
		if (n > 0 && (p[0].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(sig_fd, &si, sizeof(si)) == sizeof(si)) {
				log_info("signal %u: quitting", si.ssi_signo);
				vm_request_quit(vm, EXIT_SIGNAL((int)si.ssi_signo));
			}
		}
		if (want_input && n > 0 && (p[1].revents & (POLLIN | POLLHUP)))
			if (!pump_console(vm, in_fd))
				in_fd = -1;

		pthread_mutex_lock(&vm->lock);
		bool quit = vm->quit_requested;
		enum vm_status st = vm->status;
		int code = vm->exit_code;
		pthread_mutex_unlock(&vm->lock);
		if (quit)
			return code;
		/* A guest that shut down or crashed stays inspectable over
		 * the control socket when asked to (--no-shutdown) or when it
		 * hit an internal error with a socket to look at it through;
		 * otherwise the process ends with a failure. */
		if (!reported && (st == VM_STATUS_SHUTDOWN ||
				  st == VM_STATUS_INTERNAL_ERROR)) {
			reported = true;
			bool stay = o->control && (o->no_shutdown ||
						   st == VM_STATUS_INTERNAL_ERROR);
			if (!stay) {
				/* An internal error was logged where it
				 * happened: once is enough. */
				if (st == VM_STATUS_INTERNAL_ERROR)
					log_error("guest stopped (internal-error); exiting");
				else
					log_error("guest stopped: %s", vm->error);
				return EXIT_GUEST_FAILED;
			}
			log_warn("guest stopped (%s); waiting for `quit`",
				 vm_status_name(st));
		}
	}
}

static void dest_publish(void *opaque, struct vm *vm)
{
	instance_set_vm(opaque, vm);
}

static void dest_ended(void *opaque)
{
	instance_wake(opaque);
}

/* How long a destination whose incoming migration failed keeps answering
 * (query-migrate's status and error-desc: why it ended), as a completed
 * source lingers, before the process ends. */
#define DEST_FAIL_LINGER_MS 1500

/* Wait up to timeout_ms for a signal or for the instance's wake-up (which
 * is taken).  Returns the signal's number, or 0. */
static int wait_signal_or_wake(struct instance *inst, int sig_fd, int timeout_ms)
{
	struct pollfd p[2] = { { .fd = sig_fd, .events = POLLIN },
			       { .fd = inst->wake_fd, .events = POLLIN } };
	uint64_t v;

	if (poll(p, 2, timeout_ms) <= 0)
		return 0;
	if (p[1].revents & POLLIN)
		(void)!read(inst->wake_fd, &v, sizeof(v));
	if (p[0].revents & POLLIN) {
		struct signalfd_siginfo si;
		if (read(sig_fd, &si, sizeof(si)) == sizeof(si))
			return (int)si.ssi_signo;
	}
	return 0;
}

static void linger_after_failure(struct instance *inst, int sig_fd)
{
	int64_t t0 = clock_mono_ms();
	int qcode;
	for (;;) {
		int64_t ms = clock_mono_ms() - t0;
		/* A quit ends it early; the failure keeps its status. */
		if (ms >= DEST_FAIL_LINGER_MS || instance_quit_requested(inst, &qcode))
			return;
		/* A signal ends the wait; the status stays. */
		if (wait_signal_or_wake(inst, sig_fd, (int)(DEST_FAIL_LINGER_MS - ms)))
			return;
	}
}

/*
 * A destination before its VM arrives: the main thread only watches
 * signals and waits for the incoming migration to end.  Returns true
 * when the VM has arrived, false with *code when the process must end
 * (a quit, a signal, or an incoming migration that ended without a VM:
 * there is nothing to run, as QEMU's destination exits then too).
 */
static bool wait_for_vm(struct instance *inst, int sig_fd, int *code)
{
	for (;;) {
		char err[ERR_MAX];
		int qcode, sig;

		sig = wait_signal_or_wake(inst, sig_fd, 200);
		if (sig) {
			log_info("signal %d: quitting", sig);
			instance_request_quit(inst, EXIT_SIGNAL(sig));
		}
		enum destination_state st = destination_get_state(inst->incoming, err);
		bool quit = instance_quit_requested(inst, &qcode);
		/* Post-copy: the VM runs here while its pages come (and
		 * stays, asleep on them, if post-copy failed). */
		if (st == DEST_COMPLETED || st == DEST_POSTCOPY ||
		    st == DEST_POSTCOPY_PAUSED || st == DEST_POSTCOPY_RECOVER ||
		    (st == DEST_FAILED && instance_vm(inst)))
			return true; /* a quit meanwhile has told the VM */
		if (st != DEST_FAILED && st != DEST_CANCELLED)
			continue;
		if (quit) {
			*code = qcode;
		} else {
			/* Why has been logged where it happened: once. */
			log_error("no VM arrived; nothing to run, exiting");
			*code = EXIT_VMM_ERROR;
			linger_after_failure(inst, sig_fd);
		}
		return false;
	}
}

/*
 * `--incoming`: everything that can fail here (the control socket, the
 * listening socket, the destination's thread) is set up before any source
 * is heard, so that after COMMIT nothing is left to fail.  The control
 * socket comes first: it answers while the migration is on its way.
 */
static int run_incoming(const struct run_opts *o, struct instance *inst,
			int sig_fd, struct control **ctl)
{
	struct destination_config dc = {
		.uri = NULL,
		.host_cfg = o->cfg,
		.max_memory = o->max_memory,
		.handshake_ms = o->handshake_ms,
		.idle_ms = o->idle_ms,
		.autostart = !o->paused,
		.tls = mig_tls_get(),
		.publish = dest_publish,
		.ended = dest_ended,
		.opaque = inst,
	};
	char err[ERR_MAX] = "";
	struct destination *d;
	int code;

	if (destination_start(&d, &dc, err)) {
		log_error("%s", err);
		return EXIT_VMM_ERROR;
	}
	pthread_mutex_lock(&inst->lock);
	inst->incoming = d;
	pthread_mutex_unlock(&inst->lock);
	if (o->control && control_start(ctl, o->control, inst, err)) {
		log_error("%s; not listening for a migration", err);
		return EXIT_VMM_ERROR;
	}
	if (o->defer)
		log_info("waiting for migrate-incoming on the control socket");
	else if (destination_set_uri(d, o->incoming, err)) {
		log_error("%s", err);
		return EXIT_VMM_ERROR;
	}
	if (!wait_for_vm(inst, sig_fd, &code))
		return code;
	return main_loop(instance_vm(inst), sig_fd, o);
}

static int cmd_run(int argc, char **argv)
{
	struct run_opts o = { 0 };
	char err[ERR_MAX] = "";
	struct instance inst;
	struct vm *vm = NULL;
	struct control *ctl = NULL;
	int code = EXIT_VMM_ERROR;
	int sig_fd = -1;

	if (parse_run_opts(argc, argv, &o))
		return EXIT_USAGE;
	/* Credentials first: a file that is wrong is said now, not when
	 * the first migration fails. */
	struct tls_creds *tls = NULL;
	if ((o.tls_creds && tls_creds_load_x509(&tls, o.tls_creds, err)) ||
	    (o.tls_psk && tls_creds_load_psk(&tls, o.tls_psk, err))) {
		fprintf(stderr, "ferry: %s: %s\n", o.tls_creds ? "--tls-creds" : "--tls-psk", err);
		return EXIT_USAGE;
	}
	mig_tls_set(tls);
	if (o.restore) {
		const char *serial = o.cfg.serial, *hb = o.cfg.heartbeat;
		if (snapshot_read_config(o.restore, &o.cfg, err)) {
			log_error("%s", err);
			mig_tls_set(NULL);
			tls_creds_free(tls);
			return EXIT_VMM_ERROR;
		}
		o.cfg.serial = serial;
		o.cfg.heartbeat = hb;
	}
	if (instance_init(&inst)) {
		log_error("cannot set up: %s", strerror(errno));
		instance_fini(&inst);
		free((void *)o.cfg.cpuid);
		mig_tls_set(NULL);
		tls_creds_free(tls);
		return EXIT_VMM_ERROR;
	}

	/* SIGINT/SIGTERM arrive through a signalfd; blocked before any
	 * thread exists so that every thread inherits the mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);
	if (sig_fd < 0 || vcpu_signals_init()) {
		log_error("cannot set up signal handling: %s", strerror(errno));
		goto out;
	}

	if (o.incoming) {
		/* After the signal mask: the populating thread inherits it. */
		if (o.prealloc && mem_prealloc_start(&o.cfg.prealloc, o.cfg.ram_size, err)) {
			log_error("--prealloc: %s", err);
			goto out;
		}
		code = run_incoming(&o, &inst, sig_fd, &ctl);
		goto out;
	}
	if (vm_create(&vm, &o.cfg, err)) {
		log_error("%s", err);
		goto out;
	}
	if (o.restore) {
		if (snapshot_restore(vm, o.restore, err)) {
			log_error("%s", err); /* it names the snapshot */
			goto out;
		}
	} else {
		struct multiboot_boot boot;
		if (multiboot_load_file(&vm->mem, o.cfg.kernel, o.cfg.cmdline,
					o.modules, o.nmodules, &boot, err)) {
			log_error("%s", err);
			goto out;
		}
		int r = vcpu_set_multiboot_entry(vm->vcpus[0], boot.entry,
						 boot.mbi);
		if (r) {
			log_error("cannot set the boot vCPU's registers: %s",
				  strerror(-r));
			goto out;
		}
	}
	if (vm_start(vm, o.paused, err)) {
		log_error("%s", err);
		goto out;
	}
	instance_set_vm(&inst, vm);
	vm = NULL; /* the instance's now */
	/* After the vCPU threads exist: every command may pause them. */
	if (o.control && control_start(&ctl, o.control, &inst, err)) {
		log_error("%s", err);
		goto out;
	}
	code = main_loop(instance_vm(&inst), sig_fd, &o);
out:
	/* Commands first (they use the VM), then whatever may still build
	 * one, then the VM. */
	if (ctl)
		control_stop(ctl);
	destination_stop(inst.incoming);
	/* After the destination's thread, which may be taking it. */
	mem_prealloc_free(o.cfg.prealloc);
	if (!vm)
		vm = instance_vm(&inst);
	if (vm)
		migration_destroy(vm);
	vm_destroy(vm);
	free((void *)o.cfg.cpuid); /* from the snapshot; the VM has a copy */
	instance_fini(&inst);
	if (sig_fd >= 0)
		close(sig_fd);
	mig_tls_set(NULL);
	tls_creds_free(tls);
	return code;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "run")) {
		log_set_prefix("ferry");
		return cmd_run(argc - 1, argv + 1);
	}
	/* `ferry ctl -V`, `ferry migrate -V`: the one version there is. */
	if (argc == 3 && (!strcmp(argv[1], "ctl") || !strcmp(argv[1], "migrate")) &&
	    (!strcmp(argv[2], "-V") || !strcmp(argv[2], "--version"))) {
		printf("ferry " FERRY_VERSION "\n");
		return 0;
	}
	if (!strcmp(argv[1], "ctl"))
		return ctl_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "migrate"))
		return migrate_cli_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version") ||
	    !strcmp(argv[1], "version")) {
		printf("ferry " FERRY_VERSION "\n");
		return 0;
	}
	fprintf(stderr, "ferry: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
