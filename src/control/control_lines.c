/*
 * control_lines.c - split a byte stream into request lines, with a bound on
 * line length so that a client cannot make the VMM buffer without limit.
 */
#include "control/control_proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void control_lines_init(struct control_lines *lb, size_t max)
{
	memset(lb, 0, sizeof(*lb));
	lb->max = max;
}

void control_lines_free(struct control_lines *lb)
{
	free(lb->buf);
	memset(lb, 0, sizeof(*lb));
}

static int lines_append(struct control_lines *lb, const char *data, size_t n)
{
	if (lb->len + n > lb->cap) {
		/* Grow geometrically but never past what one line may hold. */
		size_t cap = lb->cap ? lb->cap : 256;
		while (cap < lb->len + n)
			cap *= 2;
		if (cap > lb->max + 1)
			cap = lb->max + 1;
		char *p = realloc(lb->buf, cap);
		if (!p)
			return -ENOMEM;
		lb->buf = p;
		lb->cap = cap;
	}
	memcpy(lb->buf + lb->len, data, n);
	lb->len += n;
	return 0;
}

static int lines_deliver(struct control_lines *lb, control_line_fn fn,
			 void *opaque)
{
	size_t len = lb->len;

	/* Accept CRLF from telnet-like clients. */
	if (len && lb->buf[len - 1] == '\r')
		len--;
	lb->len = 0;
	return fn(opaque, len ? lb->buf : "", len, false);
}

int control_lines_feed(struct control_lines *lb, const char *data, size_t n,
		       control_line_fn fn, void *opaque)
{
	while (n) {
		const char *nl = memchr(data, '\n', n);
		size_t seg = nl ? (size_t)(nl - data) : n;
		size_t used = nl ? seg + 1 : n;
		int ret = 0;

		if (lb->discarding) {
			if (nl)
				lb->discarding = false;
		} else if (lb->len + seg > lb->max) {
			/* Report at once rather than at the '\n', which may
			 * be megabytes away or never come. */
			lb->len = 0;
			lb->discarding = !nl;
			ret = fn(opaque, NULL, 0, true);
		} else {
			ret = lines_append(lb, data, seg);
			if (!ret && nl)
				ret = lines_deliver(lb, fn, opaque);
		}
		if (ret)
			return ret;
		data += used;
		n -= used;
	}
	return 0;
}

int control_lines_finish(struct control_lines *lb, control_line_fn fn,
			 void *opaque)
{
	bool pending = lb->len && !lb->discarding;

	lb->discarding = false;
	if (!pending) {
		lb->len = 0;
		return 0;
	}
	return lines_deliver(lb, fn, opaque);
}
