/*
 * ff_dp.h - the differential-privacy mechanisms fedfuse applies to data
 * before it leaves the place that holds it:
 *
 *   - Poisson sampling of records into DP-SGD batches, from libsodium's
 *     CSPRNG;
 *   - discretised Gaussian noise: a float vector is rounded to a
 *     power-of-two grid and exact discrete Gaussian noise (ff_dgauss.h) is
 *     added in grid units, so no floating-point sampler's low bits ever
 *     touch the output (the defence of docs/privacy-accounting.md,
 *     "Floating-point noise");
 *   - L2 clipping of whole vectors;
 *   - the distributed discrete Gaussian (DDGauss) encoding of
 *     Kairouz-Liu-Steinke 2021 for site-level DP under secure aggregation:
 *     pad, clip, random rotation, scale, conditional randomised rounding,
 *     local discrete Gaussian noise, modular wrap into Z_(2^b); and the
 *     server's decoding of the securely summed words;
 *   - adaptive clipping (Andrew et al. 2021): the geometric update of the
 *     clip norm from a noised count, and the noise multiplier that remains
 *     for the update itself.
 *
 * Depends on libsodium and the C library only. Call sodium_init() first.
 * Every function is thread-safe unless it says otherwise; caller storage
 * throughout (no hidden allocation except where a function says so).
 */
#ifndef FF_DP_H
#define FF_DP_H

#include <stddef.h>
#include <stdint.h>

#include "ff_privacy.h"

#define FF_DP_MAX_LENGTH (1u << 24)   /* longest vector any function takes */
#define FF_DP_ROUNDING_TRIES 1000     /* conditional rounding gives up after */

/* ---- Poisson sampling --------------------------------------------------- */

/*
 * Draws a Poisson sample of the records 0..count-1: each is taken
 * independently with probability q (0 < q <= 1), using randombytes_buf.
 * The Bernoulli(q) draw is exact: uniform bits are compared with the
 * binary expansion of q, 64 bits at a time. Writes the chosen indices in
 * increasing order to idx (capacity count) and their number to *n (which
 * may be 0). Errors: FF_PRIVACY_ERR_ARG (q outside (0, 1], count 0 or
 * above FF_DP_MAX_LENGTH, NULL pointers).
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_dp_poisson_sample(double q, size_t count, size_t *idx, size_t *n,
                     ff_privacy_error *err);

/* ---- discretised Gaussian noise ----------------------------------------- */

/*
 * The grid step for noise of standard deviation std: the largest power of
 * two gamma with std / gamma >= 2^FF_DP_GRID_BITS (so std / gamma lies in
 * [2^16, 2^17)), so that the noise is resolved finely while every noised
 * value is an integer multiple of gamma. Returns 0 for std that is not
 * finite and > 0.
 */
#define FF_DP_GRID_BITS 16
double ff_dp_grid_step(double std);

/*
 * Adds discretised Gaussian noise of standard deviation std (finite, > 0)
 * to v[0..n) in place: v[i] = gamma * (round(v[i] / gamma) + Z_i) with
 * gamma = ff_dp_grid_step(std) and Z_i ~ N_Z(0, (std / gamma)^2) from the
 * exact sampler (the variance is rounded up, never down). The float
 * written is a function of the integer round(v[i] / gamma) + Z_i alone
 * (exact while that integer is below 2^24, otherwise rounded to float:
 * post-processing), so no floating-point sampler's low bits reach it.
 * Rounding to the grid can raise the L2 sensitivity of the vector by up
 * to ff_dp_grid_l2_slack (two neighbouring inputs may round apart by one
 * step per coordinate); the caller accounts for it, e.g. with the noise
 * multiplier std / (sensitivity + slack). *gamma_out, when not NULL,
 * receives gamma. Errors: FF_PRIVACY_ERR_ARG (std not finite, <= 0,
 * below 2^-100 or above 2^100; NULL v with n > 0; n above
 * FF_DP_MAX_LENGTH; a value of v that is not finite or beyond 2^30 gamma,
 * the index named: v is unchanged then).
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_dp_noise_add(float *v, size_t n, double std, double *gamma_out,
                ff_privacy_error *err);

/* Largest rise in L2 sensitivity from rounding n values to a grid of
 * step gamma: gamma * sqrt(n). */
double ff_dp_grid_l2_slack(double gamma, size_t n);

/* ---- clipping ------------------------------------------------------------ */

/*
 * Scales v[0..n) so that its L2 norm is at most clip (finite, > 0) and
 * returns the norm it had before (computed in double), or -1 when v holds
 * a value that is not finite, clip is not finite and > 0, or v is NULL
 * with n > 0 (v is unchanged then). A vector within the clip, the zero
 * vector included, is left as it is (no division by its norm). After
 * scaling, the float vector's norm is re-checked in double and shrunk
 * again until it is at most clip, so the bound holds exactly.
 */
double ff_dp_clip_l2(float *v, size_t n, double clip);

/* ---- distributed discrete Gaussian (site-level DP under SecAgg) ---------- */

/* Public parameters of one DDGauss round, the same at every site and at
 * the server. */
typedef struct ff_ddgauss_params {
    uint64_t dim;          /* d: length of the real vector */
    uint64_t padded;       /* d': next power of two >= d */
    uint32_t bits;         /* b: the secure sum is modulo 2^b, 2..32 */
    double clip;           /* c: L2 clip of each site's vector */
    double scale;          /* s = 1 / gamma: real units -> integers */
    double beta;           /* conditional rounding slack (0 = plain) */
    double local_sigma2;   /* variance of each site's integer noise */
    uint32_t sites;        /* n: sites expected to contribute */
    uint8_t rotation_seed[32]; /* fresh each round; public */
} ff_ddgauss_params;

/* The next power of two >= dim (dim >= 1), the padded length d'. */
uint64_t ff_ddgauss_padded(uint64_t dim);

/*
 * Checks params as a site or the server receives them: dim in
 * 1..FF_DP_MAX_LENGTH, padded = ff_ddgauss_padded(dim), bits 2..32, clip
 * and scale finite and > 0 with clip * scale <= 2^40, beta in [0, 1),
 * local_sigma2 in [1, 2^40] (the sampler's range), sites >= 1. Errors:
 * FF_PRIVACY_ERR_ARG naming the field. Thread-safe.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_ddgauss_params_check(const ff_ddgauss_params *params,
                        ff_privacy_error *err);

/*
 * Chooses the scale (and fills params) for dim coordinates, n sites, clip
 * c, a central noise multiplier z (central std z c, so each site's local
 * std is z c / sqrt(n)) and b bits, with k = FF_DP_MODCLIP_K standard
 * deviations kept inside the field (notes sec. 3, "Choosing parameters").
 * beta is e^-0.5. The scale is the TFF heuristic with flatness rho = 1,
 *   s = sqrt(2^2b - n k^2) / (2 k sqrt(c^2 n^2 / d' + n sigma^2)),
 * sigma = z c / sqrt(n), capped at 1e6 (as TFF) and where the noise or
 * clip * scale would leave the ranges of ff_ddgauss_params_check. The
 * local variance is rounded up so that the scaled local std is an
 * integer, local_sigma2 = ceil(sigma s)^2, and s is lowered until the k
 * standard deviations still fit with the rounded-up noise. rotation_seed
 * is copied. Errors:
 * FF_PRIVACY_ERR_ARG (a bad input), FF_PRIVACY_ERR_INFEASIBLE (2^b too
 * small for n and k, or the scale would be below 1: the message says
 * which).
 */
#define FF_DP_MODCLIP_K 4.0
FF_PRIVACY_MUST_USE ff_privacy_status
ff_ddgauss_params_choose(uint64_t dim, uint32_t n, double clip, double z,
                         uint32_t bits, const uint8_t rotation_seed[32],
                         ff_ddgauss_params *params, ff_privacy_error *err);

/*
 * The conditional-rounding bound B of params in the scaled domain:
 * min{cs + sqrt(d'), sqrt((cs)^2 + d'/4 + sqrt(2 ln(1/beta)) (cs +
 * sqrt(d')/2))}, or cs + sqrt(d') when beta = 0 (c = clip, s = scale,
 * d' = padded). Every rounded vector has L2 norm <= B.
 */
double ff_ddgauss_rounding_bound(const ff_ddgauss_params *params);

/*
 * Accounting inputs of params in the scaled domain: the L2 sensitivity
 * Delta_2 (the inflated rounding bound B of the notes, plus 1e-5) and
 * Delta_1 = ceil(Delta_2 * min(sqrt(d'), Delta_2)).
 */
void ff_ddgauss_sensitivity(const ff_ddgauss_params *params, double *l2,
                            double *l1);

/*
 * The normalised Walsh-Hadamard transform of v[0..n) in place, n a power
 * of two (Sylvester order, divided by sqrt(n)): H4 [1,2,3,4] = [5,-1,-2,0].
 * It is its own inverse and preserves the L2 norm. Errors:
 * FF_PRIVACY_ERR_ARG (NULL v, n not a power of two or above
 * FF_DP_MAX_LENGTH). Thread-safe.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_ddgauss_hadamard(double *v, uint64_t n, ff_privacy_error *err);

/*
 * The random rotation of DDGauss on v[0..n) in place, n a power of two:
 * forward v <- H D v, inverse v <- D H v, with H the normalised
 * Walsh-Hadamard transform and D the diagonal of signs whose bit i is bit
 * i of the ChaCha20 keystream (crypto_stream_chacha20) keyed by seed with
 * the nonce "ffddgrot" (1 = minus). The seed is public; every party
 * derives the same D. Errors: as ff_ddgauss_hadamard, NULL seed.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_ddgauss_rotate(const uint8_t seed[32], double *v, uint64_t n,
                  int inverse, ff_privacy_error *err);

/*
 * The first half of ff_ddgauss_encode: pad x[0..dim) to padded, clip to
 * params->clip, rotate, scale, and round conditionally with CSPRNG bits
 * (each coordinate to floor(y) + Bernoulli(frac(y)), the whole vector
 * redrawn, up to FF_DP_ROUNDING_TRIES times, until its norm, computed in
 * double, is at most ff_ddgauss_rounding_bound). Writes the padded
 * integers to out (caller-owned, params->padded entries) and ||x|| before
 * clipping to *norm_out (may be NULL). The result is the site's update
 * WITHOUT noise: it is not private; wipe it after use. Errors: as
 * ff_ddgauss_encode; out is zeroed on error.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_ddgauss_round(const ff_ddgauss_params *params, const float *x,
                 int64_t *out, double *norm_out, ff_privacy_error *err);

/*
 * Site side: turns x[0..dim) (the site's update, read only) into `padded`
 * words in Z_(2^bits): clip to params->clip, rotate (Rademacher signs from
 * the rotation seed, then the normalised Walsh-Hadamard transform), scale,
 * round conditionally (resampling up to FF_DP_ROUNDING_TRIES times until
 * the L2 bound holds), add N_Z(0, local_sigma2) to each coordinate, wrap
 * modulo 2^bits. *norm_out (may be NULL) receives ||x|| before clipping.
 * words has params->padded entries, caller-owned. Errors:
 * FF_PRIVACY_ERR_ARG (bad params, NaN or Inf in x: the index is named),
 * FF_PRIVACY_ERR_NOMEM, FF_PRIVACY_ERR_INFEASIBLE (rounding kept
 * exceeding its bound). words is zeroed on error. Secrets (the rounded
 * update and the noise) are wiped before returning. Allocates and frees
 * 8 * padded bytes of scratch, plus 8 * padded inside ff_ddgauss_round.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_ddgauss_encode(const ff_ddgauss_params *params, const float *x,
                  uint32_t *words, double *norm_out, ff_privacy_error *err);

/*
 * Server side: turns the secure sum words[0..padded) (mod 2^bits) into the
 * real-valued sum out[0..dim): centre (a word w >= 2^(b-1) stands for
 * w - 2^b), divide by the scale, undo the rotation, drop the padding.
 * *wrapped (may be NULL) receives how many summed coordinates lay within
 * 1% of the edge of the field (|centred| >= 0.99 * 2^(b-1)), a hint that
 * the modular clip may have cut some. Errors: FF_PRIVACY_ERR_ARG (bad
 * params, NULL pointers, a word >= 2^bits: the index is named),
 * FF_PRIVACY_ERR_NOMEM (8 * padded bytes of scratch).
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_ddgauss_decode(const ff_ddgauss_params *params, const uint32_t *words,
                  float *out, size_t *wrapped, ff_privacy_error *err);

/* ---- adaptive clipping --------------------------------------------------- */

/*
 * The next clip norm: clip * exp(-eta * (frac - target)), where frac is the
 * noised fraction of updates whose norm was at most clip, clamped to
 * [0, 1] first (Andrew et al. 2021; a round where every update was clipped
 * has frac near 0 and makes the clip grow). Returns clip unchanged for
 * inputs that are not finite or out of range.
 */
double ff_dp_adaptive_clip_next(double clip, double frac, double target,
                                double eta);

/*
 * The noise multiplier the update itself must carry when the count of
 * unclipped updates is released with Gaussian noise of std count_std
 * alongside it, so that both together are exactly as private as one
 * Gaussian of multiplier z: (z^-2 - (2 count_std)^-2)^(-1/2), which is
 * >= z. It assumes the count's sensitivity is 1/2: each contribution
 * counts as its bit b minus 1/2 (b in {0, 1}), i.e. what is noised is
 * sum(b) - arrived / 2, and a known constant (n_planned / 2) is added
 * back only after the noise. Noising sum(b) itself has sensitivity 1 and
 * is NOT covered. The count must also be noised by whoever releases it:
 * a count summed in the clear by secure aggregation reaches the server
 * unnoised. Account the round with z. Returns +INFINITY when
 * 2 count_std <= z and NaN for input that is not finite and > 0.
 */
double ff_dp_adaptive_effective_z(double z, double count_std);

#endif
