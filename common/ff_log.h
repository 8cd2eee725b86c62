/*
 * ff_log.h - level-gated logging for fedfuse processes.
 *
 * Human log lines go to stderr in one fixed format:
 *   2026-12-03T15:58:01.123Z 4242 coordinator WARN [round=3] message
 * The role ("coordinator", "site", ...) and the context ("round=3",
 * "site=hospital-a") are set in one place per process or thread and are
 * added by the logger, never by callers.
 *
 * Machine-readable metrics are separate: ff_metric() writes one line
 *   METRIC <event> key=value key=value ...
 * to stdout, so that scripts read stdout and people read stderr.
 *
 * Thread-safe: each line is written with one call.
 */
#ifndef FF_LOG_H
#define FF_LOG_H

#include "ff_status.h"

typedef enum ff_log_level {
    FF_LOG_DEBUG = 0,
    FF_LOG_INFO,
    FF_LOG_WARN,
    FF_LOG_ERROR,
    FF_LOG_OFF
} ff_log_level;

/* Sets the process role printed on every line (copied; NULL clears). */
void ff_log_set_role(const char *role);

/* Sets this thread's context printed in brackets (copied; NULL clears). */
void ff_log_set_context(const char *context);

/* Lines below this level are dropped. Default FF_LOG_INFO, or the level
 * named by the environment variable FEDFUSE_LOG (debug|info|warn|error|off). */
void ff_log_set_level(ff_log_level level);

/* Parses "debug", "info", "warn", "error" or "off"; returns -1 otherwise. */
int ff_log_level_parse(const char *name);

/* Returns nonzero when a line at level would be written. */
int ff_log_enabled(ff_log_level level);

/* Writes one line at level. Use the macros below. */
void ff_log_write(ff_log_level level, const char *fmt, ...) FF_PRINTF(2, 3);

#define FF_LOG(level, ...)                                                 \
    do {                                                                   \
        if (ff_log_enabled(level))                                         \
            ff_log_write(level, __VA_ARGS__);                              \
    } while (0)
#define FF_DEBUG(...) FF_LOG(FF_LOG_DEBUG, __VA_ARGS__)
#define FF_INFO(...) FF_LOG(FF_LOG_INFO, __VA_ARGS__)
#define FF_WARN(...) FF_LOG(FF_LOG_WARN, __VA_ARGS__)
#define FF_ERROR(...) FF_LOG(FF_LOG_ERROR, __VA_ARGS__)

/* Writes "METRIC event k=v ..." to stdout and flushes; fmt gives the
 * key=value part. */
void ff_metric(const char *event, const char *fmt, ...) FF_PRINTF(2, 3);

#endif
