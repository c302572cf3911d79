/*
 * cmdline.c - the multiboot command line: space-separated key=value.
 *
 * Parsed at CPL 3 (fast).  A first word without '=' is skipped: QEMU and
 * GRUB put the kernel's path there.  Anything else unknown is an error
 * (exit code 2), so that a typo in a test never runs the wrong workload.
 */
#include "guest.h"

struct word {
	const char *p;
	size_t n;
};

static bool word_is(struct word w, const char *s)
{
	return strlen(s) == w.n && !strncmp(w.p, s, w.n);
}

/* Decimal or 0x hex, then an optional K/M/G/T (binary) suffix if allowed. */
static bool parse_num(struct word w, bool suffix, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	unsigned base = 10;

	if (w.n > 2 && w.p[0] == '0' && (w.p[1] == 'x' || w.p[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i == w.n)
		return false;
	for (; i < w.n; i++) {
		char c = w.p[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			break;
		if (v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	if (i < w.n) {
		unsigned shift;

		if (!suffix || i + 1 != w.n)
			return false;
		switch (w.p[i] | 0x20) {
		case 'k': shift = 10; break;
		case 'm': shift = 20; break;
		case 'g': shift = 30; break;
		case 't': shift = 40; break;
		default: return false;
		}
		if (v > (UINT64_MAX >> shift))
			return false;
		v <<= shift;
	}
	*out = v;
	return true;
}

static int pick(struct word w, const char *const *names, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (word_is(w, names[i]))
			return (int)i;
	return -1;
}

static const char *const workloads[] = { "idle", "dirty", "exit", "fault",
					  "qemuinfo" };
static const char *const patterns[] = { "seq", "random", "hot" };
static const char *const fills[] = { "counter", "random", "zero" };

const char *workload_name(enum workload w) { return workloads[w]; }
const char *pattern_name(enum pattern p) { return patterns[p]; }
const char *fill_name(enum fill f) { return fills[f]; }

static void defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->workload = WL_IDLE;
	c->wss = 64 * MIB;
	c->pattern = PAT_SEQ;
	c->fill = FILL_COUNTER;
	c->verify_ms = 1000;
	c->heartbeat_us = 1000;
}

/**
 * cmdline_parse() - fill @c from the command line @s.
 * Return: 0, or -1 with a message in @err.
 */
int cmdline_parse(const char *s, struct config *c, char *err, size_t errsz)
{
	bool first = true;

	defaults(c);
	for (;;) {
		struct word key, val;
		const char *eq;
		uint64_t v = 0;
		int i = 0;
		bool ok;

		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			return 0;
		key.p = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
		key.n = (size_t)(s - key.p);
		for (eq = key.p; eq < s && *eq != '='; eq++)
			;
		if (eq == s) {
			if (first) { /* the kernel's path */
				first = false;
				continue;
			}
			snprintf_(err, errsz, "'%.*s': expected key=value",
				  (int)key.n, key.p);
			return -1;
		}
		first = false;
		val.p = eq + 1;
		val.n = (size_t)(s - val.p);
		key.n = (size_t)(eq - key.p);

		if (word_is(key, "workload")) {
			ok = (i = pick(val, workloads, ARRAY_SIZE(workloads))) >= 0;
			c->workload = (enum workload)i;
		} else if (word_is(key, "pattern")) {
			ok = (i = pick(val, patterns, ARRAY_SIZE(patterns))) >= 0;
			c->pattern = (enum pattern)i;
		} else if (word_is(key, "fill")) {
			ok = (i = pick(val, fills, ARRAY_SIZE(fills))) >= 0;
			c->fill = (enum fill)i;
		} else if (word_is(key, "wss")) {
			ok = parse_num(val, true, &v) && v >= PAGE_SIZE;
			c->wss = v & ~(PAGE_SIZE - 1);
		} else if (word_is(key, "rate")) {
			ok = parse_num(val, false, &v);
			c->rate = v;
		} else if (word_is(key, "verify")) {
			ok = parse_num(val, false, &v) && v <= 1;
			c->verify = v;
		} else if (word_is(key, "verify_ms")) {
			ok = parse_num(val, false, &v) && v > 0;
			c->verify_ms = v;
		} else if (word_is(key, "heartbeat_us")) {
			ok = parse_num(val, false, &v);
			c->heartbeat_us = v;
		} else if (word_is(key, "seconds")) {
			ok = parse_num(val, false, &v);
			c->seconds = v;
		} else if (word_is(key, "exit_on_error")) {
			ok = parse_num(val, false, &v) && v <= 1;
			c->exit_on_error = v;
		} else if (word_is(key, "corrupt")) {
			ok = parse_num(val, false, &v);
			c->corrupt = v;
		} else if (word_is(key, "cpus")) {
			ok = parse_num(val, false, &v) && v > 0;
			c->want_cpus = v;
		} else if (word_is(key, "mem")) {
			ok = parse_num(val, true, &v) && v > 0;
			c->want_mem = v;
		} else if (word_is(key, "mods")) {
			ok = parse_num(val, false, &v);
			c->want_mods = v;
		} else if (word_is(key, "mod_len")) {
			ok = parse_num(val, false, &v);
			c->mod_len = v;
		} else if (word_is(key, "mod_fnv")) {
			ok = parse_num(val, false, &v) && v <= 0xffffffffu;
			c->mod_fnv = v;
		} else if (word_is(key, "mod_arg")) {
			ok = val.n > 0;
			c->mod_arg = val.p;
			c->mod_arg_len = val.n;
		} else if (word_is(key, "code")) {
			ok = parse_num(val, false, &v) && v <= 0xffffffffu;
			c->exit_code = (uint32_t)v;
		} else {
			snprintf_(err, errsz, "unknown key '%.*s'", (int)key.n,
				  key.p);
			return -1;
		}
		if (!ok) {
			snprintf_(err, errsz, "bad value for %.*s: '%.*s'",
				  (int)key.n, key.p, (int)val.n, val.p);
			return -1;
		}
	}
}
