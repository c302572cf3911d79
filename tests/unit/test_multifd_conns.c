/*
 * The page channels over the migration's real secondary connections
 * (migration/multifd_conns.h): the source opens N bulk-pages connections
 * with mig_conn_open() (preamble, session id, the destination's ACCEPT),
 * the destination takes them from its listener's acceptor
 * (incoming_conns.h) and starts the engines on them; pages then travel
 * as in a migration.  Real TCP on loopback, real memory, no guest.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/tls.h"
#include "migration/incoming_conns.h"
#include "migration/incoming_listener.h"
#include "migration/multifd_conns.h"
#include "migration/preamble.h"
#include "migration/stream.h"
#include "util/log.h"
#include "vmm/memory.h"

#define PAGE GUEST_PAGE_SIZE

static struct incoming_listener lst;
static struct inconns *conns;
static uint8_t sid[MIG_SESSION_ID_LEN];
static char uri[64];

static void setup(void)
{
	char err[ERR_MAX] = "";
	log_set_level(LOG_ERROR);
	/* A generous handshake deadline: TLS under a sanitizer on a loaded
	 * machine is slow. */
	cr_assert_eq(listener_open(&lst, "tcp:127.0.0.1:0", 10000000000ULL, NULL, err),
		     0, "%s", err);
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", lst.port);
	cr_assert_eq(inconns_new(&conns, &lst, err), 0, "%s", err);
	mig_session_new(sid);
	cr_assert_eq(inconns_open(conns, sid, err), 0, "%s", err);
}

static void teardown(void)
{
	inconns_free(conns);
	listener_close(&lst);
}

TestSuite(multifd_conns, .init = setup, .fini = teardown, .timeout = 60);

static void mem_new(struct guest_memory *m, uint64_t size)
{
	char err[ERR_MAX] = "";
	memory_layout(m, size);
	cr_assert_eq(memory_alloc(m, err), 0, "%s", err);
}

Test(multifd_conns, pages_travel_on_the_sessions_bulk_connections)
{
	char err[ERR_MAX] = "";
	struct guest_memory src, dst;
	struct mf_fds sfds, rfds;
	mem_new(&src, 8 << 20);
	mem_new(&dst, 8 << 20);
	for (uint64_t i = 0; i < memory_npages(&src); i += 3)
		memset(memory_gpa_to_hva(&src, memory_page_gpa(&src, i), PAGE),
		       (int)(i % 251) + 1, PAGE);

	struct mf_send_cfg sc = { .mem = &src };
	struct mf_send *tx = mf_send_open(uri, NULL, sid, 3, 2000, 5000, &sc, &sfds, err);
	cr_assert_not_null(tx, "%s", err);
	cr_assert_eq(sfds.n, 3);
	struct mf_recv_cfg rc = { .mem = &dst, .n = 3 };
	int r;
	struct mf_recv *rx = mf_recv_accept(conns, &rc, mig_now_ns() + 2000000000ULL,
					    5000, NULL, NULL, &rfds, &r, err);
	cr_assert_not_null(rx, "%d %s", r, err);
	cr_assert_eq(r, 0);

	struct ram_batch b = { .round = 0 };
	for (uint64_t i = 0; i < memory_npages(&src); i++) {
		b.desc[b.n++] = memory_page_gpa(&src, i);
		if (b.n == 64) {
			cr_assert_eq(mf_send_batch(tx, &b, err), 0, "%s", err);
			b.n = 0;
		}
	}
	cr_assert_eq(mf_send_sync(tx, 0, err), 0, "%s", err);
	cr_assert_eq(mf_recv_wait_round(rx, 0, 10000, err), 0, "%s", err);
	cr_assert_eq(memcmp(src.slots[0].hva, dst.slots[0].hva, src.slots[0].size), 0);
	/* All three connections are the receiver's; which one carried what
	 * is the scheduler's choice, the total is not. */
	struct mf_channel_stats st;
	uint64_t pages = 0;
	for (unsigned i = 0; i < 3; i++) {
		cr_assert_eq(mf_recv_channel_stats(rx, i, &st), 3);
		pages += st.pages;   /* zero pages included */
	}
	cr_assert_eq(pages, memory_npages(&src), "%llu of %llu pages counted",
		     (unsigned long long)pages,
		     (unsigned long long)memory_npages(&src));
	mf_send_close(tx, &sfds);
	mf_recv_close(rx, &rfds);
	memory_free(&src);
	memory_free(&dst);
}

static bool always(void *opaque)
{
	(void)opaque;
	return true;
}

/* The source speaks on the main connection instead of opening the
 * channels: the destination stops waiting at once, not at its deadline. */
Test(multifd_conns, waiting_stops_when_asked)
{
	char err[ERR_MAX] = "";
	struct guest_memory dst;
	struct mf_fds rfds;
	mem_new(&dst, 1 << 20);
	struct mf_recv_cfg rc = { .mem = &dst, .n = 2 };
	int r;
	uint64_t t0 = mig_now_ns();
	struct mf_recv *rx = mf_recv_accept(conns, &rc, t0 + 20000000000ULL, 5000, always,
					    NULL, &rfds, &r, err);
	cr_assert_null(rx);
	cr_assert_eq(r, -ECANCELED, "%d %s", r, err);
	cr_assert(strstr(err, "page channel 0 of 2"), "%s", err);
	cr_assert_lt(mig_now_ns() - t0, 2000000000ULL, "it waited on");
	memory_free(&dst);
}

/* No channel comes: a deadline, named. */
Test(multifd_conns, missing_connections_time_out)
{
	char err[ERR_MAX] = "";
	struct guest_memory dst;
	struct mf_fds rfds;
	mem_new(&dst, 1 << 20);
	struct mf_recv_cfg rc = { .mem = &dst, .n = 1 };
	int r;
	struct mf_recv *rx = mf_recv_accept(conns, &rc, mig_now_ns() + 300000000ULL, 5000,
					    NULL, NULL, &rfds, &r, err);
	cr_assert_null(rx);
	cr_assert_eq(r, -ETIMEDOUT, "%d %s", r, err);
	cr_assert(strstr(err, "page channel 0 of 1"), "%s", err);
	memory_free(&dst);
}

/* A destination that is not there: the source says which channel. */
Test(multifd_conns, source_names_the_channel_it_could_not_open)
{
	char err[ERR_MAX] = "";
	struct guest_memory src;
	struct mf_fds sfds;
	mem_new(&src, 1 << 20);
	uint8_t other[MIG_SESSION_ID_LEN];
	mig_session_new(other);
	struct mf_send_cfg sc = { .mem = &src };
	/* A session the destination does not have: refused. */
	struct mf_send *tx = mf_send_open(uri, NULL, other, 2, 2000, 5000, &sc, &sfds, err);
	cr_assert_null(tx);
	cr_assert(strstr(err, "page channel 0 of 2") && strstr(err, "refused"), "%s", err);
	cr_assert_eq(sfds.n, 0);
	memory_free(&src);
}

/* The same over TLS (a pre-shared key): each channel thread owns its
 * TLS connection. */
Test(multifd_conns, pages_travel_over_tls)
{
	char err[ERR_MAX] = "", path[] = "/tmp/ferry-mf-psk-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	const char *line =
		"ferry:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
	cr_assert_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	close(fd);
	struct tls_creds *creds = NULL;
	cr_assert_eq(tls_creds_load_psk(&creds, path, err), 0, "%s", err);
	unlink(path);
	signal(SIGPIPE, SIG_IGN);
	listener_set_tls(&lst, creds);

	struct guest_memory src, dst;
	struct mf_fds sfds, rfds;
	mem_new(&src, 4 << 20);
	mem_new(&dst, 4 << 20);
	for (uint64_t i = 0; i < memory_npages(&src); i++)
		memset(memory_gpa_to_hva(&src, memory_page_gpa(&src, i), PAGE),
		       (int)(i % 13) + 1, PAGE);
	struct mf_send_cfg sc = { .mem = &src, .enc = ram_encoding_get(RAM_ENC_LZ4) };
	struct mf_send *tx = mf_send_open(uri, creds, sid, 2, 10000, 10000, &sc, &sfds, err);
	cr_assert_not_null(tx, "%s", err);
	struct mf_recv_cfg rc = { .mem = &dst, .n = 2, .encodings = 1u << RAM_ENC_LZ4 };
	int r;
	struct mf_recv *rx = mf_recv_accept(conns, &rc, mig_now_ns() + 20000000000ULL,
					    5000, NULL, NULL, &rfds, &r, err);
	cr_assert_not_null(rx, "%d %s", r, err);
	struct ram_batch b = { .round = 0 };
	for (uint64_t i = 0; i < memory_npages(&src); i++) {
		b.desc[b.n++] = memory_page_gpa(&src, i);
		if (b.n == 32) {
			cr_assert_eq(mf_send_batch(tx, &b, err), 0, "%s", err);
			b.n = 0;
		}
	}
	cr_assert_eq(mf_send_sync(tx, 0, err), 0, "%s", err);
	cr_assert_eq(mf_recv_wait_round(rx, 0, 10000, err), 0, "%s", err);
	cr_assert_eq(memcmp(src.slots[0].hva, dst.slots[0].hva, src.slots[0].size), 0);
	struct ram_counts k;
	mf_recv_counts(rx, &k);
	cr_assert_gt(k.compressed_batches, 0);
	mf_send_close(tx, &sfds);
	mf_recv_close(rx, &rfds);
	listener_set_tls(&lst, NULL);
	tls_creds_free(creds);
	memory_free(&src);
	memory_free(&dst);
}
