/*
 * A channel over a connected stream socket: TCP for migration, a
 * socketpair in tests.  Timeouts are the socket's own (SO_RCVTIMEO,
 * SO_SNDTIMEO): a blocked call then fails with -EAGAIN.
 */
#include "io/channel.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct socket_priv {
	bool owns_fd;
};

static ssize_t sock_read(struct channel *ch, void *buf, size_t len)
{
	ssize_t n = read(ch->fd, buf, len);
	return n < 0 ? -errno : n;
}

static ssize_t sock_writev(struct channel *ch, const struct iovec *iov, int n)
{
	/* sendmsg, not writev: MSG_NOSIGNAL, so a vanished peer is an
	 * EPIPE here rather than a SIGPIPE for the whole process. */
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = n };
	ssize_t r = sendmsg(ch->fd, &m, MSG_NOSIGNAL);
	return r < 0 ? -errno : r;
}

static int sock_shutdown(struct channel *ch)
{
	return shutdown(ch->fd, SHUT_RDWR) < 0 ? -errno : 0;
}

static void sock_close(struct channel *ch)
{
	struct socket_priv *p = ch->priv;
	if (p->owns_fd && ch->fd >= 0)
		close(ch->fd);
	free(ch);
}

static const struct channel_ops socket_ops = {
	.kind = "socket",
	.read = sock_read,
	.writev = sock_writev,
	.shutdown = sock_shutdown,
	.close = sock_close,
};

static void describe_peer(int fd, char *out, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST], port[NI_MAXSERV];

	snprintf(out, size, "the peer");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_UNIX) {
		snprintf(out, size, "a local socket");
		return;
	}
	if (getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port,
			sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(out, size, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
			 host, port);
}

struct channel *channel_socket_new(int fd, bool owns_fd)
{
	struct channel *ch = calloc(1, sizeof(*ch) + sizeof(struct socket_priv));
	if (!ch)
		return NULL;
	struct socket_priv *p = (struct socket_priv *)(ch + 1);
	p->owns_fd = owns_fd;
	ch->ops = &socket_ops;
	ch->fd = fd;
	ch->priv = p;
	ch->eof_text = "connection closed by the peer";
	describe_peer(fd, ch->peer, sizeof(ch->peer));
	return ch;
}
