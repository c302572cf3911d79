/*
 * caps.h - the migration capabilities negotiated in HELLO and ACCEPT:
 * how pages are compressed, how many connections carry them, post-copy,
 * TLS.  This ferry supports every compression it has, post-copy where
 * the destination can use userfaultfd, and the defaults otherwise.
 *
 * The rule (docs/migration-stream.md): the source offers each capability
 * as {"value": V, "mandatory": B}.  The destination agrees to V when it
 * supports it; otherwise a mandatory capability refuses the migration
 * (naming it) and an optional one falls back to its default.  A name the
 * destination does not know refuses if mandatory and is ignored if not.
 * ACCEPT carries the agreed values; a capability not offered (or a
 * version 1 source, which offers none) is at its default.
 */
#ifndef FERRY_MIG_CAPS_H
#define FERRY_MIG_CAPS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

enum mig_cap_id {
	MIG_CAP_COMPRESSION,  /* string: a RAM_PAGES encoding ("none") */
	MIG_CAP_CHANNELS,     /* integer: connections carrying pages (1..16) */
	MIG_CAP_POSTCOPY,     /* bool (false) */
	MIG_CAP_TLS,          /* bool (false) */
	/* bool (false): RAM_PAGES may carry deltas (MIG_PAGE_DELTA).  The
	 * source offers it optional: a destination without it agrees to
	 * false and the pages go whole, as QEMU's source decides alone. */
	MIG_CAP_XBZRLE,
	/* bool (false): the destination answers each ROUND_END with
	 * ROUND_ACK once the round's pages are placed; the source keeps at
	 * most one round unconfirmed and pauses the guest only with every
	 * round confirmed, so no backlog is left for the pause (precopy.c,
	 * take_round_ack).  Offered optional always; an older destination
	 * simply does not ack. */
	MIG_CAP_ROUND_ACK,
	/* bool (false): the destination places no post-copy page before
	 * every POSTCOPY_MISSING record is applied (postcopy_recv.c,
	 * pcr_open), so the source may start its page server and push as
	 * soon as it has sent the list and the state, before COMMIT: the
	 * guest's first pages are there when it resumes, and its first
	 * requests find the server running.  Offered optional always; with
	 * an older destination the push starts after RUNNING. */
	MIG_CAP_EARLY_PUSH,
	/* bool (false): in a pure post-copy the source may list all of RAM
	 * missing, sparing the pause its scan for the pages the guest ever
	 * touched, and name the zero ones later (PUSH_ZERO,
	 * postcopy_proto.h).  Offered optional always; a destination agrees
	 * when its memory is fresh (not preallocated): there, listed pages
	 * cost nothing to drop, where preallocated memory would drop all of
	 * RAM in the pause. */
	MIG_CAP_ZERO_RUNS,
	/* bool (false): in post-copy the destination tells the source which
	 * pages it has placed (PAGES_HAVE, every CONFIRM_MS), and the source
	 * drops them from its memory (QEMU's release-ram): the two hosts
	 * hold about one copy of the guest, not two.  Offered optional when
	 * the user set release-ram; an older destination keeps the source's
	 * memory whole until the end. */
	MIG_CAP_RELEASE_RAM,
	/* bool (false): before round 0's pages the source sends RAM_AHEAD,
	 * the runs round 0 will carry, and the destination faults them in
	 * on a thread of its own ahead of the stream (fault_ahead.h).
	 * Offered optional always; a destination agrees when its memory is
	 * fresh (a preallocated one has nothing left to fault in). */
	MIG_CAP_FAULT_AHEAD,
	MIG_CAP_COUNT,
	/* From here on the capabilities are newer than the first set (all
	 * booleans, default false): ACCEPT names one only when agreed. */
	MIG_CAP_FIRST_LATER = MIG_CAP_ROUND_ACK,
};

struct mig_caps {
	char compression[32];
	uint32_t channels;
	bool postcopy;
	bool tls;
	bool xbzrle;
	bool round_ack;
	bool early_push;
	bool zero_runs;
	bool release_ram;
	bool fault_ahead;
	uint32_t mandatory;   /* in an offer: bit (1 << id) per mandatory one */
};

const char *mig_cap_name(enum mig_cap_id id);

/* Tests: what decides whether postcopy = true can be agreed (0: yes;
 * else a negative errno with why, ERR_MAX).  NULL: the real check,
 * pcd_available(). */
void mig_caps_set_postcopy_check(int (*check)(char *why));
void mig_caps_default(struct mig_caps *c);

/* The source: HELLO's "capabilities" object for offer c. */
json_t *mig_caps_offer_json(const struct mig_caps *c);

/**
 * mig_caps_negotiate() - the destination: apply the rule above to the
 * offer (HELLO's "capabilities", NULL if absent).  Fills *agreed.
 * Returns 0, or -EPROTO (malformed) / -ENOTSUP (a mandatory capability
 * this ferry cannot give) with a message naming it.
 */
int mig_caps_negotiate(json_t *offer, struct mig_caps *agreed, char *err);

/* ACCEPT's payload for the agreed set: {"capabilities": {...}}. */
json_t *mig_caps_accept_json(const struct mig_caps *agreed);

/**
 * mig_caps_accepted() - the source: read ACCEPT's payload (NULL or empty
 * from a version 1 destination: all defaults) against what it offered.
 * Each agreed value must be the offered one or the default, and a
 * mandatory one the offered one.  Returns 0 or -EPROTO with a message.
 */
int mig_caps_accepted(json_t *accept, const struct mig_caps *offered,
		      struct mig_caps *agreed, char *err);

#endif
