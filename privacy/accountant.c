/*
 * accountant.c - RDP of the subsampled Gaussian and of the distributed
 * discrete Gaussian, composition, conversion to (epsilon, delta), planning.
 * The formulas are written out in docs/privacy-accounting.md.
 */
#include "ff_accountant.h"

#include <math.h>
#include <string.h>

#define FRAC_STOP_GAP 32.0   /* stop once a term is e^-32 below the sum */
#define TAU_EXACT_TERMS 1048576u
#define LOG_SQRT_PI 0.57236494292470008707 /* log(sqrt(pi)) */
#define PI 3.14159265358979323846
#define SIGMA_TINY 1e-150    /* below this 1/(2 sigma^2) overflows */

/* ---- log-space helpers ------------------------------------------------ */

/* log(exp(a) + exp(b)), exact for -inf and +inf operands. */
static double log_add(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    double hi = a > b ? a : b, lo = a > b ? b : a;
    if (hi == INFINITY)
        return INFINITY;
    return hi + log1p(exp(lo - hi));
}

/* A signed number held as sign and log of its magnitude. */
typedef struct signed_log {
    int sign; /* +1, -1, or 0 for zero */
    double mag;
} signed_log;

/* acc += sign * exp(mag). */
static void signed_log_add(signed_log *acc, int sign, double mag)
{
    if (mag == -INFINITY)
        return;
    if (acc->sign == 0) {
        acc->sign = sign;
        acc->mag = mag;
        return;
    }
    if (acc->sign == sign) {
        acc->mag = log_add(acc->mag, mag);
        return;
    }

    /* opposite signs: the larger magnitude wins */
    if (mag == acc->mag) {
        acc->sign = 0;
        acc->mag = -INFINITY;
    } else if (mag > acc->mag) {
        acc->mag = mag + log1p(-exp(acc->mag - mag));
        acc->sign = sign;
    } else {
        acc->mag = acc->mag + log1p(-exp(mag - acc->mag));
    }
}

/* log(erfc(x)), accurate where erfc(x) underflows (x > 26). */
static double log_erfc(double x)
{
    if (x < 26.0)
        return log(erfc(x));

    /* asymptotic series erfc(x) ~ e^{-x^2}/(x sqrt(pi)) (1 - 1/(2x^2) ...)
     * with four correction terms: relative error below 1e-13 at x = 26 */
    double u = 1.0 / (2.0 * x * x);
    double series = -u + 3.0 * u * u - 15.0 * u * u * u
                    + 105.0 * u * u * u * u;
    return -x * x - log(x) - LOG_SQRT_PI + log1p(series);
}

/* log(expm1(c)) for c > 0. */
static double log_expm1(double c)
{
    if (c > 30.0)
        return c + log1p(-exp(-c));
    return log(expm1(c));
}

/* ---- validation -------------------------------------------------------- */

static int is_integer_order(double a)
{
    return a == floor(a);
}

static ff_privacy_status check_orders(const double *orders, size_t n,
                                      ff_privacy_error *err)
{
    if (orders == NULL || n == 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "orders: empty or NULL list");
    for (size_t i = 0; i < n; i++) {
        double a = orders[i];
        if (a == INFINITY)
            continue;
        if (!(a > 1.0) || a > FF_ACCT_MAX_ORDER)
            return ff_privacy_error_set(
                err, FF_PRIVACY_ERR_ARG,
                "orders[%zu] = %g: an order must be in (1, %g] or +inf", i,
                a, FF_ACCT_MAX_ORDER);
    }
    return FF_PRIVACY_OK;
}

static ff_privacy_status check_q(double q, ff_privacy_error *err)
{
    if (!(q >= 0.0 && q <= 1.0))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "q = %g: sampling rate must be in [0, 1]",
                                    q);
    return FF_PRIVACY_OK;
}

static ff_privacy_status check_curve(const double *rdp, size_t n,
                                     const char *name, ff_privacy_error *err)
{
    if (rdp == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "%s: NULL",
                                    name);
    for (size_t i = 0; i < n; i++)
        if (!(rdp[i] >= 0.0))
            return ff_privacy_error_set(
                err, FF_PRIVACY_ERR_ARG,
                "%s[%zu] = %g: RDP must be >= 0 and not NaN", name, i,
                rdp[i]);
    return FF_PRIVACY_OK;
}

/* ---- Poisson-subsampled Gaussian --------------------------------------- */

/*
 * log A_a for integer a >= 2, 0 < q < 1. A_a = sum_i C(a,i) q^i (1-q)^(a-i)
 * exp((i^2 - i)/(2 s^2)); since the binomial weights sum to 1 and the
 * exponent is 0 for i = 0, 1, A_a = 1 + S with S = sum_{i>=2} w_i
 * expm1(c_i). S is summed in log space (every term is positive) and log A
 * = log1p(S) keeps full relative precision when the RDP is tiny.
 */
static double log_a_int(double q, double sigma, double a)
{
    double log_q = log(q), log_1mq = log1p(-q);
    double inv2s2 = 1.0 / (2.0 * sigma * sigma);
    double log_binom = log(a); /* log C(a, 1) */
    double log_s = -INFINITY;

    for (double i = 2.0; i <= a; i += 1.0) {
        /* C(a,i) = C(a,i-1) (a-i+1)/i, in logs */
        log_binom += log(a - i + 1.0) - log(i);
        double c = (i * i - i) * inv2s2;
        double term = log_binom + i * log_q + (a - i) * log_1mq
                      + log_expm1(c);
        log_s = log_add(log_s, term);
    }
    return log_add(0.0, log_s);
}

/*
 * log A_a for fractional a, 0 < q < 1: the two-sided series of
 * Mironov-Talwar-Zhang 2019 sec. 3.3. The integral splits at z0 where the
 * two Gaussians' ratio crosses (1-q)/q; on each side the generalised
 * binomial series converges, giving terms s0 (left, erfc of (i - z0)) and
 * s1 (right, erfc of (z0 - j), j = a - i). ABS adds |terms|; SIGNED adds
 * them with the sign of C(a, i). Stops when both terms are decreasing and
 * FRAC_STOP_GAP below the running sum; +inf if that never happens.
 */
static double log_a_frac(double q, double sigma, double a,
                         ff_acct_series series)
{
    double s2 = sigma * sigma;
    double z0 = s2 * log(1.0 / q - 1.0) + 0.5;
    double log_q = log(q), log_1mq = log1p(-q);
    double root2s = sqrt(2.0) * sigma;
    double log_binom = 0.0; /* log |C(a, 0)| */
    int binom_sign = 1;
    signed_log sum = {0, -INFINITY};
    double prev0 = INFINITY, prev1 = INFINITY;

    for (int k = 0; k < FF_ACCT_FRAC_MAX_TERMS; k++) {
        double i = (double)k, j = a - i;

        /* |C(a,i)| = |C(a,i-1)| |a-i+1| / i; the sign flips when a-i+1 < 0 */
        if (k > 0) {
            double f = a - i + 1.0;
            log_binom += log(fabs(f)) - log(i);
            if (f < 0.0)
                binom_sign = -binom_sign;
        }

        /* the two terms; (i^2 - i) is 0 for i = 0, 1 */
        double e0 = i * i - i == 0.0 ? 0.0 : (i * i - i) / (2.0 * s2);
        double e1 = (j * j - j) / (2.0 * s2);
        double t0 = log_binom + i * log_q + j * log_1mq + e0 + log(0.5)
                    + log_erfc((i - z0) / root2s);
        double t1 = log_binom + j * log_q + i * log_1mq + e1 + log(0.5)
                    + log_erfc((z0 - j) / root2s);
        int sign = series == FF_ACCT_SERIES_ABS ? 1 : binom_sign;
        signed_log_add(&sum, sign, t0);
        signed_log_add(&sum, sign, t1);

        /* converged: both falling and negligible next to the sum */
        double big = t0 > t1 ? t0 : t1;
        if (t0 < prev0 && t1 < prev1 && sum.sign > 0
            && big < sum.mag - FRAC_STOP_GAP)
            return sum.mag;
        prev0 = t0;
        prev1 = t1;
    }
    return INFINITY;
}

/* RDP of one step at one order; all arguments already validated. */
static double rdp_sgm_one(double q, double sigma, double a,
                          ff_acct_series series)
{
    if (q == 0.0)
        return 0.0;
    if (a == INFINITY || sigma < SIGMA_TINY)
        return INFINITY;
    if (q == 1.0)
        return a / (2.0 * sigma * sigma);

    double log_a = is_integer_order(a) ? log_a_int(q, sigma, a)
                                       : log_a_frac(q, sigma, a, series);
    double r = log_a / (a - 1.0);

    /* A_a >= 1, so r >= 0; rounding can leave -1e-17 */
    if (r < 0.0)
        r = 0.0;
    /* defence in depth: an undefined value becomes the safe bound */
    if (isnan(r))
        r = INFINITY;
    return r;
}

ff_privacy_status ff_acct_rdp_sampled_gaussian_series(
    double q, double sigma, ff_acct_series series, const double *orders,
    size_t n, double *rdp, ff_privacy_error *err)
{
    ff_privacy_status st = check_q(q, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (!(sigma > 0.0) || sigma == INFINITY)
        return ff_privacy_error_set(
            err, FF_PRIVACY_ERR_ARG,
            "sigma = %g: noise multiplier must be finite and > 0", sigma);
    if (series != FF_ACCT_SERIES_ABS && series != FF_ACCT_SERIES_SIGNED)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "series = %d: unknown convention",
                                    (int)series);
    st = check_orders(orders, n, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (rdp == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "rdp: NULL");

    for (size_t i = 0; i < n; i++)
        rdp[i] = rdp_sgm_one(q, sigma, orders[i], series);
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_acct_rdp_sampled_gaussian(double q, double sigma,
                                               const double *orders,
                                               size_t n, double *rdp,
                                               ff_privacy_error *err)
{
    return ff_acct_rdp_sampled_gaussian_series(q, sigma, FF_ACCT_SERIES_ABS,
                                               orders, n, rdp, err);
}

/* ---- distributed discrete Gaussian ------------------------------------- */

double ff_acct_ddgauss_tau(double sigma, uint64_t clients)
{
    if (!(sigma > 0.0))
        return INFINITY;
    if (clients <= 1)
        return 0.0;
    double c = 2.0 * PI * PI * sigma * sigma;
    double tau = 0.0, k = 1.0;
    uint64_t exact = clients - 1 < TAU_EXACT_TERMS ? clients - 1
                                                   : TAU_EXACT_TERMS;

    /* the terms fall with k toward exp(-c); sum the first ones exactly */
    for (uint64_t m = 0; m < exact; m++, k += 1.0)
        tau += exp(-c * k / (k + 1.0));

    /* the rest are each at most the last exact term */
    if (clients - 1 > exact)
        tau += (double)(clients - 1 - exact) * exp(-c * (k - 1.0) / k);
    return 10.0 * tau;
}

static ff_privacy_status check_ddgauss(const ff_acct_ddgauss *m,
                                       ff_privacy_error *err)
{
    if (m == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "m: NULL");
    if (!(m->l2_sensitivity > 0.0) || m->l2_sensitivity == INFINITY)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "l2_sensitivity = %g: must be finite "
                                    "and > 0", m->l2_sensitivity);
    if (!(m->l1_sensitivity > 0.0) || m->l1_sensitivity == INFINITY)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "l1_sensitivity = %g: must be finite "
                                    "and > 0", m->l1_sensitivity);
    if (!(m->sigma > 0.0) || m->sigma == INFINITY)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "sigma = %g: local noise std must be "
                                    "finite and > 0", m->sigma);
    if (m->clients == 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "clients = 0: need at least one");
    if (m->dim == 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "dim = 0: need at least one coordinate");
    return check_q(m->q, err);
}

/* Unamplified per-round RDP at order a (KLS21 Thm 1, three bounds). */
static double ddgauss_plain(const ff_acct_ddgauss *m, double tau, double a)
{
    if (a == INFINITY)
        return INFINITY;
    double n = (double)m->clients, d = (double)m->dim;
    double d2 = m->l2_sensitivity, d1 = m->l1_sensitivity, s = m->sigma;
    double rn_s = sqrt(n) * s;

    double b1 = a * d2 * d2 / (2.0 * n * s * s) + tau * d;
    double b2 = a / 2.0
                * (d2 * d2 / (n * s * s) + 2.0 * d1 * tau / rn_s
                   + tau * tau * d);
    double x = d2 / rn_s + tau * sqrt(d);
    double b3 = a / 2.0 * x * x;
    double best = b1 < b2 ? b1 : b2;
    return best < b3 ? best : b3;
}

/*
 * Zhu-Wang 2019 Thm 5 at integer order a >= 2, 0 < q < 1:
 * (a-1) eps'(a) = log[ (1-q)^(a-1) (1 + (a-1) q)
 *                      + C(a,2) q^2 (1-q)^(a-2) e^{eps(2)}
 *                      + 3 sum_{l=3}^{a} C(a,l) q^l (1-q)^(a-l)
 *                          e^{(l-1) eps(l)} ].
 */
static double ddgauss_amplified(const ff_acct_ddgauss *m, double tau,
                                double a)
{
    double q = m->q, log_q = log(q), log_1mq = log1p(-q);
    double log_binom = log(a) + log(a - 1.0) - log(2.0); /* C(a, 2) */
    double sum = (a - 1.0) * log_1mq + log1p((a - 1.0) * q);
    sum = log_add(sum, log_binom + 2.0 * log_q + (a - 2.0) * log_1mq
                           + ddgauss_plain(m, tau, 2.0));

    for (double l = 3.0; l <= a; l += 1.0) {
        log_binom += log(a - l + 1.0) - log(l);
        double t = log(3.0) + log_binom + l * log_q + (a - l) * log_1mq
                   + (l - 1.0) * ddgauss_plain(m, tau, l);
        sum = log_add(sum, t);
    }
    double r = sum / (a - 1.0);
    return r > 0.0 ? r : 0.0;
}

ff_privacy_status ff_acct_rdp_ddgauss(const ff_acct_ddgauss *m,
                                      const double *orders, size_t n,
                                      double *rdp, ff_privacy_error *err)
{
    ff_privacy_status st = check_ddgauss(m, err);
    if (st != FF_PRIVACY_OK)
        return st;
    st = check_orders(orders, n, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (rdp == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "rdp: NULL");

    double tau = ff_acct_ddgauss_tau(m->sigma, m->clients);
    for (size_t i = 0; i < n; i++) {
        double a = orders[i];
        double r = m->q == 0.0 ? 0.0 : ddgauss_plain(m, tau, a);

        /* Poisson amplification at the order's ceiling; keep the smaller */
        if (m->q > 0.0 && m->q < 1.0 && a != INFINITY) {
            double amp = ddgauss_amplified(m, tau, ceil(a));
            if (amp < r)
                r = amp;
        }
        rdp[i] = isnan(r) ? INFINITY : r;
    }
    return FF_PRIVACY_OK;
}

/* ---- composition ------------------------------------------------------- */

ff_privacy_status ff_acct_rdp_compose(double *rdp, size_t n, int64_t steps,
                                      ff_privacy_error *err)
{
    if (steps < 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "steps = %lld: must be >= 0",
                                    (long long)steps);
    ff_privacy_status st = check_curve(rdp, n, "rdp", err);
    if (st != FF_PRIVACY_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        rdp[i] = steps == 0 ? 0.0 : rdp[i] * (double)steps;
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_acct_rdp_add(double *total, const double *add, size_t n,
                                  ff_privacy_error *err)
{
    ff_privacy_status st = check_curve(total, n, "total", err);
    if (st == FF_PRIVACY_OK)
        st = check_curve(add, n, "add", err);
    if (st != FF_PRIVACY_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        total[i] += add[i];
    return FF_PRIVACY_OK;
}

/* ---- conversion to (epsilon, delta) ------------------------------------ */

/* epsilon at one order for delta; a > 1 or +inf, r >= 0 */
static double eps_at(double a, double r, double delta, ff_acct_conversion c)
{
    if (r == 0.0)
        return 0.0;
    if (a == INFINITY || r == INFINITY)
        return r;
    if (c == FF_ACCT_CONV_OLD)
        return r - log(delta) / (a - 1.0);
    return r + log1p(-1.0 / a) - (log(delta) + log(a)) / (a - 1.0);
}

/* log delta at one order for eps */
static double log_delta_at(double a, double r, double eps,
                           ff_acct_conversion c)
{
    if (r == 0.0)
        return -INFINITY;
    if (r == INFINITY)
        return INFINITY;
    if (a == INFINITY)
        return r <= eps ? -INFINITY : 0.0;
    if (c == FF_ACCT_CONV_OLD)
        return (a - 1.0) * (r - eps);
    return (a - 1.0) * (r - eps + log1p(-1.0 / a)) - log(a);
}

static ff_privacy_status check_conversion(const double *orders,
                                          const double *rdp, size_t n,
                                          ff_acct_conversion conv,
                                          ff_privacy_error *err)
{
    if (conv != FF_ACCT_CONV_NEW && conv != FF_ACCT_CONV_OLD)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "conv = %d: unknown conversion",
                                    (int)conv);
    ff_privacy_status st = check_orders(orders, n, err);
    if (st != FF_PRIVACY_OK)
        return st;
    return check_curve(rdp, n, "rdp", err);
}

ff_privacy_status ff_acct_epsilon(const double *orders, const double *rdp,
                                  size_t n, double delta,
                                  ff_acct_conversion conv, double *eps,
                                  double *order, ff_privacy_error *err)
{
    if (!(delta > 0.0 && delta < 1.0))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "delta = %g: must be in (0, 1)", delta);
    ff_privacy_status st = check_conversion(orders, rdp, n, conv, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (eps == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "eps: NULL");

    /* the best order; the first one wins ties */
    size_t best = 0;
    double best_eps = INFINITY;
    for (size_t i = 0; i < n; i++) {
        double e = eps_at(orders[i], rdp[i], delta, conv);
        if (e < best_eps) {
            best_eps = e;
            best = i;
        }
    }
    *eps = best_eps > 0.0 ? best_eps : 0.0;
    if (order != NULL)
        *order = orders[best];
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_acct_delta(const double *orders, const double *rdp,
                                size_t n, double eps,
                                ff_acct_conversion conv, double *delta,
                                double *order, ff_privacy_error *err)
{
    if (!(eps >= 0.0) || eps == INFINITY)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "eps = %g: must be finite and >= 0", eps);
    ff_privacy_status st = check_conversion(orders, rdp, n, conv, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (delta == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "delta: NULL");

    size_t best = 0;
    double best_log = INFINITY;
    for (size_t i = 0; i < n; i++) {
        double l = log_delta_at(orders[i], rdp[i], eps, conv);
        if (l < best_log) {
            best_log = l;
            best = i;
        }
    }
    *delta = best_log >= 0.0 ? 1.0 : exp(best_log);
    if (order != NULL)
        *order = orders[best];
    return FF_PRIVACY_OK;
}

/* ---- planning ---------------------------------------------------------- */

/* epsilon of steps x (q, sigma) on the orders; inputs already checked */
static double plan_eps(double q, double sigma, int64_t steps,
                       const double *orders, size_t n, double delta,
                       ff_acct_conversion conv)
{
    double rdp[FF_ACCT_MAX_ORDERS];
    double eps = INFINITY;
    for (size_t i = 0; i < n; i++)
        rdp[i] = rdp_sgm_one(q, sigma, orders[i], FF_ACCT_SERIES_ABS)
                 * (double)steps;
    if (ff_acct_epsilon(orders, rdp, n, delta, conv, &eps, NULL, NULL)
        != FF_PRIVACY_OK)
        return INFINITY;
    return eps;
}

ff_privacy_status ff_acct_plan_sigma(double q, int64_t steps, double eps,
                                     double delta, const double *orders,
                                     size_t n, ff_acct_conversion conv,
                                     double *sigma, ff_privacy_error *err)
{
    /* check every input once, up front */
    ff_privacy_status st = check_q(q, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (steps < 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "steps = %lld: must be >= 0",
                                    (long long)steps);
    if (!(eps > 0.0) || eps == INFINITY)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "eps = %g: target must be finite and > 0",
                                    eps);
    if (!(delta > 0.0 && delta < 1.0))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "delta = %g: must be in (0, 1)", delta);
    if (conv != FF_ACCT_CONV_NEW && conv != FF_ACCT_CONV_OLD)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "conv = %d: unknown conversion",
                                    (int)conv);
    if (n > FF_ACCT_MAX_ORDERS)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "orders: %zu given, at most %d", n,
                                    FF_ACCT_MAX_ORDERS);
    st = check_orders(orders, n, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (sigma == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "sigma: NULL");

    /* nothing released, nothing to hide */
    if (q == 0.0 || steps == 0) {
        *sigma = 0.0;
        return FF_PRIVACY_OK;
    }

    /* the bracket ends: feasible at the top, maybe already at the bottom */
    double lo = FF_ACCT_PLAN_SIGMA_MIN, hi = FF_ACCT_PLAN_SIGMA_MAX;
    double floor_eps = plan_eps(q, hi, steps, orders, n, delta, conv);
    if (floor_eps > eps)
        return ff_privacy_error_set(
            err, FF_PRIVACY_ERR_INFEASIBLE,
            "eps = %g: unreachable on these orders, even sigma = %g gives "
            "%.6g", eps, hi, floor_eps);
    if (plan_eps(q, lo, steps, orders, n, delta, conv) <= eps) {
        *sigma = lo;
        return FF_PRIVACY_OK;
    }

    /* epsilon falls as sigma grows: bisect in log scale, keep eps(hi) <= eps */
    while (hi - lo > FF_ACCT_PLAN_RTOL * hi) {
        double mid = sqrt(lo * hi);
        if (plan_eps(q, mid, steps, orders, n, delta, conv) <= eps)
            hi = mid;
        else
            lo = mid;
    }
    *sigma = hi;
    return FF_PRIVACY_OK;
}

/* ---- order grids and the running accountant ---------------------------- */

/* Appends the integers first..last to orders. */
static size_t grid_range(double *orders, size_t at, int first, int last)
{
    for (int k = first; k <= last; k++)
        orders[at++] = (double)k;
    return at;
}

ff_privacy_status ff_acct_grid_fill(ff_acct_grid grid, double *orders,
                                    size_t cap, size_t *count,
                                    ff_privacy_error *err)
{
    static const double dpsgd_low[] = {1.25, 1.5, 1.75, 2.0, 2.25,
                                       2.5,  3.0, 3.5,  4.0, 4.5};
    double tmp[FF_ACCT_MAX_ORDERS];
    size_t k = 0;

    switch (grid) {
    case FF_ACCT_GRID_DEFAULT:
        for (int x = 1; x <= 99; x++)
            tmp[k++] = 1.0 + x / 10.0;
        k = grid_range(tmp, k, 11, 63);
        tmp[k++] = 128.0;
        tmp[k++] = 256.0;
        tmp[k++] = 512.0;
        tmp[k++] = 1024.0;
        break;
    case FF_ACCT_GRID_DPSGD:
        for (size_t i = 0; i < sizeof dpsgd_low / sizeof dpsgd_low[0]; i++)
            tmp[k++] = dpsgd_low[i];
        k = grid_range(tmp, k, 5, 63);
        tmp[k++] = 128.0;
        tmp[k++] = 256.0;
        tmp[k++] = 512.0;
        break;
    case FF_ACCT_GRID_DDGAUSS:
        k = grid_range(tmp, k, 2, 128);
        tmp[k++] = 256.0;
        break;
    default:
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "grid = %d: unknown order grid",
                                    (int)grid);
    }
    if (orders == NULL || count == NULL || cap < k)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "cap = %zu: grid %d needs %zu orders",
                                    cap, (int)grid, k);
    memcpy(orders, tmp, k * sizeof tmp[0]);
    *count = k;
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_accountant_init(ff_accountant *acct,
                                     const double *orders, size_t n,
                                     ff_privacy_error *err)
{
    if (acct == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "acct: NULL");
    if (n > FF_ACCT_MAX_ORDERS)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "orders: %zu given, at most %d", n,
                                    FF_ACCT_MAX_ORDERS);
    ff_privacy_status st = check_orders(orders, n, err);
    if (st != FF_PRIVACY_OK)
        return st;
    memset(acct, 0, sizeof *acct);
    memcpy(acct->orders, orders, n * sizeof orders[0]);
    acct->count = n;
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_accountant_init_grid(ff_accountant *acct,
                                          ff_acct_grid grid,
                                          ff_privacy_error *err)
{
    double orders[FF_ACCT_MAX_ORDERS];
    size_t n = 0;
    ff_privacy_status st =
        ff_acct_grid_fill(grid, orders, FF_ACCT_MAX_ORDERS, &n, err);
    if (st != FF_PRIVACY_OK)
        return st;
    return ff_accountant_init(acct, orders, n, err);
}

ff_privacy_status ff_accountant_add_gaussian(ff_accountant *acct, double q,
                                             double sigma, int64_t steps,
                                             ff_privacy_error *err)
{
    double rdp[FF_ACCT_MAX_ORDERS];
    if (acct == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "acct: NULL");
    ff_privacy_status st = ff_acct_rdp_sampled_gaussian(
        q, sigma, acct->orders, acct->count, rdp, err);
    if (st == FF_PRIVACY_OK)
        st = ff_acct_rdp_compose(rdp, acct->count, steps, err);
    if (st == FF_PRIVACY_OK)
        st = ff_acct_rdp_add(acct->rdp, rdp, acct->count, err);
    return st;
}

ff_privacy_status ff_accountant_add_ddgauss(ff_accountant *acct,
                                            const ff_acct_ddgauss *m,
                                            int64_t rounds,
                                            ff_privacy_error *err)
{
    double rdp[FF_ACCT_MAX_ORDERS];
    if (acct == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "acct: NULL");
    ff_privacy_status st =
        ff_acct_rdp_ddgauss(m, acct->orders, acct->count, rdp, err);
    if (st == FF_PRIVACY_OK)
        st = ff_acct_rdp_compose(rdp, acct->count, rounds, err);
    if (st == FF_PRIVACY_OK)
        st = ff_acct_rdp_add(acct->rdp, rdp, acct->count, err);
    return st;
}

ff_privacy_status ff_accountant_epsilon(const ff_accountant *acct,
                                        double delta, ff_acct_conversion conv,
                                        double *eps, double *order,
                                        ff_privacy_error *err)
{
    if (acct == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "acct: NULL");
    return ff_acct_epsilon(acct->orders, acct->rdp, acct->count, delta, conv,
                           eps, order, err);
}

ff_privacy_status ff_accountant_delta(const ff_accountant *acct, double eps,
                                      ff_acct_conversion conv, double *delta,
                                      double *order, ff_privacy_error *err)
{
    if (acct == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG, "acct: NULL");
    return ff_acct_delta(acct->orders, acct->rdp, acct->count, eps, conv,
                         delta, order, err);
}
