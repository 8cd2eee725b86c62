/*
 * Tests for client/update.c: the update that leaves a site is exactly
 * local - global as float32 little-endian, carries the example counts,
 * and is refused when a value is not finite.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "../../client/ff_site_update.h"

/* Reads the i-th float32 little-endian value of data. */
static float le_float(const uint8_t *data, size_t i)
{
    const uint8_t *p = data + 4 * i;
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                 (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float v;

    memcpy(&v, &u, sizeof v);
    return v;
}

static ff_train_stats sample_stats(void)
{
    ff_train_stats st;

    memset(&st, 0, sizeof st);
    st.loss = 0.75;
    st.accuracy = 0.6;
    st.examples = 40;
    for (int g = 0; g < FF_GROUP_COUNT; g++)
        st.group_examples[g] = (size_t)(10 + g);
    return st;
}

/* The delta is local - global, bit for bit, with the stats attached. */
static void update_is_local_minus_global(void **state)
{
    ff_model *global = NULL, *local = NULL;
    ff_train_stats stats = sample_stats();
    ff_site_update u;
    ff_error err = {0};
    size_t n, mismatches = 0;

    (void)state;
    assert_int_equal(ff_model_create(&global, 1, &err), FF_OK);
    assert_int_equal(ff_model_create(&local, 2, &err), FF_OK);
    n = ff_model_param_count(global);
    assert_int_equal(ff_site_update_prepare("site-1", 3, global, local,
                                            &stats, &u, &err), FF_OK);
    assert_int_equal(u.len, 4 * n);
    assert_int_equal(u.header.param_count, n);
    assert_int_equal(u.header.round, 3);
    assert_string_equal(u.header.site_id, "site-1");
    assert_int_equal(u.header.n_groups, FF_GROUP_COUNT);
    for (int g = 0; g < FF_GROUP_COUNT; g++)
        assert_int_equal(u.header.group_examples[g], 10 + g);
    assert_true(u.header.train_loss == 0.75);
    for (size_t i = 0; i < n; i++) {
        float want = ff_model_params_const(local)[i] -
                     ff_model_params_const(global)[i];
        if (le_float(u.data, i) != want)
            mismatches++;
    }
    printf("update of %zu values: %zu differ from local - global "
           "(tolerance 0, exact)\n", n, mismatches);
    assert_int_equal(mismatches, 0);
    ff_site_update_cleanup(&u);
    ff_site_update_cleanup(&u);
    ff_model_destroy(local);
    ff_model_destroy(global);
}

/* A NaN or Inf never leaves the site; nor an update of nothing. */
static void nonfinite_or_empty_update_is_refused(void **state)
{
    ff_model *global = NULL, *local = NULL;
    ff_train_stats stats = sample_stats();
    ff_site_update u;
    ff_error err = {0};

    (void)state;
    assert_int_equal(ff_model_create(&global, 1, &err), FF_OK);
    assert_int_equal(ff_model_create(&local, 1, &err), FF_OK);
    ff_model_params(local)[17] = NAN;
    assert_int_equal(ff_site_update_prepare("s", 1, global, local, &stats,
                                            &u, &err), FF_ERR_NONFINITE);
    assert_non_null(strstr(err.msg, "17"));
    ff_site_update_cleanup(&u);
    ff_model_params(local)[17] = INFINITY;
    assert_int_equal(ff_site_update_prepare("s", 1, global, local, &stats,
                                            &u, &err), FF_ERR_NONFINITE);
    ff_site_update_cleanup(&u);
    ff_model_params(local)[17] = 0.0f;

    memset(stats.group_examples, 0, sizeof stats.group_examples);
    assert_int_equal(ff_site_update_prepare("s", 1, global, local, &stats,
                                            &u, &err), FF_ERR_ARG);
    ff_site_update_cleanup(&u);
    stats = sample_stats();
    assert_int_equal(ff_site_update_prepare("bad id", 1, global, local,
                                            &stats, &u, &err), FF_ERR_ARG);
    assert_int_equal(ff_site_update_prepare("s", 0, global, local, &stats,
                                            &u, &err), FF_ERR_ARG);
    ff_site_update_cleanup(&u);
    ff_model_destroy(local);
    ff_model_destroy(global);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(update_is_local_minus_global),
        cmocka_unit_test(nonfinite_or_empty_update_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
