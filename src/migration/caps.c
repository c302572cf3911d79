/* Capability negotiation (caps.h). */
#include "migration/caps.h"
#include "migration/multifd_send.h"
#include "migration/postcopy_dest.h"
#include "migration/ram_codec.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[MIG_CAP_COUNT] = {
	[MIG_CAP_COMPRESSION] = "compression",
	[MIG_CAP_CHANNELS] = "channels",
	[MIG_CAP_POSTCOPY] = "postcopy",
	[MIG_CAP_TLS] = "tls",
	[MIG_CAP_XBZRLE] = "xbzrle",
	[MIG_CAP_ROUND_ACK] = "round-ack",
	[MIG_CAP_EARLY_PUSH] = "postcopy-early-push",
	[MIG_CAP_ZERO_RUNS] = "postcopy-zero-runs",
	[MIG_CAP_RELEASE_RAM] = "release-ram",
	[MIG_CAP_FAULT_AHEAD] = "fault-ahead",
};

/* What this ferry can do, beyond the defaults: nothing yet. */
#define MAX_CHANNELS MF_MAX_CHANNELS

/* Can this destination serve post-copy (a userfaultfd on anonymous
 * memory)?  pcd_available, or a test's stand-in. */
static int (*postcopy_check)(char *why) = pcd_available;

void mig_caps_set_postcopy_check(int (*check)(char *why))
{
	postcopy_check = check ? check : pcd_available;
}

const char *mig_cap_name(enum mig_cap_id id)
{
	return id < MIG_CAP_COUNT ? names[id] : "unknown";
}

void mig_caps_default(struct mig_caps *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->compression, sizeof(c->compression), "none");
	c->channels = 1;
}

static int cap_id(const char *name)
{
	for (int i = 0; i < MIG_CAP_COUNT; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

/* The field of a boolean capability; NULL for the others. */
static bool *cap_bool(struct mig_caps *c, enum mig_cap_id id)
{
	switch (id) {
	case MIG_CAP_POSTCOPY: return &c->postcopy;
	case MIG_CAP_TLS: return &c->tls;
	case MIG_CAP_XBZRLE: return &c->xbzrle;
	case MIG_CAP_ROUND_ACK: return &c->round_ack;
	case MIG_CAP_EARLY_PUSH: return &c->early_push;
	case MIG_CAP_ZERO_RUNS: return &c->zero_runs;
	case MIG_CAP_RELEASE_RAM: return &c->release_ram;
	case MIG_CAP_FAULT_AHEAD: return &c->fault_ahead;
	default: return NULL;
	}
}

static bool cap_bool_of(const struct mig_caps *c, enum mig_cap_id id)
{
	return *cap_bool((struct mig_caps *)c, id);
}

static json_t *cap_value(const struct mig_caps *c, enum mig_cap_id id)
{
	switch (id) {
	case MIG_CAP_COMPRESSION: return json_string(c->compression);
	case MIG_CAP_CHANNELS: return json_integer(c->channels);
	default:
		return id < MIG_CAP_COUNT ? json_boolean(cap_bool_of(c, id)) : json_null();
	}
}

/* Store v into c if it is of the capability's type; -EPROTO if not. */
static int cap_set(struct mig_caps *c, enum mig_cap_id id, json_t *v)
{
	switch (id) {
	case MIG_CAP_COMPRESSION:
		if (!json_is_string(v) ||
		    json_string_length(v) >= sizeof(c->compression))
			return -EPROTO;
		snprintf(c->compression, sizeof(c->compression), "%s",
			 json_string_value(v));
		return 0;
	case MIG_CAP_CHANNELS:
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 255)
			return -EPROTO;
		c->channels = (uint32_t)json_integer_value(v);
		return 0;
	default:
		if (id >= MIG_CAP_COUNT || !json_is_boolean(v))
			return -EPROTO;
		*cap_bool(c, id) = json_is_true(v);
		return 0;
	}
}

static bool cap_equal(const struct mig_caps *a, const struct mig_caps *b,
		      enum mig_cap_id id)
{
	switch (id) {
	case MIG_CAP_COMPRESSION: return !strcmp(a->compression, b->compression);
	case MIG_CAP_CHANNELS: return a->channels == b->channels;
	default:
		return id < MIG_CAP_COUNT && cap_bool_of(a, id) == cap_bool_of(b, id);
	}
}

/* Can this ferry give capability id the value c holds?  If not, why
 * (ERR_MAX) may say more than "not supported". */
static bool cap_supported(const struct mig_caps *c, enum mig_cap_id id,
			  char *why)
{
	switch (id) {
	case MIG_CAP_COMPRESSION: return ram_encoding_by_name(c->compression) != NULL;
	case MIG_CAP_CHANNELS: return c->channels >= 1 && c->channels <= MAX_CHANNELS;
	case MIG_CAP_POSTCOPY: return !c->postcopy || !postcopy_check(why);
	case MIG_CAP_TLS: return !c->tls;
	case MIG_CAP_XBZRLE: return true; /* deltas are decoded here */
	case MIG_CAP_ROUND_ACK: return true;
	case MIG_CAP_EARLY_PUSH: return true; /* placed only once opened */
	case MIG_CAP_ZERO_RUNS: return true;  /* the owner may still say no */
	case MIG_CAP_RELEASE_RAM: return true; /* pcd_confirmations */
	case MIG_CAP_FAULT_AHEAD: return true; /* the owner may still say no */
	default: return false;
	}
}

json_t *mig_caps_offer_json(const struct mig_caps *c)
{
	json_t *o = json_object();
	for (int i = 0; i < MIG_CAP_COUNT; i++)
		json_object_set_new(o, names[i], json_pack(
			"{s:o, s:b}", "value", cap_value(c, (enum mig_cap_id)i),
			"mandatory", (int)((c->mandatory >> i) & 1)));
	return o;
}

json_t *mig_caps_accept_json(const struct mig_caps *agreed)
{
	json_t *o = json_object();
	for (int i = 0; i < MIG_CAP_COUNT; i++) {
		/* Those newer than the first set are named only when agreed:
		 * a source older than one refuses an ACCEPT naming what it
		 * never offered (absent means the default). */
		if (i >= MIG_CAP_FIRST_LATER && !cap_bool_of(agreed, (enum mig_cap_id)i))
			continue;
		json_object_set_new(o, names[i], cap_value(agreed, (enum mig_cap_id)i));
	}
	return json_pack("{s:o}", "capabilities", o);
}

int mig_caps_negotiate(json_t *offer, struct mig_caps *agreed, char *err)
{
	const char *name;
	json_t *entry;

	mig_caps_default(agreed);
	if (!offer)
		return 0;
	if (!json_is_object(offer))
		return err_set(err, -EPROTO, "HELLO: capabilities is not an object");
	json_object_foreach(offer, name, entry) {
		json_t *value = json_object_get(entry, "value");
		json_t *mand = json_object_get(entry, "mandatory");
		if (!json_is_object(entry) || !value ||
		    (mand && !json_is_boolean(mand)))
			return err_set(err, -EPROTO,
				       "HELLO: capability '%s' is not {\"value\", \"mandatory\"}",
				       name);
		bool mandatory = json_is_true(mand);
		int id = cap_id(name);
		if (id < 0) {
			if (mandatory)
				return err_set(err, -ENOTSUP,
					       "capability '%s' is mandatory for the source and unknown here",
					       name);
			log_info("ignoring the optional capability '%s', unknown here", name);
			continue;
		}
		struct mig_caps want = *agreed;
		if (cap_set(&want, (enum mig_cap_id)id, value))
			return err_set(err, -EPROTO, "HELLO: capability '%s' has a bad value",
				       name);
		char why[ERR_MAX] = "";
		if (cap_supported(&want, (enum mig_cap_id)id, why)) {
			*agreed = want;
			continue;
		}
		char *txt = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
		if (mandatory) {
			err_set(err, -ENOTSUP,
				"capability '%s' = %s is mandatory for the source and not supported here%s%s",
				name, txt ? txt : "?", why[0] ? ": " : "", why);
			free(txt);
			return -ENOTSUP;
		}
		log_info("capability '%s' = %s is not supported here%s%s; using the default",
			 name, txt ? txt : "?", why[0] ? ": " : "", why);
		free(txt);
	}
	return 0;
}

int mig_caps_accepted(json_t *accept, const struct mig_caps *offered,
		      struct mig_caps *agreed, char *err)
{
	struct mig_caps def;
	const char *name;
	json_t *v;

	mig_caps_default(&def);
	mig_caps_default(agreed);
	json_t *caps = accept ? json_object_get(accept, "capabilities") : NULL;
	if (accept && !json_is_object(caps))
		return err_set(err, -EPROTO, "ACCEPT lacks the agreed capabilities");
	if (caps) {
		json_object_foreach(caps, name, v) {
			int id = cap_id(name);
			if (id < 0)
				return err_set(err, -EPROTO,
					       "ACCEPT names capability '%s', which was not offered",
					       name);
			if (cap_set(agreed, (enum mig_cap_id)id, v))
				return err_set(err, -EPROTO,
					       "ACCEPT: capability '%s' has a bad value", name);
		}
	}
	for (int i = 0; i < MIG_CAP_COUNT; i++) {
		enum mig_cap_id id = (enum mig_cap_id)i;
		bool as_offered = cap_equal(agreed, offered, id);
		if ((offered->mandatory >> i) & 1 ? !as_offered
						  : !as_offered && !cap_equal(agreed, &def, id))
			return err_set(err, -EPROTO,
				       "the destination agreed to a '%s' that was not offered",
				       names[i]);
	}
	return 0;
}
