/*
 * ff_status.h - the one status type of fedfuse, and a caller-owned error
 * record that carries a human-readable reason beside it.
 *
 * Every fallible function returns ff_status (FF_OK == 0) and, when given a
 * non-NULL ff_error, fills it with a message that names what was wrong.
 */
#ifndef FF_STATUS_H
#define FF_STATUS_H

#include <stddef.h>

#define FF_MUST_USE __attribute__((warn_unused_result))
#define FF_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

typedef enum ff_status {
    FF_OK = 0,
    FF_ERR_NOMEM,       /* an allocation failed */
    FF_ERR_IO,          /* a file or socket could not be read or written */
    FF_ERR_FORMAT,      /* input bytes do not follow their format */
    FF_ERR_ARG,         /* an argument or option is out of range */
    FF_ERR_SHAPE,       /* sizes or shapes do not match */
    FF_ERR_NONFINITE,   /* a NaN or Inf where numbers must be finite */
    FF_ERR_NOT_FOUND,   /* the named thing does not exist */
    FF_ERR_DB,          /* the registry database failed */
    FF_ERR_RPC,         /* a remote call failed */
    FF_ERR_REJECTED,    /* a peer refused the request */
    FF_ERR_STATE,       /* the request does not fit the current state */
    FF_ERR_TOO_LARGE,   /* a length exceeds its stated maximum */
    FF_ERR_DIGEST,      /* a digest does not match its content */
    FF_ERR_TIMEOUT,     /* a deadline passed */
    FF_ERR_CONFIG,      /* a configuration file or value is invalid */
    FF_ERR_INTERNAL,    /* a library we use failed unexpectedly */
    FF_ERR_AUTH,        /* a certificate or signature did not verify */
    FF_STATUS_COUNT
} ff_status;

/* A status and its reason. Caller-owned; zero-initialise before use. */
typedef struct ff_error {
    ff_status status;
    char msg[512];
} ff_error;

/* Returns a short constant name for s ("ok", "io", ...); never NULL. */
const char *ff_status_name(ff_status s);

/*
 * Records status s and a printf-style reason in err (when err is not NULL)
 * and returns s, so that callers can write `return ff_error_set(...)`.
 * Overwrites any reason err held before; use ff_error_wrap to add context.
 */
ff_status ff_error_set(ff_error *err, ff_status s, const char *fmt, ...)
    FF_PRINTF(3, 4);

/*
 * Prefixes err's message with context ("loading site.ini: ...") and returns
 * err->status, or fallback when err is NULL or holds no status yet.
 */
ff_status ff_error_wrap(ff_error *err, ff_status fallback, const char *fmt, ...)
    FF_PRINTF(3, 4);

/* Returns the message of err, or the status name when no message is set. */
const char *ff_error_text(const ff_error *err);

#endif
