/*
 * The harness's fault-injecting proxy (harness/proxy.c) against plain
 * sockets: a crafted migration-like stream goes from a "source" socket
 * through the proxy to a "destination" socket of ours, so what arrives can
 * be compared byte for byte with what was sent.  The fault-table tests
 * lean on these modes; here they are shown to do exactly what they say.
 */
#include "harness/harness.h"
#include "harness/wire.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

TestSuite(proxy, H_FIXTURES, .timeout = 60);

struct stream {
	uint8_t *p;
	size_t len, cap;
	size_t rec_off[64];  /* where each record starts */
	size_t rec_end[64];
	unsigned nrec;
};

static void put(struct stream *s, const void *d, size_t n)
{
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2;
		s->p = realloc(s->p, s->cap);
	}
	memcpy(s->p + s->len, d, n);
	s->len += n;
}

/* type | len | payload | crc (any value: the proxy does not check it).
 * A RAM_PAGES payload starts with its round. */
static void put_record(struct stream *s, uint32_t type, uint32_t round,
		       size_t len)
{
	s->rec_off[s->nrec] = s->len;
	uint32_t hdr[2] = { type, (uint32_t)len };
	put(s, hdr, 8);
	for (size_t i = 0; i < len; i++) {
		uint8_t b = i < 4 ? ((uint8_t *)&round)[i] : (uint8_t)(i * 7 + type);
		put(s, &b, 1);
	}
	uint32_t crc = 0xc0ffee00u + s->nrec;
	put(s, &crc, 4);
	s->rec_end[s->nrec++] = s->len;
}

/* Preamble, HELLO, RAM_PAGES of rounds 0, 0, 1, 1, state, COMMIT.
 * Version 2's preamble adds a role and a 16-byte session id. */
static void build(struct stream *s, uint32_t version)
{
	memset(s, 0, sizeof(*s));
	put(s, "FERRYMIG", 8);
	put(s, &version, 4);
	if (version >= 2) {
		uint32_t role = 1;
		put(s, &role, 4);
		/* A session id that looks like a record head would, to catch
		 * a follower that takes it for one. */
		uint32_t fake[4] = { H_REC_COMMIT, 0, 0x11111111, 0x22222222 };
		put(s, fake, 16);
	}
	put_record(s, 0x01, 0, 300);                 /* 0 HELLO */
	put_record(s, H_REC_RAM_PAGES, 0, 30000);    /* 1 */
	put_record(s, H_REC_RAM_PAGES, 0, 5000);     /* 2 */
	put_record(s, H_REC_RAM_PAGES, 1, 9000);     /* 3 */
	put_record(s, H_REC_RAM_PAGES, 1, 100);      /* 4 */
	put_record(s, H_REC_DEVICE, 0, 2000);        /* 5 */
	put_record(s, H_REC_STATE_END, 0, 0);        /* 6 */
	put_record(s, H_REC_COMMIT, 0, 0);           /* 7 */
}

static int listen_on(int *port)
{
	int fd = h_listen_local(port);
	h_assert(fd >= 0, "listen: %s", strerror(-fd));
	return fd;
}

/* Source and destination ends of a link through proxy @px. */
static void link_up(struct h_proxy *px, int lfd, int *src, int *dst)
{
	*src = w_connect(h_proxy_port(px));
	struct pollfd pf = { .fd = lfd, .events = POLLIN };
	h_assert(poll(&pf, 1, 10000) == 1, "the proxy did not connect onwards");
	*dst = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	h_assert(*dst >= 0, "accept: %s", strerror(errno));
}

/* Send in uneven pieces, so records straddle the proxy's reads. */
static void send_pieces(int fd, const uint8_t *p, size_t len)
{
	static const size_t sizes[] = { 1, 5, 11, 4096, 3, 65536, 13, 30001 };
	for (size_t off = 0, i = 0; off < len; i++) {
		size_t n = sizes[i % 8] < len - off ? sizes[i % 8] : len - off;
		h_assert(write(fd, p + off, n) == (ssize_t)n, "send: %s",
			 strerror(errno));
		off += n;
		h_sleep_ms(i % 16 == 0 ? 2 : 0);
	}
}

/* Everything that arrives within quiet_ms of silence; *eof says whether
 * the connection ended. */
static size_t drain(int fd, uint8_t *out, size_t cap, int quiet_ms, bool *eof)
{
	size_t got = 0;
	*eof = false;
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, quiet_ms) <= 0)
			return got;
		ssize_t n = read(fd, out + got, cap - got);
		if (n <= 0) {
			*eof = true;
			return got;
		}
		got += n;
		h_assert(got < cap, "more arrived than was sent");
	}
}

static uint32_t g_version = 1;

static void run(const struct h_proxy_fault *f, struct stream *s, uint8_t **out,
		size_t *got, bool *eof, struct h_proxy **pxo)
{
	int port, lfd = listen_on(&port), src, dst;
	struct h_proxy *px = h_proxy_start_fault(port, f);
	link_up(px, lfd, &src, &dst);
	build(s, g_version);
	*out = malloc(s->len + 1);
	send_pieces(src, s->p, s->len);
	*got = drain(dst, *out, s->len + 1, 700, eof);
	*pxo = px;
	close(src);
	close(dst);
	close(lfd);
}

Test(proxy, plain_forwards_every_byte)
{
	struct stream s;
	uint8_t *out;
	size_t got;
	bool eof;
	struct h_proxy *px;
	run(NULL, &s, &out, &got, &eof, &px);
	h_assert(got == s.len && !memcmp(out, s.p, s.len),
		 "%zu of %zu bytes arrived intact", got, s.len);
	h_assert(!h_proxy_fired(px) && h_proxy_bytes(px) == s.len,
		 "proxy counted %llu bytes", (unsigned long long)h_proxy_bytes(px));
	free(out);
	free(s.p);
}

Test(proxy, flip_at_byte_offset)
{
	struct stream s;
	uint8_t *out;
	size_t got;
	bool eof;
	struct h_proxy *px;
	const uint64_t at = 12 + 8 + 100; /* inside HELLO's payload */
	struct h_proxy_fault f = { .action = H_PROXY_FLIP, .after = at };
	run(&f, &s, &out, &got, &eof, &px);
	h_assert(got == s.len && h_proxy_fired(px), "%zu of %zu bytes", got, s.len);
	for (size_t i = 0; i < s.len; i++)
		h_assert((out[i] ^ s.p[i]) == (i == at ? 0x04 : 0),
			 "byte %zu: sent 0x%02x, got 0x%02x", i, s.p[i], out[i]);
	free(out);
	free(s.p);
}

/* At a record: the record's last byte (its checksum) is flipped. */
Test(proxy, flip_at_first_later_round_record)
{
	struct stream s;
	uint8_t *out;
	size_t got;
	bool eof;
	struct h_proxy *px;
	struct h_proxy_fault f = { .action = H_PROXY_FLIP,
		.record = H_REC_RAM_PAGES, .record_dir = H_TO_DEST, .min_round = 1 };
	run(&f, &s, &out, &got, &eof, &px);
	h_assert(got == s.len, "%zu of %zu bytes", got, s.len);
	size_t at = s.rec_end[3] - 1;
	for (size_t i = 0; i < s.len; i++)
		h_assert((out[i] ^ s.p[i]) == (i == at ? 0x04 : 0),
			 "byte %zu: sent 0x%02x, got 0x%02x (wanted the flip at %zu)",
			 i, s.p[i], out[i], at);
	free(out);
	free(s.p);
}

/* A stall before the state: everything before it arrives, nothing after,
 * and the connection stays open. */
Test(proxy, stall_before_a_record_keeps_the_link_open)
{
	struct stream s;
	uint8_t *out;
	size_t got;
	bool eof;
	struct h_proxy *px;
	struct h_proxy_fault f = { .action = H_PROXY_STALL,
		.record = H_REC_DEVICE, .record_dir = H_TO_DEST };
	run(&f, &s, &out, &got, &eof, &px);
	h_assert(h_proxy_fired(px) && !h_proxy_was_cut(px), "fired %d cut %d",
		 h_proxy_fired(px), h_proxy_was_cut(px));
	h_assert(!eof, "the stalled link was closed");
	h_assert(got == s.rec_off[5] && !memcmp(out, s.p, got),
		 "%zu bytes arrived, wanted the %zu before the DEVICE record",
		 got, s.rec_off[5]);
	free(out);
	free(s.p);
}

/* A stall after N bytes. */
Test(proxy, stall_after_bytes)
{
	struct stream s;
	uint8_t *out;
	size_t got;
	bool eof;
	struct h_proxy *px;
	struct h_proxy_fault f = { .action = H_PROXY_STALL, .after = 20000 };
	run(&f, &s, &out, &got, &eof, &px);
	h_assert(!eof && h_proxy_fired(px), "eof %d fired %d", eof,
		 h_proxy_fired(px));
	/* A record's head is held until it is whole, so a stall inside one
	 * may keep up to 11 bytes of it back. */
	h_assert(got <= 20000 && got + 11 >= 20000 && !memcmp(out, s.p, got),
		 "%zu bytes arrived, wanted 20000", got);
	free(out);
	free(s.p);
}

/* A cut right after COMMIT went through: all of it arrives, then EOF. */
Test(proxy, cut_after_a_record)
{
	struct stream s;
	uint8_t *out;
	size_t got;
	bool eof;
	struct h_proxy *px;
	struct h_proxy_fault f = { .action = H_PROXY_CUT, .record = H_REC_STATE_END,
		.record_dir = H_TO_DEST, .record_passes = true };
	run(&f, &s, &out, &got, &eof, &px);
	h_assert(eof && h_proxy_was_cut(px), "eof %d cut %d", eof,
		 h_proxy_was_cut(px));
	h_assert(got == s.rec_end[6] && !memcmp(out, s.p, got),
		 "%zu bytes arrived, wanted %zu (through STATE_END)", got,
		 s.rec_end[6]);
	free(out);
	free(s.p);
}

/* Faults on the return path: a stall of what goes back to the source
 * once READY passed leaves the forward direction working. */
Test(proxy, stall_back_after_ready)
{
	int port, lfd = listen_on(&port), src, dst;
	struct h_proxy_fault f = { .action = H_PROXY_STALL, .record = H_REC_READY,
		.record_dir = H_TO_SOURCE, .record_passes = true,
		.stall_dirs = H_TO_SOURCE };
	struct h_proxy *px = h_proxy_start_fault(port, &f);
	link_up(px, lfd, &src, &dst);
	uint32_t accept_rec[3] = { 0x81, 0, 1 }, ready[3] = { H_REC_READY, 0, 2 },
		 running[3] = { H_REC_RUNNING, 0, 3 };
	uint8_t buf[64];
	bool eof;
	h_assert(write(dst, accept_rec, 12) == 12 && write(dst, ready, 12) == 12,
		 "send");
	size_t got = drain(src, buf, sizeof(buf), 500, &eof);
	h_assert(got == 24 && !memcmp(buf + 12, ready, 12),
		 "the source got %zu bytes, wanted ACCEPT and READY", got);
	h_assert(write(dst, running, 12) == 12, "send");
	got = drain(src, buf, sizeof(buf), 500, &eof);
	h_assert(got == 0 && !eof, "RUNNING went through a stalled return path");
	/* Forward still works. */
	h_assert(write(src, "FERRYMIG\1\0\0\0", 12) == 12, "send");
	got = drain(dst, buf, sizeof(buf), 500, &eof);
	h_assert(got == 12, "forward direction stopped too (%zu bytes)", got);
	close(src);
	close(dst);
	close(lfd);
}

/* The same with a version 2 preamble (role and session id): the record
 * follower must skip it whole. */
Test(proxy, v2_preamble_flip_and_cut_at_records)
{
	struct stream s;
	uint8_t *out;
	size_t got;
	bool eof;
	struct h_proxy *px;
	g_version = 2;
	struct h_proxy_fault f = { .action = H_PROXY_FLIP,
		.record = H_REC_RAM_PAGES, .record_dir = H_TO_DEST, .min_round = 1 };
	run(&f, &s, &out, &got, &eof, &px);
	h_assert(got == s.len, "%zu of %zu bytes", got, s.len);
	size_t at = s.rec_end[3] - 1;
	for (size_t i = 0; i < s.len; i++)
		h_assert((out[i] ^ s.p[i]) == (i == at ? 0x04 : 0),
			 "byte %zu: sent 0x%02x, got 0x%02x (wanted the flip at %zu)",
			 i, s.p[i], out[i], at);
	free(out);
	free(s.p);

	struct h_proxy_fault cut = { .action = H_PROXY_CUT, .record = H_REC_COMMIT,
		.record_dir = H_TO_DEST };
	run(&cut, &s, &out, &got, &eof, &px);
	h_assert(eof && got == s.rec_off[7] && !memcmp(out, s.p, got),
		 "%zu bytes arrived, wanted the %zu before COMMIT", got,
		 s.rec_off[7]);
	free(out);
	free(s.p);
}
