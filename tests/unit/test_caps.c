/*
 * Capability negotiation (migration/caps.h): the destination's rule for
 * optional and mandatory capabilities, and the source's check of ACCEPT,
 * as tables of offers and expected outcomes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "migration/caps.h"
#include "migration/postcopy_dest.h"
#include "util/log.h"

/* A destination that cannot do post-copy (the rule tables' host), and
 * one that can. */
static int no_postcopy(char *why)
{
	return err_set(why, -ENOSYS, "post-copy needs userfaultfd: not on this test host");
}

static int can_postcopy(char *why)
{
	(void)why;
	return 0;
}

static void host_without_postcopy(void)
{
	mig_caps_set_postcopy_check(no_postcopy);
}

TestSuite(caps, .init = host_without_postcopy);

static json_t *j(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, 0, &e);
	cr_assert_not_null(v, "bad test JSON '%s': %s", text, e.text);
	return v;
}

Test(caps, default_offer_is_all_optional_defaults)
{
	struct mig_caps c;
	mig_caps_default(&c);
	json_t *o = mig_caps_offer_json(&c);
	char *txt = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert_str_eq(txt,
		"{\"channels\":{\"mandatory\":false,\"value\":1},"
		"\"compression\":{\"mandatory\":false,\"value\":\"none\"},"
		"\"fault-ahead\":{\"mandatory\":false,\"value\":false},"
		"\"postcopy\":{\"mandatory\":false,\"value\":false},"
		"\"postcopy-early-push\":{\"mandatory\":false,\"value\":false},"
		"\"postcopy-zero-runs\":{\"mandatory\":false,\"value\":false},"
		"\"release-ram\":{\"mandatory\":false,\"value\":false},"
		"\"round-ack\":{\"mandatory\":false,\"value\":false},"
		"\"tls\":{\"mandatory\":false,\"value\":false},"
		"\"xbzrle\":{\"mandatory\":false,\"value\":false}}");
	free(txt);
	json_decref(o);
}

Test(caps, mandatory_bits_in_the_offer)
{
	struct mig_caps c;
	mig_caps_default(&c);
	c.tls = true;
	c.mandatory = 1u << MIG_CAP_TLS;
	json_t *o = mig_caps_offer_json(&c);
	cr_assert(json_is_true(json_object_get(json_object_get(o, "tls"), "mandatory")));
	cr_assert(json_is_true(json_object_get(json_object_get(o, "tls"), "value")));
	cr_assert(json_is_false(json_object_get(json_object_get(o, "postcopy"), "mandatory")));
	json_decref(o);
}

struct neg_row {
	const char *offer;      /* HELLO's "capabilities"; NULL = absent */
	int rc;
	const char *agreed;     /* ACCEPT's JSON when rc == 0 */
	const char *msg;        /* part of the message when rc != 0 */
};

#define DEFAULTS "{\"capabilities\":{\"channels\":1,\"compression\":\"none\",\"postcopy\":false,\"tls\":false,\"xbzrle\":false}}"
#define WITH_COMPRESSION(c) "{\"capabilities\":{\"channels\":1,\"compression\":\"" c "\",\"postcopy\":false,\"tls\":false,\"xbzrle\":false}}"
#define WITH_CHANNELS(n) "{\"capabilities\":{\"channels\":" #n ",\"compression\":\"none\",\"postcopy\":false,\"tls\":false,\"xbzrle\":false}}"

static const struct neg_row neg_rows[] = {
	/* absent (a version 1 source) or empty: defaults */
	{ NULL, 0, DEFAULTS, NULL },
	{ "{}", 0, DEFAULTS, NULL },
	/* what this ferry sends */
	{ "{\"compression\":{\"value\":\"none\",\"mandatory\":false},"
	  "\"channels\":{\"value\":1,\"mandatory\":false},"
	  "\"postcopy\":{\"value\":false,\"mandatory\":false},"
	  "\"tls\":{\"value\":false,\"mandatory\":false}}", 0, DEFAULTS, NULL },
	/* supported values, mandatory: agreed */
	{ "{\"compression\":{\"value\":\"none\",\"mandatory\":true}}", 0, DEFAULTS, NULL },
	/* the compressions this ferry has: agreed, optional or mandatory */
	{ "{\"compression\":{\"value\":\"zstd\",\"mandatory\":false}}", 0, WITH_COMPRESSION("zstd"), NULL },
	{ "{\"compression\":{\"value\":\"zstd\",\"mandatory\":true}}", 0, WITH_COMPRESSION("zstd"), NULL },
	{ "{\"compression\":{\"value\":\"lz4\",\"mandatory\":true}}", 0, WITH_COMPRESSION("lz4"), NULL },
	/* optional and unsupported: the default */
	{ "{\"compression\":{\"value\":\"brotli\",\"mandatory\":false}}", 0, DEFAULTS, NULL },
	/* page channels, 1 to 16 (multifd_send.h): agreed as offered */
	{ "{\"channels\":{\"value\":4}}", 0, WITH_CHANNELS(4), NULL },
	{ "{\"channels\":{\"value\":16,\"mandatory\":true}}", 0, WITH_CHANNELS(16), NULL },
	{ "{\"channels\":{\"value\":17}}", 0, DEFAULTS, NULL },
	{ "{\"postcopy\":{\"value\":true,\"mandatory\":false}}", 0, DEFAULTS, NULL },
	{ "{\"tls\":{\"value\":true,\"mandatory\":false}}", 0, DEFAULTS, NULL },
	/* mandatory and unsupported: refused, naming it */
	{ "{\"compression\":{\"value\":\"brotli\",\"mandatory\":true}}", -ENOTSUP, NULL,
	  "capability 'compression' = \"brotli\" is mandatory for the source and not supported here" },
	{ "{\"channels\":{\"value\":17,\"mandatory\":true}}", -ENOTSUP, NULL,
	  "'channels' = 17 is mandatory" },
	{ "{\"postcopy\":{\"value\":true,\"mandatory\":true}}", -ENOTSUP, NULL,
	  "'postcopy' = true is mandatory for the source and not supported here: "
	  "post-copy needs userfaultfd: not on this test host" },
	{ "{\"tls\":{\"value\":true,\"mandatory\":true}}", -ENOTSUP, NULL,
	  "'tls' = true is mandatory" },
	/* unknown names: optional ignored, mandatory refused */
	{ "{\"dirty-ring\":{\"value\":true,\"mandatory\":false}}", 0, DEFAULTS, NULL },
	{ "{\"dirty-ring\":{\"value\":true,\"mandatory\":true}}", -ENOTSUP, NULL,
	  "capability 'dirty-ring' is mandatory for the source and unknown here" },
	/* malformed */
	{ "[]", -EPROTO, NULL, "capabilities is not an object" },
	{ "{\"tls\":true}", -EPROTO, NULL, "'tls' is not {\"value\", \"mandatory\"}" },
	{ "{\"tls\":{\"mandatory\":true}}", -EPROTO, NULL, "'tls' is not" },
	{ "{\"tls\":{\"value\":false,\"mandatory\":1}}", -EPROTO, NULL, "'tls' is not" },
	{ "{\"channels\":{\"value\":\"two\"}}", -EPROTO, NULL, "'channels' has a bad value" },
	{ "{\"channels\":{\"value\":0}}", -EPROTO, NULL, "'channels' has a bad value" },
	{ "{\"compression\":{\"value\":7}}", -EPROTO, NULL, "'compression' has a bad value" },
	{ "{\"postcopy\":{\"value\":\"yes\"}}", -EPROTO, NULL, "'postcopy' has a bad value" },
	{ "{\"xbzrle\":{\"value\":1}}", -EPROTO, NULL, "'xbzrle' has a bad value" },
	/* deltas are decoded here: agreed, optional or mandatory */
	{ "{\"xbzrle\":{\"value\":true,\"mandatory\":false}}", 0,
	  "{\"capabilities\":{\"channels\":1,\"compression\":\"none\",\"postcopy\":false,\"tls\":false,\"xbzrle\":true}}", NULL },
	{ "{\"xbzrle\":{\"value\":true,\"mandatory\":true},\"compression\":{\"value\":\"lz4\",\"mandatory\":true}}", 0,
	  "{\"capabilities\":{\"channels\":1,\"compression\":\"lz4\",\"postcopy\":false,\"tls\":false,\"xbzrle\":true}}", NULL },
};

Test(caps, destination_rule_table)
{
	for (size_t i = 0; i < sizeof(neg_rows) / sizeof(neg_rows[0]); i++) {
		const struct neg_row *w = &neg_rows[i];
		json_t *offer = w->offer ? j(w->offer) : NULL;
		struct mig_caps agreed;
		char err[ERR_MAX] = "";
		int rc = mig_caps_negotiate(offer, &agreed, err);
		cr_expect_eq(rc, w->rc, "row %zu (%s): rc %d, %s", i, w->offer, rc, err);
		if (rc == 0 && w->agreed) {
			json_t *acc = mig_caps_accept_json(&agreed);
			char *txt = json_dumps(acc, JSON_COMPACT | JSON_SORT_KEYS);
			cr_expect_str_eq(txt, w->agreed, "row %zu (%s)", i, w->offer);
			free(txt);
			json_decref(acc);
		}
		if (w->msg)
			cr_expect(strstr(err, w->msg), "row %zu: message '%s' lacks '%s'",
				  i, err, w->msg);
		json_decref(offer);
	}
}

struct acc_row {
	const char *accept;    /* ACCEPT's payload; NULL = empty (version 1) */
	unsigned tweak;        /* what the source offered, below */
	int rc;
	const char *msg;
};

enum { OFFER_DEFAULT, OFFER_ZSTD_OPTIONAL, OFFER_TLS_MANDATORY, OFFER_XBZRLE };

static void offer_for(unsigned tweak, struct mig_caps *c)
{
	mig_caps_default(c);
	if (tweak == OFFER_ZSTD_OPTIONAL)
		snprintf(c->compression, sizeof(c->compression), "zstd");
	if (tweak == OFFER_TLS_MANDATORY) {
		c->tls = true;
		c->mandatory = 1u << MIG_CAP_TLS;
	}
	if (tweak == OFFER_XBZRLE)
		c->xbzrle = true; /* optional, as a ferry source offers it */
}

static const struct acc_row acc_rows[] = {
	{ NULL, OFFER_DEFAULT, 0, NULL },
	{ DEFAULTS, OFFER_DEFAULT, 0, NULL },
	{ "{\"capabilities\":{}}", OFFER_DEFAULT, 0, NULL },
	/* an optional offer may fall back to the default ... */
	{ DEFAULTS, OFFER_ZSTD_OPTIONAL, 0, NULL },
	/* ... or be taken */
	{ "{\"capabilities\":{\"compression\":\"zstd\"}}", OFFER_ZSTD_OPTIONAL, 0, NULL },
	/* but not become something never offered */
	{ "{\"capabilities\":{\"compression\":\"lz4\"}}", OFFER_ZSTD_OPTIONAL, -EPROTO,
	  "agreed to a 'compression' that was not offered" },
	{ "{\"capabilities\":{\"channels\":4}}", OFFER_DEFAULT, -EPROTO,
	  "agreed to a 'channels' that was not offered" },
	/* a mandatory one must be agreed as offered */
	{ DEFAULTS, OFFER_TLS_MANDATORY, -EPROTO, "agreed to a 'tls'" },
	{ "{\"capabilities\":{\"tls\":true}}", OFFER_TLS_MANDATORY, 0, NULL },
	{ NULL, OFFER_TLS_MANDATORY, -EPROTO, "agreed to a 'tls'" },
	/* xbzrle offered: taken, or (an older destination) not */
	{ "{\"capabilities\":{\"xbzrle\":true}}", OFFER_XBZRLE, 0, NULL },
	{ "{\"capabilities\":{\"channels\":1}}", OFFER_XBZRLE, 0, NULL },
	{ "{\"capabilities\":{\"xbzrle\":true}}", OFFER_DEFAULT, -EPROTO,
	  "agreed to a 'xbzrle' that was not offered" },
	/* malformed */
	{ "{}", OFFER_DEFAULT, -EPROTO, "lacks the agreed capabilities" },
	{ "{\"capabilities\":{\"warp\":1}}", OFFER_DEFAULT, -EPROTO,
	  "capability 'warp', which was not offered" },
	{ "{\"capabilities\":{\"tls\":\"no\"}}", OFFER_DEFAULT, -EPROTO,
	  "'tls' has a bad value" },
};

Test(caps, source_checks_accept_table)
{
	for (size_t i = 0; i < sizeof(acc_rows) / sizeof(acc_rows[0]); i++) {
		const struct acc_row *w = &acc_rows[i];
		json_t *acc = w->accept ? j(w->accept) : NULL;
		struct mig_caps offer, agreed;
		char err[ERR_MAX] = "";
		offer_for(w->tweak, &offer);
		int rc = mig_caps_accepted(acc, &offer, &agreed, err);
		cr_expect_eq(rc, w->rc, "row %zu (%s): rc %d, %s", i, w->accept, rc, err);
		if (w->msg)
			cr_expect(strstr(err, w->msg), "row %zu: message '%s' lacks '%s'",
				  i, err, w->msg);
		json_decref(acc);
	}
}

/* Both sides with this ferry's code: zstd is agreed, post-copy (not
 * here yet) falls back to its default. */
Test(caps, both_sides_roundtrip)
{
	struct mig_caps offer, at_dest, at_src;
	char err[ERR_MAX] = "";
	mig_caps_default(&offer);
	snprintf(offer.compression, sizeof(offer.compression), "zstd");
	offer.postcopy = true;
	json_t *o = mig_caps_offer_json(&offer);
	cr_assert_eq(mig_caps_negotiate(o, &at_dest, err), 0, "%s", err);
	json_t *acc = mig_caps_accept_json(&at_dest);
	cr_assert_eq(mig_caps_accepted(acc, &offer, &at_src, err), 0, "%s", err);
	cr_assert_str_eq(at_src.compression, "zstd");
	cr_assert_not(at_src.postcopy);
	cr_assert_eq(at_src.channels, 1);
	cr_assert_not(at_src.tls);
	json_decref(o);
	json_decref(acc);
}

/* What a ferry source asking for compression sends (mandatory), both
 * ways: agreed as asked; a method this ferry lacks refuses, naming it. */
Test(caps, mandatory_compression_roundtrip)
{
	static const char *const methods[] = { "zstd", "lz4" };
	for (size_t i = 0; i < 2; i++) {
		struct mig_caps offer, at_dest, at_src;
		char err[ERR_MAX] = "";
		mig_caps_default(&offer);
		snprintf(offer.compression, sizeof(offer.compression), "%s", methods[i]);
		offer.mandatory = 1u << MIG_CAP_COMPRESSION;
		json_t *o = mig_caps_offer_json(&offer);
		cr_assert_eq(mig_caps_negotiate(o, &at_dest, err), 0, "%s", err);
		json_t *acc = mig_caps_accept_json(&at_dest);
		cr_assert_eq(mig_caps_accepted(acc, &offer, &at_src, err), 0, "%s", err);
		cr_assert_str_eq(at_src.compression, methods[i]);
		json_decref(o);
		json_decref(acc);
	}
	struct mig_caps offer, agreed;
	char err[ERR_MAX] = "";
	mig_caps_default(&offer);
	snprintf(offer.compression, sizeof(offer.compression), "zlib");
	offer.mandatory = 1u << MIG_CAP_COMPRESSION;
	json_t *o = mig_caps_offer_json(&offer);
	cr_assert_eq(mig_caps_negotiate(o, &agreed, err), -ENOTSUP);
	cr_assert(strstr(err, "'compression' = \"zlib\" is mandatory"), "%s", err);
	json_decref(o);
	/* and a destination that quietly fell back would be caught */
	mig_caps_default(&agreed);
	json_t *acc = mig_caps_accept_json(&agreed);
	snprintf(offer.compression, sizeof(offer.compression), "zstd");
	cr_assert_eq(mig_caps_accepted(acc, &offer, &agreed, err), -EPROTO);
	cr_assert(strstr(err, "'compression'"), "%s", err);
	json_decref(acc);
}

/* Where userfaultfd works, post-copy is agreed, optional or mandatory,
 * and a source asking for it mandatory gets it. */
Test(caps, postcopy_is_agreed_where_userfaultfd_works)
{
	static const char *const offers[] = {
		"{\"postcopy\":{\"value\":true,\"mandatory\":false}}",
		"{\"postcopy\":{\"value\":true,\"mandatory\":true}}",
	};
	mig_caps_set_postcopy_check(can_postcopy);
	for (size_t i = 0; i < 2; i++) {
		struct mig_caps agreed, offer, at_src;
		char err[ERR_MAX] = "";
		json_t *o = j(offers[i]);
		cr_assert_eq(mig_caps_negotiate(o, &agreed, err), 0, "%s", err);
		cr_assert(agreed.postcopy, "%s", offers[i]);
		json_decref(o);
		mig_caps_default(&offer);
		offer.postcopy = true;
		offer.mandatory = i ? 1u << MIG_CAP_POSTCOPY : 0;
		json_t *acc = mig_caps_accept_json(&agreed);
		cr_assert_eq(mig_caps_accepted(acc, &offer, &at_src, err), 0, "%s", err);
		cr_assert(at_src.postcopy);
		json_decref(acc);
	}
	/* false stays false: nothing to check */
	mig_caps_set_postcopy_check(no_postcopy);
	struct mig_caps agreed;
	char err[ERR_MAX] = "";
	json_t *o = j("{\"postcopy\":{\"value\":false,\"mandatory\":true}}");
	cr_assert_eq(mig_caps_negotiate(o, &agreed, err), 0, "%s", err);
	cr_assert_not(agreed.postcopy);
	json_decref(o);
}

/* The real check, on this host: it either agrees, or says why not. */
Test(caps, the_real_postcopy_check_says_why_when_it_refuses)
{
	char why[ERR_MAX] = "";
	mig_caps_set_postcopy_check(NULL);
	int r = pcd_available(why);
	cr_assert(r == 0 || strstr(why, "post-copy needs userfaultfd: "), "%d %s", r, why);
	struct mig_caps agreed;
	char err[ERR_MAX] = "";
	json_t *o = j("{\"postcopy\":{\"value\":true,\"mandatory\":true}}");
	int n = mig_caps_negotiate(o, &agreed, err);
	cr_assert_eq(n, r ? -ENOTSUP : 0, "%s", err);
	cr_assert_eq(agreed.postcopy, r == 0);
	json_decref(o);
}

/* round-ack: agreed between two ferries; a destination from before it
 * (which ignores the unknown optional name) leaves it off; and ACCEPT
 * names it only when agreed, so a source from before it (which refuses
 * an ACCEPT naming what it never offered) still migrates. */
Test(caps, round_ack_both_ways_and_with_older_peers)
{
	struct mig_caps offer, at_dest, at_src;
	char err[ERR_MAX] = "";
	mig_caps_default(&offer);
	offer.round_ack = true;
	json_t *o = mig_caps_offer_json(&offer);
	cr_assert_eq(mig_caps_negotiate(o, &at_dest, err), 0, "%s", err);
	cr_assert(at_dest.round_ack);
	json_t *acc = mig_caps_accept_json(&at_dest);
	cr_assert_eq(mig_caps_accepted(acc, &offer, &at_src, err), 0, "%s", err);
	cr_assert(at_src.round_ack);
	json_decref(acc);

	/* An older destination's ACCEPT: no round-ack. */
	acc = j("{\"capabilities\":{\"channels\":1,\"compression\":\"none\"}}");
	cr_assert_eq(mig_caps_accepted(acc, &offer, &at_src, err), 0, "%s", err);
	cr_assert_not(at_src.round_ack);
	json_decref(acc);
	json_decref(o);

	/* An older source offers no round-ack: ACCEPT does not name it. */
	struct mig_caps old;
	mig_caps_default(&old);
	o = mig_caps_offer_json(&old);
	json_object_del(o, "round-ack");
	cr_assert_eq(mig_caps_negotiate(o, &at_dest, err), 0, "%s", err);
	cr_assert_not(at_dest.round_ack);
	acc = mig_caps_accept_json(&at_dest);
	cr_assert_null(json_object_get(json_object_get(acc, "capabilities"), "round-ack"));
	json_decref(acc);
	json_decref(o);
}

/* Every boolean capability newer than the first set behaves as round-ack
 * does: agreed between two ferries when offered true; off with an older
 * destination (whose ACCEPT does not name it); and never named in an
 * ACCEPT unless agreed, so that an older source still migrates. */
Test(caps, later_booleans_with_older_peers)
{
	static const char *const later[] = {
		"round-ack", "postcopy-early-push", "postcopy-zero-runs", "release-ram",
		"fault-ahead",
	};
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		struct mig_caps def, at_dest, at_src;
		char err[ERR_MAX] = "";
		mig_caps_default(&def);
		json_t *o = mig_caps_offer_json(&def);
		json_object_set_new(json_object_get(o, later[i]), "value", json_true());
		cr_assert_eq(mig_caps_negotiate(o, &at_dest, err), 0, "%s: %s", later[i], err);
		json_t *acc = mig_caps_accept_json(&at_dest);
		cr_assert(json_is_true(json_object_get(json_object_get(acc, "capabilities"),
						       later[i])), "%s not agreed", later[i]);
		json_decref(acc);

		/* an older destination: its ACCEPT names only the first set */
		struct mig_caps offer;
		mig_caps_default(&offer);
		json_t *lo = mig_caps_offer_json(&offer);
		json_object_set_new(json_object_get(lo, later[i]), "value", json_true());
		cr_assert_eq(mig_caps_negotiate(lo, &offer, err), 0, "%s", err);
		json_decref(lo);
		acc = j("{\"capabilities\":{\"channels\":1,\"compression\":\"none\"}}");
		cr_assert_eq(mig_caps_accepted(acc, &offer, &at_src, err), 0, "%s: %s",
			     later[i], err);
		json_decref(acc);
		acc = mig_caps_accept_json(&at_src);
		cr_assert_null(json_object_get(json_object_get(acc, "capabilities"), later[i]),
			       "%s on with an older destination", later[i]);
		json_decref(acc);

		/* an older source does not offer it: ACCEPT does not name it */
		json_object_del(o, later[i]);
		cr_assert_eq(mig_caps_negotiate(o, &at_dest, err), 0, "%s", err);
		acc = mig_caps_accept_json(&at_dest);
		cr_assert_null(json_object_get(json_object_get(acc, "capabilities"), later[i]),
			       "%s named to an older source", later[i]);
		json_decref(acc);
		json_decref(o);
	}
}
