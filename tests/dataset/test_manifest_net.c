/*
 * test_manifest_net.c - the manifest loader's finiteness net. This binary
 * links dataset/ff_manifest.c with a pen loader of its own (below, in
 * place of dataset/ff_pen.c) that hands back NaN and Inf, the way a
 * loader bug would: the manifest must keep pen absent and zeroed, count
 * it as unreadable, and still load the record's other modalities.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dstest.h"
#include "ff_dataset.h"

/* The broken loader: some features NaN or Inf, and says FF_OK. */
ff_status
ff_pen_load_csv(const char *path, double rate_hz, float out[FF_PEN_SIZE],
                ff_error *err)
{
    (void)path;
    (void)rate_hz;
    (void)err;
    for (int i = 0; i < FF_PEN_SIZE; i++)
        out[i] = 0.25f;
    out[7] = NAN;
    out[FF_PEN_SIZE - 1] = INFINITY;
    return FF_OK;
}

static void
nonfinite_features_are_dropped(void **state)
{
    char tmp[64], path[4096];
    const char *text =
        "{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":4,"
        "\"text\":\"vier\",\"sensors\":{\"pen\":{\"file\":\"a.csv\"}}}\n"
        "{\"id\":\"b\",\"time\":\"2024-01-01\",\"label\":5,"
        "\"sensors\":{\"pen\":{\"file\":\"b.csv\"}}}\n";
    ff_sample_set set;
    ff_load_report rep;
    ff_error err = {0};

    (void)state;
    dstest_tempdir(tmp);
    dstest_write_str(tmp, "m.jsonl", text, path);
    assert_int_equal(ff_dataset_load(path, &set, &rep, &err), FF_OK);

    /* a keeps its text only; b had nothing else and is skipped. */
    assert_int_equal(set.count, 1);
    assert_int_equal(set.items[0].present, FF_MOD_BIT(FF_MOD_TEXT));
    for (int i = 0; i < FF_PEN_SIZE; i++)
        assert_true(set.items[0].pen[i] == 0.0f);
    assert_int_equal(rep.declared[FF_MOD_PEN], 2);
    assert_int_equal(rep.present[FF_MOD_PEN], 0);
    assert_int_equal(rep.unreadable[FF_MOD_PEN], 2);
    assert_int_equal(rep.skipped, 1);
    printf("NaN pen features: %zu of %zu declared dropped, %zu record "
           "skipped\n", rep.unreadable[FF_MOD_PEN], rep.declared[FF_MOD_PEN],
           rep.skipped);
    ff_dataset_cleanup(&set);
    dstest_rmtree(tmp);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nonfinite_features_are_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
