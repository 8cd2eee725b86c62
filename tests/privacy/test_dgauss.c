/* test_dgauss.c - the exact discrete Gaussian sampler against the table of
 * notes/privacy.md sec. 1.7 (variance, P[0], P[|X| >= 3]), a chi-square
 * fit, the rational set-up and the argument checks. Statistical checks use
 * 5 standard errors computed from the exact pmf, so a correct sampler fails
 * one of them with probability below 1e-5 per run. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "ff_dgauss.h"

#define SAMPLES 200000 /* per sigma^2: about 0.1 s each */
#define Z_TOL 5.0      /* standard errors */

/* Exact moments of N_Z(0, s2) by direct summation over |x| <= 60 sigma. */
typedef struct moments {
    double var, m4, p0, tail3;
} moments;

static moments exact_moments(double s2)
{
    moments m = {0, 0, 0, 0};
    double z = 0, lim = ceil(60.0 * sqrt(s2)) + 5;
    for (double x = -lim; x <= lim; x += 1.0) {
        double w = exp(-x * x / (2 * s2));
        z += w;
        m.var += x * x * w;
        m.m4 += x * x * x * x * w;
        if (fabs(x) >= 3)
            m.tail3 += w;
    }
    m.var /= z;
    m.m4 /= z;
    m.p0 = 1.0 / z;
    m.tail3 /= z;
    return m;
}

/* notes sec. 1.7: variance and P[0] per sigma^2; the sampler matches them
 * within Z_TOL standard errors, and its mean is within Z_TOL of 0. */
static void moments_match_table(void **state)
{
    (void)state;
    const double s2[4] = {0.25, 1, 4, 100};
    const double var_tab[4] = {0.21501267508813849, 0.99999978876772808, 4.0,
                               100.0};
    const double p0_tab[4] = {0.7865707070419479, 0.39894227826686171,
                              0.19947114020071634, 0.039894228040143268};
    int64_t *x = malloc(SAMPLES * sizeof *x);
    double worst_z = 0, worst_tab = 0;
    assert_non_null(x);

    for (int k = 0; k < 4; k++) {
        /* the table agrees with the pmf summed here */
        moments m = exact_moments(s2[k]);
        double dt = fmax(fabs(m.var - var_tab[k]) / var_tab[k],
                         fabs(m.p0 - p0_tab[k]) / p0_tab[k]);
        worst_tab = fmax(worst_tab, dt);

        /* draw and summarise */
        ff_dgauss g;
        assert_int_equal(ff_dgauss_init_double(&g, s2[k], NULL), 0);
        assert_int_equal(ff_dgauss_sample_vec(&g, x, SAMPLES, NULL), 0);
        double sum = 0, sq = 0, zeros = 0, tail = 0;
        for (size_t i = 0; i < SAMPLES; i++) {
            sum += (double)x[i];
            sq += (double)x[i] * (double)x[i];
            zeros += x[i] == 0;
            tail += llabs(x[i]) >= 3;
        }
        double n = SAMPLES, mean = sum / n, var = sq / n, p0 = zeros / n;

        /* standard errors from the exact pmf */
        double se_mean = sqrt(var_tab[k] / n);
        double se_var = sqrt((m.m4 - var_tab[k] * var_tab[k]) / n);
        double se_p0 = sqrt(p0_tab[k] * (1 - p0_tab[k]) / n);
        double z_mean = fabs(mean) / se_mean;
        double z_var = fabs(var - var_tab[k]) / se_var;
        double z_p0 = fabs(p0 - p0_tab[k]) / se_p0;
        printf("sigma^2 %6g (t=%llu): mean %+.5f (z %.2f)  var %.5f vs "
               "%.5f (z %.2f)  P[0] %.5f vs %.5f (z %.2f)\n", s2[k],
               (unsigned long long)g.t, mean, z_mean, var, var_tab[k], z_var,
               p0, p0_tab[k], z_p0);
        worst_z = fmax(worst_z, fmax(z_mean, fmax(z_var, z_p0)));

        /* sigma^2 = 1: the tail mass of the notes */
        if (s2[k] == 1.0) {
            double pt = tail / n, want = 0.00913434283561;
            double z_t = fabs(pt - want) / sqrt(want * (1 - want) / n);
            printf("sigma^2 1: P[|X|>=3] %.5f vs %.5f (z %.2f)\n", pt, want,
                   z_t);
            worst_z = fmax(worst_z, z_t);
            assert_true(fabs(m.tail3 - want) / want < 1e-10);
        }
    }
    free(x);
    printf("largest z-score %.2f (tol %.0f standard errors, %d samples each);"
           " table vs summed pmf rel %.2e (tol 1e-12)\n", worst_z, Z_TOL,
           SAMPLES, worst_tab);
    assert_true(worst_z <= Z_TOL);
    assert_true(worst_tab <= 1e-12);
}

/* Pearson chi-square at sigma^2 = 4 over bins -8..8 plus two tails
 * (19 bins, 18 degrees of freedom), against the p = 1e-6 critical value
 * from the Wilson-Hilferty approximation. */
static void chi_square_fit(void **state)
{
    (void)state;
    const double s2 = 4.0;
    int64_t *x = malloc(SAMPLES * sizeof *x);
    double count[19] = {0}, expect[19] = {0};
    assert_non_null(x);

    ff_dgauss g;
    assert_int_equal(ff_dgauss_init(&g, 4, 1, NULL), 0);
    assert_int_equal(ff_dgauss_sample_vec(&g, x, SAMPLES, NULL), 0);
    for (size_t i = 0; i < SAMPLES; i++) {
        int64_t v = x[i] < -9 ? -9 : x[i] > 9 ? 9 : x[i];
        count[v + 9] += 1;
    }
    free(x);

    /* expected counts from the pmf, tails folded into the end bins */
    double z = 0;
    for (int v = -80; v <= 80; v++)
        z += exp(-(double)v * v / (2 * s2));
    for (int v = -80; v <= 80; v++) {
        int b = v < -9 ? -9 : v > 9 ? 9 : v;
        expect[b + 9] += SAMPLES * exp(-(double)v * v / (2 * s2)) / z;
    }
    double chi = 0;
    for (int b = 0; b < 19; b++)
        chi += (count[b] - expect[b]) * (count[b] - expect[b]) / expect[b];

    double df = 18, zc = 4.753424; /* upper 1e-6 point of N(0, 1) */
    double h = 2.0 / (9.0 * df);
    double crit = df * pow(1 - h + zc * sqrt(h), 3);
    printf("chi-square %.2f with %g df (critical %.2f at p = 1e-6)\n", chi,
           df, crit);
    assert_true(chi < crit);
}

/* Rational set-up: lowest terms, t = floor(sigma) + 1, the double rounding. */
static void rational_setup(void **state)
{
    (void)state;
    ff_dgauss g;
    assert_int_equal(ff_dgauss_init(&g, 200, 2, NULL), 0);
    assert_true(g.num == 100 && g.den == 1 && g.t == 11);
    assert_int_equal(ff_dgauss_init(&g, 1, 4, NULL), 0);
    assert_true(g.t == 1);
    assert_int_equal(ff_dgauss_init(&g, 15, 4, NULL), 0); /* sigma 1.94 */
    assert_true(g.t == 2);
    assert_int_equal(ff_dgauss_init(&g, 16, 4, NULL), 0); /* sigma 2 */
    assert_true(g.num == 4 && g.t == 3);

    /* a double is rounded up to a multiple of 2^-20 */
    assert_int_equal(ff_dgauss_init_double(&g, 0.3, NULL), 0);
    double got = ff_dgauss_sigma2(&g), d = got - 0.3;
    printf("sigma^2 0.3 -> %llu/%llu = %.12f (error %.2e, tol [0, 9.6e-7])\n",
           (unsigned long long)g.num, (unsigned long long)g.den, got, d);
    assert_true(d >= 0 && d <= 9.6e-7);

    /* the largest allowed sigma^2 still samples */
    int64_t v[4];
    assert_int_equal(ff_dgauss_init_double(&g, FF_DGAUSS_SIGMA2_MAX, NULL),
                     0);
    assert_int_equal(ff_dgauss_sample_vec(&g, v, 4, NULL), 0);
    assert_int_equal(ff_dgauss_init(&g, 7, 3, NULL), 0);
    assert_int_equal(ff_dgauss_sample(&g, v, NULL), 0);
    assert_true(llabs(v[0]) < 100);
}

static void expect_arg(ff_privacy_status st, const ff_privacy_error *err,
                       const char *field)
{
    if (st != FF_PRIVACY_ERR_ARG || strstr(err->msg, field) == NULL)
        printf("expected an error naming '%s', got %d: %s\n", field, st,
               err->msg);
    assert_int_equal(st, FF_PRIVACY_ERR_ARG);
    assert_non_null(strstr(err->msg, field));
}

static void invalid_inputs(void **state)
{
    (void)state;
    ff_dgauss g;
    ff_privacy_error e = {0};
    int64_t v;
    expect_arg(ff_dgauss_init(&g, 0, 1, &e), &e, "num");
    expect_arg(ff_dgauss_init(&g, 1, 0, &e), &e, "den");
    expect_arg(ff_dgauss_init(&g, 1, FF_DGAUSS_DEN_MAX + 1, &e), &e, "den");
    expect_arg(ff_dgauss_init(&g, UINT64_MAX, 3, &e), &e, "num/den");
    expect_arg(ff_dgauss_init_double(&g, NAN, &e), &e, "sigma2");
    expect_arg(ff_dgauss_init_double(&g, -1.0, &e), &e, "sigma2");
    expect_arg(ff_dgauss_init_double(&g, 2 * FF_DGAUSS_SIGMA2_MAX, &e), &e,
               "sigma2");
    memset(&g, 0, sizeof g);
    expect_arg(ff_dgauss_sample(&g, &v, &e), &e, "g:");
    assert_int_equal(ff_dgauss_init(&g, 1, 1, NULL), 0);
    expect_arg(ff_dgauss_sample(&g, NULL, &e), &e, "out");
    printf("invalid inputs: every error names its field\n");
}

int main(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(moments_match_table),
        cmocka_unit_test(chi_square_fit),
        cmocka_unit_test(rational_setup),
        cmocka_unit_test(invalid_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
