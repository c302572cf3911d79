/* migrate-set-capabilities and query-migrate-capabilities (user_caps.h). */
#include "migration/user_caps.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* The capabilities this ferry has: a bool in struct mig_params each. */
static const struct {
	const char *name;
	size_t offset;
} caps[] = {
	{ "xbzrle", offsetof(struct mig_params, xbzrle) },
	{ "auto-converge", offsetof(struct mig_params, ac.enabled) },
	{ "dirty-limit", offsetof(struct mig_params, dl.enabled) },
	{ "postcopy-ram", offsetof(struct mig_params, postcopy_ram) },
	{ "release-ram", offsetof(struct mig_params, release_ram) },
};
#define NCAPS (sizeof(caps) / sizeof(caps[0]))

/* QEMU's other capabilities (its MigrationCapability), so that a tool
 * asking for one hears "not supported here" rather than "unknown". */
static const char *const qemu_only[] = {
	"rdma-pin-all", "zero-blocks", "compress", "events",
	"x-colo", "block", "return-path",
	"pause-before-switchover", "multifd", "dirty-bitmaps",
	"postcopy-blocktime", "late-block-activate", "x-ignore-shared",
	"validate-uuid", "background-snapshot", "zero-copy-send",
	"postcopy-preempt", "switchover-ack", "mapped-ram",
};

static pthread_mutex_t process_lock = PTHREAD_MUTEX_INITIALIZER;
static bool process_state[NCAPS];

static bool *cap_field(struct mig_params *p, size_t i)
{
	return (bool *)((char *)p + caps[i].offset);
}

static int find(const char *name)
{
	for (size_t i = 0; i < NCAPS; i++)
		if (!strcmp(caps[i].name, name))
			return (int)i;
	return -1;
}

static bool qemu_has(const char *name)
{
	for (size_t i = 0; i < sizeof(qemu_only) / sizeof(qemu_only[0]); i++)
		if (!strcmp(qemu_only[i], name))
			return true;
	return false;
}

/* "xbzrle" and the others, for messages. */
static void names(char *buf, size_t len)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < NCAPS && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s'%s'", i ? ", " : "",
				      caps[i].name);
}

int mig_ucaps_apply(struct mig_params *p, json_t *list, char *err)
{
	struct mig_params n = *p;
	size_t i;
	json_t *e;
	char known[128];

	if (!json_is_array(list))
		return err_set(err, -EINVAL,
			       "Invalid parameter type for 'capabilities', expected: array");
	json_array_foreach(list, i, e) {
		json_t *name = json_object_get(e, "capability");
		json_t *state = json_object_get(e, "state");
		if (!json_is_object(e))
			return err_set(err, -EINVAL,
				       "Invalid parameter type for 'capabilities[%zu]', expected: object",
				       i);
		if (!json_is_string(name))
			return err_set(err, -EINVAL,
				       name ? "Invalid parameter type for 'capabilities[%zu].capability', expected: string"
					    : "Parameter 'capabilities[%zu].capability' is missing",
				       i);
		if (!json_is_boolean(state))
			return err_set(err, -EINVAL,
				       state ? "Invalid parameter type for 'capabilities[%zu].state', expected: boolean"
					     : "Parameter 'capabilities[%zu].state' is missing",
				       i);
		if (json_object_size(e) != 2)
			return err_set(err, -EINVAL,
				       "'capabilities[%zu]' has members other than 'capability' and 'state'",
				       i);
		const char *s = json_string_value(name);
		int k = find(s);
		if (k >= 0) {
			*cap_field(&n, (size_t)k) = json_is_true(state);
			continue;
		}
		names(known, sizeof(known));
		if (!qemu_has(s))
			return err_set(err, -EINVAL,
				       "Parameter 'capabilities[%zu].capability' does not accept value '%.64s' "
				       "(this ferry's capabilities: %s)", i, s, known);
		if (json_is_true(state))
			return err_set(err, -EINVAL,
				       "Capability '%s' is not supported by this ferry (its capabilities: %s)",
				       s, known);
		/* Off is what it is: nothing to do. */
	}
	*p = n;
	return 0;
}

json_t *mig_ucaps_json(const struct mig_params *p)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < NCAPS; i++)
		json_array_append_new(a, json_pack("{s:s, s:b}", "capability", caps[i].name,
						   "state",
						   *cap_field((struct mig_params *)p, i)));
	return a;
}

void mig_ucaps_process_set(const struct mig_params *p)
{
	pthread_mutex_lock(&process_lock);
	for (size_t i = 0; i < NCAPS; i++)
		process_state[i] = *cap_field((struct mig_params *)p, i);
	pthread_mutex_unlock(&process_lock);
}

void mig_ucaps_process_get(struct mig_params *p)
{
	pthread_mutex_lock(&process_lock);
	for (size_t i = 0; i < NCAPS; i++)
		*cap_field(p, i) = process_state[i];
	pthread_mutex_unlock(&process_lock);
}
