/*
 * control_proto.c - request checking and dispatch for the control socket.
 *
 * Messages follow QMP (qapi/qmp-dispatch.c) where it has an answer, so that
 * tools and people used to QEMU find the same wording: "QMP input lacks
 * member 'execute'", "Parameter 'x' is unexpected", CommandNotFound.
 */
#include "control/control_proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

json_t *control_greeting(void)
{
	return json_pack("{s:{s:{s:s},s:[]}}", "QMP", "version", "ferry",
			 CONTROL_VERSION, "capabilities");
}

static json_t *with_id(json_t *reply, json_t *id)
{
	if (reply && id)
		json_object_set(reply, "id", id);
	return reply;
}

/* The length of the valid UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 if there is none. */
static size_t utf8_seq(const unsigned char *s)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

json_t *control_error_reply(const char *cls, const char *desc, json_t *id)
{
	char clean[ERR_MAX + 128];
	size_t o = 0;

	/*
	 * A description may quote what the client sent (jansson's parse
	 * errors quote the bad token byte for byte) and may have been cut
	 * at ERR_MAX inside a character; a JSON string must be UTF-8, and
	 * jansson refuses to build one that is not, which left the client
	 * without an answer.  Each byte that starts no valid character
	 * becomes '?'.
	 */
	if (!desc)
		desc = "";
	for (const unsigned char *p = (const unsigned char *)desc;
	     *p && o + 5 < sizeof(clean);) {
		size_t n = utf8_seq(p);
		if (!n) {
			clean[o++] = '?';
			p++;
			continue;
		}
		memcpy(clean + o, p, n);
		o += n;
		p += n;
	}
	clean[o] = 0;
	return with_id(json_pack("{s:{s:s,s:s}}", "error", "class",
				 cls ? cls : "GenericError", "desc", clean),
		       id);
}

json_t *control_return_reply(json_t *ret, json_t *id)
{
	if (!ret)
		ret = json_object();
	return with_id(json_pack("{s:o}", "return", ret), id);
}

const struct control_cmd *control_find_cmd(const struct control_cmd *table,
					   const char *name)
{
	for (const struct control_cmd *c = table; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

int control_check_request(json_t *req, const char **name, json_t **args,
			  char *err)
{
	const char *key;
	json_t *val, *exec, *a;

	if (!json_is_object(req))
		return err_set(err, -EINVAL,
			       "QMP input must be a JSON object");
	json_object_foreach(req, key, val) {
		if (strcmp(key, "execute") && strcmp(key, "arguments") &&
		    strcmp(key, "id"))
			return err_set(err, -EINVAL,
				       "QMP input member '%s' is unexpected",
				       key);
	}
	exec = json_object_get(req, "execute");
	if (!exec)
		return err_set(err, -EINVAL,
			       "QMP input lacks member 'execute'");
	if (!json_is_string(exec))
		return err_set(err, -EINVAL,
			       "QMP input member 'execute' must be a string");
	a = json_object_get(req, "arguments");
	if (a && !json_is_object(a))
		return err_set(err, -EINVAL,
			       "QMP input member 'arguments' must be an object");
	*args = a ? json_incref(a) : json_object();
	if (!*args)
		return err_set(err, -ENOMEM, "out of memory");
	*name = json_string_value(exec);
	return 0;
}

static const char *arg_type_name(enum control_arg_type t)
{
	switch (t) {
	case CONTROL_ARG_STRING: return "string";
	case CONTROL_ARG_INT:    return "integer";
	case CONTROL_ARG_UINT:   return "non-negative integer";
	case CONTROL_ARG_BOOL:   return "boolean";
	case CONTROL_ARG_ARRAY:  return "array";
	case CONTROL_ARG_OBJECT: return "object";
	case CONTROL_ARG_ANY:    return "any";
	}
	return "?";
}

static bool arg_type_ok(enum control_arg_type t, json_t *v)
{
	switch (t) {
	case CONTROL_ARG_STRING: return json_is_string(v);
	case CONTROL_ARG_INT:    return json_is_integer(v);
	case CONTROL_ARG_UINT:
		return json_is_integer(v) && json_integer_value(v) >= 0;
	case CONTROL_ARG_BOOL:   return json_is_boolean(v);
	case CONTROL_ARG_ARRAY:  return json_is_array(v);
	case CONTROL_ARG_OBJECT: return json_is_object(v);
	case CONTROL_ARG_ANY:    return true;
	}
	return false;
}

static const struct control_arg *find_arg(const struct control_arg *spec,
					  const char *name)
{
	for (; spec && spec->name; spec++)
		if (!strcmp(spec->name, name))
			return spec;
	return NULL;
}

int control_check_args(const struct control_arg *spec, json_t *args,
		       char *err)
{
	const char *key;
	json_t *val;

	if (!json_is_object(args))
		return err_set(err, -EINVAL, "arguments must be an object");
	json_object_foreach(args, key, val) {
		const struct control_arg *a = find_arg(spec, key);
		if (!a)
			return err_set(err, -EINVAL,
				       "Parameter '%s' is unexpected", key);
		if (!arg_type_ok(a->type, val))
			return err_set(err, -EINVAL,
				       "Invalid parameter type for '%s', expected: %s",
				       key, arg_type_name(a->type));
	}
	for (; spec && spec->name; spec++)
		if (!spec->optional && !json_object_get(args, spec->name))
			return err_set(err, -EINVAL,
				       "Parameter '%s' is missing", spec->name);
	return 0;
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int control_parse_hex(const char *hex, uint8_t **out, size_t *len, char *err)
{
	size_t n = strlen(hex);
	uint8_t *p;

	if (n == 0)
		return err_set(err, -EINVAL, "hex data is empty");
	if (n % 2)
		return err_set(err, -EINVAL,
			       "hex data has an odd number of digits (%zu)", n);
	p = malloc(n / 2);
	if (!p)
		return err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i += 2) {
		int hi = hex_nibble(hex[i]), lo = hex_nibble(hex[i + 1]);
		if (hi < 0 || lo < 0) {
			free(p);
			return err_set(err, -EINVAL,
				       "hex data has a non-hex character at offset %zu",
				       hi < 0 ? i : i + 1);
		}
		p[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	*out = p;
	*len = n / 2;
	return 0;
}

int control_cmd_qmp_capabilities(struct control_call *call)
{
	json_t *enable = json_object_get(call->args, "enable");
	size_t i;
	json_t *cap;

	/* We advertise no capabilities, so asking for any is an error, as
	 * in QMP; negotiation itself is optional here. */
	json_array_foreach(enable, i, cap) {
		return err_set(call->err, -EINVAL,
			       "Capability '%s' not available",
			       json_is_string(cap) ? json_string_value(cap)
						   : "?");
	}
	return 0;
}

int control_cmd_query_commands(struct control_call *call)
{
	json_t *list = json_array();

	if (!list)
		return err_set(call->err, -ENOMEM, "out of memory");
	for (const struct control_cmd *c = call->table; c->name; c++)
		json_array_append_new(list, json_pack("{s:s}", "name", c->name));
	call->ret = list;
	return 0;
}

json_t *control_execute_msg(const struct control_cmd *table, void *opaque,
			    const char *text, size_t len,
			    control_after_fn *after)
{
	struct control_call call = { .opaque = opaque, .table = table };
	const struct control_cmd *cmd;
	json_error_t jerr;
	json_t *req, *id, *reply;
	const char *name;
	char msg[ERR_MAX + 64];

	*after = NULL;
	/* DECODE_ANY so that `42` is answered "must be an object" rather
	 * than with a confusing parse error. */
	req = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
			 &jerr);
	if (!req) {
		snprintf(msg, sizeof(msg), "JSON parse error: %s (column %d)",
			 jerr.text, jerr.column);
		return control_error_reply(NULL, msg, NULL);
	}
	id = json_is_object(req) ? json_object_get(req, "id") : NULL;
	if (control_check_request(req, &name, &call.args, call.err) < 0) {
		reply = control_error_reply(NULL, call.err, id);
		goto out;
	}
	cmd = control_find_cmd(table, name);
	if (!cmd) {
		snprintf(msg, sizeof(msg), "The command %s has not been found",
			 name);
		reply = control_error_reply("CommandNotFound", msg, id);
		goto out;
	}
	if (control_check_args(cmd->args, call.args, call.err) < 0) {
		reply = control_error_reply(NULL, call.err, id);
		goto out;
	}
	if (cmd->fn(&call) < 0) {
		json_decref(call.ret);
		if (!call.err[0])
			snprintf(call.err, sizeof(call.err), "%s failed", name);
		reply = control_error_reply(call.err_class, call.err, id);
		goto out;
	}
	reply = control_return_reply(call.ret, id);
	/* Only a command that was answered with success gets its follow-up. */
	*after = call.after_reply;
out:
	json_decref(call.args);
	json_decref(req);
	return reply;
}
