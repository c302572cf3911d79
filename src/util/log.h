/* log.h - one-line diagnostics on stderr, prefixed with the process role. */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stddef.h>

/* LOG_OFF (for log_set_level only): print nothing (the fuzz targets). */
enum log_level { LOG_OFF = -1, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
void log_set_prefix(const char *prefix);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * Errors that reach a user (control replies, CLI) carry a message.  Functions
 * that can fail for a user-visible reason take `char *err` of ERR_MAX bytes,
 * fill it and return a negative errno.
 */
#define ERR_MAX 256
int err_set(char *err, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Put "PREFIX: " (formatted) before the message already in @err; returns
 * @ret, as err_set does. */
int err_prefix(char *err, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
