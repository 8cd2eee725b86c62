/* test_secagg_params.c - the (k, t) finder against the FCP table (notes
 * §1.6), the complete-graph fallback, the overflow refusal, quantising. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "ff_secagg.h"

static void finder_matches_fcp_table(void **state)
{
    (void)state;
    static const struct {
        uint32_t n;
        double corrupt, dropout;
        ff_secagg_adversary adv;
        uint32_t k, t;
    } rows[] = {
        {1000, 0.05, 0.05, FF_SECAGG_SEMI_HONEST, 30, 17},
        {10000, 0.05, 0.05, FF_SECAGG_SEMI_HONEST, 34, 20},
        {1000000, 0.05, 0.05, FF_SECAGG_SEMI_HONEST, 38, 22},
        {1000, 0.05, 0.05, FF_SECAGG_SEMI_MALICIOUS, 52, 37},
        {10000, 0.05, 0.05, FF_SECAGG_SEMI_MALICIOUS, 62, 44},
        {100, 0.33, 0.33, FF_SECAGG_SEMI_HONEST, 68, 34},
        {1000, 0.33, 0.05, FF_SECAGG_SEMI_HONEST, 78, 60},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint32_t k = 0, t = 0;
        ff_privacy_error err = {0};
        assert_int_equal(ff_secagg_params_find(rows[i].n, rows[i].dropout,
                                               rows[i].corrupt, rows[i].adv,
                                               &k, &t, &err),
                         FF_PRIVACY_OK);
        printf("n=%-7u corrupt=%.2f dropout=%.2f %-14s k=%u t=%u "
               "(table %u, %u)\n", rows[i].n, rows[i].corrupt,
               rows[i].dropout, rows[i].adv ? "semi-malicious" : "semi-honest",
               k, t, rows[i].k, rows[i].t);
        assert_int_equal(k, rows[i].k);
        assert_int_equal(t, rows[i].t);
    }
}

static void small_federations_use_the_complete_graph(void **state)
{
    (void)state;
    uint32_t k = 0, t = 0;
    assert_int_equal(ff_secagg_params_find(6, 1.0 / 3, 0.0,
                                           FF_SECAGG_SEMI_HONEST, &k, &t, NULL),
                     0);
    assert_int_equal(k, 5);
    assert_int_equal(t, 4); /* 2 of 6 may drop */
    assert_int_equal(ff_secagg_params_find(20, 0.05, 0.05,
                                           FF_SECAGG_SEMI_HONEST, &k, &t, NULL),
                     0);
    assert_int_equal(k, 19);
    assert_int_equal(t, 19);
    ff_privacy_error err = {0};
    assert_int_equal(ff_secagg_params_find(10, 0.5, 0.5,
                                           FF_SECAGG_SEMI_HONEST, &k, &t, &err),
                     FF_PRIVACY_ERR_INFEASIBLE);
    printf("infeasible: %s\n", err.msg);
    assert_int_equal(ff_secagg_params_find(10, 0.3, 0.25,
                                           FF_SECAGG_SEMI_MALICIOUS, &k, &t,
                                           &err),
                     FF_PRIVACY_ERR_INFEASIBLE);
    printf("infeasible: %s\n", err.msg);
}

static void overflowing_configuration_is_refused(void **state)
{
    (void)state;
    ff_secagg_config c = {.round = 1, .n_sites = 1000, .degree = 30,
                          .threshold = 17, .bits = 32, .length = 10,
                          .max_value = 4294967u};
    ff_privacy_error err = {0};
    assert_int_equal(ff_secagg_config_check(&c, &err), FF_PRIVACY_OK);
    c.max_value = 4294968u; /* 1000 x this = 4294968000 >= 2^32 */
    assert_int_equal(ff_secagg_config_check(&c, &err),
                     FF_PRIVACY_ERR_OVERFLOW);
    printf("overflow: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "2^32"));
    c.bits = 20;
    c.max_value = 1048;  /* 1000 x 1048 = 1048000 < 2^20 = 1048576 */
    assert_int_equal(ff_secagg_config_check(&c, &err), FF_PRIVACY_OK);
    c.max_value = 1049;
    assert_int_equal(ff_secagg_config_check(&c, &err),
                     FF_PRIVACY_ERR_OVERFLOW);
    uint8_t pk[32] = {0};
    ff_secagg_server *srv = NULL;
    assert_int_equal(ff_secagg_server_create(&c, pk, &srv, &err),
                     FF_PRIVACY_ERR_OVERFLOW);
    assert_null(srv);
    c.degree = 31; /* odd degree, not the complete graph */
    c.max_value = 1;
    assert_int_equal(ff_secagg_config_check(&c, &err), FF_PRIVACY_ERR_ARG);
    printf("bad degree: %s\n", err.msg);
}

static void quantise_round_trip_within_bound(void **state)
{
    (void)state;
    enum { M = 4096, SITES = 7 };
    static float x[SITES][M], back[M];
    static uint32_t q[M], sum[M];
    const float clip = 2.0f;
    const uint32_t maxv = 1u << 20;
    uint32_t rng = 99;
    double truth[M] = {0};
    for (int stochastic = 0; stochastic < 2; stochastic++) {
        memset(sum, 0, sizeof sum);
        memset(truth, 0, sizeof truth);
        for (int s = 0; s < SITES; s++) {
            for (int i = 0; i < M; i++) {
                rng = rng * 1664525u + 1013904223u;
                x[s][i] = ((float)(rng >> 8) / 16777216.0f - 0.5f) * 5.0f;
                truth[i] += fmax(-clip, fmin(clip, x[s][i]));
            }
            assert_int_equal(ff_secagg_quantize(x[s], M, clip, maxv,
                                                stochastic, q, NULL), 0);
            for (int i = 0; i < M; i++) {
                assert_true(q[i] <= maxv);
                sum[i] += q[i];
            }
        }
        assert_int_equal(ff_secagg_dequantize_sum(sum, M, SITES, clip, maxv,
                                                  back, NULL), 0);
        double worst = 0, bound = SITES * clip / (double)maxv *
                                  (stochastic ? 2.0 : 1.0);
        for (int i = 0; i < M; i++)
            worst = fmax(worst, fabs(back[i] - truth[i]));
        /* float32 output adds at most a few ulp of |sum| <= 14 */
        double tol = bound + 8 * 14 * 1.2e-7;
        printf("quantise %s: max |error| %.3g, bound %.3g (+float %.3g)\n",
               stochastic ? "stochastic" : "nearest", worst, bound,
               tol - bound);
        assert_true(worst <= tol);
    }
    float bad[2] = {0.0f, NAN};
    ff_privacy_error err = {0};
    assert_int_equal(ff_secagg_quantize(bad, 2, clip, maxv, false, q, &err),
                     FF_PRIVACY_ERR_ARG);
    assert_non_null(strstr(err.msg, "value 1"));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finder_matches_fcp_table),
        cmocka_unit_test(small_federations_use_the_complete_graph),
        cmocka_unit_test(overflowing_configuration_is_refused),
        cmocka_unit_test(quantise_round_trip_within_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
