/* shamir.c - Shamir secret sharing over GF(2^31 + 11); see ff_shamir.h. */
#include "ff_shamir.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define LIMB_BITS 31u
#define MAX_LIMBS ((FF_SHAMIR_MAX_SECRET * 8 + LIMB_BITS - 1) / LIMB_BITS)

static const uint64_t P = FF_SHAMIR_PRIME;

static size_t limb_count(size_t secret_len)
{
    return (secret_len * 8 + LIMB_BITS - 1) / LIMB_BITS;
}

size_t ff_shamir_share_size(size_t secret_len)
{
    return 4 * limb_count(secret_len);
}

/* Field helpers: values are kept in [0, p). */
static uint32_t mulmod(uint32_t a, uint32_t b)
{
    return (uint32_t)(((uint64_t)a * b) % P);
}

static uint32_t powmod(uint32_t base, uint64_t e)
{
    uint32_t r = 1;
    while (e != 0) {
        if (e & 1)
            r = mulmod(r, base);
        base = mulmod(base, base);
        e >>= 1;
    }
    return r;
}

static uint32_t invmod(uint32_t a)
{
    return powmod(a, P - 2); /* Fermat: a^(p-2) = a^-1 */
}

/*
 * Reads the secret as a big-endian integer into limbs, limbs[nl-1] holding
 * the lowest 31 bits. Bit i of the integer (0 = least significant) goes to
 * limb nl-1-i/31, bit i%31.
 */
static void secret_to_limbs(const uint8_t *s, size_t len, uint32_t *limbs,
                            size_t nl)
{
    memset(limbs, 0, nl * sizeof *limbs);
    for (size_t bit = 0; bit < len * 8; bit++) {
        uint32_t v = (s[len - 1 - bit / 8] >> (bit % 8)) & 1u;
        limbs[nl - 1 - bit / LIMB_BITS] |= v << (bit % LIMB_BITS);
    }
}

/* The inverse of secret_to_limbs; fails when a limb has bits beyond len. */
static int limbs_to_secret(const uint32_t *limbs, size_t nl, uint8_t *s,
                           size_t len)
{
    memset(s, 0, len);
    for (size_t bit = 0; bit < nl * LIMB_BITS; bit++) {
        uint32_t limb = limbs[nl - 1 - bit / LIMB_BITS];
        uint32_t v = (limb >> (bit % LIMB_BITS)) & 1u;
        if (bit >= len * 8) {
            if (v != 0)
                return -1;
            continue;
        }
        s[len - 1 - bit / 8] |= (uint8_t)(v << (bit % 8));
    }
    for (size_t i = 0; i < nl; i++)
        if (limbs[i] >> LIMB_BITS)
            return -1;
    return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

/* Checks that xs are distinct field elements other than 0. */
static ff_privacy_status check_xs(const uint32_t *xs, size_t count,
                                  ff_privacy_error *err)
{
    for (size_t i = 0; i < count; i++) {
        if (xs[i] == 0 || xs[i] >= P)
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                "shamir: x=%u is not a nonzero field element", xs[i]);
        for (size_t j = 0; j < i; j++)
            if (xs[i] == xs[j])
                return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                    "shamir: x=%u appears twice", xs[i]);
    }
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_shamir_split(const uint8_t *secret, size_t secret_len,
                                  uint32_t t, const uint32_t *xs, size_t count,
                                  uint8_t *shares, ff_privacy_error *err)
{
    if (secret_len == 0 || secret_len > FF_SHAMIR_MAX_SECRET)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "shamir: secret of %zu bytes (1..%d allowed)", secret_len,
            FF_SHAMIR_MAX_SECRET);
    if (t < 2 || t > count || count > FF_SHAMIR_MAX_SHARES)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "shamir: threshold %u with %zu shares (need 2 <= t <= shares)",
            t, count);
    ff_privacy_status st = check_xs(xs, count, err);
    if (st != FF_PRIVACY_OK)
        return st;

    /* one polynomial per limb: coef[0] = limb, the rest uniform in GF(p) */
    size_t nl = limb_count(secret_len), ss = ff_shamir_share_size(secret_len);
    uint32_t limbs[MAX_LIMBS];
    uint32_t coef[64];
    secret_to_limbs(secret, secret_len, limbs, nl);
    for (size_t l = 0; l < nl; l++) {
        for (size_t i = 0; i < count; i++)
            put_be32(shares + i * ss + 4 * l, limbs[l]);
        /* share_i += c_j x_i^j, coefficients drawn 64 at a time */
        for (uint32_t j = 1; j < t; j += 64) {
            uint32_t batch = t - j < 64 ? t - j : 64;
            for (uint32_t b = 0; b < batch; b++)
                coef[b] = randombytes_uniform(FF_SHAMIR_PRIME);
            for (size_t i = 0; i < count; i++) {
                uint8_t *out = shares + i * ss + 4 * l;
                uint32_t acc = get_be32(out);
                uint32_t xp = powmod(xs[i], j);
                for (uint32_t b = 0; b < batch; b++) {
                    acc = (uint32_t)((acc + (uint64_t)mulmod(coef[b], xp)) % P);
                    xp = mulmod(xp, xs[i]);
                }
                put_be32(out, acc);
            }
        }
    }
    sodium_memzero(limbs, sizeof limbs);
    sodium_memzero(coef, sizeof coef);
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_shamir_lagrange_at_zero(const uint32_t *xs, size_t count,
                                             uint32_t *coef,
                                             ff_privacy_error *err)
{
    ff_privacy_status st = check_xs(xs, count, err);
    if (st != FF_PRIVACY_OK)
        return st;
    /* l_i(0) = prod_{j != i} x_j / (x_j - x_i) */
    for (size_t i = 0; i < count; i++) {
        uint32_t num = 1, den = 1;
        for (size_t j = 0; j < count; j++) {
            if (j == i)
                continue;
            num = mulmod(num, xs[j]);
            den = mulmod(den, (uint32_t)((xs[j] + P - xs[i]) % P));
        }
        coef[i] = mulmod(num, invmod(den));
    }
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_shamir_combine(const uint32_t *xs, const uint8_t *shares,
                                    size_t count, uint8_t *secret,
                                    size_t secret_len, ff_privacy_error *err)
{
    if (secret_len == 0 || secret_len > FF_SHAMIR_MAX_SECRET)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "shamir: secret of %zu bytes (1..%d allowed)", secret_len,
            FF_SHAMIR_MAX_SECRET);
    if (count < 2 || count > FF_SHAMIR_MAX_SHARES)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "shamir: %zu shares given, need at least 2", count);

    /* weights of the shares, then the weighted sum per limb */
    uint32_t *coef = malloc(count * sizeof *coef);
    if (coef == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
                                    "shamir: no memory for %zu weights", count);
    ff_privacy_status st = ff_shamir_lagrange_at_zero(xs, count, coef, err);
    size_t nl = limb_count(secret_len), ss = ff_shamir_share_size(secret_len);
    uint32_t limbs[MAX_LIMBS];
    for (size_t l = 0; st == FF_PRIVACY_OK && l < nl; l++) {
        uint64_t acc = 0;
        for (size_t i = 0; i < count; i++) {
            uint32_t v = get_be32(shares + i * ss + 4 * l);
            if (v >= P) {
                st = ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
                    "shamir: share at x=%u holds %u, not a field element",
                    xs[i], v);
                break;
            }
            acc = (acc + mulmod(v, coef[i])) % P;
        }
        limbs[l] = (uint32_t)acc;
    }

    /* the limbs must fit the secret's length, or some share was corrupt */
    if (st == FF_PRIVACY_OK && limbs_to_secret(limbs, nl, secret, secret_len))
        st = ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
            "shamir: the interpolated value does not fit %zu bytes "
            "(a share is corrupt)", secret_len);
    if (st != FF_PRIVACY_OK)
        sodium_memzero(secret, secret_len);
    sodium_memzero(limbs, sizeof limbs);
    free(coef);
    return st;
}
