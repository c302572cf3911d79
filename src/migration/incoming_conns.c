/*
 * The destination's secondary connections of one migration: see
 * incoming_conns.h.
 */
#include "migration/incoming_conns.h"
#include "io/channel.h"
#include "migration/incoming_listener.h"
#include "migration/preamble.h"
#include "migration/stream.h"
#include "util/log.h"
#include "util/units.h"
#include "util/clock.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct inconns {
	struct incoming_listener *l;
	pthread_mutex_t lock;      /* guards everything below */
	pthread_cond_t cond;       /* a connection queued, or the end */
	pthread_t thread;
	bool opened, thread_started, cancelled;
	bool suspended;            /* inconns_suspend: no thread until resumed */
	int wake_fd;               /* eventfd: readable once cancelled */
	int error;                 /* the listener failed: no more will come */
	char errmsg[ERR_MAX];
	uint8_t session[MIG_SESSION_ID_LEN];
	struct mig_conn queue[INCONNS_MAX_QUEUED];
	unsigned nqueued;
	uint64_t accepted, refused;
};

int inconns_new(struct inconns **out, struct incoming_listener *l, char *err)
{
	struct inconns *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t)
		return err_set(err, -ENOMEM, "out of memory");
	t->l = l;
	t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->wake_fd < 0) {
		int e = -errno;
		free(t);
		return err_set(err, e, "eventfd: %s", strerror(-e));
	}
	pthread_mutex_init(&t->lock, NULL);
	/* Deadlines are on mig_now_ns()'s clock (monotonic). */
	clock_cond_init_monotonic(&t->cond);
	*out = t;
	return 0;
}

/* Tell the peer why in a REFUSE, log it, and close. */
static void refuse(struct inconns *t, struct mig_conn *c, const char *why)
{
	log_warn("incoming connection from %s: %s; refused, the migration goes on",
		 c->peer, why);
	mig_conn_put_record(c->ch, MIG_REC_REFUSE, why, (uint32_t)strlen(why));
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_WR);
	mig_conn_close(c);
	pthread_mutex_lock(&t->lock);
	t->refused++;
	pthread_mutex_unlock(&t->lock);
}

/* One connection the listener handed over: judge its preamble. */
static void judge(struct inconns *t, struct mig_conn *c)
{
	struct mig_preamble pre;
	char err[ERR_MAX] = "", why[ERR_MAX], sid[33];

	int r = mig_preamble_read_channel(c->ch, &pre, err);
	if (r) {
		refuse(t, c, err);
		return;
	}
	mig_session_hex(pre.session, sid);
	/* The accepted session's id is never told: it is what admits a
	 * connection to the migration. */
	if (pre.role == MIG_ROLE_MAIN) {
		snprintf(why, sizeof(why), "a main connection, but a migration is already "
			 "under way here");
		refuse(t, c, why);
		return;
	}
	if (memcmp(pre.session, t->session, MIG_SESSION_ID_LEN)) {
		snprintf(why, sizeof(why), "a %s connection for session %s, which is not "
			 "the migration under way here", mig_role_name(pre.role), sid);
		refuse(t, c, why);
		return;
	}
	c->role = pre.role;
	pthread_mutex_lock(&t->lock);
	bool full = t->nqueued == INCONNS_MAX_QUEUED;
	pthread_mutex_unlock(&t->lock);
	if (full) {
		snprintf(why, sizeof(why), "a %s connection, but %u connections of this "
			 "migration wait to be taken already", mig_role_name(pre.role),
			 INCONNS_MAX_QUEUED);
		refuse(t, c, why);
		return;
	}
	r = mig_conn_put_record(c->ch, MIG_REC_ACCEPT, NULL, 0);
	if (r) {
		log_warn("incoming %s connection from %s: cannot answer ACCEPT: %s; dropped",
			 mig_role_name(pre.role), c->peer, strerror(-r));
		mig_conn_close(c);
		return;
	}
	log_info("incoming %s connection from %s joins the migration",
		 mig_role_name(pre.role), c->peer);
	pthread_mutex_lock(&t->lock);
	t->queue[t->nqueued++] = *c;
	t->accepted++;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void *inconns_thread(void *arg)
{
	struct inconns *t = arg;
	char err[ERR_MAX] = "";

	pthread_setname_np(pthread_self(), "incoming-conns");
	/* Only the listener's user (this thread, from now on) reads it. */
	t->l->preamble_only = true;
	for (;;) {
		struct mig_conn c = { .fd = -1 };
		char peer[LISTENER_PEER_MAX];
		struct channel *tls = NULL;
		int r = listener_next(t->l, t->wake_fd, &c.fd, &tls, peer, err);
		if (r == -ECANCELED)
			break;
		if (r) {
			log_error("incoming migration: no further connections: %s", err);
			pthread_mutex_lock(&t->lock);
			t->error = r;
			snprintf(t->errmsg, sizeof(t->errmsg), "%s", err);
			pthread_cond_broadcast(&t->cond);
			pthread_mutex_unlock(&t->lock);
			break;
		}
		snprintf(c.peer, sizeof(c.peer), "%s", peer);
		c.ch = tls ? tls : channel_socket_new(c.fd, false);
		if (!c.ch) {
			log_warn("incoming connection from %s: out of memory; dropped", peer);
			close(c.fd);
			continue;
		}
		judge(t, &c);
	}
	return NULL;
}

/* The thread that takes further connections, with every signal blocked:
 * signals stay the main thread's (signalfd). */
static int start_thread(struct inconns *t, char *err)
{
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&t->thread, NULL, inconns_thread, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return err_set(err, -r, "cannot start the thread for further connections: %s",
			       strerror(r));
	return 0;
}

int inconns_open(struct inconns *t, const uint8_t session[MIG_SESSION_ID_LEN],
		 char *err)
{
	pthread_mutex_lock(&t->lock);
	if (t->opened || t->cancelled) {
		bool c = t->cancelled;
		pthread_mutex_unlock(&t->lock);
		return c ? err_set(err, -ECANCELED, "cancelled")
			 : err_set(err, -EALREADY, "secondary connections are open already");
	}
	memcpy(t->session, session, MIG_SESSION_ID_LEN);
	t->opened = true;
	pthread_mutex_unlock(&t->lock);
	int r = start_thread(t, err);
	if (r)
		return r;
	t->thread_started = true;
	return 0;
}

int inconns_wait(struct inconns *t, uint32_t role, uint64_t deadline_ns,
		 struct mig_conn *out, char *err)
{
	int r = 0;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	pthread_mutex_lock(&t->lock);
	for (;;) {
		for (unsigned i = 0; i < t->nqueued; i++)
			if (t->queue[i].role == role) {
				*out = t->queue[i];
				memmove(&t->queue[i], &t->queue[i + 1],
					(t->nqueued - i - 1) * sizeof(t->queue[0]));
				t->nqueued--;
				goto out;
			}
		if (t->cancelled) {
			r = err_set(err, -ECANCELED, "cancelled");
			goto out;
		}
		if (!t->opened || t->error) {
			r = err_set(err, -EBADF, "no %s connection can come: %s",
				    mig_role_name(role), t->opened ? t->errmsg
				    : "no migration was accepted");
			goto out;
		}
		uint64_t now = mig_now_ns();
		if (now >= deadline_ns) {
			r = -ETIMEDOUT;
			goto out;
		}
		struct timespec ts = clock_deadline(CLOCK_MONOTONIC, deadline_ns - now);
		pthread_cond_timedwait(&t->cond, &t->lock, &ts);
	}
out:
	pthread_mutex_unlock(&t->lock);
	if (r == -ETIMEDOUT)
		err_set(err, r, "no %s connection of this migration came in time",
			mig_role_name(role));
	return r;
}

void inconns_suspend(struct inconns *t)
{
	uint64_t one = 1, v;

	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	bool run = t->thread_started;
	t->suspended = true;
	if (run)
		(void)!write(t->wake_fd, &one, sizeof(one));
	pthread_mutex_unlock(&t->lock);
	if (run)
		pthread_join(t->thread, NULL);
	pthread_mutex_lock(&t->lock);
	t->thread_started = false;
	/* A cancel meanwhile stays (inconns_resume checks it); the wake-up
	 * was for this thread only. */
	while (read(t->wake_fd, &v, sizeof(v)) == sizeof(v))
		;
	if (t->cancelled)
		(void)!write(t->wake_fd, &one, sizeof(one));
	for (unsigned i = 0; i < t->nqueued; i++)
		mig_conn_close(&t->queue[i]);
	t->nqueued = 0;
	pthread_mutex_unlock(&t->lock);
}

int inconns_resume(struct inconns *t, char *err)
{
	pthread_mutex_lock(&t->lock);
	if (!t->opened || t->cancelled || !t->suspended || t->thread_started) {
		bool c = t->cancelled;
		pthread_mutex_unlock(&t->lock);
		return c ? err_set(err, -ECANCELED, "cancelled")
			 : err_set(err, -EINVAL, "further connections are not suspended");
	}
	t->suspended = false;
	t->error = 0;
	t->errmsg[0] = '\0';
	pthread_mutex_unlock(&t->lock);
	int r = start_thread(t, err);
	if (r)
		return r;
	pthread_mutex_lock(&t->lock);
	t->thread_started = true;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void inconns_cancel(struct inconns *t)
{
	uint64_t one = 1;

	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->cancelled = true;
	(void)!write(t->wake_fd, &one, sizeof(one));
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

json_t *inconns_json(struct inconns *t)
{
	pthread_mutex_lock(&t->lock);
	json_t *j = json_pack("{s:I,s:I,s:I}", "accepted", (json_int_t)t->accepted,
			      "refused", (json_int_t)t->refused,
			      "waiting", (json_int_t)t->nqueued);
	pthread_mutex_unlock(&t->lock);
	return j;
}

void inconns_stop(struct inconns *t)
{
	if (!t)
		return;
	inconns_cancel(t);
	if (t->thread_started)
		pthread_join(t->thread, NULL);
	t->thread_started = false;
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->nqueued; i++)
		mig_conn_close(&t->queue[i]);
	t->nqueued = 0;
	pthread_mutex_unlock(&t->lock);
}

void inconns_free(struct inconns *t)
{
	if (!t)
		return;
	inconns_stop(t);
	close(t->wake_fd);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
}
