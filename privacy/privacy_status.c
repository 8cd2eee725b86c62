/* privacy_status.c - names and reasons of ff_privacy_status. */
#include "ff_privacy.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const status_names[FF_PRIVACY_STATUS_COUNT] = {
    [FF_PRIVACY_OK] = "ok",
    [FF_PRIVACY_ERR_ARG] = "argument",
    [FF_PRIVACY_ERR_NOMEM] = "out of memory",
    [FF_PRIVACY_ERR_FORMAT] = "format",
    [FF_PRIVACY_ERR_AUTH] = "authentication",
    [FF_PRIVACY_ERR_SESSION] = "session",
    [FF_PRIVACY_ERR_STATE] = "state",
    [FF_PRIVACY_ERR_PROTOCOL] = "protocol",
    [FF_PRIVACY_ERR_ABORTED] = "aborted",
    [FF_PRIVACY_ERR_OVERFLOW] = "overflow",
    [FF_PRIVACY_ERR_INFEASIBLE] = "infeasible",
    [FF_PRIVACY_ERR_CRYPTO] = "crypto",
};

const char *ff_privacy_status_name(ff_privacy_status s)
{
    if ((unsigned)s >= FF_PRIVACY_STATUS_COUNT)
        return "unknown";
    return status_names[s];
}

ff_privacy_status ff_privacy_error_set(ff_privacy_error *err,
                                       ff_privacy_status s,
                                       const char *fmt, ...)
{
    if (err == NULL)
        return s;
    err->status = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return s;
}

const char *ff_privacy_error_text(const ff_privacy_error *err)
{
    if (err == NULL)
        return "no error record";
    if (err->msg[0] != '\0')
        return err->msg;
    return ff_privacy_status_name(err->status);
}
