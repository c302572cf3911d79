#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>

static enum log_level current_level = LOG_INFO;
static char current_prefix[32] = "ferry";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_set_level(enum log_level level) { current_level = level; }

void log_set_prefix(const char *prefix)
{
	snprintf(current_prefix, sizeof(current_prefix), "%s", prefix);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	va_list ap;

	if (level > current_level)
		return;
	/* One fprintf per line under a lock so vCPU threads never interleave. */
	char line[1024];
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s: %s: %s\n", current_prefix, names[level], line);
	pthread_mutex_unlock(&log_lock);
}

int err_set(char *err, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err, ERR_MAX, fmt, ap);
		va_end(ap);
	}
	return ret;
}

int err_prefix(char *err, int ret, const char *fmt, ...)
{
	char prefix[ERR_MAX], msg[ERR_MAX];
	va_list ap;

	if (!err)
		return ret;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof(msg), "%s", err);
	return err_set(err, ret, "%s: %s", prefix, msg);
}
