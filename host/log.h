/* Logging for the host and, through ios_handler.log, for plugins.
 * One line per call, written with a single write(2) so lines from several
 * processes sharing stderr never interleave mid-line. */
#ifndef IOSERVE_LOG_H
#define IOSERVE_LOG_H

#include <stdarg.h>

#include "ioserve/plugin.h"

/* Lines above this level are dropped. */
void log_set_level(enum ios_log_level level);
enum ios_log_level log_get_level(void);

/* "error", "warn", "info", "debug", indexed by enum ios_log_level; NULL
 * after the last (the names log_level accepts, and each line shows). */
extern const char *const log_level_names[];

/* "2026-11-26T13:43:35.123Z [info] [pid 123] message[: strerror(err)]" */
void log_msg(enum ios_log_level level, int err, const char *fmt, ...)
    IOS_PRINTF(3, 4);
void log_vmsg(enum ios_log_level level, int err, const char *fmt, va_list ap);

#define log_error(err, ...) log_msg(IOS_LOG_ERROR, (err), __VA_ARGS__)
#define log_warn(err, ...) log_msg(IOS_LOG_WARN, (err), __VA_ARGS__)
#define log_info(...) log_msg(IOS_LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_msg(IOS_LOG_DEBUG, 0, __VA_ARGS__)

#endif
