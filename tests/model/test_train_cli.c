/*
 * test_train_cli - fedfuse-train as a program: usage errors exit 2, a
 * missing manifest exits 1, and a short run on a small real federation
 * (built by fedfuse-feddigits from the shared data) exits 0 with one
 * METRIC line per epoch, a JSON report with every documented key, and an
 * artifact of the model's exact size.
 *
 * Needs env FEDFUSE_BIN (built programs) and FEDFUSE_DATA (datasets).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ff_model.h"

static char bin[1024], data[1024], dir[] = "/tmp/ff-train-cli-XXXXXX";

/* Runs a shell command; returns its exit status, stdout into out (may be
 * NULL) up to cap bytes. */
static int
run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    char sink[4096];

    assert_non_null(p);
    while (!feof(p)) {
        char *dst = out != NULL && n + 1 < cap ? out + n : sink;
        size_t room = out != NULL && n + 1 < cap ? cap - 1 - n : sizeof(sink);
        size_t got = fread(dst, 1, room, p);
        if (dst != sink)
            n += got;
        if (got == 0)
            break;
    }
    if (out != NULL)
        out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
setup(void **state)
{
    const char *b = getenv("FEDFUSE_BIN"), *d = getenv("FEDFUSE_DATA");
    char cmd[4096];

    (void)state;
    if (b == NULL || d == NULL) {
        fprintf(stderr, "test_train_cli: set FEDFUSE_BIN and FEDFUSE_DATA "
                        "(ctest does)\n");
        return -1;
    }
    snprintf(bin, sizeof(bin), "%s", b);
    snprintf(data, sizeof(data), "%s", d);
    if (mkdtemp(dir) == NULL)
        return -1;

    /* A small federation: 40 records per site, 30 test records. */
    snprintf(cmd, sizeof(cmd),
             "'%s/fedfuse-feddigits' --data '%s' --out '%s' --seed 3 "
             "--records 40 --test-records 30 >/dev/null 2>&1", bin, data,
             dir);
    if (run(cmd, NULL, 0) != 0) {
        fprintf(stderr, "test_train_cli: fedfuse-feddigits failed: %s\n",
                cmd);
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    char cmd[2048];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return run(cmd, NULL, 0);
}

static void
test_usage_errors_exit_2(void **state)
{
    static const char *const bad[] = {
        "", "--epochs 0 --manifest x", "--lr abc --manifest x",
        "--optimizer rms --manifest x", "--dropout 1.5 --manifest x",
        "--bogus", "--manifest x extra",
    };
    char cmd[2048], out[4096];

    (void)state;
    snprintf(cmd, sizeof(cmd), "'%s/fedfuse-train' --help", bin);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "--manifest"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cmd, sizeof(cmd), "'%s/fedfuse-train' %s 2>/dev/null", bin,
                 bad[i]);
        int rc = run(cmd, NULL, 0);
        printf("  fedfuse-train %-32s -> exit %d\n", bad[i], rc);
        assert_int_equal(rc, 2);
    }
}

static void
test_missing_manifest_exits_1(void **state)
{
    char cmd[2048];

    (void)state;
    snprintf(cmd, sizeof(cmd), "'%s/fedfuse-train' --manifest '%s/nope' "
             "2>/dev/null", bin, dir);
    assert_int_equal(run(cmd, NULL, 0), 1);
}

/* Counts occurrences of needle in hay. */
static int
count_of(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void
test_short_run_reports_json_metrics_and_artifact(void **state)
{
    static const char *const keys[] = {
        "accuracy", "alone", "loss", "train_records", "epochs", "seconds"};
    char cmd[4096], json_path[1100], model_path[1100];
    char *out = malloc(1 << 16);
    struct stat stt;
    json_error_t jerr;

    (void)state;
    assert_non_null(out);
    snprintf(json_path, sizeof(json_path), "%s/out.json", dir);
    snprintf(model_path, sizeof(model_path), "%s/model.bin", dir);
    snprintf(cmd, sizeof(cmd),
             "'%s/fedfuse-train' --manifest '%s/site-1/manifest.jsonl' "
             "--manifest '%s/site-3/manifest.jsonl' --test "
             "'%s/test/manifest.jsonl' --epochs 2 --batch 16 --json '%s' "
             "--save '%s' 2>/dev/null", bin, dir, dir, dir, json_path,
             model_path);
    assert_int_equal(run(cmd, out, 1 << 16), 0);
    assert_int_equal(count_of(out, "METRIC train_epoch "), 2);
    assert_int_equal(count_of(out, "METRIC train_done "), 1);

    /* The JSON report. */
    json_t *root = json_load_file(json_path, 0, &jerr);
    assert_non_null(root);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_non_null(json_object_get(root, keys[i]));
    double acc = json_number_value(json_object_get(root, "accuracy"));
    json_t *alone = json_object_get(root, "alone");
    for (int m = 0; m < FF_MOD_COUNT; m++) {
        json_t *a = json_object_get(alone, ff_modality_name((ff_modality)m));
        assert_non_null(a);
        assert_true(json_number_value(a) >= 0.0 &&
                    json_number_value(a) <= 1.0);
    }
    json_int_t records = json_integer_value(json_object_get(root,
                                                            "train_records"));
    printf("  2 sites, %lld records, 2 epochs: test accuracy %.3f\n",
           (long long)records, acc);
    assert_true(acc >= 0.0 && acc <= 1.0);
    assert_true(records >= 60 && records <= 90);
    assert_int_equal(json_integer_value(json_object_get(root, "epochs")), 2);
    json_decref(root);

    /* The artifact has the model's exact size. */
    ff_model *m = NULL;
    ff_error err = {0};
    assert_int_equal(ff_model_create(&m, 1, &err), FF_OK);
    assert_int_equal(stat(model_path, &stt), 0);
    assert_int_equal((size_t)stt.st_size, ff_model_artifact_size(m));
    ff_model_destroy(m);
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors_exit_2),
        cmocka_unit_test(test_missing_manifest_exits_1),
        cmocka_unit_test(test_short_run_reports_json_metrics_and_artifact),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
