/*
 * ff_accountant.h - Renyi-DP accounting for the Gaussian mechanisms fedfuse
 * uses: the Poisson-subsampled Gaussian (DP-SGD, DP-FedAvg with central
 * noise) and the sum of n discrete Gaussians (distributed DP under SecAgg).
 *
 * An RDP curve is two arrays of the same length: orders (each > 1, or
 * +INFINITY) and the RDP value at each order. Curves compose by scaling
 * (the same mechanism T times) and by adding (different mechanisms or
 * rounds). A curve turns into (epsilon, delta) by the old conversion
 * (Mironov 2017, Prop. 3) or the tight new one (Balle et al. 2020 Thm 21 /
 * Canonne-Kamath-Steinke 2020 Prop. 12); both report the order that gave
 * the answer. Formulas, conventions and the order grids are written down in
 * docs/privacy-accounting.md.
 *
 * Adjacency is add/remove-one throughout. Sensitivity is 1 for the
 * subsampled Gaussian, so sigma is the noise multiplier (noise std / L2
 * clip). Every function is pure (no global state) and thread-safe. Results
 * are finite or +INFINITY (a valid, if useless, upper bound), never NaN.
 */
#ifndef FF_ACCOUNTANT_H
#define FF_ACCOUNTANT_H

#include <stddef.h>
#include <stdint.h>

#include "ff_privacy.h"

#define FF_ACCT_MAX_ORDERS 512    /* capacity of an ff_accountant */
#define FF_ACCT_MAX_ORDER 1048576.0 /* largest finite order accepted */
#define FF_ACCT_FRAC_MAX_TERMS 1000 /* fractional-order series cap */
#define FF_ACCT_PLAN_RTOL 1e-6    /* relative width of the sigma bracket */
#define FF_ACCT_PLAN_SIGMA_MIN 1e-3
#define FF_ACCT_PLAN_SIGMA_MAX 1e6

/* How an RDP curve becomes (epsilon, delta). */
typedef enum ff_acct_conversion {
    FF_ACCT_CONV_NEW = 0, /* Balle et al. 2020 / CKS 2020 Prop. 12 (tight) */
    FF_ACCT_CONV_OLD      /* Mironov 2017 Prop. 3 (what old papers quote) */
} ff_acct_conversion;

/*
 * How the fractional-order series of Mironov-Talwar-Zhang 2019 sec. 3.3 adds
 * its terms. ABS (our default, as dp_accounting since 2024) adds |terms| and
 * is an upper bound free of cancellation; SIGNED (Opacus, TF-Privacy before
 * 2024) follows the sign of the generalised binomial coefficient.
 */
typedef enum ff_acct_series {
    FF_ACCT_SERIES_ABS = 0,
    FF_ACCT_SERIES_SIGNED
} ff_acct_series;

/* Order grids found in the libraries (see docs/privacy-accounting.md). */
typedef enum ff_acct_grid {
    FF_ACCT_GRID_DEFAULT = 0, /* dp_accounting: 1.1..10.9 step 0.1, 11..63,
                                 128, 256, 512, 1024 (156 orders) */
    FF_ACCT_GRID_DPSGD,       /* compute_dp_sgd_privacy: 1.25..4.5, 5..63,
                                 128, 256, 512 (72 orders) */
    FF_ACCT_GRID_DDGAUSS      /* KLS21 accounting_utils: 2..128, 256
                                 (128 orders) */
} ff_acct_grid;

/*
 * The distributed discrete Gaussian mechanism of Kairouz-Liu-Steinke 2021:
 * each of `clients` sites adds N_Z(0, sigma^2) to each of `dim` integer
 * coordinates and SecAgg reveals only the sum. All quantities are in the
 * scaled (integer) domain. l1_sensitivity is usually
 * ceil(l2 * min(sqrt(dim), l2)). q is the Poisson sampling rate of sites
 * (1 = every site every round).
 */
typedef struct ff_acct_ddgauss {
    double l2_sensitivity;
    double l1_sensitivity;
    double sigma;
    uint64_t clients;
    uint64_t dim;
    double q;
} ff_acct_ddgauss;

/* A running RDP curve over fixed orders. Plain caller storage: set it up
 * with ff_accountant_init*, no cleanup needed. Not thread-safe to share. */
typedef struct ff_accountant {
    size_t count;
    double orders[FF_ACCT_MAX_ORDERS];
    double rdp[FF_ACCT_MAX_ORDERS];
} ff_accountant;

/*
 * Writes the orders of grid into orders (capacity cap) and their number into
 * *count. Errors: FF_PRIVACY_ERR_ARG for an unknown grid or a cap that is too
 * small (FF_ACCT_MAX_ORDERS always suffices). Caller owns both outputs.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_acct_grid_fill(ff_acct_grid grid, double *orders, size_t cap,
                  size_t *count, ff_privacy_error *err);

/*
 * Per-step RDP of the Poisson-subsampled Gaussian with sampling rate q in
 * [0, 1] and noise multiplier sigma (finite, > 0) at each of the n orders,
 * written to rdp[0..n). Integer orders use the exact binomial sum in log
 * space; fractional orders the ABS series (see ff_acct_series). q = 0 gives
 * 0, q = 1 gives alpha / (2 sigma^2), order +INFINITY gives +INFINITY. A
 * fractional order whose series does not settle within
 * FF_ACCT_FRAC_MAX_TERMS terms gets +INFINITY, which excludes it.
 * Errors: FF_PRIVACY_ERR_ARG naming q, sigma or orders[i] (NaN, <= 1 or
 * above FF_ACCT_MAX_ORDER). Caller owns the arrays; rdp is untouched on error.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_acct_rdp_sampled_gaussian(double q, double sigma, const double *orders,
                             size_t n, double *rdp, ff_privacy_error *err);

/* As ff_acct_rdp_sampled_gaussian, with the fractional-order series
 * convention chosen by the caller (for cross-checks against Opacus). */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_acct_rdp_sampled_gaussian_series(double q, double sigma,
                                    ff_acct_series series,
                                    const double *orders, size_t n,
                                    double *rdp, ff_privacy_error *err);

/*
 * tau of KLS21 Thm 1: how far the sum of `clients` independent
 * N_Z(0, sigma^2) is from N_Z(0, clients * sigma^2), namely
 * 10 * sum_{k=1}^{clients-1} exp(-2 pi^2 sigma^2 k / (k + 1)). Exact for up
 * to 2^20 + 1 clients; beyond that the remaining terms are bounded from above
 * by their first one (conservative). Returns +INFINITY for sigma <= 0 or NaN.
 */
double ff_acct_ddgauss_tau(double sigma, uint64_t clients);

/*
 * Per-round RDP of the distributed discrete Gaussian m at each order:
 * eps(a) = min{ a D2^2/(2 n s^2) + tau d,
 *               a/2 (D2^2/(n s^2) + 2 D1 tau/(sqrt(n) s) + tau^2 d),
 *               a/2 (D2/(sqrt(n) s) + tau sqrt(d))^2 }
 * (KLS21 Thm 1 / Prop 14; D2, D1 sensitivities, s = sigma, n = clients,
 * d = dim). With q < 1 the generic Poisson-subsampling bound of Zhu-Wang 2019
 * Thm 5 is applied at integer orders (a fractional order uses the bound at
 * its ceiling, valid because RDP grows with the order) and the smaller of
 * the amplified and plain values is kept. Errors: FF_PRIVACY_ERR_ARG naming
 * the bad field of m or orders[i]. Caller owns the arrays.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_acct_rdp_ddgauss(const ff_acct_ddgauss *m, const double *orders, size_t n,
                    double *rdp, ff_privacy_error *err);

/*
 * Composes a mechanism with itself: rdp[i] *= steps (steps >= 0; 0 gives an
 * all-zero curve, even where rdp[i] is +INFINITY). Errors:
 * FF_PRIVACY_ERR_ARG for negative steps or a NaN/negative rdp[i].
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_acct_rdp_compose(double *rdp, size_t n, int64_t steps,
                    ff_privacy_error *err);

/*
 * Adds the curve add into total (same orders, n entries each): the RDP of
 * running both mechanisms. Errors: FF_PRIVACY_ERR_ARG for NaN or negative
 * entries (total untouched then).
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_acct_rdp_add(double *total, const double *add, size_t n,
                ff_privacy_error *err);

/*
 * The smallest epsilon the curve (orders, rdp; n >= 1 entries) guarantees at
 * delta in (0, 1), by conversion conv, and the order that gives it. An order
 * whose RDP is exactly 0 gives epsilon 0 (the two distributions are equal);
 * results are clamped at 0 from below and may be +INFINITY. *order may be
 * NULL. Errors: FF_PRIVACY_ERR_ARG naming delta, conv, orders[i] or rdp[i].
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_acct_epsilon(const double *orders, const double *rdp, size_t n,
                double delta, ff_acct_conversion conv, double *eps,
                double *order, ff_privacy_error *err);

/*
 * The inverse: the smallest delta (at most 1) the curve guarantees at
 * epsilon (finite, >= 0), by conversion conv, and the order that gives it.
 * *order may be NULL. Errors: FF_PRIVACY_ERR_ARG naming eps, conv,
 * orders[i] or rdp[i].
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_acct_delta(const double *orders, const double *rdp, size_t n, double eps,
              ff_acct_conversion conv, double *delta, double *order,
              ff_privacy_error *err);

/*
 * Planning: the noise multiplier for `steps` compositions of the
 * Poisson-subsampled Gaussian at rate q so that epsilon(delta) <= eps on the
 * given orders. Bisection on sigma in [FF_ACCT_PLAN_SIGMA_MIN,
 * FF_ACCT_PLAN_SIGMA_MAX] until the bracket is narrower than
 * FF_ACCT_PLAN_RTOL * sigma; *sigma is the upper end, so its epsilon never
 * exceeds eps. When no noise is needed (q = 0 or steps = 0) *sigma is 0;
 * when FF_ACCT_PLAN_SIGMA_MIN already meets eps, that is returned. Errors:
 * FF_PRIVACY_ERR_ARG naming q, steps, eps, delta, conv or orders (at most
 * FF_ACCT_MAX_ORDERS of them, each > 1 or +INFINITY);
 * FF_PRIVACY_ERR_INFEASIBLE when even FF_ACCT_PLAN_SIGMA_MAX cannot reach eps
 * on these orders (the message gives the floor).
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_acct_plan_sigma(double q, int64_t steps, double eps, double delta,
                   const double *orders, size_t n, ff_acct_conversion conv,
                   double *sigma, ff_privacy_error *err);

/*
 * Sets acct to an all-zero curve over the n orders (1 <= n <=
 * FF_ACCT_MAX_ORDERS; each > 1 or +INFINITY). Errors: FF_PRIVACY_ERR_ARG.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_accountant_init(ff_accountant *acct, const double *orders, size_t n,
                   ff_privacy_error *err);

/* As ff_accountant_init over one of the named grids. */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_accountant_init_grid(ff_accountant *acct, ff_acct_grid grid,
                        ff_privacy_error *err);

/*
 * Adds `steps` compositions of the Poisson-subsampled Gaussian (q, sigma) to
 * acct. Errors as ff_acct_rdp_sampled_gaussian and ff_acct_rdp_compose; acct
 * is unchanged on error.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_accountant_add_gaussian(ff_accountant *acct, double q, double sigma,
                           int64_t steps, ff_privacy_error *err);

/* Adds `rounds` rounds of the distributed discrete Gaussian m to acct.
 * Errors as ff_acct_rdp_ddgauss; acct is unchanged on error. */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_accountant_add_ddgauss(ff_accountant *acct, const ff_acct_ddgauss *m,
                          int64_t rounds, ff_privacy_error *err);

/* ff_acct_epsilon over acct's curve. */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_accountant_epsilon(const ff_accountant *acct, double delta,
                      ff_acct_conversion conv, double *eps, double *order,
                      ff_privacy_error *err);

/* ff_acct_delta over acct's curve. */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_accountant_delta(const ff_accountant *acct, double eps,
                    ff_acct_conversion conv, double *delta, double *order,
                    ff_privacy_error *err);

#endif
