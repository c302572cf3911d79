#include "migration/stream.h"
#include "migration/protocol.h"
#include "util/crc32c.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FLUSH_AT   (1u << 20)   /* send once this much is buffered */
#define READ_CHUNK (4u << 20)

uint64_t mig_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + t.tv_nsec;
}

int stream_init(struct mig_stream *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->abort_fd = -1;
	s->wcap = FLUSH_AT + MIG_MAX_RECORD / 8;
	s->wbuf = malloc(s->wcap);
	s->rcap = READ_CHUNK;
	s->rbuf = malloc(s->rcap);
	if (!s->wbuf || !s->rbuf) {
		stream_free(s);
		return -ENOMEM;
	}
	return 0;
}

void stream_free(struct mig_stream *s)
{
	free(s->wbuf);
	free(s->rbuf);
	s->wbuf = s->rbuf = NULL;
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

static bool wbuf_grow(struct mig_stream *s, size_t more)
{
	if (s->wlen + more <= s->wcap)
		return true;
	size_t cap = s->wcap * 2;
	while (cap < s->wlen + more)
		cap *= 2;
	uint8_t *p = realloc(s->wbuf, cap);
	if (!p) {
		stream_fail(s, -ENOMEM, "out of memory");
		return false;
	}
	s->wbuf = p;
	s->wcap = cap;
	return true;
}

void stream_begin(struct mig_stream *s, uint32_t type)
{
	if (s->error || !wbuf_grow(s, 8))
		return;
	s->rec_start = s->wlen;
	memcpy(s->wbuf + s->wlen, &type, 4);
	memset(s->wbuf + s->wlen + 4, 0, 4);
	s->wlen += 8;
}

void *stream_reserve(struct mig_stream *s, size_t len)
{
	if (s->error || !wbuf_grow(s, len))
		return NULL;
	void *p = s->wbuf + s->wlen;
	s->wlen += len;
	return p;
}

void stream_append(struct mig_stream *s, const void *data, size_t len)
{
	void *p = len ? stream_reserve(s, len) : NULL;
	if (p)
		memcpy(p, data, len);
}

void stream_end(struct mig_stream *s)
{
	if (s->error || !wbuf_grow(s, 4))
		return;
	uint32_t len = (uint32_t)(s->wlen - s->rec_start - 8);
	if (len > MIG_MAX_RECORD) {
		stream_fail(s, -E2BIG, "record of %u bytes is too large", len);
		return;
	}
	memcpy(s->wbuf + s->rec_start + 4, &len, 4);
	uint32_t crc = crc32c(0, s->wbuf + s->rec_start, len + 8);
	memcpy(s->wbuf + s->wlen, &crc, 4);
	s->wlen += 4;
	if (s->wlen >= FLUSH_AT)
		stream_flush(s);
}

void stream_put(struct mig_stream *s, uint32_t type, const void *data,
		size_t len)
{
	stream_begin(s, type);
	stream_append(s, data, len);
	stream_end(s);
}

void stream_put_raw(struct mig_stream *s, const void *data, size_t len)
{
	if (!s->error && wbuf_grow(s, len)) {
		memcpy(s->wbuf + s->wlen, data, len);
		s->wlen += len;
	}
}

/* Sleep as long as sending n more bytes would exceed max_bandwidth over
 * the current 100 ms window. */
static void rate_limit(struct mig_stream *s, size_t n)
{
	uint64_t now = mig_now_ns();
	if (!s->rl_start_ns || now - s->rl_start_ns > 100000000ULL) {
		s->rl_start_ns = now;
		s->rl_bytes = 0;
	}
	s->rl_bytes += n;
	uint64_t due = s->rl_start_ns +
		       s->rl_bytes * 1000000000ULL / s->max_bandwidth;
	if (due > now) {
		struct timespec ts = { .tv_sec = (due - now) / 1000000000ULL,
				       .tv_nsec = (due - now) % 1000000000ULL };
		nanosleep(&ts, NULL);
	}
}

static bool cancelled(struct mig_stream *s)
{
	return s->cancel && __atomic_load_n(s->cancel, __ATOMIC_RELAXED);
}

int stream_flush(struct mig_stream *s)
{
	size_t off = 0;

	if (s->error)
		return s->error;
	/* Paced streams go out in slices of ~20 ms worth, so pacing and a
	 * cancel act within that, whatever the buffer holds. */
	size_t slice = s->wlen;
	if (s->max_bandwidth) {
		slice = s->max_bandwidth / 50;
		if (slice < 4096)
			slice = 4096;
	}
	while (off < s->wlen) {
		size_t want = s->wlen - off < slice ? s->wlen - off : slice;
		if (s->max_bandwidth)
			rate_limit(s, want);
		if (cancelled(s))
			return stream_fail(s, -ECANCELED, "cancelled");
		ssize_t n = write(s->fd, s->wbuf + off, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			return stream_fail(s, -e, "sending: %s",
					   e == EAGAIN ? "timed out"
						       : strerror(e));
		}
		off += n;
		s->bytes_out += n;
	}
	s->wlen = 0;
	return 0;
}

/* Make at least `need` unconsumed bytes available in rbuf. */
static int fill(struct mig_stream *s, size_t need)
{
	if (s->error)
		return s->error;
	if (s->rlen - s->rpos >= need)
		return 0;
	if (s->rpos) {
		memmove(s->rbuf, s->rbuf + s->rpos, s->rlen - s->rpos);
		s->rlen -= s->rpos;
		s->rpos = 0;
	}
	if (need > s->rcap) {
		uint8_t *p = realloc(s->rbuf, need);
		if (!p)
			return stream_fail(s, -ENOMEM, "out of memory");
		s->rbuf = p;
		s->rcap = need;
	}
	while (s->rlen < need) {
		if (s->abort_fd >= 0) {
			struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
					       { .fd = s->abort_fd, .events = POLLIN } };
			if (poll(p, 2, -1) > 0 && (p[1].revents & POLLIN))
				return stream_fail(s, -EINTR, "interrupted by a signal");
		}
		ssize_t n = read(s->fd, s->rbuf + s->rlen, s->rcap - s->rlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			return stream_fail(s, -e, "receiving: %s",
					   e == EAGAIN ? "timed out"
						       : strerror(e));
		}
		if (n == 0)
			return stream_fail(s, -ECONNRESET,
					   "connection closed by the peer");
		s->rlen += n;
		s->bytes_in += n;
	}
	return 0;
}

int stream_read_raw(struct mig_stream *s, void *out, size_t len)
{
	int r = fill(s, len);
	if (r)
		return r;
	memcpy(out, s->rbuf + s->rpos, len);
	s->rpos += len;
	return 0;
}

int stream_read(struct mig_stream *s, uint32_t *type, const uint8_t **payload,
		uint32_t *len)
{
	int r = fill(s, 8);
	if (r)
		return r;
	memcpy(type, s->rbuf + s->rpos, 4);
	memcpy(len, s->rbuf + s->rpos + 4, 4);
	if (*len > MIG_MAX_RECORD)
		return stream_fail(s, -EPROTO,
				   "record %s (0x%x) claims %u bytes, more than %u",
				   mig_record_name(*type), *type, *len,
				   MIG_MAX_RECORD);
	r = fill(s, (size_t)*len + 12);
	if (r)
		return r;
	const uint8_t *rec = s->rbuf + s->rpos;
	uint32_t crc;
	memcpy(&crc, rec + 8 + *len, 4);
	if (crc != crc32c(0, rec, *len + 8))
		return stream_fail(s, -EPROTO,
				   "record %s (0x%x, %u bytes): checksum mismatch",
				   mig_record_name(*type), *type, *len);
	*payload = rec + 8;
	s->rpos += (size_t)*len + 12;
	return 0;
}

bool stream_readable(struct mig_stream *s)
{
	if (s->rlen > s->rpos)
		return true;
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	return poll(&p, 1, 0) > 0;
}

const char *mig_record_name(unsigned type)
{
	switch (type) {
	case MIG_REC_HELLO: return "HELLO";
	case MIG_REC_DEVICE: return "DEVICE";
	case MIG_REC_VCPU: return "VCPU";
	case MIG_REC_RAM_PAGES: return "RAM_PAGES";
	case MIG_REC_ROUND_END: return "ROUND_END";
	case MIG_REC_STATE_END: return "STATE_END";
	case MIG_REC_COMMIT: return "COMMIT";
	case MIG_REC_ACCEPT: return "ACCEPT";
	case MIG_REC_REFUSE: return "REFUSE";
	case MIG_REC_READY: return "READY";
	case MIG_REC_RUNNING: return "RUNNING";
	case MIG_REC_ERROR: return "ERROR";
	default: return "unknown";
	}
}
