/*
 * fuzz_incoming - a migration destination's whole entry point,
 * migration_incoming_fd(), fed by a hostile peer over a real socket:
 * preamble, framing, HELLO (JSON, capabilities, the machine description)
 * and, on a host with KVM, the VM it builds and the records after ACCEPT.
 * Without /dev/kvm (this project's CI machine) a HELLO that passes the
 * capability check ends at "cannot open /dev/kvm": fuzz_hello and
 * fuzz_stream cover what lies behind it.
 *
 * Input: u8 n | n bytes sent raw (the preamble) | items, each framed with
 * the real record writer (fuzz_common.h: checksums would stop mutation).
 */
#include "fuzz_common.h"
#include "migration/incoming.h"
#include "migration/protocol.h"
#include "util/log.h"
#include "vmm/vm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>

struct peer {
	int fd;
	const uint8_t *data;
	size_t len;
};

/* The source: send everything, then read whatever comes back (ACCEPT,
 * REFUSE, ERROR) so the destination never blocks writing it. */
static void *peer_main(void *arg)
{
	struct peer *p = arg;
	size_t off = 0;
	char sink[4096];

	while (off < p->len) {
		ssize_t n = send(p->fd, p->data + off, p->len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(p->fd, SHUT_WR);
	while (read(p->fd, sink, sizeof(sink)) > 0)
		;
	return NULL;
}

static struct vm *taken;

static int take_over(void *opaque, struct vm *vm, bool source_running)
{
	(void)opaque;
	(void)source_running;
	taken = vm; /* freed once migration_incoming_fd is done with it */
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t raw = data[0] < size - 1 ? data[0] : size - 1;
	size_t len;
	uint8_t *stream = fuzz_frame(data + 1, raw, data + 1 + raw,
				     size - 1 - raw, MIG_MAX_RECORD, &len);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	/* The handshake deadline a destination gives a connection. */
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

	struct peer peer = { .fd = sv[1], .data = stream, .len = len };
	pthread_t t;
	if (pthread_create(&t, NULL, peer_main, &peer))
		abort();

	struct vm_config host = { .serial = "none", .heartbeat = "none" };
	struct incoming_session cfg = {
		.host_cfg = &host,
		.max_memory = 64u << 20, /* on a KVM host: small VMs only */
		.idle_timeout_ms = 2000,
		.take_over = take_over,
	};
	bool accepted;
	char err[ERR_MAX] = "";
	int r = migration_incoming_fd(sv[0], &cfg, &accepted, err);
	fuzz_note("migration_incoming_fd", r, err);
	/* Every failure says why. */
	if (r && !err[0])
		abort();
	close(sv[0]);
	pthread_join(t, NULL);
	close(sv[1]);
	vm_destroy(taken);
	taken = NULL;
	free(stream);
	return 0;
}
