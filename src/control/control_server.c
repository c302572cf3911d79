/*
 * control_server.c - the control socket's listener, connections and thread.
 *
 * One thread polls the listening socket, every connection and a wake-up
 * eventfd.  Connections are non-blocking with an output queue each, so a
 * client that stops reading only stalls itself, never the thread (and so
 * never `quit` sent by another client).  Commands run on this thread one at
 * a time.
 *
 * Input is a stream of JSON objects, as in QMP (control_stream.c): newlines
 * between requests are optional.  A client that neither sends nor receives
 * anything for the idle timeout (FERRY_CONTROL_IDLE_TIMEOUT seconds, default
 * 600, 0 for never) is told so and disconnected, so that forgotten `socat`
 * sessions do not hold the CONTROL_MAX_CLIENTS slots forever; a client over
 * that limit gets a QMP error instead of the greeting.  QEMU's monitor has
 * no idle timeout but serves one client per monitor; sshd's
 * ClientAliveInterval and libvirt's keepalive are the same idea.
 */
#include "control/control.h"
#include "control/control_proto.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/units.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Stop reading from a client whose unread replies pile up past this. */
#define CONTROL_OUT_MAX (1024 * 1024)

struct control_client {
	struct control *ctl;
	int fd;
	int64_t active_ms;  /* last time bytes moved either way */
	struct control_stream in;
	struct buf out;
	size_t out_off;     /* bytes of out already sent */
	bool eof;           /* peer sent everything: close once out is sent */
	bool dead;          /* I/O error: close now */
};

struct control {
	const struct control_cmd *table;
	void *opaque;
	char *path;
	dev_t sock_dev;     /* identity of our socket file, so that stop only */
	ino_t sock_ino;     /* removes it if nobody has replaced it since */
	int64_t idle_ms;    /* <= 0: clients may stay idle forever */
	int listen_fd;
	int wake_fd;
	pthread_t thread;
	atomic_bool stopping;
	struct control_client *clients[CONTROL_MAX_CLIENTS];
};

/* ---- connections -------------------------------------------------------- */

static size_t client_pending(const struct control_client *c)
{
	return c->out.len - c->out_off;
}

static void client_flush(struct control_client *c)
{
	while (!c->dead && client_pending(c)) {
		ssize_t n = send(c->fd, c->out.data + c->out_off,
				 client_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->dead = true;
			return;
		}
		c->out_off += n;
		c->active_ms = clock_mono_ms();
	}
	if (!client_pending(c)) {
		buf_reset(&c->out);
		c->out_off = 0;
	}
}

/* Queue msg (and drop our reference) as one line, and try to send it now. */
static void client_send(struct control_client *c, json_t *msg)
{
	char *s;

	if (!msg) {
		c->dead = true;      /* out of memory: nothing sane to say */
		return;
	}
	s = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!s) {
		c->dead = true;
		return;
	}
	buf_put(&c->out, s, strlen(s));
	buf_put_u8(&c->out, '\n');
	free(s);
	if (c->out.oom) {
		c->dead = true;
		return;
	}
	client_flush(c);
}

static int client_msg(void *opaque, const char *msg, size_t len,
		      const char *error)
{
	struct control_client *c = opaque;
	struct control *ctl = c->ctl;
	control_after_fn after = NULL;

	if (error) {
		client_send(c, control_error_reply(NULL, error, NULL));
	} else {
		client_send(c, control_execute_msg(ctl->table, ctl->opaque,
						   msg, len, &after));
		if (after)
			after(ctl->opaque);
	}
	return c->dead ? -EPIPE : 0;
}

static void client_read(struct control_client *c)
{
	char data[4096];
	ssize_t n = recv(c->fd, data, sizeof(data), MSG_DONTWAIT);
	int ret;

	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			c->dead = true;
		return;
	}
	c->active_ms = clock_mono_ms();
	if (n == 0) {
		/* The peer may have only shut down its sending side (socat,
		 * nc -N) and still wait for replies to what it sent. */
		c->eof = true;
		ret = control_stream_finish(&c->in, client_msg, c);
	} else {
		ret = control_stream_feed(&c->in, data, n, client_msg, c,
					  NULL);
	}
	if (ret < 0)
		c->dead = true;
}

/* Say why in QMP's shape, then hang up. */
static void client_drop_idle(struct control_client *c)
{
	char msg[128], t[UNITS_LEN];

	snprintf(msg, sizeof(msg), "closing the connection: idle for %s",
		 units_duration_ms(t, sizeof(t), (double)c->ctl->idle_ms));
	log_info("control socket: %s", msg);
	client_send(c, control_error_reply(NULL, msg, NULL));
	c->dead = true;
}

static void client_close(struct control_client *c)
{
	if (!c)
		return;
	close(c->fd);
	control_stream_free(&c->in);
	buf_free(&c->out);
	free(c);
}

/*
 * A client over the limit (or one we have no memory for) gets a QMP error
 * in place of the greeting, so that a client library reports it as such.
 * Best effort: the socket is new, so its buffer has room.
 */
static void refuse(int fd, bool oom)
{
	char msg[160];
	json_t *e;
	char *s;

	if (oom)
		snprintf(msg, sizeof(msg), "out of memory");
	else
		snprintf(msg, sizeof(msg),
			 "too many control connections (%d are open); try again later",
			 CONTROL_MAX_CLIENTS);
	log_warn("control socket: refused a client: %s", msg);
	e = control_error_reply(NULL, msg, NULL);
	s = e ? json_dumps(e, JSON_COMPACT) : NULL;
	json_decref(e);
	if (s) {
		(void)!send(fd, s, strlen(s), MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)!send(fd, "\n", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	free(s);
	close(fd);
}

static void control_accept(struct control *ctl, bool *accept_paused)
{
	for (;;) {
		struct control_client *c;
		int fd = accept4(ctl->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		unsigned slot;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* The listener stays readable; back off instead
				 * of spinning until an fd frees up. */
				log_warn("control socket: accept: %s",
					 strerror(errno));
				*accept_paused = true;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_warn("control socket: accept: %s",
					 strerror(errno));
			}
			return;
		}
		for (slot = 0; slot < CONTROL_MAX_CLIENTS; slot++)
			if (!ctl->clients[slot])
				break;
		c = slot < CONTROL_MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			refuse(fd, slot < CONTROL_MAX_CLIENTS);
			continue;
		}
		c->ctl = ctl;
		c->fd = fd;
		c->active_ms = clock_mono_ms();
		control_stream_init(&c->in, CONTROL_MSG_MAX);
		buf_init(&c->out);
		ctl->clients[slot] = c;
		client_send(c, control_greeting());
	}
}

/* Milliseconds until the next idle client must go, or -1 for none. */
static int idle_poll_timeout(struct control *ctl)
{
	int64_t now = clock_mono_ms(), first = -1;

	if (ctl->idle_ms <= 0)
		return -1;
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct control_client *c = ctl->clients[i];
		int64_t left;

		if (!c)
			continue;
		left = c->active_ms + ctl->idle_ms - now;
		if (left < 0)
			left = 0;
		if (first < 0 || left < first)
			first = left;
	}
	return first > 1000000 ? 1000000 : (int)first;
}

static void drop_idle_clients(struct control *ctl)
{
	int64_t now = clock_mono_ms();

	if (ctl->idle_ms <= 0)
		return;
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct control_client *c = ctl->clients[i];
		if (c && !c->dead && now - c->active_ms >= ctl->idle_ms)
			client_drop_idle(c);
	}
}

/* ---- the thread ------------------------------------------------------------ */

static void *control_thread(void *arg)
{
	struct control *ctl = arg;
	bool accept_paused = false;

	while (!atomic_load(&ctl->stopping)) {
		struct pollfd pfd[2 + CONTROL_MAX_CLIENTS];
		struct control_client *polled[CONTROL_MAX_CLIENTS];
		unsigned n = 0, ncl = 0;
		int ret, timeout;

		pfd[n++] = (struct pollfd){ .fd = ctl->wake_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){
			.fd = accept_paused ? -1 : ctl->listen_fd,
			.events = POLLIN };
		for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++) {
			struct control_client *c = ctl->clients[i];
			short ev = 0;

			if (!c)
				continue;
			if (!c->eof && client_pending(c) < CONTROL_OUT_MAX)
				ev |= POLLIN;
			if (client_pending(c))
				ev |= POLLOUT;
			polled[ncl++] = c;
			pfd[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		timeout = idle_poll_timeout(ctl);
		if (accept_paused && (timeout < 0 || timeout > 100))
			timeout = 100;
		ret = poll(pfd, n, timeout);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			log_error("control socket: poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents) {
			uint64_t v;
			(void)!read(ctl->wake_fd, &v, sizeof(v));
			continue;   /* re-check stopping */
		}
		accept_paused = false;
		if (pfd[1].revents & POLLIN)
			control_accept(ctl, &accept_paused);
		for (unsigned i = 0; i < ncl; i++) {
			struct control_client *c = polled[i];
			short rev = pfd[2 + i].revents;

			if (rev & (POLLIN | POLLHUP | POLLERR))
				client_read(c);
			if (!c->dead && (rev & POLLOUT))
				client_flush(c);
		}
		drop_idle_clients(ctl);
		for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++) {
			struct control_client *c = ctl->clients[i];
			if (c && (c->dead || (c->eof && !client_pending(c)))) {
				client_close(c);
				ctl->clients[i] = NULL;
			}
		}
	}
	return NULL;
}

/* ---- start and stop ------------------------------------------------------ */

/*
 * A socket file left by a process that died without control_stop would
 * make bind fail.  Remove it only if nobody answers there: a live VMM's
 * socket must never be stolen.
 */
static int remove_stale_socket(const char *path,
			       const struct sockaddr_un *addr, char *err)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_set(err, -errno, "control socket %s: %s", path,
			       strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return err_set(err, -EEXIST,
			       "control socket %s: path exists and is not a socket",
			       path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(err, -errno, "control socket: socket: %s",
			       strerror(errno));
	ret = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	if (ret == 0) {
		close(fd);
		return err_set(err, -EADDRINUSE,
			       "control socket %s: another process is listening there",
			       path);
	}
	ret = errno;
	close(fd);
	if (ret != ECONNREFUSED && ret != ENOENT)
		return err_set(err, -ret, "control socket %s: connect: %s",
			       path, strerror(ret));
	if (unlink(path) < 0 && errno != ENOENT)
		return err_set(err, -errno,
			       "control socket %s: cannot remove stale socket: %s",
			       path, strerror(errno));
	log_info("control socket %s: removed a stale socket", path);
	return 0;
}

/*
 * The idle timeout: FERRY_CONTROL_IDLE_TIMEOUT in seconds (fractions allowed,
 * so tests need not wait; 0 turns it off).  A bad value is reported and
 * the default kept: the VM must not fail to start over it.
 */
static int64_t idle_timeout_ms(void)
{
	const char *v = getenv("FERRY_CONTROL_IDLE_TIMEOUT");
	char *end;
	double sec;

	if (!v || !*v)
		return CONTROL_IDLE_TIMEOUT_S * 1000;
	errno = 0;
	sec = strtod(v, &end);
	if (errno || *end || end == v || !(sec >= 0 && sec <= 30 * 24 * 3600)) {
		log_warn("control socket: FERRY_CONTROL_IDLE_TIMEOUT='%s' is not a number of seconds (0 to 2592000); using %d",
			 v, CONTROL_IDLE_TIMEOUT_S);
		return CONTROL_IDLE_TIMEOUT_S * 1000;
	}
	return (int64_t)(sec * 1000 + 0.5);
}

static void control_free(struct control *ctl)
{
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct control_client *c = ctl->clients[i];
		/* Last chance for replies still queued, e.g. quit's. */
		if (c)
			client_flush(c);
		client_close(c);
	}
	if (ctl->listen_fd >= 0)
		close(ctl->listen_fd);
	if (ctl->wake_fd >= 0)
		close(ctl->wake_fd);
	free(ctl->path);
	free(ctl);
}

static void control_unlink_ours(struct control *ctl)
{
	struct stat st;

	if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->sock_dev &&
	    st.st_ino == ctl->sock_ino)
		unlink(ctl->path);
}

int control_server_start(struct control **out, const char *path,
			 const struct control_cmd *table, void *opaque,
			 char *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct control *ctl;
	sigset_t all, old;
	struct stat st;
	int ret;

	*out = NULL;
	if (!path || !*path)
		return err_set(err, -EINVAL, "control socket: empty path");
	if (strlen(path) >= sizeof(addr.sun_path))
		return err_set(err, -ENAMETOOLONG,
			       "control socket %s: path longer than %zu bytes",
			       path, sizeof(addr.sun_path) - 1);
	memcpy(addr.sun_path, path, strlen(path) + 1);

	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return err_set(err, -ENOMEM, "out of memory");
	ctl->table = table;
	ctl->opaque = opaque;
	ctl->idle_ms = idle_timeout_ms();
	ctl->listen_fd = -1;
	ctl->wake_fd = -1;
	atomic_init(&ctl->stopping, false);
	ctl->path = strdup(path);
	if (!ctl->path) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}

	ret = remove_stale_socket(path, &addr, err);
	if (ret < 0)
		goto fail;
	ctl->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
				SOCK_CLOEXEC, 0);
	if (ctl->listen_fd < 0) {
		ret = err_set(err, -errno, "control socket: socket: %s",
			      strerror(errno));
		goto fail;
	}
	if (bind(ctl->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = err_set(err, -errno, "control socket %s: bind: %s",
			      path, strerror(errno));
		goto fail;
	}
	/* The socket is the VM's remote control: owner only.  Changing the
	 * mode between bind and listen leaves no window, because nobody can
	 * connect before listen; umask would be process-wide and racy with
	 * the other threads. */
	if (chmod(path, 0600) < 0 || lstat(path, &st) < 0) {
		ret = err_set(err, -errno, "control socket %s: chmod: %s",
			      path, strerror(errno));
		unlink(path);
		goto fail;
	}
	ctl->sock_dev = st.st_dev;
	ctl->sock_ino = st.st_ino;
	if (listen(ctl->listen_fd, CONTROL_MAX_CLIENTS) < 0) {
		ret = err_set(err, -errno, "control socket %s: listen: %s",
			      path, strerror(errno));
		unlink(path);
		goto fail;
	}
	ctl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctl->wake_fd < 0) {
		ret = err_set(err, -errno, "control socket: eventfd: %s",
			      strerror(errno));
		unlink(path);
		goto fail;
	}

	/* Signals are the main thread's business (SIGINT, SIGTERM); the
	 * control thread must not be picked to run their handlers. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&ctl->thread, NULL, control_thread, ctl);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		ret = err_set(err, -ret, "control socket: thread: %s",
			      strerror(ret));
		unlink(path);
		goto fail;
	}
	*out = ctl;
	return 0;
fail:
	control_free(ctl);
	return ret;
}

int control_start(struct control **out, const char *path,
		  struct instance *inst, char *err)
{
	return control_server_start(out, path, control_commands, inst, err);
}

void control_stop(struct control *ctl)
{
	uint64_t one = 1;

	if (!ctl)
		return;
	atomic_store(&ctl->stopping, true);
	(void)!write(ctl->wake_fd, &one, sizeof(one));
	pthread_join(ctl->thread, NULL);
	control_unlink_ours(ctl);
	control_free(ctl);
}
