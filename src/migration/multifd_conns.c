/* Opening and taking the page channels' connections (multifd_conns.h). */
#include "migration/multifd_conns.h"
#include "migration/channel.h"
#include "migration/conns.h"
#include "migration/incoming_conns.h"
#include "migration/stream.h"
#include "util/log.h"

#include <errno.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

static void close_fds(struct mf_fds *fds)
{
	for (unsigned i = 0; i < fds->n; i++)
		if (fds->fd[i] >= 0)
			close(fds->fd[i]);
	fds->n = 0;
}

struct mf_send *mf_send_open(const char *uri, struct tls_creds *tls,
			     const uint8_t session[MIG_SESSION_ID_LEN], unsigned n,
			     int timeout_ms, int idle_ms, const struct mf_send_cfg *cfg,
			     struct mf_fds *fds, char *err)
{
	struct channel *chs[MF_MAX_CHANNELS];
	struct mig_conn c;

	fds->n = 0;
	if (n < 1 || n > MF_MAX_CHANNELS) {
		err_set(err, -EINVAL, "%u page channels: 1 to %u are possible", n,
			MF_MAX_CHANNELS);
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		if (mig_conn_open(uri, tls, MIG_ROLE_BULK_PAGES, session, timeout_ms, &c,
				  err)) {
			err_prefix(err, -EIO, "page channel %u of %u", i, n);
			for (unsigned k = 0; k < i; k++)
				channel_close(chs[k]);
			close_fds(fds);
			return NULL;
		}
		channel_tune(c.fd);
		channel_set_timeout(c.fd, idle_ms);
		chs[i] = c.ch;
		fds->fd[fds->n++] = c.fd;
	}
	struct mf_send *s = mf_send_new(cfg, chs, n, err);
	if (!s)
		close_fds(fds);   /* the engine closed the channels */
	return s;
}

uint64_t mf_fds_unsent(const struct mf_fds *fds)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < fds->n; i++) {
		int q = 0;
		if (ioctl(fds->fd[i], SIOCOUTQ, &q) == 0 && q > 0)
			total += (uint64_t)q;
	}
	return total;
}

void mf_send_close(struct mf_send *s, struct mf_fds *fds)
{
	mf_send_free(s);
	close_fds(fds);
}

#define STOP_CHECK_NS 200000000ULL

struct mf_recv *mf_recv_accept(struct inconns *conns, const struct mf_recv_cfg *cfg,
			       uint64_t deadline_ns, int idle_ms,
			       bool (*stop)(void *opaque), void *opaque,
			       struct mf_fds *fds, int *ret, char *err)
{
	fds->n = 0;
	*ret = -ENOMEM;
	struct mf_recv *r = mf_recv_new(cfg, err);
	if (!r)
		return NULL;
	for (unsigned i = 0; i < cfg->n; i++) {
		struct mig_conn c;
		int e;
		for (;;) {
			uint64_t now = mig_now_ns();
			uint64_t until = deadline_ns - now > STOP_CHECK_NS && deadline_ns > now
					 ? now + STOP_CHECK_NS : deadline_ns;
			e = inconns_wait(conns, MIG_ROLE_BULK_PAGES, until, &c, err);
			if (e != -ETIMEDOUT || until >= deadline_ns)
				break;
			if (stop && stop(opaque)) {
				e = err_set(err, -ECANCELED, "stopped waiting");
				break;
			}
		}
		if (e) {
			*ret = err_prefix(err, e, "page channel %u of %u", i, cfg->n);
			goto fail;
		}
		channel_set_timeout(c.fd, idle_ms);
		fds->fd[fds->n++] = c.fd;
		if ((*ret = mf_recv_add(r, c.ch, err)))
			goto fail;
	}
	*ret = 0;
	return r;
fail:
	mf_recv_close(r, fds);
	return NULL;
}

void mf_recv_close(struct mf_recv *r, struct mf_fds *fds)
{
	mf_recv_free(r);
	close_fds(fds);
}
