/*
 * migrate_report.c - `ferry migrate --wait`'s progress line and final
 * report, from query-migrate answers.
 *
 * Every field may be missing (an older or newer source, a status that
 * does not have it yet): a missing one is left out, never shown as 0.
 * Sizes and rates read in binary units (util/units.h), as the options
 * take them; QEMU's "mbps" field is 10^6 bits per second and is converted.
 */
#include "control/migrate_cli.h"
#include "util/units.h"

#include <stdarg.h>
#include <string.h>

#define MBIT 1e6 /* QEMU's "mbps": megabits, decimal */
#define PAGE_SIZE_DEFAULT 4096

static bool num(json_t *obj, const char *key, double *out)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_number(v))
		return false;
	*out = json_number_value(v);
	return true;
}

static const char *str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* snprintf that appends and never overruns, however small buf is. */
static void append(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strnlen(buf, len);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

static void fmt_ms(char *buf, size_t len, double ms)
{
	units_duration_ms(buf, len, ms);
}

/* The send rate now, in bytes/s: the source's own figure if it gives one. */
static bool send_rate(json_t *q, double *bps)
{
	json_t *ram = json_object_get(q, "ram");
	double mbps;

	if (num(json_object_get(q, "ferry"), "bandwidth-bytes-per-second", bps))
		return true;
	if (num(ram, "mbps", &mbps)) {
		*bps = mbps * MBIT / 8;
		return true;
	}
	return false;
}

static bool dirty_rate(json_t *q, double *bps)
{
	json_t *ram = json_object_get(q, "ram");
	double pages, page_size = PAGE_SIZE_DEFAULT;

	if (!num(ram, "dirty-pages-rate", &pages))
		return false;
	num(ram, "page-size", &page_size);
	*bps = pages * page_size;
	return true;
}

/* The round in progress: the source's "current-round", else the one
 * after the last finished (rounds are numbered from 0 and the list may
 * skip numbers). */
static bool current_round(json_t *q, double *round)
{
	json_t *rounds = json_object_get(json_object_get(q, "ferry"), "rounds");
	size_t n = json_array_size(rounds);

	/* The source says which round it sends, numbered as the report's. */
	if (num(json_object_get(q, "ferry"), "current-round", round))
		return true;
	if (json_is_array(rounds)) {
		if (!num(json_array_get(rounds, n - 1), "round", round))
			*round = n ? (double)n - 1 : -1;
		*round += 1;
		return true;
	}
	return num(json_object_get(q, "ram"), "dirty-sync-count", round);
}

void migrate_format_progress(json_t *q, char *buf, size_t len)
{
	json_t *ram = json_object_get(q, "ram");
	const char *status = str(q, "status");
	double v, rate = 0, remaining;
	bool have_rate;
	char t[UNITS_LEN];

	if (!len)
		return;
	buf[0] = '\0';
	append(buf, len, "%s", status ? status : "?");
	if (status && !strcmp(status, "device"))
		append(buf, len, " (guest paused)");
	else if (status && !strcmp(status, "postcopy-active"))
		append(buf, len, " (guest runs at the destination, pulling pages)");
	if (num(q, "total-time", &v)) {
		fmt_ms(t, sizeof(t), v);
		append(buf, len, " %s", t);
	}
	/* Still connecting and negotiating: no figure means anything yet. */
	if (status && !strcmp(status, "setup"))
		return;
	if (current_round(q, &v))
		append(buf, len, " | round %.0f", v);
	if (num(ram, "transferred", &v))
		append(buf, len, " | sent %s", units_size(t, sizeof(t), v));
	have_rate = send_rate(q, &rate);
	if (have_rate)
		append(buf, len, " at %s", units_rate(t, sizeof(t), rate));
	if (dirty_rate(q, &v))
		append(buf, len, " | dirty %s", units_rate(t, sizeof(t), v));
	if (num(ram, "remaining", &remaining)) {
		append(buf, len, " | left %s",
		       units_size(t, sizeof(t), remaining));
		if (have_rate && rate > 0 && status &&
		    !strcmp(status, "active")) {
			fmt_ms(t, sizeof(t), remaining / rate * 1000);
			append(buf, len, " (next round ~%s)", t);
		}
	}
	if (num(q, "expected-downtime", &v))
		append(buf, len, " | downtime ~%s",
		       units_duration_ms(t, sizeof(t), v));
	if (str(json_object_get(q, "ferry"), "not-converging"))
		append(buf, len, " | not converging: waiting for the rest to fit");
}

static void print_rounds(FILE *f, json_t *rounds)
{
	size_t i;
	json_t *r;

	json_array_foreach(rounds, i, r) {
		double n = (double)i, pages = 0, zero = 0, bytes = 0, dur = 0,
		       dirty, mbps;
		char t[UNITS_LEN];

		num(r, "round", &n);
		num(r, "pages", &pages);
		num(r, "zero-pages", &zero);
		num(r, "bytes", &bytes);
		fprintf(f, "    round %2.0f: %9.0f pages (%.0f zero) %10s",
			n, pages, zero, units_size(t, sizeof(t), bytes));
		if (num(r, "duration-ms", &dur)) {
			fmt_ms(t, sizeof(t), dur);
			fprintf(f, " in %8s", t);
		}
		/* Computed here when possible: exact, whatever "mbps" means. */
		if (dur > 0)
			fprintf(f, " %12s",
				units_rate(t, sizeof(t), bytes / (dur / 1000)));
		else if (num(r, "mbps", &mbps))
			fprintf(f, " %12s",
				units_rate(t, sizeof(t), mbps * MBIT / 8));
		if (num(r, "dirty-pages", &dirty))
			fprintf(f, ", %.0f dirty at its start", dirty);
		fputc('\n', f);
	}
}

void migrate_print_report(FILE *f, json_t *q)
{
	json_t *ram = json_object_get(q, "ram");
	json_t *fe = json_object_get(q, "ferry");
	json_t *rounds = json_object_get(fe, "rounds");
	const char *status = str(q, "status"), *s;
	double total = -1, v, w;
	bool have;
	char t[UNITS_LEN], t2[UNITS_LEN], t3[UNITS_LEN];

	fprintf(f, "migration %s\n", status ? status : "(no status)");
	if (num(q, "total-time", &total)) {
		fmt_ms(t, sizeof(t), total);
		fprintf(f, "  total time:   %s\n", t);
	}
	/* Microseconds when given: a good downtime is a few ms. */
	have = num(fe, "downtime-us", &v);
	if (!have && num(q, "downtime", &v)) {
		v *= 1000;
		have = true;
	}
	if (have) {
		s = str(fe, "downtime-observed-by");
		fprintf(f, "  downtime:     %s%s%s%s\n",
			units_duration_ms(t, sizeof(t), v / 1000),
			s ? " (as seen by the " : "", s ? s : "", s ? ")" : "");
	}
	if (migrate_exit_status(q) == MIGRATE_EXIT_DOWNTIME_EXCEEDED &&
	    num(fe, "downtime-limit-ms", &w))
		fprintf(f, "  warning:      the switch-over was forced (switchover 'force'): "
			   "the pause exceeded the %s downtime limit\n",
			units_duration_ms(t, sizeof(t), w));
	if (num(q, "setup-time", &v)) {
		fmt_ms(t, sizeof(t), v);
		fprintf(f, "  setup time:   %s\n", t);
	}
	json_t *tls = json_object_get(fe, "tls");
	if (json_is_true(json_object_get(tls, "enabled")))
		fprintf(f, "  encryption:   %s %s, %s (peer %s)\n",
			str(tls, "version") ?: "?", str(tls, "cipher") ?: "?",
			str(tls, "auth") ?: "?", str(tls, "peer") ?: "?");
	else if (json_is_false(json_object_get(tls, "enabled")))
		fprintf(f, "  encryption:   none (plain TCP)\n");
	if (num(ram, "transferred", &v)) {
		fprintf(f, "  data sent:    %s", units_size(t, sizeof(t), v));
		if (num(ram, "total", &w))
			fprintf(f, " for %s of guest RAM",
				units_size(t2, sizeof(t2), w));
		fputc('\n', f);
		if (total > 0)
			fprintf(f, "  throughput:   %s (average)\n",
				units_rate(t, sizeof(t), v / (total / 1000)));
	}
	if (num(ram, "normal", &v) && num(ram, "duplicate", &w))
		fprintf(f, "  pages:        %.0f sent, %.0f zero (not sent)\n",
			v, w);
	/* Only when asked for: "none" would be noise in every report. */
	json_t *comp = json_object_get(fe, "compression");
	s = str(comp, "method");
	if (s && strcmp(s, "none") && num(comp, "bytes-before", &v) &&
	    num(comp, "bytes-after", &w)) {
		double raw = 0;
		num(comp, "raw-batches", &raw);
		fprintf(f, "  compression:  %s, %s of pages sent as %s (ratio %.2f)",
			s, units_size(t, sizeof(t), v), units_size(t2, sizeof(t2), w),
			w > 0 ? v / w : 1.0);
		if (raw > 0)
			fprintf(f, ", %.0f batches sent raw (did not shrink)", raw);
		fputc('\n', f);
	}
	/* Only with page channels: how the pages spread over them. */
	json_t *chans = json_object_get(fe, "channels");
	json_t *per = json_object_get(chans, "per-channel");
	if (json_array_size(per) > 1) {
		fprintf(f, "  channels:     %zu, pages per channel:", json_array_size(per));
		for (size_t i = 0; i < json_array_size(per); i++)
			if (num(json_array_get(per, i), "pages", &v))
				fprintf(f, " %.0f", v);
		fputc('\n', f);
	}
	/* Only when post-copy ran: how the missing pages came. */
	json_t *pcj = json_object_get(fe, "postcopy");
	if (pcj && num(pcj, "missing-pages", &v)) {
		double pushed = 0, req = 0, hits = 0, ms = -1;
		num(pcj, "pages-pushed", &pushed);
		num(pcj, "pages-requested", &req);
		num(pcj, "prepage-hits", &hits);
		fprintf(f, "  post-copy:    %.0f pages the destination lacked: %.0f pushed, "
			"%.0f requested (%.0f already pushed)", v, pushed, req, hits);
		if (num(pcj, "duration-ms", &ms))
			fprintf(f, ", in %s", units_duration_ms(t, sizeof(t), ms));
		fputc('\n', f);
	}
	/* Only when auto-converge was on: how much the guest paid. */
	json_t *thr = json_object_get(fe, "throttle");
	if (json_is_true(json_object_get(thr, "auto-converge"))) {
		double steps = 0;
		num(thr, "steps", &steps);
		if (num(thr, "max-percentage", &v) && v > 0 &&
		    num(thr, "throttled-ms", &w))
			fprintf(f, "  throttle:     guest slowed to %.0f%% of its vCPU time "
				"(%.0f step%s), %s of vCPU time taken\n", 100 - v,
				steps, steps == 1 ? "" : "s",
				units_duration_ms(t, sizeof(t), w));
		else
			fprintf(f, "  throttle:     auto-converge on, never needed\n");
	}
	json_t *dl = json_object_get(fe, "dirty-limit");
	if (json_is_object(dl)) {
		double lim = 0, ms = 0, top = 0;
		json_t *vc = json_object_get(dl, "vcpus"), *e;
		size_t i;
		json_array_foreach(vc, i, e) {
			double p;
			if (num(e, "throttle-percentage", &p) && p > top)
				top = p;
		}
		num(dl, "limit-bytes-per-second", &lim);
		num(thr, "throttled-ms", &ms);
		if (ms > 0)
			fprintf(f, "  dirty limit:  each vCPU held to %s of dirtied memory "
				"(last share up to %.0f%%), %s of vCPU time taken\n",
				units_rate(t, sizeof(t), lim), top,
				units_duration_ms(t2, sizeof(t2), ms));
		else
			fprintf(f, "  dirty limit:  on, never needed\n");
	}
	/* Only when asked for, as QEMU's info migrate. */
	json_t *xb = json_object_get(q, "xbzrle-cache");
	if (json_is_object(xb) && num(xb, "pages", &v)) {
		double bytes = 0, miss = 0, rate = 0, over = 0, size = 0, resent = 0;
		num(xb, "bytes", &bytes);
		num(xb, "cache-miss", &miss);
		num(xb, "cache-miss-rate", &rate);
		num(xb, "overflow", &over);
		num(xb, "cache-size", &size);
		json_t *fx = json_object_get(fe, "xbzrle");
		num(fx, "resent-pages", &resent);
		if (json_is_false(json_object_get(fx, "agreed")))
			fprintf(f, "  xbzrle:       not taken by the destination: resent pages "
				   "went whole\n");
		else
			fprintf(f, "  xbzrle:       %.0f of %.0f resent pages as deltas, %s for "
				   "%s; %s cache, %.0f misses (%.0f%%), %.0f overflow\n",
				v, resent, units_size(t, sizeof(t), bytes),
				units_size(t2, sizeof(t2), v * 4096),
				units_size(t3, sizeof(t3), size), miss, rate * 100, over);
	}
	if (json_is_array(rounds)) {
		/* A long migration lists only its latest rounds. */
		size_t listed = json_array_size(rounds);
		if (num(ram, "dirty-sync-count", &v) && v > (double)listed)
			fprintf(f, "  rounds:       %.0f (the last %zu listed)\n", v,
				listed);
		else
			fprintf(f, "  rounds:       %zu\n", listed);
		print_rounds(f, rounds);
	} else if (num(ram, "dirty-sync-count", &v)) {
		fprintf(f, "  rounds:       %.0f\n", v);
	}
	s = str(fe, "convergence-reason");
	if (s && *s)
		fprintf(f, "  convergence:  %s\n", s);
	s = str(q, "error-desc");
	if (s)
		fprintf(f, "  error:        %s\n", s);
	/* After COMMIT the one thing an operator must know: who runs it. */
	s = str(json_object_get(fe, "handover"), "outcome");
	if (s && !strcmp(s, "unknown"))
		fprintf(f, "  hand-over:    COMMIT sent, never confirmed: the guest may run at the "
			   "destination; it stays paused here (postmigrate-unknown)\n");
	else if (s && !strcmp(s, "destination-failed"))
		fprintf(f, "  hand-over:    the destination failed after COMMIT; the guest "
			   "runs here again\n");
}

int migrate_exit_status(json_t *q)
{
	json_t *fe = json_object_get(q, "ferry");
	const char *status = str(q, "status");

	if (!status || strcmp(status, "completed"))
		return MIGRATE_EXIT_FAILED;
	if (json_is_true(json_object_get(fe, "switchover-forced")) &&
	    json_is_true(json_object_get(fe, "downtime-exceeded")))
		return MIGRATE_EXIT_DOWNTIME_EXCEEDED;
	return MIGRATE_EXIT_OK;
}

bool migrate_status_final(const char *status)
{
	return status && (!strcmp(status, "completed") ||
			  !strcmp(status, "failed") ||
			  !strcmp(status, "cancelled"));
}
