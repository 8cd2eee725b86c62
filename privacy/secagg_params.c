/*
 * secagg_params.c - configuration checks and the (degree, threshold)
 * finder for the SecAgg+ Harary graph (notes §1.6; same targets as FCP's
 * finder: security 2^-40, failure 2^-20, my own implementation).
 */
#include "ff_secagg.h"

#include <math.h>
#include <stdlib.h>

#define SECURITY_BITS 40.0
#define CORRECTNESS_BITS 20.0
#define RATE_EPS 1e-14 /* keeps float rounding from helping the adversary */

ff_privacy_status ff_secagg_config_check(const ff_secagg_config *cfg,
                                         ff_privacy_error *err)
{
    if (cfg == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "secagg config: NULL");
    uint32_t n = cfg->n_sites, k = cfg->degree, t = cfg->threshold;
    if (n < 3 || n > FF_SECAGG_MAX_SITES)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg config: %u sites (3..%u allowed)", n,
            FF_SECAGG_MAX_SITES);
    if (k < 2 || k > n - 1 || k > FF_SECAGG_MAX_DEGREE ||
        (k % 2 != 0 && k != n - 1))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg config: degree %u for %u sites (even 2..%u, or %u for "
            "the complete graph, at most %u)", k, n, n - 1, n - 1,
            FF_SECAGG_MAX_DEGREE);
    if (t < 2 || t > k + 1)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg config: threshold %u with degree %u (2..%u allowed: "
            "a secret has degree + 1 holders)", t, k, k + 1);
    if (cfg->bits < 1 || cfg->bits > 32)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg config: %u bits (1..32 allowed)", cfg->bits);
    if (cfg->length < 1 || cfg->length > FF_SECAGG_MAX_LENGTH)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg config: vector of %llu words (1..%llu allowed)",
            (unsigned long long)cfg->length,
            (unsigned long long)FF_SECAGG_MAX_LENGTH);
    if (cfg->max_value < 1)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg config: max_value 0 leaves nothing to sum");

    /* a modular sum (DDGauss) takes every word of the field */
    unsigned long long field_max = (1ull << cfg->bits) - 1;
    if (cfg->wrap > 1)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg config: wrap %u (0 or 1 allowed)", cfg->wrap);
    if (cfg->wrap == 1) {
        if (cfg->max_value != field_max)
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                "secagg config: wrap = 1 needs max_value 2^%u - 1 = %llu, "
                "not %u", cfg->bits, field_max, cfg->max_value);
        return FF_PRIVACY_OK;
    }

    /* the sum of n inputs must stay below 2^b, or it wraps silently */
    unsigned long long worst = (unsigned long long)n * cfg->max_value;
    if (worst >= (1ull << cfg->bits))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_OVERFLOW,
            "secagg config: %u sites x max value %u = %llu does not fit "
            "below 2^%u = %llu; lower max_value to %llu or raise bits",
            n, cfg->max_value, worst, cfg->bits, 1ull << cfg->bits,
            ((1ull << cfg->bits) - 1) / n);
    return FF_PRIVACY_OK;
}

/* log of the hypergeometric pmf: x marked among `draws` from N with K
 * marked; -INFINITY outside the support. */
static double hyper_log_pmf(double N, double K, double draws, double x)
{
    if (x < 0 || x > draws || x > K || draws - x > N - K)
        return -INFINITY;
    return lgamma(K + 1) - lgamma(x + 1) - lgamma(K - x + 1) +
           lgamma(N - K + 1) - lgamma(draws - x + 1) -
           lgamma(N - K - draws + x + 1) - lgamma(N + 1) +
           lgamma(draws + 1) + lgamma(N - draws + 1);
}

/* Smallest x with P[X > x] < q, X ~ Hypergeometric(N, K, draws). */
static uint32_t upper_quantile(uint32_t N, uint32_t K, uint32_t draws,
                               double q)
{
    double tail = 0; /* P[X > x], built from the top down */
    for (uint32_t x = draws; x > 0; x--) {
        double next = tail + exp(hyper_log_pmf(N, K, draws, x));
        if (next >= q)
            return x; /* P[X > x] = tail < q, P[X > x-1] >= q */
        tail = next;
    }
    return 0;
}

/* Smallest x with P[X <= x] >= q. */
static uint32_t lower_quantile(uint32_t N, uint32_t K, uint32_t draws,
                               double q)
{
    double cdf = 0;
    for (uint32_t x = 0; x <= draws; x++) {
        cdf += exp(hyper_log_pmf(N, K, draws, x));
        if (cdf >= q)
            return x;
    }
    return draws;
}

/* log of the union bound on the ring losing connectivity once `bad` sites
 * are removed (two runs of k/2 removed sites are needed to cut it). */
static double log_disconnect(uint32_t n, uint32_t k, uint32_t bad)
{
    if (k > bad)
        return -INFINITY;
    return log((double)n) + log((double)(n - k - 1)) - log(2.0) +
           lgamma(bad + 1.0) + lgamma(n - k + 1.0) - lgamma(n + 1.0) -
           lgamma((double)bad - k + 1.0);
}

/* Threshold for degree k, or 0 when k is not enough. */
static uint32_t threshold_for(uint32_t n, uint32_t k, double dropout,
                              double corrupt, ff_secagg_adversary adv)
{
    uint32_t corrupt_n = (uint32_t)floor((corrupt + RATE_EPS) * n);
    uint32_t dropout_n = (uint32_t)floor((dropout + RATE_EPS) * n);
    uint32_t alive_n = (uint32_t)ceil((1 - dropout - RATE_EPS) * n);
    double half_security = -(SECURITY_BITS + 1) * log(2.0);

    /* 1. the honest survivors must stay connected */
    if (log_disconnect(n, k, corrupt_n + dropout_n) >= half_security)
        return 0;

    /* 2. t1: corrupt neighbours exceed it with probability < 2^-41 / n;
     *    t2: surviving neighbours fall to it with probability >= 2^-20 / n */
    uint32_t t1 = upper_quantile(n, corrupt_n, k,
                                 pow(2, -(SECURITY_BITS + 1)) / n);
    uint32_t t2 = lower_quantile(n, alive_n, k, pow(2, -CORRECTNESS_BITS) / n);
    if (adv == FF_SECAGG_SEMI_MALICIOUS)
        t1 = (uint32_t)ceil((t1 + k - 1.25) / 2);
    if (t2 <= t1)
        return 0;
    return t1 + 1 > 2 ? t1 + 1 : 2;
}

/* Complete graph fallback: the largest t that survives the dropout. */
static ff_privacy_status complete_graph(uint32_t n, double dropout,
                                        double corrupt,
                                        ff_secagg_adversary adv, uint32_t *k,
                                        uint32_t *t, ff_privacy_error *err)
{
    uint32_t th = (uint32_t)ceil((1 - dropout) * n - 1e-9);
    double need = adv == FF_SECAGG_SEMI_MALICIOUS
                      ? ceil((n + corrupt * n) / 2)
                      : ceil(corrupt * n);
    if (th < 2)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_INFEASIBLE,
            "secagg params: %u sites with dropout %.3f leave a threshold "
            "below 2", n, dropout);
    if (th <= need)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_INFEASIBLE,
            "secagg params: complete graph of %u sites: threshold %u "
            "(tolerating dropout %.3f) must exceed %.0f for corrupt "
            "fraction %.3f", n, th, dropout, need, corrupt);
    *k = n - 1;
    *t = th;
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_secagg_params_find(uint32_t n, double dropout,
                                        double corrupt,
                                        ff_secagg_adversary adversary,
                                        uint32_t *degree, uint32_t *threshold,
                                        ff_privacy_error *err)
{
    if (n < 3 || n > FF_SECAGG_MAX_SITES)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg params: %u sites (3..%u allowed)", n,
            FF_SECAGG_MAX_SITES);
    if (!(dropout >= 0 && dropout < 1) || !(corrupt >= 0 && corrupt < 1))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg params: dropout %g and corrupt %g must lie in [0, 1)",
            dropout, corrupt);
    double load = adversary == FF_SECAGG_SEMI_MALICIOUS
                      ? corrupt + 2 * dropout : corrupt + dropout;
    if (load > 0.9)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_INFEASIBLE,
            "secagg params: corrupt + %sdropout = %.3f exceeds 0.9",
            adversary == FF_SECAGG_SEMI_MALICIOUS ? "2 x " : "", load);

    /* small federations use classic SecAgg: everyone is a neighbour */
    if (n < FF_SECAGG_COMPLETE_BELOW)
        return complete_graph(n, dropout, corrupt, adversary, degree,
                              threshold, err);

    /* the smallest even degree that meets both targets */
    for (uint32_t k = 2; k < n - 1 && k <= FF_SECAGG_MAX_DEGREE; k += 2) {
        uint32_t t = threshold_for(n, k, dropout, corrupt, adversary);
        if (t != 0) {
            *degree = k;
            *threshold = t;
            return FF_PRIVACY_OK;
        }
    }
    if (n - 1 > FF_SECAGG_MAX_DEGREE)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_INFEASIBLE,
            "secagg params: no degree up to %u meets the targets for %u "
            "sites", FF_SECAGG_MAX_DEGREE, n);
    return complete_graph(n, dropout, corrupt, adversary, degree, threshold,
                          err);
}
