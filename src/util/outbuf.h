/*
 * outbuf.h - output that never blocks its writer: a bounded buffer in
 * front of a file descriptor, drained by a thread of its own.
 *
 * A vCPU writing to the console or the heartbeat port must never wait for
 * whoever reads the other end: it holds the I/O lock, and stop, snapshots,
 * stop-and-copy and SIGTERM all wait for it.  outbuf_write() copies into
 * the buffer (or writes at once, without blocking, when the buffer is
 * empty) and returns; when the buffer is full the bytes are dropped and
 * counted.  Order is kept: nothing is written past queued bytes.
 *
 * Writes to a pipe or a terminal never wait, whatever the fd's own flags:
 * such an fd is reopened (/proc/self/fd/N) with O_NONBLOCK, so the flag
 * does not leak to other processes sharing the original open file; sockets
 * use MSG_DONTWAIT.  Regular files are written directly.  The process must
 * ignore SIGPIPE (ferry does): a vanished reader then shows as EPIPE, and
 * from then on everything is dropped and counted.
 */
#ifndef FERRY_OUTBUF_H
#define FERRY_OUTBUF_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

struct outbuf;

struct outbuf_stats {
	uint64_t written;   /* bytes handed to the fd */
	uint64_t dropped;   /* bytes lost: buffer full, reader gone, or left at close */
	uint64_t queued;    /* bytes waiting in the buffer now */
	bool broken;        /* the fd failed (e.g. EPIPE): everything is dropped */
};

/**
 * outbuf_open() - put a buffer of @capacity bytes in front of @fd and start
 * its writer thread (named @name).  With @own_fd the fd is closed by
 * outbuf_close(); without, the caller's fd and its flags are left as they
 * were.  Returns 0 or -errno with a message in @err.
 */
int outbuf_open(struct outbuf **out, int fd, bool own_fd, size_t capacity,
		const char *name, char *err);
/**
 * outbuf_write() - queue (or write) @len bytes; never waits for the reader.
 * Bytes that do not fit are dropped and counted.  Thread-safe.
 */
void outbuf_write(struct outbuf *q, const void *data, size_t len);
/* Counters, consistent with each other. */
void outbuf_get_stats(struct outbuf *q, struct outbuf_stats *st);
/**
 * outbuf_drain() - wait up to @max_ms until everything queued is handed to
 * the fd (or the fd broke).  True when nothing is left queued.  The
 * writer never waits for the reader, but a hand-over does: the source's
 * last output must reach the reader before the destination's first.
 */
bool outbuf_drain(struct outbuf *q, unsigned max_ms);
/**
 * outbuf_close() - give the writer at most @flush_ms to drain what is
 * queued, then stop it, count what is left as dropped, close the fd if
 * owned and free everything.  Bounded by @flush_ms (plus a poll wake-up).
 */
void outbuf_close(struct outbuf *q, unsigned flush_ms);

#endif
