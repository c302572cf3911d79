/*
 * stream.h - one migration connection: a channel (io/channel.h) with a
 * record writer for what we send and a record reader for what we receive
 * (io/record.h), plus the migration's own sticky first error, which takes
 * the first failure of either direction or of the migration logic
 * (stream_fail).  A send loop writes on and checks s->error once.
 */
#ifndef FERRY_MIG_STREAM_H
#define FERRY_MIG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/channel.h"
#include "io/record.h"
#include "util/log.h"

struct mig_stream {
	struct channel *ch;
	struct rec_writer *w;
	struct rec_reader *r;
	int fd;                  /* the channel's fd, -1 before init */
	int error;               /* sticky: 0 or the first negative errno */
	char errmsg[ERR_MAX];
	uint64_t bytes_out, bytes_in;

	/* Read before each send or receive, so callers may set them any time. */
	uint64_t max_bandwidth;  /* bytes/s, 0 = unlimited */
	/* If set, the rate is read from here instead, before every slice
	 * sent (another thread may change it: it applies at once). */
	const uint64_t *max_bandwidth_live;
	const bool *cancel;      /* set by another thread: stop sending */
	int abort_fd;            /* readable (a signalfd): stop waiting; -1 */
	uint64_t applied_bandwidth;
};

/* Over a connected socket fd, which the caller keeps and closes. */
int stream_init(struct mig_stream *s, int fd);
/* Over a channel, which the stream then owns (stream_free closes it). */
int stream_init_channel(struct mig_stream *s, struct channel *ch);
void stream_free(struct mig_stream *s);
/* Record the first error; later ones are ignored.  Returns s->error. */
int stream_fail(struct mig_stream *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Take the first error of the writer or reader, and the byte counts. */
int stream_sync(struct mig_stream *s);

/* A whole record at once. */
void stream_put(struct mig_stream *s, uint32_t type, const void *data,
		size_t len);
/* Send what is buffered; honours max_bandwidth.  Returns s->error. */
int stream_flush(struct mig_stream *s);

/* Read exactly len raw bytes. */
int stream_read_raw(struct mig_stream *s, void *out, size_t len);
/* Read the next record; *payload stays valid until the next read.  Waits
 * as long as the socket's own timeout. */
int stream_read(struct mig_stream *s, uint32_t *type, const uint8_t **payload,
		uint32_t *len);
/* The next record's type and length, its payload left for stream_read. */
int stream_peek(struct mig_stream *s, uint32_t *type, uint32_t *len);
/* io/record.h's rec_peek_payload and rec_part_*, on the stream's reader
 * (a failure is the stream's, as for stream_read). */
int stream_peek_payload(struct mig_stream *s, size_t n, const uint8_t **p);
int stream_part_begin(struct mig_stream *s);
int stream_part_read(struct mig_stream *s, void *dst, size_t n);
int stream_part_end(struct mig_stream *s);
/* True when a record (or EOF) can be read without blocking. */
bool stream_readable(struct mig_stream *s);
/* Bytes sent plus bytes buffered for sending. */
uint64_t stream_bytes_queued(const struct mig_stream *s);

uint64_t mig_now_ns(void);

#endif
