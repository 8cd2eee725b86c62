/*
 * Tests for the site-level DP update builders (client/update.c): central
 * plain uploads are clipped to the clip with the unclipped bit reported;
 * central SecAgg words dequantise back to the clipped delta with the raw
 * bit and group ones; distributed words of three sites, summed modulo
 * 2^bits as SecAgg does, decode with ff_ddgauss_decode to the sum of the
 * clipped deltas within the noise; and a task that does not fit the model
 * is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../client/ff_site_update.h"
#include "../../privacy/ff_dp.h"
#include "../../privacy/ff_secagg.h"

#define P 1000                  /* parameters of the fake update */

/* An update whose delta is delta[0..P) (little-endian host). */
static void update_make(ff_site_update *u, const float *delta)
{
    memset(u, 0, sizeof *u);
    strcpy(u->header.site_id, "site-a");
    u->header.round = 1;
    u->header.param_count = P;
    u->header.n_groups = FF_GROUP_COUNT;
    u->data = malloc(4 * P);
    assert_non_null(u->data);
    memcpy(u->data, delta, 4 * P);
    u->len = 4 * P;
}

/* A delta of L2 norm `norm` with a shape that differs per seed. */
static void delta_make(float *d, double norm, int seed)
{
    double s = 0.0;
    int i;

    for (i = 0; i < P; i++) {
        d[i] = (float)sin(0.37 * i + seed) * (float)(1 + (i * seed) % 5);
        s += (double)d[i] * d[i];
    }
    for (i = 0; i < P; i++)
        d[i] = (float)(d[i] * norm / sqrt(s));
}

static double l2(const float *v, size_t n)
{
    double s = 0.0;
    size_t i;

    for (i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

/* ---- central, plain ---- */

/* A long delta comes out at the clip with unclipped = 0; a short one is
 * unchanged, with the bit only when asked for. */
static void central_clip_bounds_norm(void **state)
{
    static float d[P], out[P];
    ff_site_update u;
    ff_error err = {0};
    double norm = 0.0, after;

    (void)state;
    delta_make(d, 5.0, 1);
    update_make(&u, d);
    assert_int_equal(ff_site_update_clip(&u, 1.0, 1, &norm, &err), FF_OK);
    memcpy(out, u.data, sizeof out);
    after = l2(out, P);
    printf("clipped norm %.9f for clip 1 (before %.6f; tolerance 1e-6 "
           "above)\n", after, norm);
    assert_true(fabs(norm - 5.0) < 1e-5);
    assert_true(after <= 1.0 * (1.0 + 1e-6));
    assert_true(after >= 1.0 * (1.0 - 1e-5));
    assert_int_equal(u.header.unclipped, 0);
    ff_site_update_cleanup(&u);

    delta_make(d, 0.5, 2);
    update_make(&u, d);
    assert_int_equal(ff_site_update_clip(&u, 1.0, 1, &norm, &err), FF_OK);
    assert_memory_equal(u.data, d, sizeof d);
    assert_int_equal(u.header.unclipped, 1);
    assert_int_equal(ff_site_update_clip(&u, 1.0, 0, &norm, &err), FF_OK);
    assert_int_equal(u.header.unclipped, 0);
    assert_int_equal(ff_site_update_clip(&u, NAN, 0, &norm, &err),
                     FF_ERR_ARG);
    ff_site_update_cleanup(&u);
}

/* ---- central, SecAgg ---- */

/* The words dequantise to the clipped delta (error <= clip / max_value),
 * then the raw bit and a raw 1 per group. */
static void central_words_layout(void **state)
{
    enum { M = P + 1 + FF_GROUP_COUNT };
    static float d[P], back[P], clipped[P];
    static uint32_t words[M];
    const float clip = 0.8f;
    const uint32_t max_value = 1u << 20;
    ff_privacy_error pe = {0};
    ff_site_update u;
    ff_error err = {0};
    double norm = 0.0, worst = 0.0;
    int i;

    (void)state;
    delta_make(d, 3.0, 3);
    memcpy(clipped, d, sizeof d);
    (void)ff_dp_clip_l2(clipped, P, clip);
    update_make(&u, d);
    assert_int_equal(ff_site_update_central_words(&u, clip, max_value, 1,
                                                  words, M, &norm, &err),
                     FF_OK);
    assert_int_equal(ff_secagg_dequantize_sum(words, P, 1, clip, max_value,
                                              back, &pe), FF_PRIVACY_OK);
    for (i = 0; i < P; i++)
        if (fabs((double)back[i] - clipped[i]) > worst)
            worst = fabs((double)back[i] - clipped[i]);
    printf("central words: largest error %.3g (tolerance %.3g)\n", worst,
           2.0 * clip / max_value);
    assert_true(worst <= 2.0 * clip / max_value);
    assert_int_equal(words[P], 0);           /* norm 3 > clip */
    for (i = 0; i < FF_GROUP_COUNT; i++)
        assert_int_equal(words[P + 1 + i], 1);
    assert_int_equal(ff_site_update_central_words(&u, clip, max_value, 1,
                                                  words, M - 1, &norm, &err),
                     FF_ERR_SHAPE);
    ff_site_update_cleanup(&u);

    /* A short delta reports its bit. */
    delta_make(d, 0.1, 4);
    update_make(&u, d);
    assert_int_equal(ff_site_update_central_words(&u, clip, max_value, 1,
                                                  words, M, &norm, &err),
                     FF_OK);
    assert_int_equal(words[P], 1);
    ff_site_update_cleanup(&u);
}

/* ---- distributed ---- */

/* The task a coordinator would send for params. */
static ff_wire_site_dp_task task_from(const ff_ddgauss_params *p)
{
    ff_wire_site_dp_task t;

    memset(&t, 0, sizeof t);
    t.mode = FF_WIRE_SITE_DP_DISTRIBUTED;
    t.clip = p->clip;
    t.report_unclipped = 1;
    t.bits = p->bits;
    t.padded = p->padded;
    t.scale = p->scale;
    t.beta = p->beta;
    t.local_sigma2 = p->local_sigma2;
    t.sites = p->sites;
    memcpy(t.rotation_seed, p->rotation_seed, 32);
    return t;
}

/* Three sites' words, summed mod 2^bits, decode to the sum of their
 * clipped deltas within the noise; the bits add up in the last word. */
static void distributed_words_decode(void **state)
{
    enum { SITES = 3 };
    static float d[SITES][P], want[P], got[P];
    uint32_t *words, *sum;
    uint8_t seed[32];
    const double clip = 1.0, z = 0.5;
    ff_privacy_error pe = {0};
    ff_ddgauss_params params;
    ff_wire_site_dp_task t;
    ff_site_update u;
    ff_error err = {0};
    double norm = 0.0, worst = 0.0, tol, mask;
    size_t m, i;
    int s;

    (void)state;
    randombytes_buf(seed, sizeof seed);
    assert_int_equal(ff_ddgauss_params_choose(P, SITES, clip, z, 20, seed,
                                              &params, &pe), FF_PRIVACY_OK);
    t = task_from(&params);
    m = (size_t)params.padded + 1;
    mask = ldexp(1.0, (int)params.bits);
    words = calloc(m, sizeof *words);
    sum = calloc(m, sizeof *sum);
    assert_non_null(words);
    assert_non_null(sum);

    /* Each site encodes; the sum wraps as SecAgg's does. */
    for (s = 0; s < SITES; s++) {
        delta_make(d[s], s == 0 ? 0.4 : 2.0 + s, 5 + s);
        update_make(&u, d[s]);
        assert_int_equal(ff_site_update_ddgauss_words(&u, &t, words, m,
                                                      &norm, &err), FF_OK);
        for (i = 0; i < m; i++)
            sum[i] = (uint32_t)fmod((double)sum[i] + words[i], mask);
        (void)ff_dp_clip_l2(d[s], P, clip);
        for (i = 0; i < P; i++)
            want[i] += d[s][i];
        ff_site_update_cleanup(&u);
    }
    assert_int_equal(sum[params.padded], 1);    /* only site 0 unclipped */

    /* Decoded, the sum is the clipped sum plus noise of central std z c
     * (and rounding): allow 6 standard deviations of both. */
    assert_int_equal(ff_ddgauss_decode(&params, sum, got, NULL, &pe),
                     FF_PRIVACY_OK);
    for (i = 0; i < P; i++)
        if (fabs((double)got[i] - want[i]) > worst)
            worst = fabs((double)got[i] - want[i]);
    tol = 6.0 * sqrt(SITES * (params.local_sigma2 + 1.0)) / params.scale;
    printf("distributed: largest difference %.4g (tolerance %.4g: 6 std "
           "of noise %.4g plus rounding)\n", worst, tol,
           sqrt(SITES * params.local_sigma2) / params.scale);
    assert_true(worst <= tol);

    /* A padded length that does not fit the model, or a vector of the
     * wrong length, is refused. */
    update_make(&u, d[0]);
    t.padded *= 2;
    assert_int_equal(ff_site_update_ddgauss_words(&u, &t, words, m, &norm,
                                                  &err), FF_ERR_SHAPE);
    printf("refused: %s\n", ff_error_text(&err));
    t.padded /= 2;
    assert_int_equal(ff_site_update_ddgauss_words(&u, &t, words, m - 1,
                                                  &norm, &err),
                     FF_ERR_SHAPE);
    ff_site_update_cleanup(&u);
    sodium_memzero(words, m * sizeof *words);
    free(words);
    free(sum);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(central_clip_bounds_norm),
        cmocka_unit_test(central_words_layout),
        cmocka_unit_test(distributed_words_decode),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
