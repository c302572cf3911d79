/*
 * channel.h - the transport under the record framing: a byte channel with
 * its own operations (read, writev, shutdown, close, a pollable fd and a
 * description of the peer), as QEMU's QIOChannel sits under QEMUFile.
 *
 * Kinds: a stream socket (TCP, or any connected socket such as a
 * socketpair), a window of a regular file, and TLS over a socket
 * (io/tls.h: its ops call OpenSSL, its fd is the socket's), which
 * nothing above - framing, page codec, migration - notices.
 *
 * A socket or file channel is used by one thread per direction at a
 * time; a TLS channel by one thread at a time (OpenSSL's rule).
 * shutdown may be called from any thread to unblock the others.
 */
#ifndef FERRY_IO_CHANNEL_H
#define FERRY_IO_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct channel;

struct channel_ops {
	const char *kind;        /* "socket", "file", "tls" */
	/* Like read(2)/writev(2) but return -errno; 0 from read is the end. */
	ssize_t (*read)(struct channel *ch, void *buf, size_t len);
	ssize_t (*writev)(struct channel *ch, const struct iovec *iov, int n);
	/* Stop both directions now (unblocks a reader/writer elsewhere). */
	int (*shutdown)(struct channel *ch);
	/* Release everything, including ch itself. */
	void (*close)(struct channel *ch);
	/* Optional: input the channel holds itself and fd does not show
	 * (a TLS record already decrypted); NULL = none. */
	bool (*pending)(struct channel *ch);
};

struct channel {
	const struct channel_ops *ops;
	int fd;                  /* pollable for input; -1 if none */
	char peer[128];          /* for messages: "127.0.0.1:4444", "file x" */
	/* What running out of input means, for messages: "connection closed
	 * by the peer" or "the file ends here (truncated)". */
	const char *eof_text;
	void *priv;              /* the kind's own state */
};

static inline ssize_t channel_read(struct channel *ch, void *buf, size_t len)
{
	return ch->ops->read(ch, buf, len);
}

static inline ssize_t channel_writev(struct channel *ch,
				     const struct iovec *iov, int n)
{
	return ch->ops->writev(ch, iov, n);
}

/**
 * channel_write_all() - write all of [buf, buf+len) unless an error comes
 * first.  Returns 0 or a negative errno (-EAGAIN: the socket's send
 * timeout expired).
 */
int channel_write_all(struct channel *ch, const void *buf, size_t len);
int channel_shutdown(struct channel *ch);
/* Close and free; NULL is fine. */
void channel_close(struct channel *ch);
/* Input held inside the channel (pending op), which poll on fd misses. */
static inline bool channel_has_pending(struct channel *ch)
{
	return ch->ops->pending && ch->ops->pending(ch);
}

/* True when a read would not block (data, EOF or an error is waiting). */
bool channel_poll_in(struct channel *ch, int timeout_ms);

/**
 * channel_socket_new() - a channel over a connected stream socket.  With
 * owns_fd the channel closes fd on close; otherwise the caller does.
 * The peer's address is looked up for messages.  Returns NULL on ENOMEM.
 */
struct channel *channel_socket_new(int fd, bool owns_fd);

/**
 * channel_file_new() - a channel over the window [offset, offset+limit)
 * of a file (positional I/O: the fd's own offset is not used or moved).
 * Reading ends at the window's end; writing past it fails with -EFBIG.
 * limit UINT64_MAX = no end.  name is for messages.
 */
struct channel *channel_file_new(int fd, bool owns_fd, uint64_t offset,
				 uint64_t limit, const char *name);

#endif
