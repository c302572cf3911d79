/*
 * control_stream.c - split the control socket's byte stream into JSON
 * messages, as QMP does: objects may arrive split across reads, several in
 * one read, with or without newlines between them.
 *
 * Like QEMU's json-lexer/json-streamer pair this only finds where a message
 * ends - nesting, strings and escapes are tracked, nothing is decoded - and
 * jansson (which has no incremental parser) then parses the complete text.
 * The splitter differs where a person at a terminal is concerned: text at
 * the top level that does not start an object or array ("hello", 42) is
 * collected up to the end of its line and reported as one error, not one
 * per word.
 *
 * Malformed input (a control character inside a string, bytes 0xFE/0xFF,
 * which no UTF-8 text contains and which QMP clients send on purpose to
 * reset the parser) ends the message in progress with one error; input is
 * then skipped up to a newline (or any control character) or up to the '{'
 * or '[' that starts the next message - unless the offending byte was such
 * a resync point itself.  An over-long message is reported once, as soon
 * as the limit is crossed; its nesting is still followed so that the next
 * message is found exactly where it starts.
 */
#include "control/control_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	ST_TOP,        /* between messages */
	ST_VALUE,      /* inside an object or array, outside strings */
	ST_STRING,     /* inside a string */
	ST_ESCAPE,     /* after a backslash inside a string */
	ST_JUNK,       /* top-level text that is not an object or array */
	ST_RECOVER,    /* after malformed input: skip to a resync point */
};

void control_stream_init(struct control_stream *s, size_t max)
{
	memset(s, 0, sizeof(*s));
	s->max = max;
	s->state = ST_TOP;
}

void control_stream_free(struct control_stream *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

static bool is_ws(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Bytes that never belong to a message: a client may send them to reset. */
static bool is_reset(unsigned char ch)
{
	return ch == 0xFE || ch == 0xFF || (ch < 0x20 && !is_ws(ch));
}

static void stream_reset(struct control_stream *s, unsigned state)
{
	s->len = 0;
	s->depth = 0;
	s->oversize = false;
	s->state = state;
}

static int stream_push(struct control_stream *s, unsigned char ch)
{
	if (s->oversize)
		return 0;
	if (s->len == s->cap) {
		/* Grow geometrically but never past what a message may hold. */
		size_t cap = s->cap ? s->cap * 2 : 256;
		if (cap > s->max)
			cap = s->max;
		char *p = realloc(s->buf, cap);
		if (!p)
			return -ENOMEM;
		s->buf = p;
		s->cap = cap;
	}
	s->buf[s->len++] = (char)ch;
	return 0;
}

/* Hand over the message collected so far (unless it was too long). */
static int stream_deliver(struct control_stream *s, control_msg_fn fn,
			  void *opaque)
{
	bool over = s->oversize;
	size_t len = s->len;

	stream_reset(s, ST_TOP);
	return over ? 0 : fn(opaque, s->buf, len, NULL);
}

/*
 * Malformed input at byte ch: one error (unless already reported), then
 * resync.  When ch is itself a newline or a reset byte, what follows it is
 * fresh input: a person who pressed Enter on a broken line gets an answer
 * to the next one.
 */
static int __attribute__((format(printf, 5, 6)))
stream_error(struct control_stream *s, control_msg_fn fn, void *opaque,
	     unsigned ch, const char *fmt, ...)
{
	bool reported = s->oversize;
	char msg[128];
	va_list ap;
	int n;

	stream_reset(s, ch == '\n' || is_reset(ch) ? ST_TOP : ST_RECOVER);
	if (reported)
		return 0;
	/* QMP's wording, so that clients matching on it keep working. */
	n = snprintf(msg, sizeof(msg), "JSON parse error: ");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	va_end(ap);
	return fn(opaque, NULL, 0, msg);
}

static int stream_add(struct control_stream *s, unsigned char ch,
		      control_msg_fn fn, void *opaque)
{
	char msg[96];

	if (s->oversize)
		return 0;
	if (s->len < s->max)
		return stream_push(s, ch);
	/* Say so at once rather than at the message's end, which may be
	 * megabytes away or never come; keep following its nesting. */
	s->oversize = true;
	s->len = 0;
	snprintf(msg, sizeof(msg), "request longer than %zu bytes; dropped",
		 s->max);
	return fn(opaque, NULL, 0, msg);
}

/* One byte; returns 0, -ENOMEM or fn's non-zero return. */
static int stream_byte(struct control_stream *s, unsigned char ch,
		       control_msg_fn fn, void *opaque)
{
	int ret;

	switch (s->state) {
	case ST_RECOVER:
		if (ch == '{' || ch == '[') {
			s->state = ST_TOP;
			return stream_byte(s, ch, fn, opaque);
		}
		if (ch == '\n' || is_reset(ch))
			s->state = ST_TOP;
		return 0;
	case ST_TOP:
		/* Blank lines, CRLF, spaces between messages; a reset byte
		 * here has nothing to reset. */
		if (is_ws(ch) || is_reset(ch))
			return 0;
		/* A string at the top level is junk too, but its quotes
		 * must be followed: "{" inside it starts nothing. */
		s->in_junk = ch != '{' && ch != '[';
		s->depth = s->in_junk ? 0 : 1;
		s->state = !s->in_junk ? ST_VALUE :
			   ch == '"' ? ST_STRING : ST_JUNK;
		return stream_add(s, ch, fn, opaque);
	case ST_VALUE:
		if (is_reset(ch))
			return stream_error(s, fn, opaque, ch,
					    "invalid byte 0x%02x", ch);
		if (ch == '"') {
			s->state = ST_STRING;
		} else if (ch == '{' || ch == '[') {
			if (s->depth >= CONTROL_NESTING_MAX)
				return stream_error(s, fn, opaque, ch,
						    "nesting deeper than %u",
						    CONTROL_NESTING_MAX);
			s->depth++;
		} else if (ch == '}' || ch == ']') {
			/* Mismatched pairs ({]) are jansson's to report. */
			s->depth--;
		}
		ret = stream_add(s, ch, fn, opaque);
		if (ret || s->depth)
			return ret;
		return stream_deliver(s, fn, opaque);
	case ST_STRING:
		if (ch < 0x20 || ch == 0xFE || ch == 0xFF)
			return stream_error(s, fn, opaque, ch,
					    "byte 0x%02x inside a string",
					    ch);
		if (ch == '\\')
			s->state = ST_ESCAPE;
		else if (ch == '"')
			s->state = s->in_junk ? ST_JUNK : ST_VALUE;
		return stream_add(s, ch, fn, opaque);
	case ST_ESCAPE:
		/* \uXXXX needs nothing special: hex digits are plain bytes,
		 * and jansson checks the escape itself. */
		if (ch < 0x20 || ch == 0xFE || ch == 0xFF)
			return stream_error(s, fn, opaque, ch,
					    "byte 0x%02x inside a string",
					    ch);
		s->state = ST_STRING;
		return stream_add(s, ch, fn, opaque);
	case ST_JUNK:
		if (ch == '{' || ch == '[' || is_reset(ch)) {
			/* The next message (or a reset) starts here. */
			ret = stream_deliver(s, fn, opaque);
			if (ret) {
				s->pushback = true;  /* ch is not consumed */
				return ret;
			}
			return stream_byte(s, ch, fn, opaque);
		}
		if (ch == '\n')
			return stream_deliver(s, fn, opaque);
		if (ch == '"')
			s->state = ST_STRING;
		return stream_add(s, ch, fn, opaque);
	}
	return 0;
}

int control_stream_feed(struct control_stream *s, const char *data,
			size_t n, control_msg_fn fn, void *opaque,
			size_t *used)
{
	size_t i;
	int ret = 0;

	s->pushback = false;
	for (i = 0; i < n && !ret; i++)
		ret = stream_byte(s, (unsigned char)data[i], fn, opaque);
	if (used)
		*used = i - s->pushback;
	return ret;
}

int control_stream_finish(struct control_stream *s, control_msg_fn fn,
			  void *opaque)
{
	switch (s->state) {
	case ST_JUNK:
		/* `42` or a typo without a newline, then EOF: still answer. */
		return stream_deliver(s, fn, opaque);
	case ST_VALUE:
	case ST_STRING:
	case ST_ESCAPE:
		return stream_error(s, fn, opaque, '\n',
				    "input ended inside a message");
	default:
		stream_reset(s, ST_TOP);
		return 0;
	}
}

bool control_stream_idle(const struct control_stream *s)
{
	return s->state == ST_TOP || s->state == ST_RECOVER;
}
