/* The channel operations that do not depend on the kind. */
#include "io/channel.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

int channel_write_all(struct channel *ch, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
		ssize_t n = channel_writev(ch, &iov, 1);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int channel_shutdown(struct channel *ch)
{
	return ch->ops->shutdown ? ch->ops->shutdown(ch) : 0;
}

void channel_close(struct channel *ch)
{
	if (ch)
		ch->ops->close(ch);
}

bool channel_poll_in(struct channel *ch, int timeout_ms)
{
	if (ch->fd < 0)
		return true; /* files never block */
	struct pollfd p = { .fd = ch->fd, .events = POLLIN };
	return poll(&p, 1, timeout_ms) > 0;
}
