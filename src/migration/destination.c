/*
 * The incoming-migration object and its thread: see destination.h.
 *
 * Locking: d->lock guards everything another thread reads or sets (state,
 * progress, peer names, cancel, autostart, the listener's pending list).
 * The thread never holds it while waiting on the network.  A cancel wakes
 * the listener through wake_fd and a running session by shutting down the
 * receiving side of its socket: the session still sends the source its
 * ERROR on the sending side.
 */
#include "migration/destination.h"
#include "io/channel.h"
#include "io/tls.h"
#include "migration/secure.h"
#include "migration/channel.h"
#include "migration/incoming.h"
#include "migration/incoming_conns.h"
#include "migration/incoming_listener.h"
#include "migration/postcopy_incoming.h"
#include "migration/migration.h"
#include "migration/stats.h"
#include "migration/stream.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

struct destination {
	struct destination_config cfg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool thread_started;
	int wake_fd;                 /* eventfd: readable once cancelled */

	enum destination_state state;
	char uri[300];
	struct incoming_listener listener;
	/* Taken by whoever swaps the listener under the further
	 * connections (a pause closes it, migrate-recover opens another);
	 * never while holding lock, which the listener uses itself. */
	pthread_mutex_t relisten;
	struct inconns *conns;       /* the accepted migration's further ones */
	struct pci *pc;              /* post-copy running (the session's) */
	struct pci *pc_kept;         /* post-copy ended: ours to free at the end */
	json_t *pc_final;            /* post-copy's figures once it ended */
	int conn_fd;                 /* the session's socket, -1 if none */
	char peer[LISTENER_PEER_MAX];
	bool tls;                    /* the session's connection is TLS ... */
	struct tls_info tls_info;    /* ... agreed so */
	struct incoming_progress progress;
	uint64_t start_ns, accept_ns, end_ns;
	bool cancel;
	bool quiet;                  /* cancelled by teardown: nothing to say */
	char cancel_why[128];
	bool committed;              /* the VM is taken over */
	bool autostart;
	char error[ERR_MAX];
};

const char *destination_state_name(enum destination_state st)
{
	switch (st) {
	case DEST_DEFERRED: return "deferred";
	case DEST_LISTENING: return "listening";
	case DEST_HANDSHAKE: return "handshake";
	case DEST_RECEIVING: return "receiving";
	case DEST_POSTCOPY: return "postcopy-active";
	case DEST_POSTCOPY_PAUSED: return "postcopy-paused";
	case DEST_POSTCOPY_RECOVER: return "postcopy-recover";
	case DEST_COMPLETED: return "completed";
	case DEST_FAILED: return "failed";
	case DEST_CANCELLED: return "cancelled";
	}
	return "unknown";
}

/* QEMU's MigrationStatus for our state. */
static enum mig_status mig_status_of(enum destination_state st)
{
	switch (st) {
	case DEST_DEFERRED: return MIG_STATUS_NONE;
	case DEST_LISTENING:
	case DEST_HANDSHAKE: return MIG_STATUS_SETUP;
	case DEST_RECEIVING: return MIG_STATUS_ACTIVE;
	case DEST_POSTCOPY: return MIG_STATUS_POSTCOPY_ACTIVE;
	case DEST_POSTCOPY_PAUSED: return MIG_STATUS_POSTCOPY_PAUSED;
	case DEST_POSTCOPY_RECOVER: return MIG_STATUS_POSTCOPY_RECOVER;
	case DEST_COMPLETED: return MIG_STATUS_COMPLETED;
	case DEST_FAILED: return MIG_STATUS_FAILED;
	case DEST_CANCELLED: return MIG_STATUS_CANCELLED;
	}
	return MIG_STATUS_NONE;
}

/* ---- session callbacks (on the destination thread) ----------------------- */

static void on_accepted(void *opaque)
{
	struct destination *d = opaque;

	pthread_mutex_lock(&d->lock);
	d->state = DEST_RECEIVING;
	d->accept_ns = mig_now_ns();
	pthread_mutex_unlock(&d->lock);
	/* One source per destination: the listener stays open for the
	 * migration's further connections only (incoming_conns.c refuses
	 * any other). */
	log_info("incoming migration from %s accepted", d->peer);
}

static int on_take_over(void *opaque, struct vm *vm, bool source_running)
{
	struct destination *d = opaque;

	pthread_mutex_lock(&d->lock);
	if (d->cancel) {
		pthread_mutex_unlock(&d->lock);
		return -ECANCELED;
	}
	d->committed = true;
	/* Resume and publish under the lock: a `stop` or `cont` that found
	 * no VM yet waits here and then finds it, in its final run state. */
	if (d->autostart && source_running)
		vm_resume(vm);
	else if (!source_running)
		log_info("the guest was paused at the source: it arrives paused "
			 "(cont runs it)");
	d->cfg.publish(d->cfg.opaque, vm);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static void on_postcopy_started(void *opaque, struct pci *pc)
{
	struct destination *d = opaque;

	pthread_mutex_lock(&d->lock);
	d->pc = pc;
	d->state = DEST_POSTCOPY;
	pthread_mutex_unlock(&d->lock);
	/* The VM is here and runs (or waits for cont): main runs it. */
	d->cfg.ended(d->cfg.opaque);
}

static void on_postcopy_ended(void *opaque, struct pci *pc, bool ok)
{
	struct destination *d = opaque;
	json_t *final = pci_json(pc);

	(void)ok;
	pthread_mutex_lock(&d->lock);
	json_decref(d->pc_final);
	d->pc_final = final;
	d->pc = NULL;
	/* Freed at destination_stop, when nothing uses the VM any more. */
	d->pc_kept = pc;
	pthread_mutex_unlock(&d->lock);
}

/* Post-copy paused (on the destination thread): say why, and stop
 * listening - the source comes back only where migrate-recover says. */
static void on_postcopy_paused(void *opaque, const char *why)
{
	struct destination *d = opaque;

	pthread_mutex_lock(&d->relisten);
	inconns_suspend(d->conns);
	listener_close(&d->listener);   /* takes lock itself */
	pthread_mutex_lock(&d->lock);
	d->state = DEST_POSTCOPY_PAUSED;
	snprintf(d->error, sizeof(d->error), "%s", why);
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_unlock(&d->relisten);
}

static void on_postcopy_resumed(void *opaque)
{
	struct destination *d = opaque;

	pthread_mutex_lock(&d->lock);
	d->state = DEST_POSTCOPY;
	d->error[0] = '\0';
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static bool on_cancelled(void *opaque, char *why)
{
	struct destination *d = opaque;

	pthread_mutex_lock(&d->lock);
	bool c = d->cancel;
	if (c)
		snprintf(why, ERR_MAX, "%s", d->cancel_why);
	pthread_mutex_unlock(&d->lock);
	return c;
}

/* ---- the thread ---------------------------------------------------------- */

static void finish(struct destination *d, enum destination_state st,
		   const char *err)
{
	inconns_stop(d->conns);
	listener_close(&d->listener);
	pthread_mutex_lock(&d->lock);
	d->state = st;
	d->end_ns = mig_now_ns();
	/* Without err, a cancel that came before any session said why. */
	bool say = st == DEST_CANCELLED && !err;
	bool quiet = d->quiet;
	if (say)
		err = d->cancel_why;
	if (err && st != DEST_COMPLETED)
		snprintf(d->error, sizeof(d->error), "%s", err);
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (say && !quiet)
		log_info("incoming migration cancelled: %s", d->error);
	d->cfg.ended(d->cfg.opaque);
}

static void *destination_thread(void *arg)
{
	struct destination *d = arg;
	struct incoming_session s = {
		.host_cfg = &d->cfg.host_cfg,
		.max_memory = d->cfg.max_memory,
		.idle_timeout_ms = (int)d->cfg.idle_ms,
		.progress = &d->progress,
		.opaque = d,
		.accepted = on_accepted,
		.take_over = on_take_over,
		.cancelled = on_cancelled,
		.conns = d->conns,
		.postcopy_started = on_postcopy_started,
		.postcopy_ended = on_postcopy_ended,
		.postcopy_paused = on_postcopy_paused,
		.postcopy_resumed = on_postcopy_resumed,
	};
	char err[ERR_MAX] = "", peer[LISTENER_PEER_MAX];

	pthread_setname_np(pthread_self(), "incoming");
	pthread_mutex_lock(&d->lock);
	while (d->state == DEST_DEFERRED && !d->cancel)
		pthread_cond_wait(&d->cond, &d->lock);
	bool cancelled = d->cancel;
	pthread_mutex_unlock(&d->lock);
	if (cancelled) {
		finish(d, DEST_CANCELLED, NULL);
		return NULL;
	}

	for (;;) {
		int fd, r;
		bool accepted;
		struct channel *ch;

		r = listener_next(&d->listener, d->wake_fd, &fd, &ch, peer, err);
		if (r == -ECANCELED) {
			finish(d, DEST_CANCELLED, NULL);
			return NULL;
		}
		if (r < 0) {
			log_error("incoming migration: %s", err);
			finish(d, DEST_FAILED, err);
			return NULL;
		}
		pthread_mutex_lock(&d->lock);
		d->conn_fd = fd;
		snprintf(d->peer, sizeof(d->peer), "%s", peer);
		d->state = DEST_HANDSHAKE;
		d->progress.bytes = d->progress.pages = 0;
		d->progress.zero_pages = d->progress.rounds = 0;
		d->progress.memory = 0;
		d->progress.vcpus = 0;
		d->progress.compression[0] = '\0';
		d->progress.plain_bytes = d->progress.data_bytes = 0;
		d->progress.channels = 1;
		d->progress.compressed_batches = d->progress.raw_batches = 0;
		d->progress.xbzrle = false;
		d->progress.delta_pages = d->progress.delta_bytes = 0;
		d->tls = ch && !channel_tls_info(ch, &d->tls_info);
		if (d->cancel)
			shutdown(fd, SHUT_RD);
		pthread_mutex_unlock(&d->lock);

		err[0] = '\0';
		if (!ch)
			ch = channel_socket_new(fd, false);
		r = migration_incoming_channel(ch, &s, &accepted, err);

		pthread_mutex_lock(&d->lock);
		d->conn_fd = -1;
		cancelled = d->cancel;
		pthread_mutex_unlock(&d->lock);
		close(fd);
		if (!r) {
			finish(d, DEST_COMPLETED, NULL);
			return NULL;
		}
		if (accepted || cancelled) {
			if (!accepted) /* else the session said it */
				log_info("incoming migration cancelled: %s", err);
			finish(d, cancelled ? DEST_CANCELLED : DEST_FAILED, err);
			return NULL;
		}
		log_warn("incoming connection from %s: %s; dropped, still waiting for the source",
			 peer, err);
		pthread_mutex_lock(&d->lock);
		d->listener.dropped++;
		d->state = DEST_LISTENING;
		d->peer[0] = '\0';
		d->tls = false;
		pthread_mutex_unlock(&d->lock);
	}
}

/* ---- the API ----------------------------------------------------------------- */

int destination_set_uri(struct destination *d, const char *uri, char *err)
{
	struct incoming_listener l;
	int r;

	pthread_mutex_lock(&d->lock);
	enum destination_state st = d->state;
	pthread_mutex_unlock(&d->lock);
	if (st != DEST_DEFERRED)
		return err_set(err, -EBUSY,
			       "the incoming migration has already been started (%s%s)",
			       d->uri[0] ? "on " : "",
			       d->uri[0] ? d->uri : destination_state_name(st));
	if (strlen(uri) >= sizeof(d->uri))
		return err_set(err, -EINVAL, "URI too long");
	/* Commands come one at a time, so nobody else opens meanwhile; the
	 * listener is only copied in, under the lock, once it works. */
	r = listener_open(&l, uri, d->cfg.handshake_ms * 1000000ULL, &d->lock,
			  err);
	if (r)
		return r;
	listener_set_tls(&l, d->cfg.tls);
	pthread_mutex_lock(&d->lock);
	if (d->state != DEST_DEFERRED) {   /* cancelled meanwhile */
		pthread_mutex_unlock(&d->lock);
		listener_close(&l);
		return err_set(err, -ECANCELED, "the incoming migration was cancelled");
	}
	d->listener = l;
	snprintf(d->uri, sizeof(d->uri), "%s", uri);
	d->state = DEST_LISTENING;
	d->start_ns = mig_now_ns();
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int destination_recover(struct destination *d, const char *uri, char *err)
{
	struct incoming_listener l;
	int r;

	pthread_mutex_lock(&d->relisten);
	pthread_mutex_lock(&d->lock);
	enum destination_state st = d->state;
	pthread_mutex_unlock(&d->lock);
	if (st != DEST_POSTCOPY_PAUSED) {
		pthread_mutex_unlock(&d->relisten);
		if (st == DEST_POSTCOPY_RECOVER)
			return err_set(err, -EALREADY, "a recovery is under way already: "
				       "listening on %s for the source", d->uri);
		return err_set(err, -EINVAL, "migrate-recover continues a paused post-copy, "
			       "and this destination's migration is %s",
			       mig_status_name(mig_status_of(st)));
	}
	if (strlen(uri) >= sizeof(d->uri)) {
		pthread_mutex_unlock(&d->relisten);
		return err_set(err, -EINVAL, "URI too long");
	}
	r = listener_open(&l, uri, d->cfg.handshake_ms * 1000000ULL, &d->lock, err);
	if (r) {
		pthread_mutex_unlock(&d->relisten);
		return r;
	}
	listener_set_tls(&l, d->cfg.tls);
	pthread_mutex_lock(&d->lock);
	d->listener = l;
	snprintf(d->uri, sizeof(d->uri), "%s", uri);
	d->state = DEST_POSTCOPY_RECOVER;
	pthread_mutex_unlock(&d->lock);
	r = inconns_resume(d->conns, err);
	if (r) {
		listener_close(&d->listener);
		pthread_mutex_lock(&d->lock);
		d->state = DEST_POSTCOPY_PAUSED;
		pthread_mutex_unlock(&d->lock);
	}
	pthread_mutex_unlock(&d->relisten);
	if (!r)
		log_info("post-copy recovery: waiting for the source on %s (port %d)", uri,
			 l.port);
	return r;
}

bool destination_in_postcopy(struct destination *d)
{
	pthread_mutex_lock(&d->lock);
	bool in = d->state == DEST_POSTCOPY || d->state == DEST_POSTCOPY_PAUSED ||
		  d->state == DEST_POSTCOPY_RECOVER;
	pthread_mutex_unlock(&d->lock);
	return in;
}

int destination_start(struct destination **out,
		      const struct destination_config *cfg, char *err)
{
	struct destination *d = calloc(1, sizeof(*d));
	sigset_t all, old;
	int r;

	*out = NULL;
	if (!d)
		return err_set(err, -ENOMEM, "out of memory");
	d->cfg = *cfg;
	d->cfg.uri = NULL;
	d->autostart = cfg->autostart;
	d->conn_fd = -1;
	d->listener.fd = -1;
	d->state = DEST_DEFERRED;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->relisten, NULL);
	pthread_cond_init(&d->cond, NULL);
	d->progress.lock = &d->lock;
	d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->wake_fd < 0) {
		r = err_set(err, -errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	r = inconns_new(&d->conns, &d->listener, err);
	if (r)
		goto fail;
	if (cfg->uri) {
		r = destination_set_uri(d, cfg->uri, err);
		if (r)
			goto fail;
	}
	/* Signals are the main thread's (signalfd); vCPU threads created
	 * from this thread unblock their kick signal themselves. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&d->thread, NULL, destination_thread, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		r = err_set(err, -r, "cannot start the incoming migration thread: %s",
			    strerror(r));
		goto fail;
	}
	d->thread_started = true;
	*out = d;
	return 0;
fail:
	inconns_free(d->conns);
	listener_close(&d->listener);
	if (d->wake_fd >= 0)
		close(d->wake_fd);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->relisten);
	pthread_cond_destroy(&d->cond);
	free(d);
	return r;
}

void destination_cancel(struct destination *d, const char *why)
{
	uint64_t one = 1;

	pthread_mutex_lock(&d->lock);
	if (!d->cancel && !d->committed && d->state != DEST_FAILED &&
	    d->state != DEST_CANCELLED) {
		d->cancel = true;
		snprintf(d->cancel_why, sizeof(d->cancel_why), "%s", why);
		if (d->conn_fd >= 0)
			shutdown(d->conn_fd, SHUT_RD);
		inconns_cancel(d->conns);
		(void)!write(d->wake_fd, &one, sizeof(one));
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
}

int destination_set_autostart(struct destination *d, bool run)
{
	pthread_mutex_lock(&d->lock);
	bool done = d->committed;
	if (!done)
		d->autostart = run;
	pthread_mutex_unlock(&d->lock);
	return done ? -EALREADY : 0;
}

enum destination_state destination_get_state(struct destination *d,
					      char *err)
{
	pthread_mutex_lock(&d->lock);
	enum destination_state st = d->state;
	if (err)
		snprintf(err, ERR_MAX, "%s", d->error);
	pthread_mutex_unlock(&d->lock);
	return st;
}

static json_t *u64_json(uint64_t v)
{
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

json_t *destination_query(struct destination *d)
{
	json_t *j = json_object(), *ram = json_object(), *f = json_object();
	json_t *pending = json_array();
	uint64_t now = mig_now_ns();

	pthread_mutex_lock(&d->lock);
	const struct incoming_progress *p = &d->progress;
	json_object_set_new(j, "status",
			    json_string(mig_status_name(mig_status_of(d->state))));
	if (d->start_ns) {
		uint64_t end = d->end_ns ? d->end_ns : now;
		json_object_set_new(j, "total-time",
				    u64_json((end - d->start_ns) / 1000000));
	}
	if (d->error[0])
		json_object_set_new(j, "error-desc", json_string(d->error));
	json_object_set_new(ram, "transferred", u64_json(p->bytes));
	json_object_set_new(ram, "total", u64_json(p->memory));
	json_object_set_new(ram, "normal", u64_json(p->pages));
	json_object_set_new(ram, "normal-bytes", u64_json(p->pages * 4096));
	json_object_set_new(ram, "duplicate", u64_json(p->zero_pages));
	json_object_set_new(ram, "dirty-sync-count", u64_json(p->rounds));
	json_object_set_new(j, "ram", ram);

	json_object_set_new(f, "role", json_string("destination"));
	json_object_set_new(f, "state", json_string(destination_state_name(d->state)));
	if (d->uri[0])
		json_object_set_new(f, "uri", json_string(d->uri));
	if (d->listener.fd >= 0)
		json_object_set_new(f, "listen-port", json_integer(d->listener.port));
	if (d->peer[0])
		json_object_set_new(f, "peer", json_string(d->peer));
	for (unsigned i = 0; i < d->listener.npend; i++)
		json_array_append_new(pending, json_string(d->listener.pend[i].peer));
	json_object_set_new(f, "pending-peers", pending);
	json_object_set_new(f, "dropped-peers", u64_json(d->listener.dropped));
	/* The accepted migration's further connections (post-copy, page
	 * channels): accepted, refused, not yet taken. */
	json_object_set_new(f, "connections", inconns_json(d->conns));
	if (d->pc)
		json_object_set_new(f, "postcopy", pci_json(d->pc));
	else if (d->pc_final)
		json_object_set_new(f, "postcopy", json_incref(d->pc_final));
	json_object_set_new(f, "bytes-received", u64_json(p->bytes));
	json_object_set_new(f, "pages-received", u64_json(p->pages));
	json_object_set_new(f, "zero-pages", u64_json(p->zero_pages));
	json_object_set_new(f, "rounds", u64_json(p->rounds));
	if (p->memory)
		json_object_set_new(f, "vcpus", json_integer(p->vcpus));
	json_object_set_new(f, "handshake-timeout-ms", u64_json(d->cfg.handshake_ms));
	json_object_set_new(f, "idle-timeout-ms", u64_json(d->cfg.idle_ms));
	json_object_set_new(f, "autostart", json_boolean(d->autostart));
	/* The level is the source's business: not known here. */
	json_object_set_new(f, "channels", mig_channels_json(p->channels, p->chan));
	json_object_set_new(f, "compression", mig_compression_json(
		p->compression, -1, p->plain_bytes, p->data_bytes,
		p->compressed_batches, p->raw_batches));
	json_object_set_new(f, "xbzrle", json_pack("{s:b, s:I, s:I}", "agreed", p->xbzrle,
						   "pages", (json_int_t)p->delta_pages,
						   "bytes", (json_int_t)p->delta_bytes));
	/* Whether this migration is encrypted, and how; before a source is
	 * accepted, what every connection is required to use. */
	json_t *tls = mig_tls_json(d->tls, &d->tls_info);
	json_object_set_new(tls, "required", json_boolean(d->cfg.tls != NULL));
	if (d->cfg.tls)
		json_object_set_new(tls, "credentials",
				    json_string(tls_auth_name(tls_creds_auth(d->cfg.tls))));
	json_object_set_new(f, "tls", tls);
	pthread_mutex_unlock(&d->lock);
	json_object_set_new(j, "ferry", f);
	return j;
}

json_t *destination_query_vm(struct destination *d)
{
	json_t *in = json_object();

	pthread_mutex_lock(&d->lock);
	json_object_set_new(in, "state", json_string(destination_state_name(d->state)));
	if (d->progress.memory) {
		json_object_set_new(in, "memory", u64_json(d->progress.memory));
		json_object_set_new(in, "vcpus", json_integer(d->progress.vcpus));
	}
	pthread_mutex_unlock(&d->lock);
	return json_pack("{s:s,s:o}", "status", "inmigrate", "incoming", in);
}

void destination_stop(struct destination *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->quiet = !d->cancel;
	pthread_mutex_unlock(&d->lock);
	destination_cancel(d, "the destination is shutting down");
	/* Post-copy cannot be cancelled, only ended: the VM goes away. */
	pthread_mutex_lock(&d->lock);
	pci_stop(d->pc);
	pthread_mutex_unlock(&d->lock);
	if (d->thread_started)
		pthread_join(d->thread, NULL);
	pci_free(d->pc_kept);
	json_decref(d->pc_final);
	inconns_free(d->conns);
	listener_close(&d->listener);
	close(d->wake_fd);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->relisten);
	pthread_cond_destroy(&d->cond);
	free(d);
}
