#include "ff_status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[FF_STATUS_COUNT] = {
    [FF_OK] = "ok",
    [FF_ERR_NOMEM] = "out of memory",
    [FF_ERR_IO] = "i/o error",
    [FF_ERR_FORMAT] = "malformed input",
    [FF_ERR_ARG] = "invalid argument",
    [FF_ERR_SHAPE] = "shape mismatch",
    [FF_ERR_NONFINITE] = "non-finite value",
    [FF_ERR_NOT_FOUND] = "not found",
    [FF_ERR_DB] = "database error",
    [FF_ERR_RPC] = "rpc error",
    [FF_ERR_REJECTED] = "rejected",
    [FF_ERR_STATE] = "wrong state",
    [FF_ERR_TOO_LARGE] = "too large",
    [FF_ERR_DIGEST] = "digest mismatch",
    [FF_ERR_TIMEOUT] = "timeout",
    [FF_ERR_CONFIG] = "invalid configuration",
    [FF_ERR_INTERNAL] = "internal error",
    [FF_ERR_AUTH] = "auth",
};

const char *
ff_status_name(ff_status s)
{
    if ((int)s < 0 || s >= FF_STATUS_COUNT)
        return "unknown status";
    return status_names[s];
}

ff_status
ff_error_set(ff_error *err, ff_status s, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return s;
    err->status = s;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return s;
}

ff_status
ff_error_wrap(ff_error *err, ff_status fallback, const char *fmt, ...)
{
    char prefix[256];
    char old[sizeof(err->msg)];
    va_list ap;

    if (err == NULL)
        return fallback;
    if (err->status == FF_OK)
        err->status = fallback;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* Build "prefix: old" by parts; truncation of a long reason is fine. */
    size_t n = strlen(prefix);
    if (n > sizeof(err->msg) - 3)
        n = sizeof(err->msg) - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    n += 2;
    const char *tail = old[0] ? old : ff_status_name(err->status);
    size_t m = strlen(tail);
    if (m > sizeof(err->msg) - 1 - n)
        m = sizeof(err->msg) - 1 - n;
    memcpy(err->msg + n, tail, m);
    err->msg[n + m] = '\0';
    return err->status;
}

const char *
ff_error_text(const ff_error *err)
{
    if (err == NULL)
        return "unknown error";
    if (err->msg[0] != '\0')
        return err->msg;
    return ff_status_name(err->status);
}
