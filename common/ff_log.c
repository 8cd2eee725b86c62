#include "ff_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static char log_role[32] = "fedfuse";
static _Thread_local char log_context[96];
static int log_level = -1;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void
ff_log_set_role(const char *role)
{
    pthread_mutex_lock(&log_lock);
    snprintf(log_role, sizeof(log_role), "%s", role ? role : "");
    pthread_mutex_unlock(&log_lock);
}

void
ff_log_set_context(const char *context)
{
    snprintf(log_context, sizeof(log_context), "%s", context ? context : "");
}

int
ff_log_level_parse(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error",
                                        "off"};

    for (int i = 0; name && i < 5; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    return -1;
}

void
ff_log_set_level(ff_log_level level)
{
    log_level = (int)level;
}

int
ff_log_enabled(ff_log_level level)
{
    if (log_level < 0) {
        int env = ff_log_level_parse(getenv("FEDFUSE_LOG"));
        log_level = env >= 0 ? env : FF_LOG_INFO;
    }
    return (int)level >= log_level && level < FF_LOG_OFF;
}

void
ff_log_write(ff_log_level level, const char *fmt, ...)
{
    char stamp[40], body[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&log_lock);
    if (log_context[0])
        fprintf(stderr, "%s.%03ldZ %d %s %s [%s] %s\n", stamp,
                ts.tv_nsec / 1000000, (int)getpid(), log_role,
                level_names[level], log_context, body);
    else
        fprintf(stderr, "%s.%03ldZ %d %s %s %s\n", stamp,
                ts.tv_nsec / 1000000, (int)getpid(), log_role,
                level_names[level], body);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

void
ff_metric(const char *event, const char *fmt, ...)
{
    char body[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    printf("METRIC %s %s\n", event, body);
    fflush(stdout);
    pthread_mutex_unlock(&log_lock);
}
