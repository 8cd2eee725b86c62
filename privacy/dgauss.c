/*
 * dgauss.c - the exact discrete Gaussian sampler of Canonne-Kamath-Steinke
 * 2020, in integer arithmetic (64, 128 and, for one square, 256 bits).
 */
#include "ff_dgauss.h"

#include <math.h>
#include <string.h>

#include <sodium.h>

__extension__ typedef unsigned __int128 u128;

#define U128_MAX (~(u128)0)
#define LAP_MAX ((uint64_t)1 << 62) /* candidates |Y| stay below this */

/* ---- random integers from a ChaCha20 stream ----------------------------- */

/* Key stream state: 32-byte key, a per-block nonce, a buffer of output. */
typedef struct rng {
    unsigned char key[crypto_stream_chacha20_KEYBYTES];
    uint64_t nonce;
    unsigned char buf[1024];
    size_t pos;
} rng;

static void rng_init(rng *r)
{
    randombytes_buf(r->key, sizeof r->key);
    r->nonce = 0;
    r->pos = sizeof r->buf; /* empty: the first draw refills */
}

static void rng_cleanup(rng *r)
{
    sodium_memzero(r, sizeof *r);
}

/* 8 fresh bytes; every buffer uses a new nonce under the same key. */
static uint64_t rng_u64(rng *r)
{
    if (r->pos + 8 > sizeof r->buf) {
        unsigned char nonce[crypto_stream_chacha20_NONCEBYTES];
        for (size_t i = 0; i < sizeof nonce; i++)
            nonce[i] = (unsigned char)(r->nonce >> (8 * i));
        r->nonce++;
        crypto_stream_chacha20(r->buf, sizeof r->buf, nonce, r->key);
        r->pos = 0;
    }
    uint64_t x;
    memcpy(&x, r->buf + r->pos, 8);
    sodium_memzero(r->buf + r->pos, 8);
    r->pos += 8;
    return x;
}

/* Uniform in [0, bound), bound >= 1: mask to bound's bit length, reject. */
static uint64_t uniform_u64(rng *r, uint64_t bound)
{
    if (bound <= 1)
        return 0;
    uint64_t mask = ~(uint64_t)0 >> __builtin_clzll(bound - 1);
    for (;;) {
        uint64_t x = rng_u64(r) & mask;
        if (x < bound)
            return x;
    }
}

/* Uniform in [0, bound), bound >= 1, 128-bit. */
static u128 uniform_u128(rng *r, u128 bound)
{
    uint64_t hi = (uint64_t)((bound - 1) >> 64);
    if (hi == 0)
        return uniform_u64(r, (uint64_t)bound);
    u128 mask = ((u128)(~(uint64_t)0 >> __builtin_clzll(hi)) << 64)
                | ~(uint64_t)0;
    for (;;) {
        u128 x = (((u128)rng_u64(r) << 64) | rng_u64(r)) & mask;
        if (x < bound)
            return x;
    }
}

/* ---- Bernoulli(exp(-gamma)) for rational gamma -------------------------- */

/*
 * gamma = n/d in [0, 1] (CKS Alg. 1): draw Bernoulli(gamma/k) for k = 1, 2,
 * ... until the first failure; return 1 iff that k is odd. Bernoulli(n/(dk))
 * is drawn as Bernoulli(1/k) AND Bernoulli(n/d), so d*k never overflows.
 */
static int bern_exp_frac(rng *r, u128 n, u128 d)
{
    uint64_t k = 1;
    for (;;) {
        int hit = uniform_u64(r, k) == 0 && uniform_u128(r, d) < n;
        if (!hit)
            break;
        k++;
    }
    return (int)(k & 1);
}

static int bern_exp_minus_one(rng *r)
{
    return bern_exp_frac(r, 1, 1);
}

/* A 256-bit unsigned integer as two 128-bit halves. */
typedef struct u256 {
    u128 hi, lo;
} u256;

/* x^2 for x < 2^127. */
static u256 square(u128 x)
{
    u128 x0 = (uint64_t)x, x1 = x >> 64;
    u128 low = x0 * x0, cross = x0 * x1, high = x1 * x1;
    u256 s;

    /* x^2 = high 2^128 + 2 cross 2^64 + low, carrying by hand */
    s.hi = high + (cross >> 63);
    u128 add = cross << 65;
    s.lo = low + add;
    if (s.lo < low)
        s.hi++;
    return s;
}

/*
 * gamma = x / m with x up to 256 bits and m >= 1 (the extension in the
 * notes): one Bernoulli(exp(-1)) per whole unit of gamma, failing at the
 * first failure, then the fractional remainder. The whole part is peeled
 * off one unit at a time, so the loop runs about 1.6 times on average
 * however large gamma is.
 */
static int bern_exp_ratio(rng *r, u256 x, u128 m)
{
    while (x.hi != 0 || x.lo >= m) {
        if (!bern_exp_minus_one(r))
            return 0;
        if (x.lo < m)
            x.hi--;
        x.lo -= m;
    }
    return bern_exp_frac(r, x.lo, m);
}

/* ---- discrete Laplace and discrete Gaussian ----------------------------- */

/*
 * Discrete Laplace of scale t >= 1 (CKS Alg. 2): U uniform in [0, t)
 * accepted with probability exp(-U/t); V counts Bernoulli(exp(-1))
 * successes; X = U + tV with a random sign, rejecting "-0". A candidate with
 * X >= 2^62 (probability below exp(-2^41) for the t we allow) is redrawn
 * so the arithmetic below never overflows.
 */
static int64_t dlap(rng *r, uint64_t t)
{
    for (;;) {
        uint64_t u = uniform_u64(r, t);
        if (!bern_exp_frac(r, u, t))
            continue;
        uint64_t v = 0;
        while (bern_exp_minus_one(r))
            v++;
        if (v > (LAP_MAX - u) / t)
            continue;
        uint64_t x = u + t * v;
        int negative = (int)(rng_u64(r) & 1);
        if (negative && x == 0)
            continue;
        return negative ? -(int64_t)x : (int64_t)x;
    }
}

/*
 * One discrete Gaussian (CKS Alg. 3): Y ~ DLap(t) accepted with probability
 * exp(-(|Y| - s/t)^2 / (2s)), s = N/D. Over the integers that exponent is
 * (|Y| t D - N)^2 / (2 t^2 N D): a square of at most 230 bits over a
 * denominator below 2^127 (checked at init).
 */
static int64_t dgauss_one(rng *r, const ff_dgauss *g)
{
    u128 m = (u128)2 * g->t * g->t * g->num * g->den;
    for (;;) {
        int64_t y = dlap(r, g->t);
        u128 a = (u128)(y < 0 ? -(uint64_t)y : (uint64_t)y);
        u128 scaled = a * g->t * g->den;
        u128 diff = scaled >= g->num ? scaled - g->num : g->num - scaled;
        if (bern_exp_ratio(r, square(diff), m))
            return y;
    }
}

/* ---- public API ---------------------------------------------------------- */

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* a * b, or 0 when it does not fit 128 bits (callers pass a, b >= 1). */
static u128 mul_checked(u128 a, u128 b)
{
    if (a != 0 && b > U128_MAX / a)
        return 0;
    return a * b;
}

ff_privacy_status ff_dgauss_init(ff_dgauss *g, uint64_t num, uint64_t den,
                                 ff_privacy_error *err)
{
    if (g == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "g: NULL");
    memset(g, 0, sizeof *g);
    if (num == 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "num = 0: sigma^2 must be > 0");
    if (den == 0 || den > FF_DGAUSS_DEN_MAX)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "den = %llu: must be in [1, 2^32]",
                                    (unsigned long long)den);

    /* lowest terms, then the size limits */
    uint64_t c = gcd_u64(num, den);
    num /= c;
    den /= c;
    if ((u128)num > (u128)den << 40)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "num/den = %llu/%llu: sigma^2 must be "
                                    "<= 2^40", (unsigned long long)num,
                                    (unsigned long long)den);

    /* t = floor(sqrt(num/den)) + 1, exactly */
    uint64_t whole = num / den, a = (uint64_t)sqrt((double)whole);
    while (a * a > whole)
        a--;
    while ((a + 1) * (a + 1) <= whole)
        a++;
    uint64_t t = a + 1;

    /* the acceptance denominator 2 t^2 num den must fit below 2^127 */
    u128 m = mul_checked(mul_checked((u128)2 * t * t, num), den);
    if (m == 0 || m >> 127 != 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "num/den = %llu/%llu: 2 t^2 num den "
                                    "exceeds 2^127; reduce the precision",
                                    (unsigned long long)num,
                                    (unsigned long long)den);
    g->num = num;
    g->den = den;
    g->t = t;
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_dgauss_init_double(ff_dgauss *g, double sigma2,
                                        ff_privacy_error *err)
{
    if (!(sigma2 > 0.0) || !(sigma2 <= FF_DGAUSS_SIGMA2_MAX))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "sigma2 = %g: must be in (0, 2^40]",
                                    sigma2);
    double den = ldexp(1.0, FF_DGAUSS_DOUBLE_BITS);
    double num = ceil(sigma2 * den); /* exact: scaling by 2^20, then ceil */
    return ff_dgauss_init(g, (uint64_t)num, (uint64_t)den, err);
}

double ff_dgauss_sigma2(const ff_dgauss *g)
{
    if (g == NULL || g->den == 0)
        return NAN;
    return (double)g->num / (double)g->den;
}

static ff_privacy_status check_ready(const ff_dgauss *g,
                                     ff_privacy_error *err)
{
    if (g == NULL || g->den == 0 || g->num == 0 || g->t == 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "g: NULL or not prepared by "
                                    "ff_dgauss_init");
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_dgauss_sample_vec(const ff_dgauss *g, int64_t *out,
                                       size_t n, ff_privacy_error *err)
{
    ff_privacy_status st = check_ready(g, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (out == NULL && n > 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "out: NULL");

    rng r;
    rng_init(&r);
    for (size_t i = 0; i < n; i++)
        out[i] = dgauss_one(&r, g);
    rng_cleanup(&r);
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_dgauss_sample(const ff_dgauss *g, int64_t *out,
                                   ff_privacy_error *err)
{
    return ff_dgauss_sample_vec(g, out, 1, err);
}
