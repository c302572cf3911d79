/*
 * pc_link.h - post-copy's two connections for unit tests: a
 * page-request and a push socket pair (AF_UNIX, or TCP over loopback as
 * the migration's own), each end wrapped in a channel.  Index [0] and
 * the s* channels are the source's end, [1] and d* the destination's.
 */
#ifndef FERRY_TEST_PC_LINK_H
#define FERRY_TEST_PC_LINK_H

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/channel.h"

static inline void sock_pair(bool tcp, int fd[2])
{
	if (!tcp) {
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0);
		return;
	}
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(l, 1), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &al), 0);
	fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(fd[0], (struct sockaddr *)&a, sizeof(a)), 0);
	fd[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(fd[1], 0);
	close(l);
	/* as the migration's own sockets (migration/channel.c) */
	int one = 1;
	setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct pc_link {
	int req[2], push[2];
	struct channel *sreq, *spush, *dreq, *dpush;
};

static inline void pc_link_open(struct pc_link *l, bool tcp)
{
	sock_pair(tcp, l->req);
	sock_pair(tcp, l->push);
	l->sreq = channel_socket_new(l->req[0], true);
	l->spush = channel_socket_new(l->push[0], true);
	l->dreq = channel_socket_new(l->req[1], true);
	l->dpush = channel_socket_new(l->push[1], true);
}

static inline void pc_link_close(struct pc_link *l)
{
	channel_close(l->sreq);
	channel_close(l->spush);
	channel_close(l->dreq);
	channel_close(l->dpush);
}

#endif
