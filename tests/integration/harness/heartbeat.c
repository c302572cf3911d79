/*
 * heartbeat.c - checking the guest's heartbeat sequence (see harness.h).
 *
 * The guest writes its beat counter mod 256 to port 0xe9, one byte per
 * beat (include/guest_abi.h).  A file (ferry --heartbeat file:PATH, QEMU's
 * chardev file) keeps the bytes only; an observer (a thread listening on a
 * Unix socket, ferry --heartbeat unix:PATH or QEMU's chardev socket) also
 * stamps each byte with h_now() when it arrives, so it can tell how long
 * the guest was silent, as a user outside the VM would see it.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define H_MAX_OBSERVERS 4
#define H_OBS_MAX_CONNS 8

void h_hb_scan(const uint8_t *seq, const double *t, size_t n,
	       struct h_hb_result *r)
{
	memset(r, 0, sizeof(*r));
	r->beats = n;
	r->max_gap_ms = -1;
	r->first_bad = SIZE_MAX;
	for (size_t i = 1; i < n; i++) {
		unsigned d = (uint8_t)(seq[i] - seq[i - 1]);

		if (t) {
			double gap = (t[i] - t[i - 1]) * 1000;

			if (gap > r->max_gap_ms) {
				r->max_gap_ms = gap;
				r->max_gap_end = t[i];
			}
		}
		if (d == 1)
			continue;
		if (r->first_bad == SIZE_MAX)
			r->first_bad = i;
		if (d >= 2 && d <= H_HB_MAX_LOST + 1) {
			r->gaps++;
			r->lost += d - 1;
		} else {
			r->repeats++;
		}
	}
}

/* ---- observers ----------------------------------------------------------- */

struct h_hb_observer {
	char path[108];
	int lfd;
	int wake[2];
	pthread_t thread;
	pthread_mutex_t lock;
	uint8_t *seq;
	double *t;
	size_t n, cap;
	unsigned conns;          /* connections accepted so far */
};

static struct h_hb_observer *g_obs[H_MAX_OBSERVERS];
static unsigned g_nobs;

static void obs_record(struct h_hb_observer *o, const uint8_t *b, size_t n,
		       double now)
{
	pthread_mutex_lock(&o->lock);
	if (o->n + n > o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 65536;

		while (cap < o->n + n)
			cap *= 2;
		o->seq = realloc(o->seq, cap);
		o->t = realloc(o->t, cap * sizeof(double));
		if (!o->seq || !o->t)
			abort(); /* a test process; nothing sane to go on with */
		o->cap = cap;
	}
	for (size_t i = 0; i < n; i++) {
		o->seq[o->n + i] = b[i];
		o->t[o->n + i] = now;
	}
	o->n += n;
	pthread_mutex_unlock(&o->lock);
}

/* One poll loop over the listener and every connection: bytes from all
 * connections form one timeline, in the order they arrive. */
static void *obs_thread(void *arg)
{
	struct h_hb_observer *o = arg;
	struct pollfd f[2 + H_OBS_MAX_CONNS];
	unsigned nc = 0;

	f[0] = (struct pollfd){ .fd = o->wake[0], .events = POLLIN };
	f[1] = (struct pollfd){ .fd = o->lfd, .events = POLLIN };
	for (;;) {
		if (poll(f, 2 + nc, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (f[0].revents)
			break;
		if (f[1].revents & POLLIN) {
			int c = accept4(o->lfd, NULL, NULL, SOCK_CLOEXEC);

			if (c >= 0 && nc < H_OBS_MAX_CONNS) {
				f[2 + nc++] = (struct pollfd){ .fd = c, .events = POLLIN };
				__atomic_add_fetch(&o->conns, 1, __ATOMIC_RELAXED);
			} else if (c >= 0) {
				close(c);
			}
		}
		/* Bytes that arrive on two connections in one poll round
		 * have no order the observer can see (the old copy's last
		 * beats may sit unread while the new copy's first ones come
		 * in): the one that continues the sequence goes first.  A
		 * real second copy still shows, in every later round. */
		uint8_t buf[H_OBS_MAX_CONNS][512];
		ssize_t got[H_OBS_MAX_CONNS] = { 0 };
		bool gone[H_OBS_MAX_CONNS] = { false };
		for (unsigned i = 0; i < nc; i++) {
			if (!(f[2 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got[i] = read(f[2 + i].fd, buf[i], sizeof(buf[i]));
			gone[i] = got[i] == 0 || (got[i] < 0 && errno != EINTR);
		}
		double now = h_now();
		pthread_mutex_lock(&o->lock);
		int last = o->n ? o->seq[o->n - 1] : -1;
		pthread_mutex_unlock(&o->lock);
		unsigned first = nc;
		for (unsigned i = 0; i < nc && last >= 0; i++)
			if (got[i] > 0 && buf[i][0] == (uint8_t)(last + 1)) {
				first = i;
				break;
			}
		if (first < nc)
			obs_record(o, buf[first], (size_t)got[first], now);
		for (unsigned i = 0; i < nc; i++)
			if (got[i] > 0 && i != first)
				obs_record(o, buf[i], (size_t)got[i], now);
		for (unsigned i = nc; i-- > 0;)
			if (gone[i]) {
				close(f[2 + i].fd);
				f[2 + i] = f[2 + --nc];
			}
	}
	for (unsigned i = 0; i < nc; i++)
		close(f[2 + i].fd);
	return NULL;
}

struct h_hb_observer *h_hb_observe(const char *name)
{
	h_assert(g_nobs < H_MAX_OBSERVERS, "too many heartbeat observers");
	struct h_hb_observer *o = calloc(1, sizeof(*o));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char file[64];

	h_assert(o, "out of memory");
	snprintf(file, sizeof(file), "%s.hbsock", name);
	h_assert(strlen(h_path(file)) < sizeof(sa.sun_path), "path too long");
	snprintf(o->path, sizeof(o->path), "%s", h_path(file));
	strcpy(sa.sun_path, o->path);
	pthread_mutex_init(&o->lock, NULL);
	o->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	h_assert(o->lfd >= 0, "socket: %s", strerror(errno));
	h_assert(bind(o->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		 listen(o->lfd, H_OBS_MAX_CONNS) == 0,
		 "heartbeat observer %s: %s", o->path, strerror(errno));
	h_assert(pipe2(o->wake, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	h_assert(pthread_create(&o->thread, NULL, obs_thread, o) == 0,
		 "heartbeat observer: cannot start its thread");
	g_obs[g_nobs++] = o;
	return o;
}

const char *h_hb_observer_path(struct h_hb_observer *o) { return o->path; }

unsigned h_hb_observer_connections(struct h_hb_observer *o)
{
	return __atomic_load_n(&o->conns, __ATOMIC_RELAXED);
}

void h_hb_observer_result(struct h_hb_observer *o, double t_from, double t_to,
			  struct h_hb_result *r)
{
	size_t a, b;

	pthread_mutex_lock(&o->lock);
	for (a = 0; a < o->n && o->t[a] < t_from; a++)
		;
	for (b = a; b < o->n && o->t[b] <= t_to; b++)
		;
	h_hb_scan(o->seq + a, o->t + a, b - a, r);
	if (r->first_bad != SIZE_MAX)
		r->first_bad += a;
	pthread_mutex_unlock(&o->lock);
}

void h_hb_stop_all(void)
{
	for (unsigned i = 0; i < g_nobs; i++) {
		struct h_hb_observer *o = g_obs[i];

		if (write(o->wake[1], "x", 1) < 0)
			(void)0;
		pthread_join(o->thread, NULL);
		close(o->lfd);
		close(o->wake[0]);
		close(o->wake[1]);
		unlink(o->path);
		pthread_mutex_destroy(&o->lock);
		free(o->seq);
		free(o->t);
		free(o);
	}
	g_nobs = 0;
}

/* ---- files ----------------------------------------------------------------- */

void h_hb_check_files(struct h_hb_result *r, const char *path, ...)
{
	uint8_t *all = NULL;
	size_t n = 0;
	va_list ap;

	va_start(ap, path);
	for (const char *p = path; p; p = va_arg(ap, const char *)) {
		size_t len = 0;
		char *data = h_read_file(p, &len);

		if (!data)
			continue; /* never written: no beats from it */
		all = realloc(all, n + len + 1);
		h_assert(all, "out of memory");
		memcpy(all + n, data, len);
		n += len;
		free(data);
	}
	va_end(ap);
	h_hb_scan(all, NULL, n, r);
	free(all);
}

size_t h_heartbeat_check(const char *path, uint64_t *gaps, uint64_t *repeats,
			 double *max_gap_ms)
{
	struct h_hb_result r;
	unsigned i;

	for (i = 0; i < g_nobs && strcmp(g_obs[i]->path, path); i++)
		;
	if (i < g_nobs)
		h_hb_observer_result(g_obs[i], 0, 1e300, &r);
	else
		h_hb_check_files(&r, path, NULL);
	if (gaps)
		*gaps = r.gaps;
	if (repeats)
		*repeats = r.repeats;
	if (max_gap_ms)
		*max_gap_ms = r.max_gap_ms;
	return r.beats;
}
