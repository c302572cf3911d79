/*
 * The record framing both ways (record.h).  The writer builds records in
 * its own buffer - a payload is written once, in place, and checksummed
 * there - and hands the buffer to the channel in large writes; the reader
 * reads large chunks and hands out payloads from its buffer.
 */
#include "io/record.h"
#include "io/pacing.h"
#include "util/crc32c.h"
#include "util/log.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define FLUSH_AT   (1u << 20)   /* hand to the channel once this is buffered */
#define READ_CHUNK (4u << 20)
/* Read at most this much beyond the record being read: whatever of the
 * next record is read ahead must move to the buffer's start before that
 * record can be completed, and a read of several MiB left a whole MiB
 * page record to move (an extra copy of much of the stream). */
#define READ_AHEAD (64u << 10)

struct rec_writer {
	struct channel *ch;
	uint32_t max_record;
	rec_namer_fn namer;
	int error;
	char errmsg[ERR_MAX];
	uint8_t *buf;
	size_t len, cap;
	size_t rec_start;        /* the open record (rec_begin), if any */
	size_t rec_max;
	bool open;
	uint64_t bytes_out;
	struct pacer pacer;
	const bool *cancel;
	const uint64_t *rate_src;
	size_t flush_off;        /* sent of buf during a flush (progress) */
	void (*on_sent)(void *opaque, uint64_t bytes_out);
	void *on_sent_opaque;
};

struct rec_reader {
	struct channel *ch;
	uint32_t max_record;
	rec_namer_fn namer;
	int error;
	char errmsg[ERR_MAX];
	uint8_t *buf;
	size_t pos, len, cap;
	int abort_fd;
	uint64_t bytes_in, records, skipped;
	/* rec_part_*: the record being read in parts */
	uint32_t part_type, part_len, part_crc;
	size_t part_left;
	bool in_part;
};

static const char *type_name(rec_namer_fn namer, uint32_t type)
{
	const char *n = namer ? namer(type) : NULL;
	return n ? n : "unknown";
}

static int vfail(int *error, char *msg, int err, const char *fmt, va_list ap)
{
	if (!*error) {
		*error = err ? err : -EIO;
		vsnprintf(msg, ERR_MAX, fmt, ap);
	}
	return *error;
}

/* ---- writer ----------------------------------------------------------- */

struct rec_writer *rec_writer_new(struct channel *ch, uint32_t max_record)
{
	struct rec_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->ch = ch;
	w->max_record = max_record;
	/* Room for just under a flush's worth plus one record of up to a
	 * MiB and a bit (a full RAM_PAGES batch), so the send path never
	 * reallocates. */
	size_t rec = max_record < FLUSH_AT + (64u << 10) ? max_record
							 : FLUSH_AT + (64u << 10);
	w->cap = FLUSH_AT + rec + REC_OVERHEAD;
	w->buf = malloc(w->cap);
	if (!w->buf) {
		free(w);
		return NULL;
	}
	pacer_init(&w->pacer, 0);
	return w;
}

void rec_writer_free(struct rec_writer *w)
{
	if (!w)
		return;
	free(w->buf);
	free(w);
}

void rec_writer_set_namer(struct rec_writer *w, rec_namer_fn namer) { w->namer = namer; }
void rec_writer_set_cancel(struct rec_writer *w, const bool *c) { w->cancel = c; }
void rec_writer_set_rate(struct rec_writer *w, uint64_t rate) { pacer_init(&w->pacer, rate); }
void rec_writer_set_rate_source(struct rec_writer *w, const uint64_t *rate) { w->rate_src = rate; }

void rec_writer_set_progress(struct rec_writer *w,
			     void (*fn)(void *opaque, uint64_t bytes_out),
			     void *opaque)
{
	w->on_sent = fn;
	w->on_sent_opaque = opaque;
}

int rec_writer_resume(struct rec_writer *w)
{
	if (w->error != -ECANCELED || w->open)
		return w->error;
	w->error = 0;
	w->errmsg[0] = '\0';
	return 0;
}
int rec_writer_error(const struct rec_writer *w) { return w->error; }
const char *rec_writer_errmsg(const struct rec_writer *w) { return w->errmsg; }
uint64_t rec_writer_bytes_out(const struct rec_writer *w) { return w->bytes_out; }
size_t rec_writer_buffered(const struct rec_writer *w) { return w->len - w->flush_off; }

int rec_writer_fail(struct rec_writer *w, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vfail(&w->error, w->errmsg, err, fmt, ap);
	va_end(ap);
	return r;
}

static bool reserve(struct rec_writer *w, size_t more)
{
	if (w->len + more <= w->cap)
		return true;
	size_t cap = w->cap * 2;
	while (cap < w->len + more)
		cap *= 2;
	uint8_t *p = realloc(w->buf, cap);
	if (!p) {
		rec_writer_fail(w, -ENOMEM, "out of memory for a record buffer");
		return false;
	}
	w->buf = p;
	w->cap = cap;
	return true;
}

void *rec_begin(struct rec_writer *w, uint32_t type, size_t max_len)
{
	if (w->error)
		return NULL;
	if (w->open) {
		rec_writer_fail(w, -EINVAL, "record %s begun inside another",
				type_name(w->namer, type));
		return NULL;
	}
	if (max_len > w->max_record) {
		rec_writer_fail(w, -E2BIG, "record %s (0x%x) of up to %zu bytes is larger than %u",
				type_name(w->namer, type), type, max_len, w->max_record);
		return NULL;
	}
	if (!reserve(w, max_len + REC_OVERHEAD))
		return NULL;
	w->rec_start = w->len;
	w->rec_max = max_len;
	w->open = true;
	memcpy(w->buf + w->len, &type, 4);
	w->len += 8;
	return w->buf + w->len;
}

void rec_end(struct rec_writer *w, size_t len)
{
	if (!w->open)
		return; /* rec_begin failed: the error is already kept */
	w->open = false;
	if (w->error) {
		w->len = w->rec_start;
		return;
	}
	if (len > w->rec_max) {
		w->len = w->rec_start;
		rec_writer_fail(w, -EOVERFLOW, "record payload of %zu bytes overran its %zu",
				len, w->rec_max);
		return;
	}
	uint8_t *rec = w->buf + w->rec_start;
	uint32_t l = (uint32_t)len;
	memcpy(rec + 4, &l, 4);
	uint32_t crc = crc32c(0, rec, 8 + len);
	memcpy(rec + 8 + len, &crc, 4);
	w->len = w->rec_start + REC_OVERHEAD + len;
	if (w->len >= FLUSH_AT)
		rec_flush(w);
}

void rec_put(struct rec_writer *w, uint32_t type, const void *data,
	     size_t len)
{
	uint8_t *p = rec_begin(w, type, len);
	if (p && len)
		memcpy(p, data, len);
	rec_end(w, len);
}

void rec_put_raw(struct rec_writer *w, const void *data, size_t len)
{
	if (w->error || w->open || !reserve(w, len))
		return;
	memcpy(w->buf + w->len, data, len);
	w->len += len;
}

static bool cancelled(const struct rec_writer *w)
{
	return w->cancel && __atomic_load_n(w->cancel, __ATOMIC_RELAXED);
}

/* A cancel ends a flush between writes: what was not sent stays
 * buffered, so rec_writer_resume() can finish the stream cleanly. */
static int flush_cancelled(struct rec_writer *w, size_t off)
{
	memmove(w->buf, w->buf + off, w->len - off);
	w->len -= off;
	w->flush_off = 0;
	return rec_writer_fail(w, -ECANCELED, "cancelled");
}

int rec_flush(struct rec_writer *w)
{
	size_t off = 0, slice = pacer_slice(&w->pacer);

	if (w->error)
		return w->error;
	if (w->open)
		return rec_writer_fail(w, -EINVAL, "flush inside a record");
	/* A paced writer sends ~20 ms worth per write, so pacing and a
	 * cancel act within that whatever the buffer holds. */
	while (off < w->len) {
		if (w->rate_src) {
			uint64_t rate = __atomic_load_n(w->rate_src, __ATOMIC_RELAXED);
			if (rate != w->pacer.rate) {
				pacer_init(&w->pacer, rate);
				slice = pacer_slice(&w->pacer);
			}
		}
		size_t want = w->len - off < slice ? w->len - off : slice;
		if (w->pacer.rate) {
			uint64_t due = pacer_charge(&w->pacer, pacer_now_ns(), want);
			int r = pacer_wait_live(due, w->cancel, w->rate_src, w->pacer.rate);
			if (r < 0)
				return flush_cancelled(w, off);
			if (r > 0)
				continue; /* a new rate: charge again under it */
		}
		if (cancelled(w))
			return flush_cancelled(w, off);
		struct iovec iov = { .iov_base = w->buf + off, .iov_len = want };
		ssize_t n = channel_writev(w->ch, &iov, 1);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return rec_writer_fail(w, (int)n, "sending to %s: %s", w->ch->peer,
					       n == -EAGAIN ? "timed out"
							    : strerror((int)-n));
		if (n == 0)
			return rec_writer_fail(w, -EIO, "sending to %s: no progress",
					       w->ch->peer);
		off += (size_t)n;
		w->bytes_out += (uint64_t)n;
		w->flush_off = off;
		if (w->on_sent)
			w->on_sent(w->on_sent_opaque, w->bytes_out);
	}
	w->len = 0;
	w->flush_off = 0;
	return 0;
}

/* ---- reader ----------------------------------------------------------- */

struct rec_reader *rec_reader_new(struct channel *ch, uint32_t max_record)
{
	struct rec_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->ch = ch;
	r->max_record = max_record;
	r->abort_fd = -1;
	r->cap = READ_CHUNK;
	r->buf = malloc(r->cap);
	if (!r->buf) {
		free(r);
		return NULL;
	}
	return r;
}

void rec_reader_free(struct rec_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

void rec_reader_set_namer(struct rec_reader *r, rec_namer_fn namer) { r->namer = namer; }
void rec_reader_set_abort_fd(struct rec_reader *r, int fd) { r->abort_fd = fd; }
int rec_reader_error(const struct rec_reader *r) { return r->error; }
const char *rec_reader_errmsg(const struct rec_reader *r) { return r->errmsg; }
uint64_t rec_reader_bytes_in(const struct rec_reader *r) { return r->bytes_in; }
uint64_t rec_reader_records(const struct rec_reader *r) { return r->records; }
uint64_t rec_reader_skipped(const struct rec_reader *r) { return r->skipped; }

int rec_reader_fail(struct rec_reader *r, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int ret = vfail(&r->error, r->errmsg, err, fmt, ap);
	va_end(ap);
	return ret;
}

/* One read of at most @want bytes into @dst, waiting (and watching the
 * abort fd) until some come.  Returns the bytes read, 0 at the end of
 * input, or the (set) error. */
static ssize_t read_some(struct rec_reader *r, uint8_t *dst, size_t want)
{
	for (;;) {
		if (r->abort_fd >= 0 && r->ch->fd >= 0 && !channel_has_pending(r->ch)) {
			struct pollfd p[2] = { { .fd = r->ch->fd, .events = POLLIN },
					       { .fd = r->abort_fd, .events = POLLIN } };
			if (poll(p, 2, -1) > 0 && (p[1].revents & POLLIN))
				return rec_reader_fail(r, -EINTR, "interrupted by a signal");
		}
		ssize_t n = channel_read(r->ch, dst, want);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return rec_reader_fail(r, (int)n, "receiving from %s: %s",
					       r->ch->peer,
					       n == -EAGAIN ? "timed out"
							    : strerror((int)-n));
		r->bytes_in += (uint64_t)n;
		return n;
	}
}

/* Make `need` unconsumed bytes available.  Returns 0, the error, or 1
 * at the end of input (no error set: the caller says what was cut). */
static int fill(struct rec_reader *r, size_t need)
{
	if (r->error)
		return r->error;
	if (r->len - r->pos >= need)
		return 0;
	if (r->pos) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	if (need > r->cap) {
		uint8_t *p = realloc(r->buf, need);
		if (!p)
			return rec_reader_fail(r, -ENOMEM, "out of memory for a record");
		r->buf = p;
		r->cap = need;
	}
	while (r->len < need) {
		size_t want = need - r->len < READ_AHEAD ? READ_AHEAD : need - r->len;
		if (want > r->cap - r->len)
			want = r->cap - r->len;
		ssize_t n = read_some(r, r->buf + r->len, want);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return 1;
		r->len += (size_t)n;
	}
	return 0;
}

int rec_read_raw(struct rec_reader *r, void *out, size_t len)
{
	int e = fill(r, len);
	if (e == 1)
		return rec_reader_fail(r, -ECONNRESET, "%s after %zu of %zu bytes",
				       r->ch->eof_text, r->len - r->pos, len);
	if (e)
		return e;
	memcpy(out, r->buf + r->pos, len);
	r->pos += len;
	return 0;
}

int rec_peek(struct rec_reader *r, uint32_t *type, uint32_t *len)
{
	int e = fill(r, 8);
	if (e == 1)
		return rec_reader_fail(r, -ECONNRESET,
				       r->len == r->pos ? "%s before record %llu"
							: "%s inside record %llu's header",
				       r->ch->eof_text,
				       (unsigned long long)r->records);
	if (e)
		return e;
	memcpy(type, r->buf + r->pos, 4);
	memcpy(len, r->buf + r->pos + 4, 4);
	return 0;
}

/* The next record (type, len) claims more than a record may hold. */
static int too_long(struct rec_reader *r, uint32_t type, uint32_t len)
{
	return rec_reader_fail(r, -EPROTO,
			       "record %llu, %s (0x%x), claims %u bytes, more than %u "
			       "(corrupt or truncated)",
			       (unsigned long long)r->records, type_name(r->namer, type),
			       type, len, r->max_record);
}

/* The next record (type, len) does not match its checksum. */
static int bad_checksum(struct rec_reader *r, uint32_t type, uint32_t len)
{
	return rec_reader_fail(r, -EPROTO,
			       "record %llu, %s (0x%x, %u bytes): checksum mismatch",
			       (unsigned long long)r->records, type_name(r->namer, type),
			       type, len);
}

/* The next record (type, len) ended early. */
static int truncated(struct rec_reader *r, uint32_t type, uint32_t len)
{
	return rec_reader_fail(r, -ECONNRESET,
			       "record %llu, %s (0x%x, %u bytes), is truncated: %s",
			       (unsigned long long)r->records, type_name(r->namer, type),
			       type, len, r->ch->eof_text);
}

int rec_read(struct rec_reader *r, uint32_t *type, const uint8_t **payload,
	     uint32_t *len)
{
	int e = rec_peek(r, type, len);
	if (e)
		return e;
	if (*len > r->max_record)
		return too_long(r, *type, *len);
	e = fill(r, (size_t)*len + REC_OVERHEAD);
	if (e == 1)
		return truncated(r, *type, *len);
	if (e)
		return e;
	const uint8_t *rec = r->buf + r->pos;
	uint32_t crc;
	memcpy(&crc, rec + 8 + *len, 4);
	if (crc != crc32c(0, rec, (size_t)*len + 8))
		return bad_checksum(r, *type, *len);
	*payload = rec + 8;
	r->pos += (size_t)*len + REC_OVERHEAD;
	r->records++;
	return 0;
}

int rec_peek_payload(struct rec_reader *r, size_t n, const uint8_t **p)
{
	uint32_t type = 0, len = 0;
	int e = rec_peek(r, &type, &len);
	if (e)
		return e;
	if (n > len)
		return rec_reader_fail(r, -EINVAL, "record %llu: peeking %zu bytes of %u",
				       (unsigned long long)r->records, n, len);
	e = fill(r, 8 + n);
	if (e == 1)
		return truncated(r, type, len);
	if (e)
		return e;
	*p = r->buf + r->pos + 8;
	return 0;
}

int rec_part_begin(struct rec_reader *r)
{
	uint32_t type, len;
	int e = rec_peek(r, &type, &len);
	if (e)
		return e;
	if (len > r->max_record)
		return too_long(r, type, len);
	r->part_type = type;
	r->part_len = len;
	r->part_crc = crc32c(0, r->buf + r->pos, 8);
	r->part_left = len;
	r->in_part = true;
	r->pos += 8;
	return 0;
}

int rec_part_read(struct rec_reader *r, void *dst, size_t n)
{
	if (r->error)
		return r->error;
	if (!r->in_part || n > r->part_left)
		return rec_reader_fail(r, -EINVAL, "record %llu: reading %zu bytes past its "
				       "payload", (unsigned long long)r->records, n);
	uint8_t *out = dst;
	size_t have = r->len - r->pos, k = n < have ? n : have;
	memcpy(out, r->buf + r->pos, k);
	r->pos += k;
	/* The rest straight from the channel: no copy through the buffer. */
	while (k < n) {
		ssize_t got = read_some(r, out + k, n - k);
		if (got < 0)
			return (int)got;
		if (got == 0)
			return truncated(r, r->part_type, r->part_len);
		k += (size_t)got;
	}
	r->part_crc = crc32c(r->part_crc, out, n);
	r->part_left -= n;
	return 0;
}

int rec_part_end(struct rec_reader *r)
{
	if (r->error)
		return r->error;
	if (!r->in_part || r->part_left)
		return rec_reader_fail(r, -EINVAL, "record %llu: %zu bytes of its payload "
				       "left unread", (unsigned long long)r->records,
				       r->part_left);
	int e = fill(r, 4);
	if (e == 1)
		return truncated(r, r->part_type, r->part_len);
	if (e)
		return e;
	uint32_t crc;
	memcpy(&crc, r->buf + r->pos, 4);
	r->pos += 4;
	r->in_part = false;
	if (crc != r->part_crc)
		return bad_checksum(r, r->part_type, r->part_len);
	r->records++;
	return 0;
}

bool rec_reader_ready(struct rec_reader *r)
{
	return r->len > r->pos || channel_poll_in(r->ch, 0);
}

bool rec_reader_record_ready(struct rec_reader *r)
{
	size_t have = r->len - r->pos;
	/* Unknown length yet: at least a header and a page's worth. */
	size_t need = 8 + 8 + 4096 + 4;
	if (have >= 8) {
		uint32_t len;
		memcpy(&len, r->buf + r->pos + 4, 4);
		need = (size_t)len + REC_OVERHEAD;
	}
	if (have >= need)
		return true;
	if (r->ch->fd < 0 || channel_has_pending(r->ch))
		return rec_reader_ready(r);
	int avail = 0;
	if (ioctl(r->ch->fd, FIONREAD, &avail) < 0 || avail < 0)
		return rec_reader_ready(r);
	return have + (size_t)avail >= need;
}

int rec_unknown(struct rec_reader *r, uint32_t type, uint32_t len)
{
	if (rec_type_optional(type)) {
		r->skipped++;
		log_debug("skipping optional record 0x%x (%u bytes) unknown here",
			  type, len);
		return 0;
	}
	return rec_reader_fail(r, -EPROTO,
			       "record %llu has unknown mandatory type 0x%x (%u bytes); "
			       "this ferry cannot read it",
			       (unsigned long long)(r->records - 1), type, len);
}
