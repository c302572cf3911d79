/* TLS for migration connections: see secure.h. */
#include "migration/secure.h"
#include "migration/channel.h"
#include "io/channel.h"
#include "util/log.h"

#include <errno.h>
#include <stddef.h>

static struct tls_creds *process_creds;

void mig_tls_set(struct tls_creds *c)
{
	process_creds = c;
}

struct tls_creds *mig_tls_get(void)
{
	return process_creds;
}

int mig_secure_client(int fd, struct tls_creds *c, const char *host,
		      int timeout_ms, struct channel **out, char *err)
{
	struct channel *ch;
	int r;

	*out = NULL;
	if (!c) {
		ch = channel_socket_new(fd, false);
		if (!ch)
			return err_set(err, -ENOMEM, "out of memory");
		*out = ch;
		return 0;
	}
	ch = channel_tls_new(c, fd, false, false);
	if (!ch || channel_tls_expect_host(ch, host && *host ? host : "localhost")) {
		channel_close(ch);
		return err_set(err, -ENOMEM, "out of memory for TLS");
	}
	/* The whole handshake, confirmation included, within timeout_ms. */
	channel_set_timeout(fd, timeout_ms);
	r = channel_tls_handshake(ch, NULL, err);
	if (r) {
		channel_close(ch);
		return r;
	}
	struct tls_info info;
	if (!channel_tls_info(ch, &info))
		log_info("TLS with %s: %s, %s, %s (peer %s)", ch->peer, info.version,
			 info.cipher, tls_auth_name(info.auth), info.peer_id);
	*out = ch;
	return 0;
}

json_t *mig_tls_json(bool enabled, const struct tls_info *info)
{
	if (!enabled || !info)
		return json_pack("{s:b}", "enabled", 0);
	return json_pack("{s:b,s:s,s:s,s:s,s:s}", "enabled", 1,
			 "version", info->version, "cipher", info->cipher,
			 "auth", tls_auth_name(info->auth), "peer", info->peer_id);
}
