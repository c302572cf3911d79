/*
 * Non-blocking buffered output (outbuf.h).  One ring buffer under a mutex;
 * every write to the fd happens under that mutex and without blocking, so
 * order is kept and no caller ever waits for the reader.  The writer thread
 * only waits (in poll) for the fd to take more, or for a wake-up.
 */
#include "util/outbuf.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

struct outbuf {
	pthread_mutex_t lock;
	int fd;                /* what we write to (maybe our own reopen) */
	int orig_fd;           /* the caller's fd */
	bool own_fd;           /* close orig_fd at the end */
	bool own_reopen;       /* fd != orig_fd: ours to close */
	bool is_socket;
	int restore_flags;     /* >= 0: put these fcntl flags back at close */
	int wake_fd;           /* eventfd: queued data or closing */
	pthread_t thread;
	uint8_t *ring;
	size_t cap, head, len; /* len bytes queued from head */
	uint64_t written, dropped;
	bool broken;
	bool closing;
	uint64_t close_deadline_ns;
	char name[16];
};

/* One non-blocking write: bytes taken (0 if the fd is full) or -errno. */
static ssize_t try_write(struct outbuf *q, const uint8_t *p, size_t n)
{
	for (;;) {
		ssize_t w = q->is_socket
			? send(q->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL)
			: write(q->fd, p, n);
		if (w >= 0)
			return w;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
}

/* The fd failed for good: from now on everything is dropped. */
static void mark_broken(struct outbuf *q, int e)
{
	if (!q->broken)
		log_warn("%s output failed (%s); its output is dropped from now on",
			 q->name, strerror(-e));
	q->broken = true;
	q->dropped += q->len;
	q->len = 0;
}

/* Write as much of the ring as the fd takes now.  Caller holds q->lock. */
static void drain_locked(struct outbuf *q)
{
	while (q->len && !q->broken) {
		size_t run = q->cap - q->head < q->len ? q->cap - q->head : q->len;
		ssize_t w = try_write(q, q->ring + q->head, run);
		if (w < 0) {
			mark_broken(q, (int)w);
			return;
		}
		if (w == 0)
			return;
		q->written += (uint64_t)w;
		q->head = (q->head + (size_t)w) % q->cap;
		q->len -= (size_t)w;
	}
}

static void wake(struct outbuf *q)
{
	uint64_t one = 1;
	ssize_t r = write(q->wake_fd, &one, sizeof(one));
	(void)r; /* a saturated eventfd is readable anyway */
}

void outbuf_write(struct outbuf *q, const void *data, size_t len)
{
	const uint8_t *p = data;

	pthread_mutex_lock(&q->lock);
	if (q->broken || q->closing) {
		q->dropped += len;
		goto out;
	}
	if (!q->len) {
		/* Nothing queued: straight out, as fast as a plain write. */
		ssize_t w = try_write(q, p, len);
		if (w < 0) {
			mark_broken(q, (int)w);
			q->dropped += len;
			goto out;
		}
		q->written += (uint64_t)w;
		p += w;
		len -= (size_t)w;
		if (!len)
			goto out;
	}
	bool was_empty = !q->len;
	size_t room = q->cap - q->len;
	size_t take = len < room ? len : room;
	size_t tail = (q->head + q->len) % q->cap;
	size_t first = q->cap - tail < take ? q->cap - tail : take;
	memcpy(q->ring + tail, p, first);
	memcpy(q->ring, p + first, take - first);
	q->len += take;
	q->dropped += len - take;
	if (was_empty && take)
		wake(q);
out:
	pthread_mutex_unlock(&q->lock);
}

void outbuf_get_stats(struct outbuf *q, struct outbuf_stats *st)
{
	pthread_mutex_lock(&q->lock);
	st->written = q->written;
	st->dropped = q->dropped;
	st->queued = q->len;
	st->broken = q->broken;
	pthread_mutex_unlock(&q->lock);
}

bool outbuf_drain(struct outbuf *q, unsigned max_ms)
{
	uint64_t deadline = clock_mono_ns() + (uint64_t)max_ms * 1000000;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		/* This thread writes too: under the lock, order is kept. */
		drain_locked(q);
		if (!q->len || q->broken)
			break;
		uint64_t now = clock_mono_ns();
		if (now >= deadline)
			break;
		pthread_mutex_unlock(&q->lock);
		struct pollfd p = { .fd = q->fd, .events = POLLOUT };
		(void)poll(&p, 1, (int)((deadline - now + 999999) / 1000000));
		pthread_mutex_lock(&q->lock);
	}
	bool empty = !q->len;
	pthread_mutex_unlock(&q->lock);
	return empty;
}

static void *writer_thread(void *arg)
{
	struct outbuf *q = arg;

	pthread_setname_np(pthread_self(), q->name);
	for (;;) {
		pthread_mutex_lock(&q->lock);
		drain_locked(q);
		bool pending = q->len && !q->broken;
		int timeout = -1;
		if (q->closing) {
			uint64_t now = clock_mono_ns();
			if (!pending || now >= q->close_deadline_ns) {
				/* What could not go out in time is lost. */
				q->dropped += q->len;
				q->len = 0;
				pthread_mutex_unlock(&q->lock);
				return NULL;
			}
			timeout = (int)((q->close_deadline_ns - now + 999999) / 1000000);
		}
		pthread_mutex_unlock(&q->lock);

		struct pollfd p[2] = { { .fd = q->wake_fd, .events = POLLIN },
				       { .fd = pending ? q->fd : -1,
					 .events = POLLOUT } };
		if (poll(p, 2, timeout) > 0 && (p[0].revents & POLLIN)) {
			uint64_t v;
			ssize_t r = read(q->wake_fd, &v, sizeof(v));
			(void)r;
		}
	}
}

/* A descriptor whose writes never block, without changing the flags of
 * an open file other processes may share (a terminal, the test's pipe). */
static int make_nonblocking(struct outbuf *q, char *err)
{
	struct stat st;

	q->fd = q->orig_fd;
	q->restore_flags = -1;
	if (fstat(q->orig_fd, &st) < 0)
		return err_set(err, -errno, "%s: bad output fd: %s", q->name,
			       strerror(errno));
	if (S_ISREG(st.st_mode))
		return 0;  /* writes to a regular file do not wait for a reader */
	if (S_ISSOCK(st.st_mode)) {
		q->is_socket = true;
		return 0;
	}
	char path[40];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", q->orig_fd);
	int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0) {
		q->fd = fd;
		q->own_reopen = true;
		return 0;
	}
	/* No /proc: set the flag on the shared file and put it back later. */
	int fl = fcntl(q->orig_fd, F_GETFL);
	if (fl < 0 || fcntl(q->orig_fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return err_set(err, -errno, "%s: cannot make output non-blocking: %s",
			       q->name, strerror(errno));
	q->restore_flags = fl;
	return 0;
}

int outbuf_open(struct outbuf **out, int fd, bool own_fd, size_t capacity,
		const char *name, char *err)
{
	struct outbuf *q = calloc(1, sizeof(*q));
	int r;

	if (!q || !capacity)
		return err_set(err, q ? -EINVAL : -ENOMEM,
			       q ? "output buffer of 0 bytes" : "out of memory");
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->orig_fd = fd;
	q->own_fd = own_fd;
	q->wake_fd = -1;
	q->cap = capacity;
	pthread_mutex_init(&q->lock, NULL);
	q->ring = malloc(capacity);
	if (!q->ring) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r = make_nonblocking(q, err);
	if (r)
		goto fail;
	q->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->wake_fd < 0) {
		r = err_set(err, -errno, "%s: eventfd: %s", name, strerror(errno));
		goto fail;
	}
	r = -pthread_create(&q->thread, NULL, writer_thread, q);
	if (r) {
		err_set(err, r, "%s: cannot start the output thread: %s", name,
			strerror(-r));
		goto fail;
	}
	*out = q;
	return 0;
fail:
	if (q->wake_fd >= 0)
		close(q->wake_fd);
	if (q->own_reopen)
		close(q->fd);
	if (q->restore_flags >= 0)
		fcntl(q->orig_fd, F_SETFL, q->restore_flags);
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q);
	return r;
}

void outbuf_close(struct outbuf *q, unsigned flush_ms)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->closing = true;
	q->close_deadline_ns = clock_mono_ns() + (uint64_t)flush_ms * 1000000ULL;
	wake(q);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	if (q->dropped)
		log_debug("%s output: %llu bytes written, %llu dropped", q->name,
			  (unsigned long long)q->written,
			  (unsigned long long)q->dropped);
	close(q->wake_fd);
	if (q->own_reopen)
		close(q->fd);
	if (q->restore_flags >= 0)
		fcntl(q->orig_fd, F_SETFL, q->restore_flags);
	if (q->own_fd)
		close(q->orig_fd);
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q);
}
