/*
 * delta.h - the difference between two versions of one 4 KiB guest page,
 * as runs of unchanged and changed bytes (QEMU's XBZRLE idea, Ferry's own
 * format).  Pure functions: no I/O, no allocation, no state.
 *
 * A delta is a sequence of runs, each
 *
 *   skip:varint | len:varint | len bytes (the new bytes)
 *
 * meaning "leave skip bytes as they are, then write these len bytes".
 * Bytes after the last run are unchanged; an empty delta means the page did
 * not change.  A varint is 7 bits per byte, low bits first, the top bit set
 * on every byte but the last; at most two bytes (values up to 16383, and no
 * run can reach past 4096 anyway), in shortest form.  Every run writes at
 * least one byte, and runs after the first skip at least one: a reader can
 * rely on progress, and a delta that breaks a rule is no encoder's.
 *
 * The encoder merges changed stretches separated by at most
 * DELTA_MERGE_GAP unchanged bytes (a run header costs at least two), and
 * gives up once the delta would exceed a caller's limit: then the page is
 * better sent whole.
 */
#ifndef FERRY_MIG_DELTA_H
#define FERRY_MIG_DELTA_H

#include <stddef.h>
#include <stdint.h>

#define DELTA_PAGE      4096u
#define DELTA_MERGE_GAP 2u
/* delta_encode()'s answer when the delta would not fit the limit. */
#define DELTA_OVERFLOW  ((size_t)-1)

/**
 * delta_encode() - the delta that turns @old into @new (both DELTA_PAGE
 * bytes) into @out, at most @limit bytes of it.
 *
 * Return: the delta's length (0: the pages are equal), or DELTA_OVERFLOW
 * if it would be longer than @limit (then @out holds a partial delta).
 */
size_t delta_encode(const uint8_t *old, const uint8_t *new, uint8_t *out,
		    size_t limit);

/**
 * delta_check() - is @d (@len bytes) a well-formed delta for one page?
 * Reads @d only.  Return: 0, or -EPROTO with @err naming the run and what
 * is wrong with it (a length cut off by the delta's end or not in shortest
 * form, a run of no bytes, runs not separated, bytes past the page end,
 * more bytes announced than the delta holds).
 */
int delta_check(const uint8_t *d, size_t len, char *err);

/**
 * delta_apply() - apply a delta that delta_check() accepted to @page (the
 * page as the encoder's @old was), making it the encoder's @new.  Writes
 * only inside the page.
 */
void delta_apply(uint8_t *page, const uint8_t *d, size_t len);

/* delta_check() then delta_apply(): the page is untouched on error. */
int delta_decode(uint8_t *page, const uint8_t *d, size_t len, char *err);

#endif
