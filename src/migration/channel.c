#include "migration/channel.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int channel_parse_uri(const char *uri, struct mig_uri *out, char *err)
{
	const char *p, *colon;

	memset(out, 0, sizeof(*out));
	if (!uri || strncmp(uri, "tcp:", 4))
		return err_set(err, -EINVAL,
			       "migration URI '%s' is not tcp:HOST:PORT", uri ? uri : "");
	p = uri + 4;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		if (!close || close[1] != ':')
			return err_set(err, -EINVAL, "bad IPv6 address in '%s'", uri);
		if ((size_t)(close - p - 1) >= sizeof(out->host))
			return err_set(err, -EINVAL, "host name too long in '%s'", uri);
		memcpy(out->host, p + 1, close - p - 1);
		colon = close + 1;
	} else {
		/* "tcp::PORT" (QEMU's usual form): an empty host means any
		 * address to listen on, this host to connect to. */
		colon = strrchr(p, ':');
		if (!colon)
			return err_set(err, -EINVAL,
				       "migration URI '%s' lacks HOST:PORT", uri);
		if ((size_t)(colon - p) >= sizeof(out->host))
			return err_set(err, -EINVAL, "host name too long in '%s'", uri);
		memcpy(out->host, p, colon - p);
	}
	const char *port = colon + 1;
	char *end;
	long v = strtol(port, &end, 10);
	if (!*port || *end || v < 0 || v > 65535)
		return err_set(err, -EINVAL, "bad port '%s' in '%s'", port, uri);
	snprintf(out->port, sizeof(out->port), "%ld", v);
	return 0;
}

static int resolve(const struct mig_uri *u, bool passive, struct addrinfo **res,
		   char *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 };
	int r = getaddrinfo(u->host[0] ? u->host : NULL, u->port, &hints, res);
	if (r)
		return err_set(err, -EHOSTUNREACH, "cannot resolve %s: %s",
			       u->host[0] ? u->host : "(any)", gai_strerror(r));
	return 0;
}

int channel_connect(const struct mig_uri *u, int timeout_ms, char *err)
{
	struct addrinfo *res, *ai;
	int fd = -1, e = ECONNREFUSED;
	int r = resolve(u, false, &res, err);
	if (r)
		return r;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
					   SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		if (e == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			socklen_t len = sizeof(e);
			if (poll(&p, 1, timeout_ms) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 &&
			    e == 0)
				break;
			if (e == EINPROGRESS)
				e = ETIMEDOUT;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return err_set(err, -e, "cannot connect to %s:%s: %s", u->host,
			       u->port, strerror(e));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	channel_tune(fd);
	return fd;
}

int channel_listen(const struct mig_uri *u, char *err)
{
	struct addrinfo *res;
	int r = resolve(u, true, &res, err);
	if (r)
		return r;
	int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC,
			res->ai_protocol);
	if (fd < 0) {
		r = err_set(err, -errno, "socket: %s", strerror(errno));
		goto out;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1) < 0) {
		r = err_set(err, -errno, "cannot listen on %s:%s: %s", u->host,
			    u->port, strerror(errno));
		close(fd);
		goto out;
	}
	r = fd;
out:
	freeaddrinfo(res);
	return r;
}

int channel_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int channel_set_timeout(int fd, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (timeout_ms % 1000) * 1000 };
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

void channel_tune(int fd)
{
	int one = 1, idle = 20, intvl = 5, cnt = 6;
	unsigned user_timeout_ms = 10000;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
		   sizeof(user_timeout_ms));
	/* Keepalive on both ends: a peer whose host vanished is noticed
	 * within about a minute even while nothing is being sent. */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

int channel_set_queue(int fd, int bytes)
{
	/* The kernel doubles the value for its bookkeeping: half asked. */
	int half = bytes / 2;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &half, sizeof(half)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &half, sizeof(half)) < 0)
		return -errno;
	return 0;
}
