/*
 * A channel over a window of a regular file, with positional I/O: a
 * snapshot's record area is such a window (the header before it and the
 * memory after it are written apart).  Later a "file:" migration target
 * can use the same channel for the whole stream.
 */
#include "io/channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct file_priv {
	bool owns_fd;
	int file_fd;
	uint64_t offset, end;   /* next position, end of the window */
	uint64_t wpos;          /* next write position */
};

static ssize_t file_read(struct channel *ch, void *buf, size_t len)
{
	struct file_priv *p = ch->priv;
	if (p->offset >= p->end)
		return 0;
	if (len > p->end - p->offset)
		len = p->end - p->offset;
	ssize_t n = pread(p->file_fd, buf, len, (off_t)p->offset);
	if (n < 0)
		return -errno;
	p->offset += (uint64_t)n;
	return n;
}

static ssize_t file_writev(struct channel *ch, const struct iovec *iov, int n)
{
	struct file_priv *p = ch->priv;
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (total > p->end - p->wpos)
		return -EFBIG;
	ssize_t r = pwritev(p->file_fd, iov, n, (off_t)p->wpos);
	if (r < 0)
		return -errno;
	p->wpos += (uint64_t)r;
	return r;
}

static void file_close(struct channel *ch)
{
	struct file_priv *p = ch->priv;
	if (p->owns_fd)
		close(p->file_fd);
	free(ch);
}

static const struct channel_ops file_ops = {
	.kind = "file",
	.read = file_read,
	.writev = file_writev,
	.close = file_close,
};

struct channel *channel_file_new(int fd, bool owns_fd, uint64_t offset,
				 uint64_t limit, const char *name)
{
	struct channel *ch = calloc(1, sizeof(*ch) + sizeof(struct file_priv));
	if (!ch)
		return NULL;
	struct file_priv *p = (struct file_priv *)(ch + 1);
	p->owns_fd = owns_fd;
	p->file_fd = fd;
	p->offset = p->wpos = offset;
	p->end = limit > UINT64_MAX - offset ? UINT64_MAX : offset + limit;
	ch->ops = &file_ops;
	ch->fd = -1; /* a regular file is always ready: nothing to poll */
	ch->priv = p;
	ch->eof_text = "the file ends here (truncated)";
	snprintf(ch->peer, sizeof(ch->peer), "%s", name ? name : "a file");
	return ch;
}
