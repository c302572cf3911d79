#include "migration/preamble.h"
#include "migration/conns.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

void mig_session_new(uint8_t session[MIG_SESSION_ID_LEN])
{
	if (getrandom(session, MIG_SESSION_ID_LEN, GRND_NONBLOCK) ==
	    MIG_SESSION_ID_LEN)
		return;
	/* Unique enough to tell connections apart; not a secret. */
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	uint64_t a = (uint64_t)t.tv_sec ^ ((uint64_t)getpid() << 32);
	uint64_t b = (uint64_t)t.tv_nsec;
	memcpy(session, &a, 8);
	memcpy(session + 8, &b, 8);
}

void mig_session_hex(const uint8_t session[MIG_SESSION_ID_LEN], char out[33])
{
	for (int i = 0; i < MIG_SESSION_ID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", session[i]);
}

void mig_preamble_write(struct rec_writer *w, uint32_t role,
			const uint8_t session[MIG_SESSION_ID_LEN])
{
	uint32_t version = MIG_VERSION;
	rec_put_raw(w, MIG_MAGIC, 8);
	rec_put_raw(w, &version, 4);
	rec_put_raw(w, &role, 4);
	rec_put_raw(w, session, MIG_SESSION_ID_LEN);
}

/* The checks on magic and version, shared by both readers. */
static int check_head(const char *magic, uint32_t version, char *err)
{
	if ((uint8_t)magic[0] == 0x16 && magic[1] == 0x03)
		/* A TLS record header: a source with credentials. */
		return err_set(err, -EPROTO,
			       "the peer starts a TLS handshake, but this destination "
			       "has no --tls-creds or --tls-psk");
	if (memcmp(magic, MIG_MAGIC, 8))
		return err_set(err, -EPROTO, "bad magic: not a ferry migration stream");
	if (version < MIG_VERSION_MIN || version > MIG_VERSION)
		return err_set(err, -EPROTONOSUPPORT,
			       "stream version %u is not in %u..%u (this ferry's and the previous)",
			       version, MIG_VERSION_MIN, MIG_VERSION);
	return 0;
}

static int check_role(uint32_t role, char *err)
{
	if (role < MIG_ROLE_MAIN || role > MIG_ROLE_POSTCOPY_PUSH)
		return err_set(err, -EPROTO, "connection role %u is unknown", role);
	return 0;
}

int mig_preamble_read(struct rec_reader *r, struct mig_preamble *out,
		      char *err)
{
	char magic[8];
	int e;

	memset(out, 0, sizeof(*out));
	if (rec_read_raw(r, magic, 8) || rec_read_raw(r, &out->version, 4))
		return err_set(err, rec_reader_error(r), "%s", rec_reader_errmsg(r));
	e = check_head(magic, out->version, err);
	if (e)
		return e;
	if (out->version == 1) {
		out->role = MIG_ROLE_MAIN;
		return 0;
	}
	if (rec_read_raw(r, &out->role, 4) ||
	    rec_read_raw(r, out->session, MIG_SESSION_ID_LEN))
		return err_set(err, rec_reader_error(r), "%s", rec_reader_errmsg(r));
	return check_role(out->role, err);
}

int mig_preamble_read_channel(struct channel *ch, struct mig_preamble *out,
			      char *err)
{
	char head[12];
	uint8_t rest[4 + MIG_SESSION_ID_LEN];
	int e;

	memset(out, 0, sizeof(*out));
	e = mig_conn_read_exact(ch, head, sizeof(head));
	if (e)
		return err_set(err, e, "the preamble: %s",
			       e == -EAGAIN ? "timed out" : e == -ECONNRESET
			       ? "the connection ended" : strerror(-e));
	memcpy(&out->version, head + 8, 4);
	e = check_head(head, out->version, err);
	if (e)
		return e;
	if (out->version == 1) {
		out->role = MIG_ROLE_MAIN;
		return 0;
	}
	e = mig_conn_read_exact(ch, rest, sizeof(rest));
	if (e)
		return err_set(err, e, "the preamble: %s",
			       e == -EAGAIN ? "timed out" : e == -ECONNRESET
			       ? "the connection ended" : strerror(-e));
	memcpy(&out->role, rest, 4);
	memcpy(out->session, rest + 4, MIG_SESSION_ID_LEN);
	return check_role(out->role, err);
}
