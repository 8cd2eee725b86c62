/*
 * ff_shamir.h - t-of-n Shamir secret sharing over GF(p), p = 2^31 + 11.
 *
 * A secret of L bytes is read as one big-endian integer and cut into 31-bit
 * limbs, the last limb holding the lowest 31 bits and the first one the bits
 * left over at the top. Each limb is shared with its own random polynomial of
 * degree t-1. A share is the polynomial values at the holder's x, 4 bytes
 * big-endian per limb, so a share of L bytes is ff_shamir_share_size(L)
 * bytes. This layout reproduces the published FCP known-answer vector.
 *
 * Plain Shamir cannot tell a corrupt share from a good one: callers verify
 * the reconstructed secret against a public key or commitment.
 */
#ifndef FF_SHAMIR_H
#define FF_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#include "ff_privacy.h"

#define FF_SHAMIR_PRIME 2147483659u /* 2^31 + 11 */
#define FF_SHAMIR_MAX_SECRET 64     /* bytes */
#define FF_SHAMIR_MAX_SHARES 65536

/* Bytes of one share of a secret of secret_len bytes (4 per 31-bit limb). */
size_t ff_shamir_share_size(size_t secret_len);

/*
 * Splits secret (secret_len bytes, 1..FF_SHAMIR_MAX_SECRET) into count shares
 * with threshold t (2 <= t <= count): share i is evaluated at xs[i] (distinct,
 * 1 <= x < p) and written to shares + i * ff_shamir_share_size(secret_len).
 * Randomness comes from libsodium's CSPRNG (call sodium_init() first).
 * Caller owns every buffer. Errors: FF_PRIVACY_ERR_ARG naming the bad value.
 * Thread-safe.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_shamir_split(const uint8_t *secret, size_t secret_len, uint32_t t,
                const uint32_t *xs, size_t count, uint8_t *shares,
                ff_privacy_error *err);

/*
 * Rebuilds a secret of secret_len bytes from exactly count shares (count is
 * the threshold t the secret was split with; extra shares are the caller's
 * choice to leave out). shares holds the count shares back to back, share i
 * taken at xs[i]. Errors: FF_PRIVACY_ERR_ARG (duplicate or zero x, too few
 * shares), FF_PRIVACY_ERR_FORMAT (a share value >= p, or a result that does
 * not fit secret_len bytes: some share is corrupt). Caller owns all buffers;
 * secret is wiped on failure. Thread-safe.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_shamir_combine(const uint32_t *xs, const uint8_t *shares, size_t count,
                  uint8_t *secret, size_t secret_len, ff_privacy_error *err);

/*
 * Writes the Lagrange coefficients at 0 for the count points xs into coef
 * (values in [0, p)). Errors: FF_PRIVACY_ERR_ARG for a zero, out-of-field or
 * repeated x. Caller owns both arrays. Thread-safe.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_shamir_lagrange_at_zero(const uint32_t *xs, size_t count, uint32_t *coef,
                           ff_privacy_error *err);

#endif
