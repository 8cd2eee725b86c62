/*
 * ff_dgauss.h - exact sampler for the discrete Gaussian N_Z(0, sigma^2)
 * (pmf proportional to exp(-x^2 / (2 sigma^2)) on the integers), by the
 * rejection algorithm of Canonne-Kamath-Steinke 2020: Bernoulli(exp(-g))
 * from uniform integers, a discrete Laplace proposal of scale
 * t = floor(sigma) + 1, and an exact acceptance test. Only integer and
 * rational arithmetic is used (no floating point touches a sample), so the
 * output distribution is exact: no float leak of the kind Mironov 2012
 * describes.
 *
 * Randomness: a ChaCha20 key stream keyed with 32 bytes from libsodium's
 * randombytes_buf() for each call; the key and the buffered stream are
 * wiped with sodium_memzero before the call returns. Call sodium_init()
 * before the first sample. The samples are secret noise: do not log them.
 */
#ifndef FF_DGAUSS_H
#define FF_DGAUSS_H

#include <stddef.h>
#include <stdint.h>

#include "ff_privacy.h"

#define FF_DGAUSS_SIGMA2_MAX 1099511627776.0 /* 2^40: sigma <= 2^20 */
#define FF_DGAUSS_DEN_MAX 4294967296ull      /* 2^32 */
#define FF_DGAUSS_DOUBLE_BITS 20 /* a double sigma^2 is rounded up to a
                                    multiple of 2^-20 */

/* A prepared sampler: sigma^2 = num / den in lowest terms, t = floor(sigma)
 * + 1. Plain caller storage: fill it with ff_dgauss_init*; no cleanup. */
typedef struct ff_dgauss {
    uint64_t num;
    uint64_t den;
    uint64_t t;
} ff_dgauss;

/*
 * Prepares g for sigma^2 = num / den (num >= 1, 1 <= den <= 2^32,
 * num / den <= 2^40, and 2 t^2 num den < 2^127 after reducing the fraction).
 * Errors: FF_PRIVACY_ERR_ARG naming num or den. Caller owns g. Thread-safe.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_dgauss_init(ff_dgauss *g, uint64_t num, uint64_t den,
               ff_privacy_error *err);

/*
 * Prepares g for a sigma^2 given as a double (finite, > 0, <= 2^40). It is
 * rounded UP to the next multiple of 2^-FF_DGAUSS_DOUBLE_BITS (absolute error
 * below 9.6e-7), so the noise is never smaller than asked. Errors:
 * FF_PRIVACY_ERR_ARG naming sigma2. Caller owns g. Thread-safe.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_dgauss_init_double(ff_dgauss *g, double sigma2, ff_privacy_error *err);

/* The sigma^2 that g samples, as a double (for logs and accounting); NaN
 * when g is NULL or not prepared. */
double ff_dgauss_sigma2(const ff_dgauss *g);

/*
 * Draws one sample of N_Z(0, num/den) into *out. Errors: FF_PRIVACY_ERR_ARG
 * for a NULL or unprepared g or NULL out. Thread-safe (the random state
 * lives on the stack of the call).
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_dgauss_sample(const ff_dgauss *g, int64_t *out, ff_privacy_error *err);

/*
 * Draws n independent samples into out[0..n) from one freshly keyed
 * stream. Caller owns out. Errors: FF_PRIVACY_ERR_ARG for a NULL or
 * unprepared g, or NULL out with n > 0. Thread-safe.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_dgauss_sample_vec(const ff_dgauss *g, int64_t *out, size_t n,
                     ff_privacy_error *err);

#endif
