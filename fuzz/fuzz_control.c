/*
 * fuzz_control - the control socket's command handling: the stream
 * splitter (control/control_stream.c) fed as a client's reads would come,
 * each message run through control_execute_msg() (control_proto.c:
 * parse, envelope and argument checks, dispatch) against the real
 * command table, with call->opaque a real instance that has no VM and no
 * incoming migration - so every command that needs a VM answers "there is
 * no VM here yet", as a destination's socket does before its guest
 * arrives.  Nothing a command does here can touch the host (no VM: no
 * snapshot file, no migration, no listener).  The argument validators
 * those commands run once a VM exists (migration parameters, the URI,
 * hex data) are called on every message's arguments too.
 *
 * Input: u8 chunk | the bytes a client sends, fed in reads of chunk + 1
 * bytes, then the end of input.
 */
#include "fuzz_common.h"
#include "control/control_migrate.h"
#include "control/control_proto.h"
#include "migration/channel.h"
#include "migration/migration.h"
#include "util/log.h"
#include "vmm/instance.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static struct instance inst;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init();
	if (instance_init(&inst))
		abort();
	return 0;
}

/* A reply as the server sends it: one object, "return" or "error". */
static void send_reply(json_t *reply)
{
	if (!reply)
		abort();
	if (!json_is_object(reply) ||
	    !!json_object_get(reply, "return") == !!json_object_get(reply, "error"))
		abort();
	json_t *e = json_object_get(reply, "error");
	if (e && (!json_is_string(json_object_get(e, "class")) ||
		  !json_is_string(json_object_get(e, "desc"))))
		abort();
	char *s = json_dumps(reply, JSON_COMPACT);
	if (!s)
		abort();
	free(s);
	json_decref(reply);
}

/* The checks the commands make of their arguments once there is a VM. */
static void check_args(const char *msg, size_t len)
{
	json_t *req = json_loadb(msg, len, JSON_DECODE_ANY, NULL);
	json_t *args = json_object_get(req, "arguments");
	char err[ERR_MAX];

	if (json_is_object(args)) {
		struct mig_params p;
		mig_params_default(&p);
		err[0] = 0;
		if (control_mig_params_merge(&p, args, err) && !err[0])
			abort();
		const char *uri = json_string_value(json_object_get(args, "uri"));
		struct mig_uri u;
		err[0] = 0;
		if (uri && channel_parse_uri(uri, &u, err) && !err[0])
			abort();
		const char *hex = json_string_value(json_object_get(args, "hex"));
		uint8_t *bytes = NULL;
		size_t n;
		err[0] = 0;
		if (hex && !control_parse_hex(hex, &bytes, &n, err)) {
			if (n != strlen(hex) / 2)
				abort();
			free(bytes);
		} else if (hex && !err[0]) {
			abort();
		}
	}
	json_decref(req);
}

static int on_msg(void *opaque, const char *msg, size_t len, const char *error)
{
	control_after_fn after = NULL;

	(void)opaque;
	if (error) {
		send_reply(control_error_reply(NULL, error, NULL));
		return 0;
	}
	if (!msg || !len || len > CONTROL_MSG_MAX)
		abort();
	send_reply(control_execute_msg(control_commands, &inst, msg, len, &after));
	/* `quit`'s follow-up would end this process; the reply is what
	 * counts here.  Nothing else has one. */
	check_args(msg, len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct control_stream s;

	if (size < 1)
		return 0;
	size_t chunk = (size_t)data[0] + 1;
	const char *p = (const char *)data + 1;
	size_t left = size - 1;

	control_stream_init(&s, CONTROL_MSG_MAX);
	while (left) {
		size_t n = left < chunk ? left : chunk, used = 0;
		if (control_stream_feed(&s, p, n, on_msg, NULL, &used))
			abort();
		p += n;
		left -= n;
	}
	control_stream_finish(&s, on_msg, NULL);
	if (!control_stream_idle(&s))
		abort();
	control_stream_free(&s);
	return 0;
}
