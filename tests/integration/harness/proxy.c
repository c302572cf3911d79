/*
 * proxy.c - the test proxy between a migration source and its destination
 * (harness.h, h_proxy_*): forwards bytes both ways and, once, injects a
 * fault: cut the link, stall it (stop forwarding, sockets kept open) or
 * flip one bit on its way to the destination.
 *
 * The fault fires after a byte count (source -> destination) or at a
 * record of the migration stream, which the proxy follows in both
 * directions from the framing in docs/migration-stream.md: a preamble from
 * the source only ("FERRYMIG", u32 version, and from version 2 on a u32
 * role and a 16-byte session id), then records of type u32 | length u32 |
 * payload | crc32c u32; a RAM_PAGES payload starts with its round (u32).
 */
#include "harness.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>

#define H_MAX_PROXIES   4
#define PREAMBLE_V1     12      /* magic, version */
#define PREAMBLE_V2     32      /* magic, version, role, session id */
#define REC_HEAD        12      /* type, length and 4 more: every record has
				   at least its 4-byte checksum after them */
#define REC_RAM_PAGES   0x10u
#define FLIP_MASK       0x04

/* The preamble's fixed part is collected like a record's head. */
_Static_assert(REC_HEAD == PREAMBLE_V1, "preamble head and record head differ");

struct pdir {
	bool to_dest;
	uint64_t pos;           /* bytes taken from the sender */
	uint64_t next_rec;      /* where the next record starts */
	uint8_t head[REC_HEAD]; /* a record's first bytes, held until known */
	unsigned nhead;
	uint64_t fire_at;       /* fire before forwarding this byte (or ~0) */
	uint64_t flip_at;       /* flip this byte (or ~0) */
	bool preamble;          /* the head being collected is the preamble's */
	bool stalled;
};

struct h_proxy {
	int lfd, port, target_port;
	int cfd, sfd;              /* client (source) and server (destination) */
	int wake[2];
	struct h_proxy_fault f;
	struct pdir dir[2];        /* [0] source -> destination, [1] back */
	uint64_t fwd;              /* bytes source -> destination (atomic) */
	bool fired;                /* (atomic) */
	bool cut;                  /* (atomic) */
	unsigned stall_now;        /* h_proxy_stall's request (atomic) */
	pthread_mutex_t lock;      /* cfd/sfd against h_proxy_cut */
	pthread_t thread;
};

static struct h_proxy *g_proxies[H_MAX_PROXIES];
static unsigned g_nproxies;

/* Shut both connections down: blocked reads and writes in the thread
 * return, and each peer sees its connection end. */
static void proxy_do_cut(struct h_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	__atomic_store_n(&p->cut, true, __ATOMIC_SEQ_CST);
	if (p->cfd >= 0)
		shutdown(p->cfd, SHUT_RDWR);
	if (p->sfd >= 0)
		shutdown(p->sfd, SHUT_RDWR);
	pthread_mutex_unlock(&p->lock);
	if (write(p->wake[1], "x", 1) < 0)
		(void)0;
}

static bool write_all(int fd, const uint8_t *b, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, b + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		off += w;
	}
	return true;
}

/* Forward b[0..n) (stream offsets d->pos - n ... d->pos), flipping the
 * armed byte if it is among them. */
static bool forward(struct h_proxy *p, struct pdir *d, int to, uint8_t *b,
		    size_t n)
{
	uint64_t start = d->pos - n;
	if (d->flip_at >= start && d->flip_at < d->pos) {
		b[d->flip_at - start] ^= FLIP_MASK;
		d->flip_at = UINT64_MAX;
	}
	if (!write_all(to, b, n))
		return false;
	if (d->to_dest)
		__atomic_add_fetch(&p->fwd, (uint64_t)n, __ATOMIC_RELAXED);
	return true;
}

/* The fault happens now.  Returns false if the link must end. */
static bool fire(struct h_proxy *p, struct pdir *d, uint64_t rec_last)
{
	d->fire_at = UINT64_MAX;
	__atomic_store_n(&p->fired, true, __ATOMIC_SEQ_CST);
	switch (p->f.action) {
	case H_PROXY_NONE:
		return true;
	case H_PROXY_CUT:
		return false;
	case H_PROXY_STALL:
		for (int i = 0; i < 2; i++)
			if (p->f.stall_dirs & (i ? H_TO_SOURCE : H_TO_DEST))
				p->dir[i].stalled = true;
		return true;
	case H_PROXY_FLIP:
		/* At a record: its last byte, in its checksum, so the damage
		 * is always a checksum mismatch, never a length to wait for. */
		d->flip_at = rec_last != UINT64_MAX ? rec_last : d->pos;
		return true;
	}
	return true;
}

static bool record_matches(const struct h_proxy *p, const struct pdir *d,
			   uint32_t type, uint32_t len, uint32_t word)
{
	const struct h_proxy_fault *f = &p->f;
	if (!f->record || type != f->record ||
	    (f->record_dir == H_TO_SOURCE) == d->to_dest)
		return false;
	return type != REC_RAM_PAGES || (len >= 4 && word >= f->min_round);
}

/*
 * Take n bytes read from the sender through the record follower and the
 * fault; forward what may go.  Returns false when the link must end.
 */
static bool process(struct h_proxy *p, struct pdir *d, int to, uint8_t *b,
		    size_t n)
{
	size_t i = 0;
	while (i < n && !d->stalled) {
		if (d->pos == d->fire_at && !fire(p, d, UINT64_MAX))
			return false;
		if (d->stalled)
			break;
		if (d->pos == d->next_rec || d->nhead) {
			/* Collect a record's head before forwarding any of it. */
			size_t k = REC_HEAD - d->nhead < n - i ? REC_HEAD - d->nhead
							      : n - i;
			if (d->fire_at > d->pos && d->fire_at - d->pos < k)
				k = d->fire_at - d->pos; /* a byte fault inside */
			memcpy(d->head + d->nhead, b + i, k);
			d->nhead += k;
			d->pos += k;
			i += k;
			if (d->nhead < REC_HEAD)
				continue;
			if (d->preamble) {
				/* Magic and version: the version says how long
				 * the preamble is. */
				uint32_t version;
				memcpy(&version, d->head + 8, 4);
				d->preamble = false;
				d->nhead = 0;
				d->next_rec = version >= 2 ? PREAMBLE_V2 : PREAMBLE_V1;
				if (!forward(p, d, to, d->head, REC_HEAD))
					return false;
				continue;
			}
			uint32_t type, len, word;
			memcpy(&type, d->head, 4);
			memcpy(&len, d->head + 4, 4);
			memcpy(&word, d->head + 8, 4);
			uint64_t rec_start = d->pos - REC_HEAD;
			uint64_t rec_end = rec_start + 8 + (uint64_t)len + 4;
			d->next_rec = rec_end;
			d->nhead = 0;
			if (!__atomic_load_n(&p->fired, __ATOMIC_SEQ_CST) &&
			    record_matches(p, d, type, len, word)) {
				if (p->f.record_passes)
					d->fire_at = rec_end; /* after the record */
				else if (!fire(p, d, rec_end - 1))
					return false;
				if (d->stalled)
					break;
			}
			/* The head: bytes [pos - REC_HEAD, pos). */
			if (!forward(p, d, to, d->head, REC_HEAD))
				return false;
			continue;
		}
		uint64_t stop = d->next_rec;
		if (d->fire_at < stop)
			stop = d->fire_at;
		size_t k = n - i;
		if (stop - d->pos < k)
			k = stop - d->pos;
		d->pos += k;
		if (!forward(p, d, to, b + i, k))
			return false;
		i += k;
	}
	/* A byte-count fault due right at the end of what was sent. */
	if (d->pos == d->fire_at && !d->stalled && !fire(p, d, UINT64_MAX))
		return false;
	return true;
}

/* Forward what is readable on from to to; false when the link ended. */
static bool proxy_pump(struct h_proxy *p, int from, int to, struct pdir *d)
{
	uint8_t buf[65536];
	size_t want = sizeof(buf);
	/* Read no further than a byte-count fault: what lies beyond it
	 * stays in the kernel, as on a link that broke there. */
	if (d->fire_at != UINT64_MAX && d->fire_at > d->pos &&
	    d->fire_at - d->pos < want && p->f.action != H_PROXY_FLIP)
		want = d->fire_at - d->pos;
	ssize_t n = read(from, buf, want);
	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0)
		return false;
	return process(p, d, to, buf, (size_t)n);
}

static void *proxy_thread(void *arg)
{
	struct h_proxy *p = arg;
	struct pollfd a[2] = { { .fd = p->lfd, .events = POLLIN },
			       { .fd = p->wake[0], .events = POLLIN } };
	while (poll(a, 2, -1) < 0 && errno == EINTR)
		;
	if (!(a[0].revents & POLLIN))
		return NULL;
	int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
	int s = c >= 0 ? w_try_connect(p->target_port) : -1;
	pthread_mutex_lock(&p->lock);
	p->cfd = c;
	p->sfd = s;
	bool cut = __atomic_load_n(&p->cut, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&p->lock);
	if (c < 0 || s < 0 || cut)
		goto out;
	for (;;) {
		unsigned now = __atomic_exchange_n(&p->stall_now, 0, __ATOMIC_SEQ_CST);
		if (now & H_TO_DEST)
			p->dir[0].stalled = true;
		if (now & H_TO_SOURCE)
			p->dir[1].stalled = true;
		/* A stalled direction is not read at all: its sender's data
		 * piles up in the kernel and its sends block, as behind a
		 * hung peer.  Its socket stays open. */
		struct pollfd f[3] = {
			{ .fd = p->dir[0].stalled ? -1 : c, .events = POLLIN },
			{ .fd = p->dir[1].stalled ? -1 : s, .events = POLLIN },
			{ .fd = p->wake[0], .events = POLLIN } };
		if (poll(f, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (__atomic_load_n(&p->cut, __ATOMIC_SEQ_CST))
			break;
		if (f[2].revents) {
			char x[16];
			if (read(p->wake[0], x, sizeof(x)) < 0)
				(void)0;
			continue; /* a stall request, or a cut seen above */
		}
		if ((f[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    !proxy_pump(p, c, s, &p->dir[0]))
			break;
		if ((f[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    !proxy_pump(p, s, c, &p->dir[1]))
			break;
	}
out:
	/* Whatever ended it, both sides lose their connection now. */
	proxy_do_cut(p);
	pthread_mutex_lock(&p->lock);
	if (p->cfd >= 0)
		close(p->cfd);
	if (p->sfd >= 0)
		close(p->sfd);
	p->cfd = p->sfd = -1;
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct h_proxy *h_proxy_start_fault(int target_port,
				    const struct h_proxy_fault *f)
{
	h_assert(g_nproxies < H_MAX_PROXIES, "too many proxies in one test");
	h_assert(!f || !f->record || f->record_dir == H_TO_DEST ||
		 f->record_dir == H_TO_SOURCE, "proxy: record_dir is needed");
	struct h_proxy *p = calloc(1, sizeof(*p));
	p->cfd = p->sfd = -1;
	p->target_port = target_port;
	if (f)
		p->f = *f;
	for (int i = 0; i < 2; i++)
		p->dir[i] = (struct pdir){ .to_dest = i == 0, .preamble = i == 0,
			.fire_at = UINT64_MAX, .flip_at = UINT64_MAX };
	/* A byte-count fault (no record named) counts source -> destination. */
	if (f && f->action && !f->record)
		p->dir[0].fire_at = f->after;
	if (f && f->action == H_PROXY_STALL && !f->stall_dirs)
		p->f.stall_dirs = H_TO_DEST | H_TO_SOURCE;
	pthread_mutex_init(&p->lock, NULL);
	p->lfd = h_listen_local(&p->port);
	h_assert(p->lfd >= 0, "proxy: cannot listen: %s", strerror(-p->lfd));
	h_assert(pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) == 0, "pipe: %s",
		 strerror(errno));
	h_assert(pthread_create(&p->thread, NULL, proxy_thread, p) == 0,
		 "proxy: cannot start its thread");
	g_proxies[g_nproxies++] = p;
	return p;
}

struct h_proxy *h_proxy_start(int target_port, uint64_t cut_after)
{
	struct h_proxy_fault f = { .action = cut_after ? H_PROXY_CUT : 0,
				   .after = cut_after };
	return h_proxy_start_fault(target_port, &f);
}

int h_proxy_port(struct h_proxy *p) { return p->port; }

uint64_t h_proxy_bytes(struct h_proxy *p)
{
	return __atomic_load_n(&p->fwd, __ATOMIC_RELAXED);
}

bool h_proxy_was_cut(struct h_proxy *p)
{
	return __atomic_load_n(&p->cut, __ATOMIC_SEQ_CST);
}

bool h_proxy_fired(struct h_proxy *p)
{
	return __atomic_load_n(&p->fired, __ATOMIC_SEQ_CST);
}

void h_proxy_cut(struct h_proxy *p) { proxy_do_cut(p); }

void h_proxy_stall(struct h_proxy *p, unsigned dirs)
{
	__atomic_or_fetch(&p->stall_now, dirs, __ATOMIC_SEQ_CST);
	if (write(p->wake[1], "s", 1) < 0)
		(void)0;
}

void h_proxies_stop(void)
{
	for (unsigned i = 0; i < g_nproxies; i++) {
		struct h_proxy *p = g_proxies[i];
		proxy_do_cut(p);
		pthread_join(p->thread, NULL);
		close(p->lfd);
		close(p->wake[0]);
		close(p->wake[1]);
		pthread_mutex_destroy(&p->lock);
		free(p);
	}
	g_nproxies = 0;
}
