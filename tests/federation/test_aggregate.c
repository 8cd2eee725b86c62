/*
 * Tests for coordinator/aggregate.c: the running weighted sum against a
 * naive per-group weighted average computed from kept copies of every
 * update, groups without examples, and refusals that leave the sum as it
 * was.
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

#include "aggregate.h"

/* Tolerance of float32 results against the double-precision reference. */
#define TOL 1e-5

/* A small deterministic generator (xorshift64*), values in [-1, 1). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (float)((double)((rng_state * 2685821657736338717ull) >> 11) /
                   (double)(1ull << 53) * 2.0 - 1.0);
}

/* Four groups of different sizes with a gap (parameters 50..59 belong to
 * no group), like a model with unowned padding. */
enum { N = 100, G = 4 };
static const size_t off[G] = {0, 20, 35, 60};
static const size_t len[G] = {20, 15, 15, 40};

/* Naive reference: new_i = old_i + sum_s n_sg d_si / sum_s n_sg. */
static void naive_average(const float *old, float deltas[][N],
                          uint64_t counts[][G], int sites, double *out)
{
    for (size_t i = 0; i < N; i++)
        out[i] = old[i];
    for (int g = 0; g < G; g++) {
        double num_w = 0.0;
        for (int s = 0; s < sites; s++)
            num_w += (double)counts[s][g];
        if (num_w == 0.0)
            continue;
        for (size_t i = off[g]; i < off[g] + len[g]; i++) {
            double acc = 0.0;
            for (int s = 0; s < sites; s++)
                acc += (double)counts[s][g] * (double)deltas[s][i];
            out[i] = (double)old[i] + acc / num_w;
        }
    }
}

/* The running sum equals the naive weighted average, group by group. */
static void weighted_average_matches_naive(void **state)
{
    enum { S = 5 };
    float old[N], params[N], deltas[S][N];
    uint64_t counts[S][G];
    double ref[N], maxdiff = 0.0;
    ff_aggregate *a = NULL;
    ff_error err = {0};

    (void)state;
    for (size_t i = 0; i < N; i++)
        old[i] = params[i] = rnd();
    for (int s = 0; s < S; s++) {
        for (size_t i = 0; i < N; i++)
            deltas[s][i] = rnd();
        for (int g = 0; g < G; g++)
            counts[s][g] = (uint64_t)(1 + (s * 37 + g * 11) % 97);
    }
    counts[2][1] = 0;             /* a site that did not train group 1 */
    assert_int_equal(ff_aggregate_create(&a, N, G, off, len, &err), FF_OK);
    for (int s = 0; s < S; s++)
        assert_int_equal(ff_aggregate_add(a, deltas[s], N, counts[s], G,
                                          &err), FF_OK);
    assert_int_equal(ff_aggregate_count(a), S);
    assert_int_equal(ff_aggregate_apply(a, params, N, &err), FF_OK);

    naive_average(old, deltas, counts, S, ref);
    for (size_t i = 0; i < N; i++) {
        double d = fabs((double)params[i] - ref[i]);
        if (d > maxdiff)
            maxdiff = d;
    }
    printf("weighted average: largest difference to the naive reference "
           "%.3g (tolerance %.0e)\n", maxdiff, TOL);
    assert_true(maxdiff <= TOL);

    /* Parameters outside every group are untouched. */
    for (size_t i = 50; i < 60; i++)
        assert_true(params[i] == old[i]);
    ff_aggregate_destroy(a);
}

/* A group no site trained keeps its old values exactly. */
static void group_without_examples_keeps_old_value(void **state)
{
    float old[N], params[N], d1[N], d2[N];
    uint64_t c1[G] = {10, 0, 5, 7}, c2[G] = {3, 0, 9, 1};
    ff_aggregate *a = NULL;
    ff_error err = {0};

    (void)state;
    for (size_t i = 0; i < N; i++) {
        old[i] = params[i] = rnd();
        d1[i] = rnd();
        d2[i] = rnd();
    }
    assert_int_equal(ff_aggregate_create(&a, N, G, off, len, &err), FF_OK);
    assert_int_equal(ff_aggregate_add(a, d1, N, c1, G, &err), FF_OK);
    assert_int_equal(ff_aggregate_add(a, d2, N, c2, G, &err), FF_OK);
    assert_int_equal(ff_aggregate_group_examples(a, 1), 0);
    assert_int_equal(ff_aggregate_group_examples(a, 2), 14);
    assert_int_equal(ff_aggregate_apply(a, params, N, &err), FF_OK);
    for (size_t i = off[1]; i < off[1] + len[1]; i++)
        assert_true(params[i] == old[i]);
    /* ... while a trained group moved. */
    assert_true(params[off[2]] != old[off[2]]);
    ff_aggregate_destroy(a);
}

/* A single site with equal counts gives old + its delta. */
static void single_site_adds_its_delta(void **state)
{
    float params[N], delta[N];
    uint64_t c[G] = {4, 4, 4, 4};
    double maxdiff = 0.0;
    ff_aggregate *a = NULL;
    ff_error err = {0};

    (void)state;
    for (size_t i = 0; i < N; i++) {
        params[i] = 1.0f;
        delta[i] = 0.25f * (float)(i % 8);
    }
    assert_int_equal(ff_aggregate_create(&a, N, G, off, len, &err), FF_OK);
    assert_int_equal(ff_aggregate_add(a, delta, N, c, G, &err), FF_OK);
    assert_int_equal(ff_aggregate_apply(a, params, N, &err), FF_OK);
    for (int g = 0; g < G; g++)
        for (size_t i = off[g]; i < off[g] + len[g]; i++) {
            double d = fabs((double)params[i] - (1.0 + delta[i]));
            if (d > maxdiff)
                maxdiff = d;
        }
    printf("single site: largest difference %.3g\n", maxdiff);
    assert_true(maxdiff <= TOL);
    ff_aggregate_destroy(a);
}

/* NaN/Inf, wrong sizes and empty counts are refused and change nothing;
 * reset empties the sum. */
static void refused_updates_leave_sum_unchanged(void **state)
{
    float params[N], ok[N], bad[N], before[N];
    uint64_t c[G] = {2, 2, 2, 2}, zero[G] = {0, 0, 0, 0};
    ff_aggregate *a = NULL;
    ff_error err = {0};

    (void)state;
    for (size_t i = 0; i < N; i++) {
        params[i] = before[i] = rnd();
        ok[i] = bad[i] = rnd();
    }
    bad[42] = NAN;
    assert_int_equal(ff_aggregate_create(&a, N, G, off, len, &err), FF_OK);
    assert_int_equal(ff_aggregate_apply(a, params, N, &err), FF_ERR_STATE);

    assert_int_equal(ff_aggregate_add(a, bad, N, c, G, &err),
                     FF_ERR_NONFINITE);
    assert_non_null(strstr(err.msg, "42"));
    bad[42] = INFINITY;
    assert_int_equal(ff_aggregate_add(a, bad, N, c, G, &err),
                     FF_ERR_NONFINITE);
    assert_int_equal(ff_aggregate_add(a, ok, N - 1, c, G, &err),
                     FF_ERR_SHAPE);
    assert_int_equal(ff_aggregate_add(a, ok, N, c, G - 1, &err),
                     FF_ERR_SHAPE);
    assert_int_equal(ff_aggregate_add(a, ok, N, zero, G, &err), FF_ERR_ARG);
    assert_int_equal(ff_aggregate_count(a), 0);
    assert_int_equal(ff_aggregate_group_examples(a, 0), 0);

    /* One good update, then reset: nothing is left. */
    assert_int_equal(ff_aggregate_add(a, ok, N, c, G, &err), FF_OK);
    ff_aggregate_reset(a);
    assert_int_equal(ff_aggregate_count(a), 0);
    assert_int_equal(ff_aggregate_apply(a, params, N, &err), FF_ERR_STATE);
    assert_memory_equal(params, before, sizeof params);
    assert_int_equal(ff_aggregate_apply(a, params, N + 1, &err),
                     FF_ERR_SHAPE);
    ff_aggregate_destroy(a);
}

/* An average that overflows float32 is refused with params unchanged. */
static void overflowing_average_is_refused(void **state)
{
    float params[N], delta[N], before[N];
    uint64_t c[G] = {1, 1, 1, 1};
    ff_aggregate *a = NULL;
    ff_error err = {0};

    (void)state;
    for (size_t i = 0; i < N; i++) {
        params[i] = before[i] = 3.0e38f;
        delta[i] = 3.0e38f;
    }
    assert_int_equal(ff_aggregate_create(&a, N, G, off, len, &err), FF_OK);
    assert_int_equal(ff_aggregate_add(a, delta, N, c, G, &err), FF_OK);
    assert_int_equal(ff_aggregate_apply(a, params, N, &err),
                     FF_ERR_NONFINITE);
    assert_memory_equal(params, before, sizeof params);
    ff_aggregate_destroy(a);
}

/* Group ranges outside the model or overlapping are refused. */
static void bad_group_ranges_are_refused(void **state)
{
    const size_t o1[2] = {0, 90}, l1[2] = {50, 20};   /* past the end */
    const size_t o2[2] = {0, 40}, l2[2] = {50, 20};   /* overlap */
    ff_aggregate *a = NULL;
    ff_error err = {0};

    (void)state;
    assert_int_equal(ff_aggregate_create(&a, N, 2, o1, l1, &err), FF_ERR_ARG);
    assert_null(a);
    assert_int_equal(ff_aggregate_create(&a, N, 2, o2, l2, &err), FF_ERR_ARG);
    assert_int_equal(ff_aggregate_create(&a, 0, 2, o2, l2, &err), FF_ERR_ARG);
    assert_int_equal(ff_aggregate_create(&a, N, 0, o2, l2, &err), FF_ERR_ARG);
    assert_int_equal(ff_aggregate_create(&a, N, FF_AGGREGATE_MAX_GROUPS + 1,
                                         o2, l2, &err), FF_ERR_ARG);
    ff_aggregate_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(weighted_average_matches_naive),
        cmocka_unit_test(group_without_examples_keeps_old_value),
        cmocka_unit_test(single_site_adds_its_delta),
        cmocka_unit_test(refused_updates_leave_sum_unchanged),
        cmocka_unit_test(overflowing_average_is_refused),
        cmocka_unit_test(bad_group_ranges_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
