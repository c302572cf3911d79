#include "migration/stream.h"
#include "migration/protocol.h"
#include "io/pacing.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

uint64_t mig_now_ns(void)
{
	return pacer_now_ns();
}

int stream_init_channel(struct mig_stream *s, struct channel *ch)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->abort_fd = -1;
	if (!ch)
		return -ENOMEM;
	s->ch = ch;
	s->fd = ch->fd;
	s->w = rec_writer_new(ch, MIG_MAX_RECORD);
	s->r = rec_reader_new(ch, MIG_MAX_RECORD);
	if (!s->w || !s->r) {
		stream_free(s);
		return -ENOMEM;
	}
	rec_writer_set_namer(s->w, mig_record_name);
	rec_reader_set_namer(s->r, mig_record_name);
	return 0;
}

int stream_init(struct mig_stream *s, int fd)
{
	return stream_init_channel(s, channel_socket_new(fd, false));
}

void stream_free(struct mig_stream *s)
{
	rec_writer_free(s->w);
	rec_reader_free(s->r);
	channel_close(s->ch);
	s->w = NULL;
	s->r = NULL;
	s->ch = NULL;
}

int stream_fail(struct mig_stream *s, int err, const char *fmt, ...)
{
	if (!s->error) {
		va_list ap;
		s->error = err ? err : -EIO;
		va_start(ap, fmt);
		vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
		va_end(ap);
	}
	return s->error;
}

int stream_sync(struct mig_stream *s)
{
	if (!s->w)
		return s->error ? s->error : stream_fail(s, -EBADF, "no connection");
	s->bytes_out = rec_writer_bytes_out(s->w);
	s->bytes_in = rec_reader_bytes_in(s->r);
	if (rec_writer_error(s->w))
		stream_fail(s, rec_writer_error(s->w), "%s", rec_writer_errmsg(s->w));
	if (rec_reader_error(s->r))
		stream_fail(s, rec_reader_error(s->r), "%s", rec_reader_errmsg(s->r));
	return s->error;
}

void stream_put(struct mig_stream *s, uint32_t type, const void *data,
		size_t len)
{
	if (s->error || !s->w)
		return;
	rec_put(s->w, type, data, len);
	if (rec_writer_error(s->w))
		stream_sync(s);
}

int stream_flush(struct mig_stream *s)
{
	if (s->error || !s->w)
		return stream_sync(s);
	if (s->max_bandwidth_live) {
		rec_writer_set_rate_source(s->w, s->max_bandwidth_live);
	} else if (s->applied_bandwidth != s->max_bandwidth) {
		rec_writer_set_rate(s->w, s->max_bandwidth);
		s->applied_bandwidth = s->max_bandwidth;
	}
	rec_writer_set_cancel(s->w, s->cancel);
	rec_flush(s->w);
	return stream_sync(s);
}

/* The reader, its abort fd set, when a read may go ahead; NULL once the
 * stream failed (each caller then returns stream_sync's error). */
static struct rec_reader *reader(struct mig_stream *s)
{
	if (s->error || !s->r)
		return NULL;
	rec_reader_set_abort_fd(s->r, s->abort_fd);
	return s->r;
}

int stream_read_raw(struct mig_stream *s, void *out, size_t len)
{
	struct rec_reader *r = reader(s);
	if (r)
		rec_read_raw(r, out, len);
	return stream_sync(s);
}

int stream_read(struct mig_stream *s, uint32_t *type, const uint8_t **payload,
		uint32_t *len)
{
	struct rec_reader *r = reader(s);
	if (r)
		rec_read(r, type, payload, len);
	return stream_sync(s);
}

int stream_peek(struct mig_stream *s, uint32_t *type, uint32_t *len)
{
	struct rec_reader *r = reader(s);
	if (r)
		rec_peek(r, type, len);
	return stream_sync(s);
}

int stream_peek_payload(struct mig_stream *s, size_t n, const uint8_t **p)
{
	struct rec_reader *r = reader(s);
	if (r)
		rec_peek_payload(r, n, p);
	return stream_sync(s);
}

int stream_part_begin(struct mig_stream *s)
{
	struct rec_reader *r = reader(s);
	if (r)
		rec_part_begin(r);
	return stream_sync(s);
}

int stream_part_read(struct mig_stream *s, void *dst, size_t n)
{
	struct rec_reader *r = reader(s);
	if (r)
		rec_part_read(r, dst, n);
	return stream_sync(s);
}

int stream_part_end(struct mig_stream *s)
{
	struct rec_reader *r = reader(s);
	if (r)
		rec_part_end(r);
	return stream_sync(s);
}

bool stream_readable(struct mig_stream *s)
{
	return s->r && rec_reader_ready(s->r);
}

uint64_t stream_bytes_queued(const struct mig_stream *s)
{
	return s->w ? rec_writer_bytes_out(s->w) + rec_writer_buffered(s->w) : 0;
}
