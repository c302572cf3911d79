/*
 * A migration's further connections, the parts both sides share: see conns.h.
 */
#include "migration/conns.h"
#include "io/channel.h"
#include "migration/channel.h"
#include "migration/preamble.h"
#include "migration/secure.h"
#include "util/crc32c.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int mig_conn_read_exact(struct channel *ch, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = channel_read(ch, p, len);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int mig_conn_put_record(struct channel *ch, uint32_t type, const void *payload,
			uint32_t len)
{
	uint8_t *rec = malloc(8 + (size_t)len + 4);
	uint32_t crc;

	if (!rec)
		return -ENOMEM;
	memcpy(rec, &type, 4);
	memcpy(rec + 4, &len, 4);
	if (len)
		memcpy(rec + 8, payload, len);
	crc = crc32c(0, rec, 8 + (size_t)len);
	memcpy(rec + 8 + len, &crc, 4);
	int r = channel_write_all(ch, rec, 8 + (size_t)len + 4);
	free(rec);
	return r;
}

int mig_conn_get_record(struct channel *ch, uint32_t max, uint32_t *type,
			char **payload, uint32_t *len)
{
	uint8_t hdr[8];
	uint32_t crc, want;
	int r;

	*payload = NULL;
	r = mig_conn_read_exact(ch, hdr, sizeof(hdr));
	if (r)
		return r;
	memcpy(type, hdr, 4);
	memcpy(len, hdr + 4, 4);
	if (*len > max)
		return -EMSGSIZE;
	char *p = malloc((size_t)*len + 1);
	if (!p)
		return -ENOMEM;
	r = mig_conn_read_exact(ch, p, *len);
	if (!r)
		r = mig_conn_read_exact(ch, &crc, 4);
	if (r) {
		free(p);
		return r;
	}
	want = crc32c(crc32c(0, hdr, 8), p, *len);
	if (crc != want) {
		free(p);
		return -EBADMSG;
	}
	p[*len] = '\0';
	*payload = p;
	return 0;
}

int mig_conn_set_send_timeout(struct mig_conn *c, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (timeout_ms % 1000) * 1000 };
	if (setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

void mig_conn_shutdown(struct mig_conn *c)
{
	if (c->ch)
		channel_shutdown(c->ch);
	else if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
}

void mig_conn_close(struct mig_conn *c)
{
	/* The channel before the socket under it: a TLS goodbye must not go
	 * to a closed (or reused) descriptor. */
	channel_close(c->ch);
	c->ch = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

int mig_conn_open(const char *uri, struct tls_creds *tls, uint32_t role,
		  const uint8_t session[MIG_SESSION_ID_LEN], int timeout_ms,
		  struct mig_conn *out, char *err)
{
	return mig_conn_open_watched(uri, tls, role, session, timeout_ms, NULL, NULL,
				     out, err);
}

int mig_conn_open_watched(const char *uri, struct tls_creds *tls, uint32_t role,
			  const uint8_t session[MIG_SESSION_ID_LEN], int timeout_ms,
			  void (*on_fd)(void *opaque, int fd), void *opaque,
			  struct mig_conn *out, char *err)
{
	struct mig_uri u;
	uint8_t pre[8 + 4 + 4 + MIG_SESSION_ID_LEN];
	uint32_t version = MIG_VERSION, type, len;
	char *why = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	out->role = role;
	r = channel_parse_uri(uri, &u, err);
	if (r)
		return r;
	r = channel_connect(&u, timeout_ms, err);
	if (r < 0)
		return err_prefix(err, r, "the %s connection", mig_role_name(role));
	out->fd = r;
	if (on_fd)
		on_fd(opaque, out->fd);
	r = mig_secure_client(out->fd, tls, u.host, timeout_ms, &out->ch, err);
	if (r) {
		err_prefix(err, r, "the %s connection", mig_role_name(role));
		goto fail;
	}
	snprintf(out->peer, sizeof(out->peer), "%s", out->ch->peer);
	channel_set_timeout(out->fd, timeout_ms);
	memcpy(pre, MIG_MAGIC, 8);
	memcpy(pre + 8, &version, 4);
	memcpy(pre + 12, &role, 4);
	memcpy(pre + 16, session, MIG_SESSION_ID_LEN);
	r = channel_write_all(out->ch, pre, sizeof(pre));
	if (!r)
		r = mig_conn_get_record(out->ch, 4096, &type, &why, &len);
	if (r) {
		err_set(err, r, "the %s connection to %s: no answer to its preamble: %s",
			mig_role_name(role), out->peer,
			r == -EAGAIN ? "timed out" : strerror(-r));
		goto fail;
	}
	if (type == MIG_REC_REFUSE) {
		r = err_set(err, -EPERM, "the destination refused the %s connection: %s",
			    mig_role_name(role), why);
		goto fail;
	}
	if (type != MIG_REC_ACCEPT) {
		r = err_set(err, -EPROTO, "the %s connection: expected ACCEPT, got %s (0x%x)",
			    mig_role_name(role), mig_record_name(type), type);
		goto fail;
	}
	free(why);
	if (on_fd)
		on_fd(opaque, -1);
	return 0;
fail:
	free(why);
	if (on_fd && out->fd >= 0)
		on_fd(opaque, -1);
	mig_conn_close(out);
	return r;
}
