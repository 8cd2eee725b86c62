/*
 * test_dp.c - the differential-privacy mechanisms of ff_dp.h: the
 * Walsh-Hadamard transform and rotation, grid noise, Poisson sampling, L2
 * clipping, DDGauss parameters and its encode / secure sum / decode path,
 * adaptive clipping, and SecAgg with modular wrap. Every statistical check
 * states its tolerance and prints what it saw.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "ff_dp.h"
#include "sa_harness.h"
#include "secagg_internal.h"

/* ---- helpers ------------------------------------------------------------- */

/* A standard normal from the deterministic test RNG (Box-Muller). */
static double test_normal(uint32_t *s)
{
    double u1 = ((double)sa_rand(s) + 1.0) / 4294967297.0;
    double u2 = (double)sa_rand(s) / 4294967296.0;
    return sqrt(-2 * log(u1)) * cos(2 * 3.14159265358979323846 * u2);
}

/* A random float vector of length n with L2 norm `norm`. */
static void test_vector(float *v, size_t n, double norm, uint32_t *s)
{
    double sq = 0;
    double *t = malloc(n * sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        t[i] = test_normal(s);
        sq += t[i] * t[i];
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(t[i] * norm / sqrt(sq));
    free(t);
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- Walsh-Hadamard and rotation ---------------------------------------- */

static void hadamard_known_vector(void **state)
{
    (void)state;
    ff_privacy_error err = {0};
    double v[4] = {1, 2, 3, 4}, want[4] = {5, -1, -2, 0}, diff = 0;

    /* H4 [1,2,3,4] = [5,-1,-2,0], then back to [1,2,3,4] */
    assert_int_equal(ff_ddgauss_hadamard(v, 4, &err), FF_PRIVACY_OK);
    for (int i = 0; i < 4; i++)
        diff = fmax(diff, fabs(v[i] - want[i]));
    printf("H4 [1,2,3,4] = [%g, %g, %g, %g], max diff %.3g (tol 1e-12)\n",
           v[0], v[1], v[2], v[3], diff);
    assert_true(diff <= 1e-12);
    assert_int_equal(ff_ddgauss_hadamard(v, 4, &err), FF_PRIVACY_OK);
    diff = 0;
    for (int i = 0; i < 4; i++)
        diff = fmax(diff, fabs(v[i] - (i + 1)));
    printf("H4 H4 x - x: max diff %.3g (tol 1e-12)\n", diff);
    assert_true(diff <= 1e-12);

    /* twice on a longer vector is the identity; the norm is kept */
    enum { N = 4096 };
    static double x[N], y[N];
    uint32_t s = 7;
    double n0 = 0, n1 = 0;
    for (int i = 0; i < N; i++) {
        x[i] = y[i] = test_normal(&s);
        n0 += x[i] * x[i];
    }
    assert_int_equal(ff_ddgauss_hadamard(y, N, &err), FF_PRIVACY_OK);
    for (int i = 0; i < N; i++)
        n1 += y[i] * y[i];
    assert_int_equal(ff_ddgauss_hadamard(y, N, &err), FF_PRIVACY_OK);
    diff = 0;
    for (int i = 0; i < N; i++)
        diff = fmax(diff, fabs(y[i] - x[i]));
    printf("H H x - x over %d: max diff %.3g (tol 1e-12), norm ratio - 1 = "
           "%.3g (tol 1e-12)\n", N, diff, sqrt(n1 / n0) - 1);
    assert_true(diff <= 1e-12);
    assert_true(fabs(sqrt(n1 / n0) - 1) <= 1e-12);

    /* lengths that are not powers of two are refused */
    assert_int_equal(ff_ddgauss_hadamard(x, 3, &err), FF_PRIVACY_ERR_ARG);
    assert_int_equal(ff_ddgauss_hadamard(x, 0, &err), FF_PRIVACY_ERR_ARG);
}

static void rotation_round_trip(void **state)
{
    (void)state;
    enum { N = 1 << 16 };
    ff_privacy_error err = {0};
    uint8_t seed[32], other[32];
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    double *z = malloc(N * sizeof *z);
    uint32_t s = 99;
    assert_true(x && y && z);
    randombytes_buf(seed, sizeof seed);
    memcpy(other, seed, 32);
    other[0] ^= 1;
    for (int i = 0; i < N; i++)
        x[i] = y[i] = z[i] = (float)test_normal(&s);

    /* forward, inverse: back to x */
    assert_int_equal(ff_ddgauss_rotate(seed, y, N, 0, &err), FF_PRIVACY_OK);
    assert_int_equal(ff_ddgauss_rotate(other, z, N, 0, &err), FF_PRIVACY_OK);
    size_t differ = 0;
    for (int i = 0; i < N; i++)
        differ += fabs(y[i] - z[i]) > 1e-9;
    assert_int_equal(ff_ddgauss_rotate(seed, y, N, 1, &err), FF_PRIVACY_OK);
    double diff = 0;
    for (int i = 0; i < N; i++)
        diff = fmax(diff, fabs(y[i] - x[i]));
    printf("rotation round trip over %d: max diff %.3g (tol 1e-5); another "
           "seed changes %zu of %d coordinates\n", N, diff, differ, N);
    assert_true(diff <= 1e-5);
    assert_true(differ > N / 2);
    free(x);
    free(y);
    free(z);
}

/* ---- grid noise ---------------------------------------------------------- */

static void grid_step_values(void **state)
{
    (void)state;
    assert_true(ff_dp_grid_step(1.0) == 0x1p-16);
    assert_true(ff_dp_grid_step(1.999) == 0x1p-16);
    assert_true(ff_dp_grid_step(0.999) == 0x1p-17);
    assert_true(ff_dp_grid_step(0.0) == 0);
    assert_true(ff_dp_grid_step(-1.0) == 0);
    assert_true(ff_dp_grid_step(NAN) == 0);
    assert_true(ff_dp_grid_step(INFINITY) == 0);
    double std = 0.37, g = ff_dp_grid_step(std);
    assert_true(std / g >= 65536 && std / g < 131072);
    assert_true(fabs(ff_dp_grid_l2_slack(0.5, 16) - 2.0) < 1e-15);
}

static void grid_noise_on_grid_and_std(void **state)
{
    (void)state;
    enum { N = 200000 };
    const double std = 0.37;
    ff_privacy_error err = {0};
    float *v = malloc(N * sizeof *v), *in = malloc(N * sizeof *in);
    uint32_t s = 5;
    assert_true(v && in);
    for (int i = 0; i < N; i++)
        v[i] = in[i] = (float)(4.0 * sa_rand(&s) / 4294967296.0 - 2.0);

    double gamma = 0;
    assert_int_equal(ff_dp_noise_add(v, N, std, &gamma, &err),
                     FF_PRIVACY_OK);
    assert_true(gamma == ff_dp_grid_step(std));

    /* every output on the grid; the noise's mean and std */
    size_t off_grid = 0;
    double sum = 0, sq = 0;
    for (int i = 0; i < N; i++) {
        double k = (double)v[i] / gamma;
        off_grid += k != floor(k);
        double d = (double)v[i] - (double)in[i];
        sum += d;
        sq += d * d;
    }
    double mean = sum / N, emp = sqrt(sq / N - mean * mean);
    double se_std = std / sqrt(2.0 * (N - 1)), se_mean = std / sqrt(N);
    printf("grid noise: gamma %.6g, %zu of %d values off the grid; std %.6f "
           "vs %.6f (diff %.3g, tol 3 SE = %.3g); mean %.3g (tol 5 SE = "
           "%.3g)\n", gamma, off_grid, N, emp, std, emp - std, 3 * se_std,
           mean, 5 * se_mean);
    assert_int_equal(off_grid, 0);
    assert_true(fabs(emp - std) <= 3 * se_std);
    assert_true(fabs(mean) <= 5 * se_mean);

    /* a bad value is named and nothing changes */
    memcpy(v, in, N * sizeof *v);
    v[1234] = NAN;
    assert_int_equal(ff_dp_noise_add(v, N, std, NULL, &err),
                     FF_PRIVACY_ERR_ARG);
    printf("NaN refused: %s\n", ff_privacy_error_text(&err));
    assert_non_null(strstr(err.msg, "1234"));
    assert_true(memcmp(v, in, 1234 * sizeof *v) == 0);
    assert_int_equal(ff_dp_noise_add(in, N, 0.0, NULL, &err),
                     FF_PRIVACY_ERR_ARG);
    assert_int_equal(ff_dp_noise_add(in, N, NAN, NULL, &err),
                     FF_PRIVACY_ERR_ARG);
    free(v);
    free(in);
}

/* ---- Poisson sampling ---------------------------------------------------- */

static void poisson_sample_size(void **state)
{
    (void)state;
    enum { COUNT = 50000, REPS = 100 };
    const double q = 0.01;
    ff_privacy_error err = {0};
    size_t *idx = malloc(COUNT * sizeof *idx), n = 0;
    assert_non_null(idx);

    /* mean sample size over REPS draws; indices increasing, in range */
    double total = 0;
    for (int r = 0; r < REPS; r++) {
        assert_int_equal(ff_dp_poisson_sample(q, COUNT, idx, &n, &err),
                         FF_PRIVACY_OK);
        for (size_t i = 0; i < n; i++) {
            assert_true(idx[i] < COUNT);
            if (i > 0)
                assert_true(idx[i] > idx[i - 1]);
        }
        total += (double)n;
    }
    double mean = total / REPS, want = q * COUNT;
    double se = sqrt(COUNT * q * (1 - q) / REPS);
    printf("poisson q=%g of %d, %d draws: mean size %.2f vs %.2f (diff "
           "%.3g, tol 5 SE = %.3g)\n", q, COUNT, REPS, mean, want,
           mean - want, 5 * se);
    assert_true(fabs(mean - want) <= 5 * se);

    /* q = 1 takes everything; bad arguments are refused */
    assert_int_equal(ff_dp_poisson_sample(1.0, 10, idx, &n, &err),
                     FF_PRIVACY_OK);
    assert_int_equal(n, 10);
    assert_int_equal(idx[9], 9);
    assert_int_equal(ff_dp_poisson_sample(0.0, 10, idx, &n, &err),
                     FF_PRIVACY_ERR_ARG);
    assert_int_equal(ff_dp_poisson_sample(1.5, 10, idx, &n, &err),
                     FF_PRIVACY_ERR_ARG);
    assert_int_equal(ff_dp_poisson_sample(0.5, 0, idx, &n, &err),
                     FF_PRIVACY_ERR_ARG);
    assert_int_equal(ff_dp_poisson_sample(NAN, 10, idx, &n, &err),
                     FF_PRIVACY_ERR_ARG);
    free(idx);
}

/* ---- clipping ------------------------------------------------------------ */

static void clip_zero_nan_and_bound(void **state)
{
    (void)state;
    float zero[8] = {0};
    assert_true(ff_dp_clip_l2(zero, 8, 1.0) == 0.0);
    for (int i = 0; i < 8; i++)
        assert_true(zero[i] == 0.0f);

    float bad[3] = {1.0f, NAN, 2.0f};
    assert_true(ff_dp_clip_l2(bad, 3, 1.0) == -1);
    assert_true(bad[0] == 1.0f && bad[2] == 2.0f);
    float inf[2] = {INFINITY, 0.0f};
    assert_true(ff_dp_clip_l2(inf, 2, 1.0) == -1);
    assert_true(ff_dp_clip_l2(zero, 8, 0.0) == -1);

    /* 3-4-5: scaled to norm 1 exactly within float; small stays */
    float v[2] = {3.0f, 4.0f};
    double before = ff_dp_clip_l2(v, 2, 1.0);
    double after = hypot(v[0], v[1]);
    printf("clip 3-4-5 to 1: norm before %g, after %.9f (<= 1, tol 1e-6 "
           "below)\n", before, after);
    assert_true(before == 5.0);
    assert_true(after <= 1.0 && after >= 1.0 - 1e-6);
    float w[2] = {0.3f, 0.4f};
    assert_true(fabs(ff_dp_clip_l2(w, 2, 1.0) - 0.5) < 1e-7);
    assert_true(w[0] == 0.3f && w[1] == 0.4f);

    /* many clips of random vectors: never above the clip */
    enum { N = 1000 };
    static float r[N];
    uint32_t s = 3;
    double worst = 0;
    for (int t = 0; t < 200; t++) {
        double c = 0.01 + 3.0 * sa_rand(&s) / 4294967296.0;
        test_vector(r, N, 10 * c, &s);
        assert_true(ff_dp_clip_l2(r, N, c) > c);
        double sq = 0;
        for (int i = 0; i < N; i++)
            sq += (double)r[i] * r[i];
        worst = fmax(worst, sqrt(sq) / c);
    }
    printf("clip of 200 random vectors: largest norm / clip %.12f (<= 1)\n",
           worst);
    assert_true(worst <= 1.0);
}

/* ---- DDGauss parameters -------------------------------------------------- */

static void ddgauss_rounding_bound_known(void **state)
{
    (void)state;
    ff_ddgauss_params p = {.dim = 1u << 20, .padded = 1u << 20, .bits = 20,
                           .clip = 1.0, .scale = 1000.0,
                           .beta = exp(-0.5), .local_sigma2 = 4,
                           .sites = 1};
    double b = ff_ddgauss_rounding_bound(&p);
    printf("rounding bound cs=1000 d=2^20 beta=e^-0.5: %.8f vs "
           "1124.12454826 (diff %.3g, tol 1e-7)\n", b, b - 1124.12454826);
    assert_true(fabs(b - 1124.12454826) <= 1e-7);
    p.beta = 0;
    b = ff_ddgauss_rounding_bound(&p);
    printf("rounding bound beta=0: %.8f vs 2024\n", b);
    assert_true(fabs(b - 2024.0) <= 1e-9);

    double l2, l1;
    p.beta = exp(-0.5);
    ff_ddgauss_sensitivity(&p, &l2, &l1);
    assert_true(fabs(l2 - (1124.12454826 + 1e-5)) <= 1e-7);
    assert_true(l1 == ceil(l2 * 1024.0));
}

static void ddgauss_params_choose_cases(void **state)
{
    (void)state;
    ff_privacy_error err = {0};
    ff_ddgauss_params p;
    uint8_t seed[32] = {1, 2, 3};

    /* a feasible case: the fields and the k-sigma fit */
    assert_int_equal(ff_ddgauss_params_choose(5000, 20, 1.0, 1.0, 16, seed,
                                              &p, &err), FF_PRIVACY_OK);
    double ls = sqrt(p.local_sigma2);
    double need = 2 * 4.0 * sqrt(p.scale * p.scale * 400 / 8192.0 +
                                 20 * p.local_sigma2);
    printf("choose d=5000 n=20 c=1 z=1 b=16: padded %llu scale %.3f local "
           "std %.0f (z c s / sqrt n = %.3f); 2k std %.1f <= room %.1f\n",
           (unsigned long long)p.padded, p.scale, ls,
           p.scale / sqrt(20.0), need, sqrt(65536.0 * 65536.0 - 320));
    assert_int_equal(p.padded, 8192);
    assert_true(ls == floor(ls) && ls >= p.scale / sqrt(20.0));
    assert_true(ls < p.scale / sqrt(20.0) + 1);
    assert_true(need <= sqrt(65536.0 * 65536.0 - 320));
    assert_true(p.scale >= 1 && fabs(p.beta - exp(-0.5)) < 1e-15);
    assert_true(memcmp(p.rotation_seed, seed, 32) == 0);
    assert_int_equal(ff_ddgauss_params_check(&p, &err), FF_PRIVACY_OK);

    /* 2^b below the sites */
    assert_int_equal(ff_ddgauss_params_choose(100, 1000, 1.0, 1.0, 4, seed,
                                              &p, &err),
                     FF_PRIVACY_ERR_INFEASIBLE);
    printf("infeasible: %s\n", ff_privacy_error_text(&err));
    assert_non_null(strstr(err.msg, "below the 1000 sites"));

    /* 2^2b not above n k^2 */
    assert_int_equal(ff_ddgauss_params_choose(100, 5, 1.0, 1.0, 3, seed, &p,
                                              &err),
                     FF_PRIVACY_ERR_INFEASIBLE);
    printf("infeasible: %s\n", ff_privacy_error_text(&err));
    assert_non_null(strstr(err.msg, "n k^2"));

    /* the scale would be below 1 */
    assert_int_equal(ff_ddgauss_params_choose(1000, 10, 1000.0, 1.0, 8,
                                              seed, &p, &err),
                     FF_PRIVACY_ERR_INFEASIBLE);
    printf("infeasible: %s\n", ff_privacy_error_text(&err));
    assert_non_null(strstr(err.msg, "below 1"));

    /* bad arguments */
    assert_int_equal(ff_ddgauss_params_choose(0, 10, 1.0, 1.0, 16, seed, &p,
                                              &err), FF_PRIVACY_ERR_ARG);
    assert_int_equal(ff_ddgauss_params_choose(10, 10, 1.0, 0.0, 16, seed,
                                              &p, &err), FF_PRIVACY_ERR_ARG);
    assert_int_equal(ff_ddgauss_params_choose(10, 10, 1.0, 1.0, 33, seed,
                                              &p, &err), FF_PRIVACY_ERR_ARG);
    assert_int_equal(ff_ddgauss_params_choose((1u << 24) + 1, 10, 1.0, 1.0,
                                              16, seed, &p, &err),
                     FF_PRIVACY_ERR_ARG);
}

/* ---- DDGauss end to end -------------------------------------------------- */

/*
 * SITES sites encode random vectors (norms alternately above and below the
 * clip), the words are summed mod 2^b, the sum is decoded and compared
 * with the sum of the clipped vectors: the residual's std must match the
 * summed noise sqrt(n local_sigma2) / s within 5 standard errors (plus the
 * rounding variance n / 4 / s^2 at most), its mean within 5 standard
 * errors of 0; every rounded vector must be within the rounding bound.
 */
static void ddgauss_case(uint32_t bits, double z, uint32_t seed_data)
{
    enum { SITES = 20, DIM = 5000 };
    ff_privacy_error err = {0};
    ff_ddgauss_params p;
    uint8_t seed[32];
    randombytes_buf(seed, sizeof seed);
    assert_int_equal(ff_ddgauss_params_choose(DIM, SITES, 1.0, z, bits, seed,
                                              &p, &err), FF_PRIVACY_OK);
    uint64_t d = p.padded, mask = bits == 32 ? 0xffffffffu
                                             : (1u << bits) - 1;
    float *x = malloc(DIM * sizeof *x), *out = malloc(DIM * sizeof *out);
    double *want = calloc(DIM, sizeof *want);
    uint64_t *sum = calloc(d, sizeof *sum);
    uint32_t *words = malloc(d * sizeof *words);
    uint32_t *total = malloc(d * sizeof *total);
    int64_t *r = malloc(d * sizeof *r);
    assert_true(x && out && want && sum && words && total && r);

    /* each site: its clipped vector into the reference, words into sum */
    uint32_t s = seed_data;
    double bound = ff_ddgauss_rounding_bound(&p), worst = 0;
    for (int i = 0; i < SITES; i++) {
        double norm = i % 2 ? 0.2 + 0.7 * i / SITES : 1.5 + 2.0 * i / SITES;
        test_vector(x, DIM, norm, &s);
        double got_norm = 0, sq = 0;
        assert_int_equal(ff_ddgauss_encode(&p, x, words, &got_norm, &err),
                         FF_PRIVACY_OK);
        assert_true(fabs(got_norm - norm) <= 1e-6 * norm);
        double f = norm > 1.0 ? 1.0 / got_norm : 1.0;
        for (int j = 0; j < DIM; j++)
            want[j] += (double)x[j] * f;
        for (uint64_t j = 0; j < d; j++) {
            assert_true(words[j] <= mask);
            sum[j] += words[j];
        }
        /* the rounding alone, for its bound */
        assert_int_equal(ff_ddgauss_round(&p, x, r, NULL, &err),
                         FF_PRIVACY_OK);
        for (uint64_t j = 0; j < d; j++)
            sq += (double)r[j] * (double)r[j];
        worst = fmax(worst, sqrt(sq) / bound);
    }
    for (uint64_t j = 0; j < d; j++)
        total[j] = (uint32_t)(sum[j] & mask);

    /* decode and compare */
    size_t wrapped = 0;
    assert_int_equal(ff_ddgauss_decode(&p, total, out, &wrapped, &err),
                     FF_PRIVACY_OK);
    double rs = 0, rsq = 0, big = 0;
    for (int j = 0; j < DIM; j++) {
        double e = (double)out[j] - want[j];
        rs += e;
        rsq += e * e;
        big = fmax(big, fabs(e));
    }
    double mean = rs / DIM, emp = sqrt(rsq / DIM - mean * mean);
    double lo = sqrt(SITES * p.local_sigma2) / p.scale;
    double hi = sqrt(SITES * (p.local_sigma2 + 0.25)) / p.scale;
    double se = 1 / sqrt(2.0 * (DIM - 1));
    printf("ddgauss b=%u z=%g: n=%d d=%d d'=%llu scale %.1f local std %.0f;"
           " residual std %.6g vs %.6g (ratio - 1 = %.3g, tol 5 SE = %.3g);"
           " mean %.3g (tol %.3g); largest |residual| %.3g; edge words %zu;"
           " largest rounded norm / bound %.9f (<= 1)\n", bits, z, SITES,
           DIM, (unsigned long long)d, p.scale, sqrt(p.local_sigma2), emp,
           lo, emp / lo - 1, 5 * se, mean, 5 * lo / sqrt(DIM), big, wrapped,
           worst);
    assert_true(emp >= lo * (1 - 5 * se) && emp <= hi * (1 + 5 * se));
    assert_true(fabs(mean) <= 5 * hi / sqrt(DIM));
    assert_true(worst <= 1.0);
    assert_true(wrapped == 0);

    /* NaN input is refused, naming the index, and words are zeroed */
    x[17] = NAN;
    assert_int_equal(ff_ddgauss_encode(&p, x, words, NULL, &err),
                     FF_PRIVACY_ERR_ARG);
    assert_non_null(strstr(err.msg, "17"));
    assert_true(words[0] == 0 && words[d - 1] == 0);
    free(x);
    free(out);
    free(want);
    free(sum);
    free(words);
    free(total);
    free(r);
}

static void ddgauss_end_to_end(void **state)
{
    (void)state;
    ddgauss_case(32, 1.0, 21);  /* scale capped at 1e6: no wrap possible */
    ddgauss_case(20, 0.05, 22); /* small noise: a sharp check on the sum */
}

static void ddgauss_bad_params(void **state)
{
    (void)state;
    ff_privacy_error err = {0};
    ff_ddgauss_params p = {.dim = 100, .padded = 128, .bits = 16,
                           .clip = 1, .scale = 100, .beta = 0.5,
                           .local_sigma2 = 16, .sites = 3};
    assert_int_equal(ff_ddgauss_params_check(&p, &err), FF_PRIVACY_OK);
    p.padded = 100;
    assert_int_equal(ff_ddgauss_params_check(&p, &err), FF_PRIVACY_ERR_ARG);
    p.padded = 128;
    p.local_sigma2 = 0;
    assert_int_equal(ff_ddgauss_params_check(&p, &err), FF_PRIVACY_ERR_ARG);
    p.local_sigma2 = 16;
    p.beta = 1;
    assert_int_equal(ff_ddgauss_params_check(&p, &err), FF_PRIVACY_ERR_ARG);
    p.beta = 0.5;
    p.bits = 1;
    assert_int_equal(ff_ddgauss_params_check(&p, &err), FF_PRIVACY_ERR_ARG);
    p.bits = 16;

    /* a word outside the field is refused by the decoder */
    uint32_t w[128] = {0};
    float out[100];
    w[5] = 1u << 16;
    assert_int_equal(ff_ddgauss_decode(&p, w, out, NULL, &err),
                     FF_PRIVACY_ERR_ARG);
    printf("decode refused: %s\n", ff_privacy_error_text(&err));
}

static void ddgauss_speed_2_19(void **state)
{
    (void)state;
    const uint64_t dim = 1u << 19;
    ff_privacy_error err = {0};
    ff_ddgauss_params p;
    uint8_t seed[32];
    randombytes_buf(seed, sizeof seed);
    assert_int_equal(ff_ddgauss_params_choose(dim, 100, 1.0, 1.0, 20, seed,
                                              &p, &err), FF_PRIVACY_OK);
    float *x = malloc(dim * sizeof *x), *out = malloc(dim * sizeof *out);
    uint32_t *words = malloc(dim * sizeof *words);
    uint32_t s = 4;
    assert_true(x && out && words);
    test_vector(x, dim, 2.0, &s);

    double t0 = seconds_now();
    assert_int_equal(ff_ddgauss_encode(&p, x, words, NULL, &err),
                     FF_PRIVACY_OK);
    double t1 = seconds_now();
    assert_int_equal(ff_ddgauss_decode(&p, words, out, NULL, &err),
                     FF_PRIVACY_OK);
    double t2 = seconds_now();
    printf("ddgauss 2^19 coordinates: encode %.3f s, decode %.3f s "
           "(limit 3 s each on a shared machine)\n", t1 - t0, t2 - t1);
    assert_true(t1 - t0 < 3.0 && t2 - t1 < 3.0);
    free(x);
    free(out);
    free(words);
}

/* ---- adaptive clipping --------------------------------------------------- */

static void adaptive_known_answers(void **state)
{
    (void)state;
    double a = ff_dp_adaptive_clip_next(0.1, 1.0, 0.5, 0.2);
    double b = ff_dp_adaptive_clip_next(0.1, 0.0, 0.5, 0.2);
    double z = ff_dp_adaptive_effective_z(1.0, 5.0);
    printf("adaptive: frac 1 -> %.10f (diff %.3g), frac 0 -> %.10f (diff "
           "%.3g), z_Delta %.10f (diff %.3g); tol 1e-10\n", a,
           a - 0.0904837418, b, b - 0.1105170918, z, z - 1.0050378153);
    assert_true(fabs(a - 0.0904837418) <= 1e-10);
    assert_true(fabs(b - 0.1105170918) <= 1e-10);
    assert_true(fabs(z - 1.0050378153) <= 1e-10);

    /* the noised fraction is clamped; bad input leaves the clip alone */
    assert_true(ff_dp_adaptive_clip_next(0.1, 1.7, 0.5, 0.2) == a);
    assert_true(ff_dp_adaptive_clip_next(0.1, -0.3, 0.5, 0.2) == b);
    assert_true(ff_dp_adaptive_clip_next(0.1, NAN, 0.5, 0.2) == 0.1);
    assert_true(ff_dp_adaptive_clip_next(0.1, 0.5, 1.5, 0.2) == 0.1);
    assert_true(isinf(ff_dp_adaptive_effective_z(1.0, 0.5)));
    assert_true(isnan(ff_dp_adaptive_effective_z(0.0, 5.0)));
    assert_true(isnan(ff_dp_adaptive_effective_z(1.0, NAN)));
}

/* ---- SecAgg with modular wrap -------------------------------------------- */

static void secagg_wrap_config(void **state)
{
    (void)state;
    ff_privacy_error err = {0};
    ff_secagg_config c = sa_config(5, 4, 3, 16, 100, 65535, 1);
    assert_int_equal(ff_secagg_config_check(&c, &err),
                     FF_PRIVACY_ERR_OVERFLOW);
    c.wrap = 1;
    assert_int_equal(ff_secagg_config_check(&c, &err), FF_PRIVACY_OK);
    c.max_value = 65534;
    assert_int_equal(ff_secagg_config_check(&c, &err), FF_PRIVACY_ERR_ARG);
    printf("wrap config refused: %s\n", ff_privacy_error_text(&err));
    c.max_value = 65535;
    c.wrap = 2;
    assert_int_equal(ff_secagg_config_check(&c, &err), FF_PRIVACY_ERR_ARG);

    /* wrap is bound into the config digest (and so the session) */
    uint8_t d0[32], d1[32];
    c.wrap = 0;
    sa_config_digest(&c, d0);
    c.wrap = 1;
    sa_config_digest(&c, d1);
    assert_true(memcmp(d0, d1, 32) != 0);
}

/* Runs a wrap round whose inputs lie in the top `span` words of 2^bits. */
static void wrap_round(uint32_t bits, uint32_t span, uint32_t seed)
{
    uint32_t top = bits == 32 ? 0xffffffffu : (1u << bits) - 1;
    ff_secagg_config c = sa_config(6, 5, 4, bits, 300, top, 70 + seed);
    c.wrap = 1;
    sa_world w;
    sa_world_init(&w, &c, seed);
    uint32_t s = seed;
    for (size_t i = 0; i < 6 * 300; i++)
        w.inputs[i] = top - sa_rand(&s) % span;
    uint64_t bad = 0;
    ff_privacy_error err = {0};
    if (sa_run(&w, &bad, &err) != FF_PRIVACY_OK)
        fail_msg("wrap round: %s", ff_privacy_error_text(&err));
    uint32_t first = 0;
    assert_int_equal(ff_secagg_server_result_chunk(w.srv, 0, &first, 1,
                                                   &err), FF_PRIVACY_OK);
    uint64_t plain = 0;
    for (int i = 0; i < 6; i++)
        plain += w.inputs[i * 300];
    printf("secagg wrap b=%u: word 0 plain sum %llu, mod 2^b %llu, secure "
           "sum %u; mismatched words %llu of 300\n", bits,
           (unsigned long long)plain,
           (unsigned long long)(plain & top), first,
           (unsigned long long)bad);
    assert_int_equal(bad, 0);
    assert_int_equal(first, plain & top);
    sa_world_cleanup(&w);
}

static void secagg_wrap_sums_mod_2b(void **state)
{
    (void)state;
    wrap_round(16, 64, 1);
    wrap_round(32, 1000, 2);
}

/* DDGauss words through a real SecAgg round decode like the plain sum. */
static void secagg_wrap_ddgauss(void **state)
{
    (void)state;
    enum { N = 5, DIM = 300 };
    ff_privacy_error err = {0};
    ff_ddgauss_params p;
    uint8_t seed[32];
    randombytes_buf(seed, sizeof seed);
    assert_int_equal(ff_ddgauss_params_choose(DIM, N, 1.0, 1.0, 16, seed,
                                              &p, &err), FF_PRIVACY_OK);
    ff_secagg_config c = sa_config(N, N - 1, 3, p.bits, p.padded,
                                   (1u << p.bits) - 1, 90);
    c.wrap = 1;
    sa_world w;
    sa_world_init(&w, &c, 9);
    float x[DIM], a[DIM], b[DIM];
    uint32_t s = 17, *plain = calloc(p.padded, sizeof *plain);
    uint32_t *secure = malloc(p.padded * sizeof *secure);
    assert_true(plain && secure);
    for (int i = 0; i < N; i++) {
        test_vector(x, DIM, 0.5 + i, &s);
        uint32_t *wi = w.inputs + (size_t)i * p.padded;
        assert_int_equal(ff_ddgauss_encode(&p, x, wi, NULL, &err),
                         FF_PRIVACY_OK);
        for (uint64_t j = 0; j < p.padded; j++)
            plain[j] = (plain[j] + wi[j]) & 0xffffu;
    }
    uint64_t bad = 0;
    if (sa_run(&w, &bad, &err) != FF_PRIVACY_OK)
        fail_msg("ddgauss secagg round: %s", ff_privacy_error_text(&err));
    assert_int_equal(ff_secagg_server_result_chunk(w.srv, 0, secure,
                                                   p.padded, &err),
                     FF_PRIVACY_OK);
    assert_int_equal(ff_ddgauss_decode(&p, plain, a, NULL, &err),
                     FF_PRIVACY_OK);
    assert_int_equal(ff_ddgauss_decode(&p, secure, b, NULL, &err),
                     FF_PRIVACY_OK);
    size_t differ = 0;
    for (int j = 0; j < DIM; j++)
        differ += a[j] != b[j];
    printf("ddgauss through secagg (b=%u, %llu words): %llu mismatched "
           "words, %zu decoded values differ from the plain sum's\n", p.bits,
           (unsigned long long)p.padded, (unsigned long long)bad, differ);
    assert_int_equal(bad, 0);
    assert_int_equal(differ, 0);
    free(plain);
    free(secure);
    sa_world_cleanup(&w);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hadamard_known_vector),
        cmocka_unit_test(rotation_round_trip),
        cmocka_unit_test(grid_step_values),
        cmocka_unit_test(grid_noise_on_grid_and_std),
        cmocka_unit_test(poisson_sample_size),
        cmocka_unit_test(clip_zero_nan_and_bound),
        cmocka_unit_test(ddgauss_rounding_bound_known),
        cmocka_unit_test(ddgauss_params_choose_cases),
        cmocka_unit_test(ddgauss_end_to_end),
        cmocka_unit_test(ddgauss_bad_params),
        cmocka_unit_test(ddgauss_speed_2_19),
        cmocka_unit_test(adaptive_known_answers),
        cmocka_unit_test(secagg_wrap_config),
        cmocka_unit_test(secagg_wrap_sums_mod_2b),
        cmocka_unit_test(secagg_wrap_ddgauss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
