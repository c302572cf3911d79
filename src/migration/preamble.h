/*
 * preamble.h - the bytes that open every migration connection:
 *
 *   "FERRYMIG" | u32 version | u32 role | u8 session_id[16]   (version 2)
 *   "FERRYMIG" | u32 version                                   (version 1)
 *
 * The role says what the connection is for (protocol.h, enum mig_role);
 * the session id ties the connections of one migration together (random,
 * chosen by the source for its MAIN connection).
 */
#ifndef FERRY_MIG_PREAMBLE_H
#define FERRY_MIG_PREAMBLE_H

#include <stdint.h>

#include "io/record.h"
#include "migration/protocol.h"

struct mig_preamble {
	uint32_t version;
	uint32_t role;
	uint8_t session[MIG_SESSION_ID_LEN];
};

/* A fresh random session id (getrandom; falls back to time and pid). */
void mig_session_new(uint8_t session[MIG_SESSION_ID_LEN]);
/* Hex form for logs: 32 characters and a NUL. */
void mig_session_hex(const uint8_t session[MIG_SESSION_ID_LEN], char out[33]);

/* Queue this ferry's preamble (MIG_VERSION) for role and session. */
void mig_preamble_write(struct rec_writer *w, uint32_t role,
			const uint8_t session[MIG_SESSION_ID_LEN]);

/**
 * mig_preamble_read() - read and check a peer's preamble.  Returns 0;
 * -EPROTO with a message for a bad magic or an unknown role;
 * -EPROTONOSUPPORT for a version outside [MIG_VERSION_MIN, MIG_VERSION]
 * (a real peer of another version: tell it why); or the reader's error.  A version 1
 * preamble reads as role MAIN with a zero session id.
 */
int mig_preamble_read(struct rec_reader *r, struct mig_preamble *out,
		      char *err);

struct channel;
/**
 * mig_preamble_read_channel() - the same straight from a channel, reading
 * exactly the preamble's bytes (whatever follows stays in the channel for
 * the connection's next owner).  Same returns, plus the read's errors
 * (-EAGAIN: the socket's receive timeout passed).
 */
int mig_preamble_read_channel(struct channel *ch, struct mig_preamble *out,
			      char *err);

#endif
