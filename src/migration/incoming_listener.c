/*
 * Accepting migration connections with deadlines: see incoming_listener.h.
 */
#include "migration/incoming_listener.h"
#include "io/channel.h"
#include "io/tls.h"
#include "migration/channel.h"
#include "migration/protocol.h"
#include "migration/stream.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "util/units.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connection that has sent this much of its first record is handed over
 * even if the record is longer: more may not fit the socket's buffer. */
#define HANDOVER_MAX   (64u << 10)
/* How often a connection that sent part of its HELLO is looked at again
 * (its bytes stay readable, so polling it for input would spin). */
#define RECHECK_NS     (20ULL * 1000000)
/* The preamble: magic and version (version 1), then role and session id
 * (version 2 on). */
#define PREAMBLE_V1_LEN 12
#define PREAMBLE_LEN    (PREAMBLE_V1_LEN + 4 + MIG_SESSION_ID_LEN)
#define RECORD_HDR_LEN  8

static void lock(struct incoming_listener *l)
{
	if (l->lock)
		pthread_mutex_lock(l->lock);
}

static void unlock(struct incoming_listener *l)
{
	if (l->lock)
		pthread_mutex_unlock(l->lock);
}

int listener_open(struct incoming_listener *l, const char *uri,
		  uint64_t handshake_ns, pthread_mutex_t *mutex, char *err)
{
	struct mig_uri u;
	int r;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->lock = mutex;
	l->handshake_ns = handshake_ns;
	r = channel_parse_uri(uri, &u, err);
	if (r)
		return r;
	r = channel_listen(&u, err);
	if (r < 0)
		return r;
	fcntl(r, F_SETFL, fcntl(r, F_GETFL) | O_NONBLOCK);
	l->fd = r;
	l->port = channel_local_port(r);
	snprintf(l->host, sizeof(l->host), "%s", u.host[0] ? u.host : "*");
	log_info("waiting for an incoming migration on %s:%d", l->host, l->port);
	return 0;
}

void listener_set_tls(struct incoming_listener *l, struct tls_creds *c)
{
	l->tls = c;
}

static void peer_name(int fd, char *out)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST], port[NI_MAXSERV];

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port,
			sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(out, LISTENER_PEER_MAX, "?");
		return;
	}
	snprintf(out, LISTENER_PEER_MAX, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
		 host, port);
}

/* Remove pend[i] from the list; the caller has closed or taken its fd. */
static void forget(struct incoming_listener *l, unsigned i)
{
	lock(l);
	l->pend[i] = l->pend[--l->npend];
	unlock(l);
}

static void drop(struct incoming_listener *l, unsigned i, const char *why)
{
	log_warn("incoming connection from %s: %s; dropped, still waiting for the source",
		 l->pend[i].peer, why);
	channel_close(l->pend[i].tls);
	close(l->pend[i].fd);
	lock(l);
	l->dropped++;
	unlock(l);
	forget(l, i);
}

static void accept_all(struct incoming_listener *l)
{
	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("incoming migration: accept: %s",
					 strerror(errno));
			return;
		}
		if (l->npend == LISTENER_MAX_PENDING) {
			/* Make room by dropping the one that has waited
			 * longest: whoever fills the slots with silent
			 * connections cannot keep the next one out. */
			unsigned oldest = 0;
			for (unsigned i = 1; i < l->npend; i++)
				if (l->pend[i].deadline_ns < l->pend[oldest].deadline_ns)
					oldest = i;
			drop(l, oldest, "too many connections waiting for their handshake");
		}
		struct listener_pending p = {
			.fd = fd,
			.deadline_ns = mig_now_ns() + l->handshake_ns,
			.events = POLLIN,
		};
		peer_name(fd, p.peer);
		if (l->tls && !(p.tls = channel_tls_new(l->tls, fd, false, true))) {
			log_warn("incoming connection from %s: out of memory for TLS; dropped",
				 p.peer);
			close(fd);
			continue;
		}
		log_info("incoming connection from %s", p.peer);
		lock(l);
		l->pend[l->npend++] = p;
		unlock(l);
	}
}

/* Have the first avail bytes of a connection (hdr: the first n of them,
 * n <= PREAMBLE_LEN + RECORD_HDR_LEN) enough for negotiate() to decide
 * without waiting?  Garbage counts as enough: negotiate names what is
 * wrong. */
static bool ready_bytes(const struct incoming_listener *l, const uint8_t *hdr,
			size_t n, size_t avail)
{
	if (!avail)
		return false;
	size_t m = n < 8 ? n : 8;
	if (memcmp(hdr, MIG_MAGIC, m))
		return true;
	if ((size_t)n < PREAMBLE_V1_LEN)
		return false;
	uint32_t version;
	memcpy(&version, hdr + 8, 4);
	/* A version this side does not read: negotiate says so at once. */
	if (version < MIG_VERSION_MIN || version > MIG_VERSION)
		return true;
	size_t pre = version >= 2 ? PREAMBLE_LEN : PREAMBLE_V1_LEN;
	if (version >= 2 && (size_t)n >= PREAMBLE_V1_LEN + 4) {
		uint32_t role;
		memcpy(&role, hdr + PREAMBLE_V1_LEN, 4);
		/* Only a main connection says HELLO next: any other role is
		 * judged (refused) on its preamble alone. */
		if (role != MIG_ROLE_MAIN)
			return true;
	}
	/* Secondary connections only: a main one is refused on its
	 * preamble too. */
	if (l->preamble_only && (size_t)n >= pre)
		return true;
	if ((size_t)n < pre + RECORD_HDR_LEN)
		return false;
	uint32_t type, len;
	memcpy(&type, hdr + pre, 4);
	memcpy(&len, hdr + pre + 4, 4);
	if (type != MIG_REC_HELLO || len > MIG_MAX_HELLO)
		return true;
	uint64_t need = (uint64_t)pre + RECORD_HDR_LEN + len + 4;
	if (need > HANDOVER_MAX)
		need = HANDOVER_MAX;
	return (uint64_t)avail >= need;
}

/* The same for a plain connection, on what the socket holds. */
static bool ready(const struct incoming_listener *l, int fd)
{
	uint8_t hdr[PREAMBLE_LEN + RECORD_HDR_LEN];
	int avail = 0;

	if (ioctl(fd, FIONREAD, &avail) < 0)
		return true;
	if (avail <= 0)
		return false;
	size_t want = (size_t)avail < sizeof(hdr) ? (size_t)avail : sizeof(hdr);
	ssize_t n = recv(fd, hdr, want, MSG_PEEK | MSG_DONTWAIT);
	if (n <= 0)
		return n == 0;
	return ready_bytes(l, hdr, (size_t)n, (size_t)avail);
}

/* A plain ferry source at a TLS destination: tell it why in its own
 * words (a REFUSE record) and drop it.  What it sent is read first, so
 * that closing does not reset the connection before it reads REFUSE. */
static void refuse_plain(struct incoming_listener *l, unsigned i)
{
	static const char why[] =
		"this destination requires TLS: give the source the same "
		"--tls-creds or --tls-psk";
	uint8_t rec[8 + sizeof(why) - 1 + 4], sink[4096];
	uint32_t type = MIG_REC_REFUSE, len = sizeof(why) - 1, crc;
	int fd = l->pend[i].fd;

	for (int k = 0; k < 256 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; k++)
		;
	memcpy(rec, &type, 4);
	memcpy(rec + 4, &len, 4);
	memcpy(rec + 8, why, len);
	crc = crc32c(0, rec, 8 + len);
	memcpy(rec + 8 + len, &crc, 4);
	(void)!send(fd, rec, sizeof(rec), MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(fd, SHUT_WR);
	drop(l, i, "a plain (unencrypted) migration, but this destination requires TLS "
		   "(told so)");
}

/* Has the peer hung up (no more bytes will come)? */
static bool peer_hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/*
 * One step of a TLS connection: the handshake as far as it goes, then
 * what has arrived decrypted.  Returns true when the connection is ready
 * to hand over (enough of its preamble and HELLO, or its end); false to
 * wait on (c->events says for what) or when it was dropped.
 */
static bool tls_step(struct incoming_listener *l, unsigned i)
{
	struct listener_pending *c = &l->pend[i];
	char err[ERR_MAX] = "";
	const unsigned char *data;
	size_t held;

	if (!c->secured) {
		if (!c->sniffed) {
			/* A TLS client starts with a handshake record (0x16);
			 * a plain ferry source with the magic. */
			char first[8];
			ssize_t n = recv(c->fd, first, sizeof(first), MSG_PEEK | MSG_DONTWAIT);
			if (n > 0 && !memcmp(first, MIG_MAGIC, (size_t)n)) {
				if ((size_t)n < sizeof(first) && !peer_hung_up(c->fd)) {
					/* The rest of the magic, then judge. */
					c->recheck_ns = mig_now_ns() + RECHECK_NS;
					return false;
				}
				refuse_plain(l, i);
				return false;
			}
			c->sniffed = n >= 0;
		}
		int r = channel_tls_handshake(c->tls, &c->events, err);
		if (r == -EAGAIN)
			return false;
		if (r) {
			drop(l, i, err);
			return false;
		}
		struct tls_info info;
		c->secured = true;
		c->events = POLLIN;
		if (!channel_tls_info(c->tls, &info))
			log_info("incoming connection from %s: TLS %s, %s, %s (peer %s)",
				 c->peer, info.version, info.cipher,
				 tls_auth_name(info.auth), info.peer_id);
	}
	/* Only now is anything of the migration looked at. */
	int r = channel_tls_prefetch(c->tls, HANDOVER_MAX, &data, &held);
	size_t n = held < PREAMBLE_LEN + RECORD_HDR_LEN ? held : PREAMBLE_LEN + RECORD_HDR_LEN;
	return r == -EPIPE || ready_bytes(l, data, n, held);
}

static void hand_over(struct incoming_listener *l, unsigned i, int *fd,
		      struct channel **tls, char *peer)
{
	struct listener_pending p = l->pend[i];
	uint64_t now = mig_now_ns();
	uint64_t left_ms = p.deadline_ns > now ? (p.deadline_ns - now) / 1000000 : 0;

	forget(l, i);
	fcntl(p.fd, F_SETFL, fcntl(p.fd, F_GETFL) & ~O_NONBLOCK);
	channel_tune(p.fd); /* no delay, user timeout, keepalive */
	/* What negotiate still reads must come within the deadline. */
	channel_set_timeout(p.fd, left_ms ? (int)left_ms : 1);
	*fd = p.fd;
	*tls = p.tls;
	snprintf(peer, LISTENER_PEER_MAX, "%s", p.peer);
}

int listener_next(struct incoming_listener *l, int cancel_fd, int *fd,
		  struct channel **tls, char *peer, char *err)
{
	*tls = NULL;
	if (l->fd < 0)
		return err_set(err, -EBADF, "not listening");
	for (;;) {
		struct pollfd p[2 + LISTENER_MAX_PENDING];
		uint64_t now = mig_now_ns(), wake = UINT64_MAX;
		unsigned n = 0;

		for (unsigned i = 0; i < l->npend;) {
			if (now >= l->pend[i].deadline_ns) {
				char why[96], t[UNITS_LEN];
				snprintf(why, sizeof(why), "no %s within %s",
					 l->pend[i].tls && !l->pend[i].secured
						 ? "TLS handshake" : "preamble and HELLO",
					 units_duration_ms(t, sizeof(t),
							   l->handshake_ns / 1e6));
				drop(l, i, why);
				continue;
			}
			i++;
		}
		p[n++] = (struct pollfd){ .fd = cancel_fd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = l->fd, .events = POLLIN };
		for (unsigned i = 0; i < l->npend; i++) {
			struct listener_pending *c = &l->pend[i];
			short ev = POLLRDHUP;
			/* A TLS connection's bytes are taken in as they come,
			 * so it waits for what its handshake wants; only the
			 * first bytes, peeked at, need a recheck. */
			if (now >= c->recheck_ns)
				ev |= c->tls ? c->events : POLLIN;
			else if (c->recheck_ns < wake)
				wake = c->recheck_ns;
			if (c->deadline_ns < wake)
				wake = c->deadline_ns;
			p[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		int timeout = -1;
		if (wake != UINT64_MAX)
			timeout = (int)((wake - now + 999999) / 1000000);
		int r = poll(p, n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return err_set(err, -errno, "poll: %s", strerror(errno));
		}
		if (p[0].revents & POLLIN)
			return -ECANCELED;
		now = mig_now_ns();
		/* Pending connections first: their indexes are p[2..]; accepting
		 * afterwards only appends. */
		for (unsigned i = l->npend; i-- > 0;) {
			short rev = p[2 + i].revents;
			if (!rev)
				continue;
			if (l->pend[i].tls) {
				if (tls_step(l, i)) {
					hand_over(l, i, fd, tls, peer);
					return 0;
				}
				continue;
			}
			bool hup = rev & (POLLRDHUP | POLLHUP | POLLERR);
			if (hup || ready(l, l->pend[i].fd)) {
				hand_over(l, i, fd, tls, peer);
				return 0;
			}
			l->pend[i].recheck_ns = now + RECHECK_NS;
		}
		if (p[1].revents & POLLIN)
			accept_all(l);
	}
}

void listener_close(struct incoming_listener *l)
{
	while (l->npend) {
		channel_close(l->pend[l->npend - 1].tls);
		close(l->pend[l->npend - 1].fd);
		forget(l, l->npend - 1);
	}
	lock(l);
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	unlock(l);
}
