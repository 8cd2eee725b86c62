/*
 * ff_privacy.h - status type and error record of the privacy library.
 *
 * privacy/ depends on libsodium and the C library only (see
 * docs/architecture.md), so it carries its own small status enum instead of
 * common/ff_status.h. The callers (coordinator/, client/) map it onto
 * ff_status at their seam. 0 means success, as everywhere in fedfuse.
 */
#ifndef FF_PRIVACY_H
#define FF_PRIVACY_H

#include <stddef.h>

#define FF_PRIVACY_MUST_USE __attribute__((warn_unused_result))

typedef enum ff_privacy_status {
    FF_PRIVACY_OK = 0,
    FF_PRIVACY_ERR_ARG,        /* an argument or configuration is invalid */
    FF_PRIVACY_ERR_NOMEM,      /* an allocation failed */
    FF_PRIVACY_ERR_FORMAT,     /* message bytes do not follow their format */
    FF_PRIVACY_ERR_AUTH,       /* a signature, AEAD tag or key check failed */
    FF_PRIVACY_ERR_SESSION,    /* a message of another round or session */
    FF_PRIVACY_ERR_STATE,      /* the call does not fit the protocol stage */
    FF_PRIVACY_ERR_PROTOCOL,   /* a peer broke the protocol rules */
    FF_PRIVACY_ERR_ABORTED,    /* too few parties left to finish safely */
    FF_PRIVACY_ERR_OVERFLOW,   /* the sum could wrap around the modulus */
    FF_PRIVACY_ERR_INFEASIBLE, /* no parameters meet the requirements */
    FF_PRIVACY_ERR_CRYPTO,     /* libsodium failed unexpectedly */
    FF_PRIVACY_STATUS_COUNT
} ff_privacy_status;

/* A status and its reason. Caller-owned; zero-initialise before use. */
typedef struct ff_privacy_error {
    ff_privacy_status status;
    char msg[320];
} ff_privacy_error;

/* Returns a short constant name for s ("ok", "auth", ...); never NULL. */
const char *ff_privacy_status_name(ff_privacy_status s);

/*
 * Records s and a printf-style reason in err (when err is not NULL) and
 * returns s. Thread-safe as long as err is not shared.
 */
ff_privacy_status ff_privacy_error_set(ff_privacy_error *err,
                                       ff_privacy_status s,
                                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Returns err's message, or the status name when it has none; never NULL. */
const char *ff_privacy_error_text(const ff_privacy_error *err);

#endif
