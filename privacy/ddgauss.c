/*
 * ddgauss.c - the distributed discrete Gaussian of Kairouz-Liu-Steinke 2021
 * (notes section 3): parameters, the site's encoding into Z_(2^b) words and
 * the server's decoding of their secure sum (ff_dp.h).
 */
#include "ff_dp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ff_dgauss.h"

#define RAND_WORDS 512        /* CSPRNG words per key-stream refill */
#define SIGN_BYTES 4096       /* rotation key stream per refill */
#define NOISE_BLOCK 4096      /* noise samples drawn at a time */
#define SCALE_MAX 1e6         /* TFF's cap on the scale */
#define CS_MAX 0x1p40         /* largest clip * scale */
#define LOCAL_STD_MAX 1048576.0 /* sqrt(FF_DGAUSS_SIGMA2_MAX) */
#define FIT_STEPS 64          /* scale corrections after rounding up */
#define SENS_LEEWAY 1e-5      /* TFF's slack on Delta_2 */
#define EDGE_FRACTION 0.99    /* "near the edge" for the wrap hint */

static const unsigned char rotation_nonce[crypto_stream_chacha20_NONCEBYTES]
    = {'f', 'f', 'd', 'd', 'g', 'r', 'o', 't'};

/* ---- parameters ---------------------------------------------------------- */

uint64_t ff_ddgauss_padded(uint64_t dim)
{
    uint64_t p = 1;
    while (p < dim && p < ((uint64_t)1 << 63))
        p <<= 1;
    return p;
}

ff_privacy_status ff_ddgauss_params_check(const ff_ddgauss_params *p,
                                          ff_privacy_error *err)
{
    if (p == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "ddgauss params: NULL");
    if (p->dim < 1 || p->dim > FF_DP_MAX_LENGTH ||
        p->padded != ff_ddgauss_padded(p->dim))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "ddgauss params: dim %llu, padded %llu (dim 1..%u, padded the "
            "next power of two)", (unsigned long long)p->dim,
            (unsigned long long)p->padded, FF_DP_MAX_LENGTH);
    if (p->bits < 2 || p->bits > 32)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "ddgauss params: %u bits (2..32 allowed)", p->bits);
    if (!isfinite(p->clip) || !(p->clip > 0) || !isfinite(p->scale) ||
        !(p->scale > 0) || p->clip * p->scale > CS_MAX)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "ddgauss params: clip %g and scale %g must be finite and > 0 "
            "with clip * scale <= 2^40", p->clip, p->scale);
    if (!(p->beta >= 0 && p->beta < 1))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "ddgauss params: beta %g outside [0, 1)", p->beta);
    if (!(p->local_sigma2 >= 1 && p->local_sigma2 <= FF_DGAUSS_SIGMA2_MAX))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "ddgauss params: local_sigma2 %g outside [1, 2^40]",
            p->local_sigma2);
    if (p->sites < 1)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "ddgauss params: 0 sites");
    return FF_PRIVACY_OK;
}

/* 2k times the std of one summed coordinate (signal and noise) in the
 * scaled domain: what must fit in the field (TFF heuristic, rho = 1). */
static double field_need(double k, double cs, double n, double padded,
                         double local_std)
{
    return 2 * k * sqrt(cs * cs * n * n / padded + n * local_std * local_std);
}

ff_privacy_status ff_ddgauss_params_choose(uint64_t dim, uint32_t n,
                                           double clip, double z,
                                           uint32_t bits,
                                           const uint8_t rotation_seed[32],
                                           ff_ddgauss_params *params,
                                           ff_privacy_error *err)
{
    if (params == NULL || rotation_seed == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "ddgauss choose: NULL params or seed");
    if (dim < 1 || dim > FF_DP_MAX_LENGTH || n < 1 || bits < 2 ||
        bits > 32 || !isfinite(clip) || !(clip > 0) || !isfinite(z) ||
        !(z > 0))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "ddgauss choose: dim %llu (1..%u), sites %u (>= 1), bits %u "
            "(2..32), clip %g and z %g (finite, > 0)",
            (unsigned long long)dim, FF_DP_MAX_LENGTH, n, bits, clip, z);

    /* the field must hold n sites and k standard deviations at all */
    double k = FF_DP_MODCLIP_K, dn = n, field = ldexp(1.0, (int)bits);
    if (field < dn)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_INFEASIBLE,
            "ddgauss choose: 2^%u = %.0f is below the %u sites; raise bits",
            bits, field, n);
    if (field * field <= dn * k * k)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_INFEASIBLE,
            "ddgauss choose: 2^(2 x %u) = %.0f does not exceed n k^2 = "
            "%.0f (n = %u sites, k = %g); raise bits", bits, field * field,
            dn * k * k, n, k);

    /* the TFF scale, capped where the sampler or the checks end */
    uint64_t padded = ff_ddgauss_padded(dim);
    double dp = (double)padded, sigma = z * clip / sqrt(dn);
    double room = sqrt(field * field - dn * k * k);
    double s = room / field_need(k, clip, dn, dp, sigma);
    s = fmin(s, fmin(SCALE_MAX, fmin((LOCAL_STD_MAX - 1) / sigma,
                                     CS_MAX / clip * (1 - 1e-12))));

    /* round the scaled local std up, and lower s until it fits again */
    double local_std = ceil(sigma * s);
    for (int step = 0; step < FIT_STEPS; step++) {
        double need = field_need(k, clip * s, dn, dp, local_std);
        if (need <= room)
            break;
        s *= room / need * (1 - 1e-9);
        local_std = ceil(sigma * s);
    }
    if (!(s >= 1) ||
        field_need(k, clip * s, dn, dp, local_std) > room)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_INFEASIBLE,
            "ddgauss choose: scale %g is below 1: 2^%u cannot hold %u "
            "sites of clip %g with z = %g over %llu coordinates at k = %g "
            "standard deviations; raise bits", s, bits, n, clip, z,
            (unsigned long long)padded, k);

    memset(params, 0, sizeof *params);
    params->dim = dim;
    params->padded = padded;
    params->bits = bits;
    params->clip = clip;
    params->scale = s;
    params->beta = exp(-0.5);
    params->local_sigma2 = local_std * local_std;
    params->sites = n;
    memcpy(params->rotation_seed, rotation_seed, 32);
    return FF_PRIVACY_OK;
}

double ff_ddgauss_rounding_bound(const ff_ddgauss_params *p)
{
    double cs = p->clip * p->scale, d = (double)p->padded;
    double plain = cs + sqrt(d);
    if (!(p->beta > 0))
        return plain;
    double inflated = sqrt(cs * cs + d / 4 +
                           sqrt(2 * log(1 / p->beta)) * (cs + sqrt(d) / 2));
    return fmin(plain, inflated);
}

void ff_ddgauss_sensitivity(const ff_ddgauss_params *params, double *l2,
                            double *l1)
{
    double d2 = ff_ddgauss_rounding_bound(params) + SENS_LEEWAY;
    double d1 = ceil(d2 * fmin(sqrt((double)params->padded), d2));
    if (l2 != NULL)
        *l2 = d2;
    if (l1 != NULL)
        *l1 = d1;
}

/* ---- rotation ------------------------------------------------------------ */

static int is_pow2(uint64_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

ff_privacy_status ff_ddgauss_hadamard(double *v, uint64_t n,
                                      ff_privacy_error *err)
{
    if (v == NULL || !is_pow2(n) || n > FF_DP_MAX_LENGTH)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "hadamard: length %llu must be a power of two <= %u (v %s)",
            (unsigned long long)n, FF_DP_MAX_LENGTH, v ? "set" : "NULL");

    /* butterflies, Sylvester order: (a, b) -> (a + b, a - b) */
    for (uint64_t h = 1; h < n; h <<= 1)
        for (uint64_t i = 0; i < n; i += 2 * h)
            for (uint64_t j = i; j < i + h; j++) {
                double a = v[j], b = v[j + h];
                v[j] = a + b;
                v[j + h] = a - b;
            }

    /* normalise so that H is orthonormal (and its own inverse) */
    double f = 1 / sqrt((double)n);
    for (uint64_t i = 0; i < n; i++)
        v[i] *= f;
    return FF_PRIVACY_OK;
}

/* v <- D v: sign i flips when bit i of the seed's key stream is 1. */
static void signs_apply(const uint8_t seed[32], double *v, uint64_t n)
{
    unsigned char ks[SIGN_BYTES];
    uint64_t per = 8 * SIGN_BYTES; /* signs per refill */

    for (uint64_t base = 0; base < n; base += per) {
        memset(ks, 0, sizeof ks);
        crypto_stream_chacha20_xor_ic(ks, ks, sizeof ks, rotation_nonce,
                                      base / 8 / 64, seed);
        uint64_t m = n - base < per ? n - base : per;
        for (uint64_t i = 0; i < m; i++)
            if ((ks[i / 8] >> (i % 8)) & 1)
                v[base + i] = -v[base + i];
    }
}

ff_privacy_status ff_ddgauss_rotate(const uint8_t seed[32], double *v,
                                    uint64_t n, int inverse,
                                    ff_privacy_error *err)
{
    if (seed == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "rotate: NULL seed");
    if (v == NULL || !is_pow2(n) || n > FF_DP_MAX_LENGTH)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "rotate: length %llu must be a power of two <= %u (v %s)",
            (unsigned long long)n, FF_DP_MAX_LENGTH, v ? "set" : "NULL");
    ff_privacy_status st;
    if (!inverse) {
        signs_apply(seed, v, n);
        st = ff_ddgauss_hadamard(v, n, err);
    } else {
        st = ff_ddgauss_hadamard(v, n, err);
        signs_apply(seed, v, n);
    }
    return st;
}

/* ---- rounding randomness ------------------------------------------------- */

/* A ChaCha20 stream under a fresh random key; secret, wiped after use. */
typedef struct csprng {
    unsigned char key[crypto_stream_chacha20_KEYBYTES];
    uint64_t block;
    uint64_t buf[RAND_WORDS];
    size_t pos;
} csprng;

static void csprng_init(csprng *r)
{
    randombytes_buf(r->key, sizeof r->key);
    r->block = 0;
    r->pos = RAND_WORDS;
}

static uint64_t csprng_u64(csprng *r)
{
    static const unsigned char nonce[crypto_stream_chacha20_NONCEBYTES];
    if (r->pos == RAND_WORDS) {
        memset(r->buf, 0, sizeof r->buf);
        crypto_stream_chacha20_xor_ic((unsigned char *)r->buf,
                                      (unsigned char *)r->buf,
                                      sizeof r->buf, nonce, r->block,
                                      r->key);
        r->block += sizeof r->buf / 64;
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

/* ---- the site's encoding ------------------------------------------------- */

/* Every x finite, or the first index that is not. */
static ff_privacy_status input_check(const float *x, uint64_t dim,
                                     ff_privacy_error *err)
{
    for (uint64_t i = 0; i < dim; i++)
        if (!isfinite(x[i]))
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                "ddgauss encode: value %llu is %g, not finite",
                (unsigned long long)i, (double)x[i]);
    return FF_PRIVACY_OK;
}

/* y <- x padded with zeros and L2-clipped to c (in double); returns the
 * norm before clipping. A zero vector stays zero. */
static double load_clipped(const ff_ddgauss_params *p, const float *x,
                           double *y)
{
    double sq = 0;
    for (uint64_t i = 0; i < p->dim; i++) {
        y[i] = (double)x[i];
        sq += y[i] * y[i];
    }
    for (uint64_t i = p->dim; i < p->padded; i++)
        y[i] = 0;
    double norm = sqrt(sq);
    if (norm > p->clip) {
        double f = p->clip / norm;
        for (uint64_t i = 0; i < p->dim; i++)
            y[i] *= f;
    }
    return norm;
}

/*
 * out <- floor(y) + Bernoulli(frac(y)) per coordinate, the whole vector
 * redrawn until its norm (in double) is within the bound; fails closed
 * after FF_DP_ROUNDING_TRIES draws.
 */
static ff_privacy_status round_conditional(const ff_ddgauss_params *p,
                                           const double *y, int64_t *out,
                                           ff_privacy_error *err)
{
    double bound = ff_ddgauss_rounding_bound(p), sq = 0;
    csprng r;
    int ok = 0;

    csprng_init(&r);
    for (int t = 0; t < FF_DP_ROUNDING_TRIES && !ok; t++) {
        sq = 0;
        for (uint64_t i = 0; i < p->padded; i++) {
            double f = floor(y[i]);
            uint64_t u = csprng_u64(&r) >> 11; /* 53 uniform bits */
            double k = f + ((double)u < (y[i] - f) * 0x1p53 ? 1 : 0);
            out[i] = (int64_t)k;
            sq += k * k;
        }
        ok = sq <= bound * bound;
    }
    sodium_memzero(&r, sizeof r);
    if (!ok)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_INFEASIBLE,
            "ddgauss encode: conditional rounding exceeded its bound %g in "
            "%d draws (last norm %g)", bound, FF_DP_ROUNDING_TRIES,
            sqrt(sq));
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_ddgauss_round(const ff_ddgauss_params *params,
                                   const float *x, int64_t *out,
                                   double *norm_out, ff_privacy_error *err)
{
    ff_privacy_status st = ff_ddgauss_params_check(params, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (x == NULL || out == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "ddgauss encode: NULL input or output");
    st = input_check(x, params->dim, err);
    double *y = NULL;
    if (st == FF_PRIVACY_OK) {
        y = malloc(params->padded * sizeof *y);
        if (y == NULL)
            st = ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
                "ddgauss encode: %llu coordinates of scratch",
                (unsigned long long)params->padded);
    }

    /* pad and clip, rotate, scale, round */
    double norm = 0;
    if (st == FF_PRIVACY_OK) {
        norm = load_clipped(params, x, y);
        st = ff_ddgauss_rotate(params->rotation_seed, y, params->padded, 0,
                               err);
    }
    if (st == FF_PRIVACY_OK) {
        for (uint64_t i = 0; i < params->padded; i++)
            y[i] *= params->scale;
        st = round_conditional(params, y, out, err);
    }

    /* the clipped update is the site's secret: wipe it on every path */
    if (y != NULL) {
        sodium_memzero(y, params->padded * sizeof *y);
        free(y);
    }
    if (st != FF_PRIVACY_OK)
        sodium_memzero(out, params->padded * sizeof *out);
    else if (norm_out != NULL)
        *norm_out = norm;
    return st;
}

/* words <- (r + N_Z(0, local_sigma2)) mod 2^bits, a block at a time. */
static ff_privacy_status noise_wrap(const ff_ddgauss_params *p,
                                    const int64_t *r, uint32_t *words,
                                    ff_privacy_error *err)
{
    uint64_t mask = p->bits == 32 ? 0xffffffffu : (1u << p->bits) - 1;
    int64_t z[NOISE_BLOCK];
    ff_dgauss g;
    ff_privacy_status st = ff_dgauss_init_double(&g, p->local_sigma2, err);

    for (uint64_t i = 0; i < p->padded && st == FF_PRIVACY_OK;
         i += NOISE_BLOCK) {
        size_t m = p->padded - i < NOISE_BLOCK ? (size_t)(p->padded - i)
                                               : NOISE_BLOCK;
        st = ff_dgauss_sample_vec(&g, z, m, err);
        for (size_t j = 0; j < m && st == FF_PRIVACY_OK; j++)
            words[i + j] = (uint32_t)((uint64_t)(r[i + j] + z[j]) & mask);
    }
    sodium_memzero(z, sizeof z);
    return st;
}

ff_privacy_status ff_ddgauss_encode(const ff_ddgauss_params *params,
                                    const float *x, uint32_t *words,
                                    double *norm_out, ff_privacy_error *err)
{
    ff_privacy_status st = ff_ddgauss_params_check(params, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (words == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "ddgauss encode: NULL words");
    int64_t *r = malloc(params->padded * sizeof *r);
    double norm = 0;
    if (r == NULL)
        st = ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "ddgauss encode: %llu coordinates of scratch",
            (unsigned long long)params->padded);

    /* the rounded update, then local noise and the modular wrap */
    if (st == FF_PRIVACY_OK)
        st = ff_ddgauss_round(params, x, r, &norm, err);
    if (st == FF_PRIVACY_OK)
        st = noise_wrap(params, r, words, err);
    if (r != NULL) {
        sodium_memzero(r, params->padded * sizeof *r);
        free(r);
    }
    if (st != FF_PRIVACY_OK)
        memset(words, 0, params->padded * sizeof *words);
    else if (norm_out != NULL)
        *norm_out = norm;
    return st;
}

/* ---- the server's decoding ----------------------------------------------- */

ff_privacy_status ff_ddgauss_decode(const ff_ddgauss_params *params,
                                    const uint32_t *words, float *out,
                                    size_t *wrapped, ff_privacy_error *err)
{
    ff_privacy_status st = ff_ddgauss_params_check(params, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (words == NULL || out == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "ddgauss decode: NULL words or output");
    uint64_t mask = params->bits == 32 ? 0xffffffffu
                                       : (1u << params->bits) - 1;
    int64_t half = (int64_t)1 << (params->bits - 1);
    for (uint64_t i = 0; i < params->padded; i++)
        if (words[i] > mask)
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                "ddgauss decode: word %llu is %u, not below 2^%u",
                (unsigned long long)i, words[i], params->bits);
    double *y = malloc(params->padded * sizeof *y);
    if (y == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "ddgauss decode: %llu coordinates of scratch",
            (unsigned long long)params->padded);

    /* centre into [-2^(b-1), 2^(b-1)), count the edge, unscale */
    size_t edge = 0;
    for (uint64_t i = 0; i < params->padded; i++) {
        int64_t c = (int64_t)words[i];
        if (c >= half)
            c -= 2 * half;
        if (fabs((double)c) >= EDGE_FRACTION * (double)half)
            edge++;
        y[i] = (double)c / params->scale;
    }

    /* undo the rotation and drop the padding */
    st = ff_ddgauss_rotate(params->rotation_seed, y, params->padded, 1, err);
    if (st == FF_PRIVACY_OK) {
        for (uint64_t i = 0; i < params->dim; i++)
            out[i] = (float)y[i];
        if (wrapped != NULL)
            *wrapped = edge;
    }
    free(y);
    return st;
}
