/*
 * record.h - the one record framing, shared by snapshots and migration:
 *
 *   u32 type | u32 length | payload[length] | u32 crc32c
 *
 * (little-endian; the CRC-32C covers type, length and payload).  One
 * object per direction - a writer and a reader, each over a channel, each
 * with its own sticky first error and message, like QEMU's QEMUFile: a
 * loop writes or reads on and checks once.
 *
 * The type rule: types with REC_OPTIONAL set may be skipped by a reader
 * that does not know them (later additions a peer can live without);
 * an unknown type without it aborts, with a message naming the type
 * (rec_unknown()).
 */
#ifndef FERRY_IO_RECORD_H
#define FERRY_IO_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/channel.h"

#define REC_OPTIONAL  0x8000u   /* type bit: unknown = skip, not abort */
#define REC_OVERHEAD  12u       /* header and CRC around each payload */

static inline bool rec_type_optional(uint32_t type)
{
	return type & REC_OPTIONAL;
}

/* Names types in messages ("RAM_PAGES"); NULL or "unknown" if it has none. */
typedef const char *(*rec_namer_fn)(uint32_t type);

/* ---- writing ---------------------------------------------------------- */

struct rec_writer;

/**
 * rec_writer_new() - a writer to ch (not owned) whose records carry at
 * most max_record payload bytes.  Records are gathered in the writer's
 * buffer and handed to the channel about every MiB and on rec_flush().
 * Returns NULL on ENOMEM.
 */
struct rec_writer *rec_writer_new(struct channel *ch, uint32_t max_record);
void rec_writer_free(struct rec_writer *w);
void rec_writer_set_namer(struct rec_writer *w, rec_namer_fn namer);
/* bytes/s, 0 = unlimited; cancel (may be NULL) ends a paced or blocked
 * flush with -ECANCELED. */
void rec_writer_set_rate(struct rec_writer *w, uint64_t bytes_per_s);
void rec_writer_set_cancel(struct rec_writer *w, const bool *cancel);
/*
 * The rate in bytes/s read (atomically) from *rate before every slice a
 * flush sends, and watched while it waits: another thread changing it
 * takes effect at once, even in the middle of a long paced flush.  NULL:
 * the rate set with rec_writer_set_rate() holds.
 */
void rec_writer_set_rate_source(struct rec_writer *w, const uint64_t *rate);
/* Called (on the flushing thread) after every write to the channel with
 * the bytes sent so far: progress that moves while a long flush runs. */
void rec_writer_set_progress(struct rec_writer *w,
			     void (*fn)(void *opaque, uint64_t bytes_out),
			     void *opaque);
/*
 * rec_writer_resume() - after a flush ended by the cancel flag: the bytes
 * not yet sent are still buffered (a record may be half out), so clearing
 * that error lets the caller finish the stream at a record boundary
 * (flush the rest, then a last record saying why).  Returns 0, or the
 * error if it was not a cancel.
 */
int rec_writer_resume(struct rec_writer *w);

/* The first error (0 if none) and its message; later ones are ignored. */
int rec_writer_error(const struct rec_writer *w);
const char *rec_writer_errmsg(const struct rec_writer *w);
int rec_writer_fail(struct rec_writer *w, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A whole record at once. */
void rec_put(struct rec_writer *w, uint32_t type, const void *data,
	     size_t len);
/* Bytes outside any record (a connection's preamble). */
void rec_put_raw(struct rec_writer *w, const void *data, size_t len);

/**
 * rec_begin() - start a record whose payload will be at most max_len
 * bytes, to be filled in place (no copy through another buffer).
 * Returns where the payload goes, valid until rec_end(); NULL after an
 * error.  rec_end() closes it with the payload's real length.
 */
void *rec_begin(struct rec_writer *w, uint32_t type, size_t max_len);
void rec_end(struct rec_writer *w, size_t len);

/* Hand everything buffered to the channel (paced).  Returns the error. */
int rec_flush(struct rec_writer *w);

uint64_t rec_writer_bytes_out(const struct rec_writer *w); /* sent */
size_t rec_writer_buffered(const struct rec_writer *w);    /* not yet */

/* ---- reading ---------------------------------------------------------- */

struct rec_reader;

/* A reader from ch (not owned); a record longer than max_record is an
 * error.  Returns NULL on ENOMEM. */
struct rec_reader *rec_reader_new(struct channel *ch, uint32_t max_record);
void rec_reader_free(struct rec_reader *r);
void rec_reader_set_namer(struct rec_reader *r, rec_namer_fn namer);
/* Waiting for input ends with -EINTR when abort_fd (a signalfd, or -1)
 * becomes readable. */
void rec_reader_set_abort_fd(struct rec_reader *r, int abort_fd);

int rec_reader_error(const struct rec_reader *r);
const char *rec_reader_errmsg(const struct rec_reader *r);
int rec_reader_fail(struct rec_reader *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/**
 * rec_read() - the next record, its length and checksum checked.
 * *payload stays valid until the next read.  Returns 0 or the (sticky)
 * error; the end of input is an error naming where it came.
 */
int rec_read(struct rec_reader *r, uint32_t *type, const uint8_t **payload,
	     uint32_t *len);
/**
 * rec_peek() - the type and length of the next record, its payload not
 * yet read (so a caller can refuse a record by its size before it
 * arrives).  The next rec_read() returns that record.  Returns 0 or the
 * (sticky) error.
 */
int rec_peek(struct rec_reader *r, uint32_t *type, uint32_t *len);
/* Exactly len bytes outside any record (a preamble). */
int rec_read_raw(struct rec_reader *r, void *out, size_t len);
/*
 * A record's payload read where the caller wants it (RAM_PAGES straight
 * into guest memory), not through the reader's buffer and a copy.
 * rec_part_begin() takes the next record's header (rec_peek() tells its
 * type and length first); rec_part_read() gives the payload's next n
 * bytes in dst, what is buffered first and the rest straight from the
 * channel, the checksum following along; rec_part_end() reads and checks
 * the checksum once the whole payload is read.  The caller has by then
 * written data it could not yet trust: on a mismatch it must give up
 * what it wrote.  Each returns 0 or the (sticky) error.
 */
int rec_part_begin(struct rec_reader *r);
/* The next record's first n payload bytes (n <= its length), not
 * consumed and not yet checked: to choose how to read it.  *p stays
 * valid until the next read. */
int rec_peek_payload(struct rec_reader *r, size_t n, const uint8_t **p);
int rec_part_read(struct rec_reader *r, void *dst, size_t n);
int rec_part_end(struct rec_reader *r);
/* True when a read would not block (input buffered or waiting, or EOF). */
bool rec_reader_ready(struct rec_reader *r);
/* True when the whole next record is here - buffered, or in the socket
 * (FIONREAD) - so that reading it cannot wait on the peer: a partial
 * record makes rec_reader_ready() true, yet its read waits for the rest.
 * Channels without a socket fd, or with input of their own (TLS), fall
 * back to rec_reader_ready(). */
bool rec_reader_record_ready(struct rec_reader *r);

/**
 * rec_unknown() - what to do with a record of a type the caller does not
 * know: 0 (skip it) if the type is optional, else fail the reader with a
 * message naming the type, and return the error.
 */
int rec_unknown(struct rec_reader *r, uint32_t type, uint32_t len);

uint64_t rec_reader_bytes_in(const struct rec_reader *r);
uint64_t rec_reader_records(const struct rec_reader *r); /* read so far */
uint64_t rec_reader_skipped(const struct rec_reader *r); /* optional, unknown */

#endif
