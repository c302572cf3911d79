/*
 * stream.h - framed, checksummed records over a socket, with a sticky
 * first error (like QEMU's qemu_file_get_error): a send loop writes on and
 * checks once; the first failure and its message are kept.
 */
#ifndef FERRY_MIG_STREAM_H
#define FERRY_MIG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

struct mig_stream {
	int fd;
	int error;               /* sticky: 0 or the first negative errno */
	char errmsg[ERR_MAX];
	uint64_t bytes_out, bytes_in;

	uint8_t *wbuf;           /* records being built and not yet sent */
	size_t wlen, wcap;
	size_t rec_start;        /* offset of the record being built */

	uint8_t *rbuf;           /* bytes received and not yet consumed */
	size_t rpos, rlen, rcap;

	uint64_t max_bandwidth;  /* bytes/s, 0 = unlimited */
	const bool *cancel;      /* set by another thread: stop waiting */
	int abort_fd;            /* readable (a signalfd): stop waiting; -1 */
	uint64_t rl_start_ns, rl_bytes;
};

int stream_init(struct mig_stream *s, int fd);
void stream_free(struct mig_stream *s);
/* Record the first error; later ones are ignored.  Returns s->error. */
int stream_fail(struct mig_stream *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Build a record in place: begin, append payload pieces, end. */
void stream_begin(struct mig_stream *s, uint32_t type);
void *stream_reserve(struct mig_stream *s, size_t len);
void stream_append(struct mig_stream *s, const void *data, size_t len);
void stream_end(struct mig_stream *s);
/* A whole record at once. */
void stream_put(struct mig_stream *s, uint32_t type, const void *data,
		size_t len);
void stream_put_raw(struct mig_stream *s, const void *data, size_t len);
/* Send what is buffered; honours max_bandwidth.  Returns s->error. */
int stream_flush(struct mig_stream *s);

/* Read exactly len raw bytes (the preamble). */
int stream_read_raw(struct mig_stream *s, void *out, size_t len);
/* Read the next record; *payload stays valid until the next read.
 * timeout_ms < 0 waits as long as the socket's own timeout. */
int stream_read(struct mig_stream *s, uint32_t *type, const uint8_t **payload,
		uint32_t *len);
/* True when a record (or EOF) can be read without blocking. */
bool stream_readable(struct mig_stream *s);

uint64_t mig_now_ns(void);

#endif
