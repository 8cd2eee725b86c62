/*
 * dp.c - Poisson sampling, discretised Gaussian noise on a power-of-two
 * grid, L2 clipping and adaptive clipping (ff_dp.h). The distributed
 * discrete Gaussian lives in ddgauss.c.
 */
#include "ff_dp.h"

#include <math.h>
#include <string.h>

#include <sodium.h>

#include "ff_dgauss.h"

#define RAND_WORDS 512     /* CSPRNG words fetched at a time */
#define Q_CHUNKS 17        /* 64-bit chunks of any double in (0, 1) */
#define NOISE_BLOCK 4096   /* noise samples drawn at a time */
#define GRID_RANGE 0x1p30  /* largest |v| / gamma the noise accepts */
#define STD_MIN 0x1p-100   /* keeps gamma * Z a normal float */
#define STD_MAX 0x1p100    /* keeps gamma * Z finite as a float */
#define CLIP_PASSES 8      /* rescaling passes before zeroing */

/* ---- Poisson sampling --------------------------------------------------- */

/* Uniform 64-bit words from randombytes_buf, a block at a time. */
typedef struct rand_words {
    uint64_t w[RAND_WORDS];
    size_t pos;
} rand_words;

static uint64_t rand_next(rand_words *r)
{
    if (r->pos == RAND_WORDS) {
        randombytes_buf(r->w, sizeof r->w);
        r->pos = 0;
    }
    return r->w[r->pos++];
}

/*
 * The binary expansion of q in [0, 1), 64 bits per chunk, most significant
 * first; returns the number of chunks (all later bits are 0). Exact:
 * scaling by 2^64 and taking the fractional part lose nothing in double.
 */
static size_t q_expand(double q, uint64_t chunk[Q_CHUNKS])
{
    size_t c = 0;
    while (q > 0 && c < Q_CHUNKS) {
        double x = ldexp(q, 64);
        double whole = floor(x);
        chunk[c++] = (uint64_t)whole;
        q = x - whole;
    }
    return c;
}

/* Bernoulli(q) exactly: a uniform U in [0, 1) read 64 bits at a time is
 * below q iff it is below at the first chunk where the two differ. */
static int bernoulli_q(const uint64_t *chunk, size_t count, rand_words *r)
{
    for (size_t c = 0; c < count; c++) {
        uint64_t u = rand_next(r);
        if (u != chunk[c])
            return u < chunk[c];
    }
    return 0; /* U agrees with every bit of q so far, so U >= q */
}

ff_privacy_status ff_dp_poisson_sample(double q, size_t count, size_t *idx,
                                       size_t *n, ff_privacy_error *err)
{
    if (idx == NULL || n == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "poisson sample: NULL idx or n");
    if (!(q > 0 && q <= 1))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "poisson sample: rate q = %g outside (0, 1]", q);
    if (count == 0 || count > FF_DP_MAX_LENGTH)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "poisson sample: %zu records (1..%u allowed)", count,
            FF_DP_MAX_LENGTH);

    /* q = 1 takes everything; no randomness needed */
    *n = 0;
    if (q == 1) {
        for (size_t i = 0; i < count; i++)
            idx[(*n)++] = i;
        return FF_PRIVACY_OK;
    }

    /* one exact Bernoulli(q) per record, in index order */
    uint64_t chunk[Q_CHUNKS];
    size_t chunks = q_expand(q, chunk);
    rand_words r = {.pos = RAND_WORDS};
    for (size_t i = 0; i < count; i++)
        if (bernoulli_q(chunk, chunks, &r))
            idx[(*n)++] = i;
    sodium_memzero(&r, sizeof r);
    return FF_PRIVACY_OK;
}

/* ---- discretised Gaussian noise ----------------------------------------- */

double ff_dp_grid_step(double std)
{
    if (!isfinite(std) || !(std > 0))
        return 0;
    /* std = m 2^e with m in [0.5, 1): gamma = 2^(e - 1 - GRID_BITS) puts
     * std / gamma = 2m 2^GRID_BITS in [2^16, 2^17) */
    int e;
    (void)frexp(std, &e);
    return ldexp(1.0, e - 1 - FF_DP_GRID_BITS);
}

double ff_dp_grid_l2_slack(double gamma, size_t n)
{
    return gamma * sqrt((double)n);
}

/* Every value finite and within GRID_RANGE grid steps, or the index. */
static ff_privacy_status grid_check(const float *v, size_t n, double gamma,
                                    ff_privacy_error *err)
{
    for (size_t i = 0; i < n; i++) {
        double x = (double)v[i];
        if (!isfinite(x) || fabs(x / gamma) > GRID_RANGE)
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                "dp noise: value %zu is %g, not finite or beyond 2^30 grid "
                "steps of %g", i, x, gamma);
    }
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_dp_noise_add(float *v, size_t n, double std,
                                  double *gamma_out, ff_privacy_error *err)
{
    if (!isfinite(std) || !(std >= STD_MIN && std <= STD_MAX))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "dp noise: std %g must be finite and in [2^-100, 2^100]", std);
    if (v == NULL && n > 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "dp noise: NULL vector");
    if (n > FF_DP_MAX_LENGTH)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "dp noise: %zu values (at most %u)", n, FF_DP_MAX_LENGTH);
    double gamma = ff_dp_grid_step(std);
    ff_privacy_status st = grid_check(v, n, gamma, err);
    if (st != FF_PRIVACY_OK)
        return st;

    /* the sampler for (std / gamma)^2 grid units, rounded up */
    ff_dgauss g;
    double units = std / gamma;
    st = ff_dgauss_init_double(&g, units * units, err);
    if (st != FF_PRIVACY_OK)
        return st;

    /* snap to the grid and add integer noise, a block at a time */
    int64_t z[NOISE_BLOCK];
    for (size_t i = 0; i < n && st == FF_PRIVACY_OK; i += NOISE_BLOCK) {
        size_t m = n - i < NOISE_BLOCK ? n - i : NOISE_BLOCK;
        st = ff_dgauss_sample_vec(&g, z, m, err);
        for (size_t j = 0; j < m && st == FF_PRIVACY_OK; j++) {
            double k = floor((double)v[i + j] / gamma + 0.5) + (double)z[j];
            v[i + j] = (float)(k * gamma);
        }
    }
    sodium_memzero(z, sizeof z);
    if (st == FF_PRIVACY_OK && gamma_out != NULL)
        *gamma_out = gamma;
    return st;
}

/* ---- clipping ------------------------------------------------------------ */

/* ||v|| in double, or -1 when a value is not finite. */
static double norm_l2(const float *v, size_t n)
{
    double sq = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            return -1;
        sq += (double)v[i] * (double)v[i];
    }
    return sqrt(sq);
}

double ff_dp_clip_l2(float *v, size_t n, double clip)
{
    if ((v == NULL && n > 0) || !isfinite(clip) || !(clip > 0))
        return -1;
    double norm = norm_l2(v, n);
    if (norm <= clip) /* also -1 (not finite) and the zero vector */
        return norm;

    /* scale; float rounding may leave the norm a hair above clip, so
     * re-check and shrink by the ratio again (a pass or two at most) */
    double now = norm;
    for (int pass = 0; pass < CLIP_PASSES && now > clip; pass++) {
        double f = pass == 0 ? clip / now : clip / now * (1.0 - 0x1p-20);
        for (size_t i = 0; i < n; i++)
            v[i] = (float)((double)v[i] * f);
        now = norm_l2(v, n);
    }

    /* a clip below the float range: nothing representable fits but 0 */
    if (now > clip)
        memset(v, 0, n * sizeof *v);
    return norm;
}

/* ---- adaptive clipping --------------------------------------------------- */

double ff_dp_adaptive_clip_next(double clip, double frac, double target,
                                double eta)
{
    if (!isfinite(clip) || !(clip > 0) || !isfinite(frac) ||
        !isfinite(target) || target < 0 || target > 1 || !isfinite(eta) ||
        eta < 0)
        return clip;
    double f = frac < 0 ? 0 : frac > 1 ? 1 : frac;
    return clip * exp(-eta * (f - target));
}

/* Two Gaussians on the same data, the update (multiplier z_Delta) and the
 * count of sensitivity 1/2 (multiplier 2 count_std), compose to one of
 * multiplier z with z^-2 = z_Delta^-2 + (2 count_std)^-2. */
double ff_dp_adaptive_effective_z(double z, double count_std)
{
    if (!isfinite(z) || !(z > 0) || !isfinite(count_std) ||
        !(count_std > 0))
        return NAN;
    if (2 * count_std <= z)
        return INFINITY;
    double share = 1 / (z * z) - 1 / (4 * count_std * count_std);
    return 1 / sqrt(share);
}
