/*
 * test_builder.c - runs fedfuse-feddigits (from FEDFUSE_BIN) on the real
 * data into a temporary folder and checks the federation it writes:
 * nothing shared between parts, the modality design of each site, the
 * determinism of a seed, and that every manifest loads completely.
 */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dstest.h"
#include "ff_dataset.h"

#define NPARTS 7
static const char *const part_names[NPARTS] = {
    "site-1", "site-2", "site-3", "site-4", "site-5", "site-6", "test"};

#define SITE_RECORDS "200"
#define TEST_RECORDS "2000"

static char tmp[64];

/* Runs fedfuse-feddigits in folder cwd (NULL: this one) with the given
 * arguments (NULL-terminated), stderr into errpath when not NULL;
 * returns its exit status. */
static int
run_builder_at(const char *cwd, const char *errpath,
               const char *const *args)
{
    char prog[4096];
    const char *bin = getenv("FEDFUSE_BIN");
    char *argv[32];
    int n = 0, status;
    pid_t pid;

    if (bin == NULL || bin[0] == '\0')
        fail_msg("FEDFUSE_BIN is not set: run through ctest");
    snprintf(prog, sizeof(prog), "%s/fedfuse-feddigits", bin);
    argv[n++] = prog;
    for (int i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (cwd != NULL && chdir(cwd) != 0)
            _exit(126);
        if (errpath != NULL) {
            int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd < 0 || dup2(fd, 2) < 0)
                _exit(126);
        }
        execv(prog, argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int
run_builder(const char *const *args)
{
    return run_builder_at(NULL, NULL, args);
}

/* Builds into tmp/<name> with a seed; fails the test on error. */
static void
build(const char *name, const char *seed, const char *test_records)
{
    char out[128];
    const char *args[] = {"--data", dstest_data(""), "--out", out, "--seed",
                          seed, "--records", SITE_RECORDS, "--test-records",
                          test_records, NULL};

    snprintf(out, sizeof(out), "%s/%s", tmp, name);
    assert_int_equal(run_builder(args), 0);
}

static int
setup(void **state)
{
    struct timespec t0, t1;

    (void)state;
    dstest_tempdir(tmp);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    build("a", "7", TEST_RECORDS);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("build of 6 x %s + %s records: %.2f s\n", SITE_RECORDS,
           TEST_RECORDS,
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
    build("b", "7", TEST_RECORDS);
    build("c", "8", "100");
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    dstest_rmtree(tmp);
    return 0;
}

/* Reads a whole file (malloc, NUL-terminated); NULL when absent. */
static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len != NULL)
        *len = (size_t)n;
    return buf;
}

/* The records of a part's manifest as JSON objects (an array). */
static json_t *
read_manifest(const char *build_name, int part)
{
    char path[4096];
    json_t *all = json_array();
    char *text, *save = NULL;

    snprintf(path, sizeof(path), "%s/%s/%s/manifest.jsonl", tmp, build_name,
             part_names[part]);
    text = slurp(path, NULL);
    if (text == NULL)
        fail_msg("%s is missing", path);
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t e;
        json_t *rec = json_loads(line, 0, &e);
        if (rec == NULL)
            fail_msg("%s: %s", path, e.text);
        json_array_append_new(all, rec);
    }
    free(text);
    return all;
}

/* ---- disjointness ------------------------------------------------------- */

typedef struct item {
    char key[128];
    int part;
} item;

static int
cmp_item(const void *a, const void *b)
{
    const item *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->part - y->part;
}

/* Collects source.<field> of every record of every part; fails when a
 * value appears in two parts, or twice in one part unless reuse is
 * allowed there. Returns the number of items seen. */
static size_t
check_disjoint(json_t *parts[NPARTS], const char *field, int reuse_in_part,
               int prefix_only)
{
    size_t cap = 0, n = 0;
    item *items;

    for (int p = 0; p < NPARTS; p++)
        cap += json_array_size(parts[p]);
    items = calloc(cap ? cap : 1, sizeof(item));
    assert_non_null(items);
    for (int p = 0; p < NPARTS; p++) {
        size_t i;
        json_t *rec;
        json_array_foreach(parts[p], i, rec) {
            json_t *v = json_object_get(json_object_get(rec, "source"), field);
            if (v == NULL)
                continue;
            if (json_is_integer(v))
                snprintf(items[n].key, sizeof(items[n].key), "%lld",
                         (long long)json_integer_value(v));
            else
                snprintf(items[n].key, sizeof(items[n].key), "%s",
                         json_string_value(v));
            if (prefix_only)
                items[n].key[strcspn(items[n].key, "/")] = '\0';
            items[n++].part = p;
        }
    }
    qsort(items, n, sizeof(item), cmp_item);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(items[i].key, items[i - 1].key) != 0)
            continue;
        if (items[i].part != items[i - 1].part)
            fail_msg("%s %s is in both %s and %s", field, items[i].key,
                     part_names[items[i - 1].part], part_names[items[i].part]);
        if (!reuse_in_part)
            fail_msg("%s %s is used twice in %s", field, items[i].key,
                     part_names[items[i].part]);
    }
    free(items);
    return n;
}

static void
test_parts_disjoint(void **state)
{
    json_t *parts[NPARTS];

    (void)state;
    for (int p = 0; p < NPARTS; p++)
        parts[p] = read_manifest("a", p);
    size_t m = check_disjoint(parts, "mnist", 0, 0);
    size_t f = check_disjoint(parts, "fsdd", 1, 0);
    size_t u = check_disjoint(parts, "unipen", 0, 0);
    size_t d = check_disjoint(parts, "unipen", 1, 1); /* donor folders */
    size_t l = check_disjoint(parts, "locale", 1, 0);
    printf("disjoint across the 7 parts: %zu MNIST images, %zu FSDD uses, "
           "%zu UNIPEN digits (%zu by donor), %zu texts by locale\n",
           m, f, u, d, l);

    /* FSDD: one speaker per site, repetitions 5-49; test 0-4. */
    char speakers[NPARTS][32] = {{0}};
    for (int p = 0; p < NPARTS; p++) {
        size_t i;
        json_t *rec;
        json_array_foreach(parts[p], i, rec) {
            json_t *v = json_object_get(json_object_get(rec, "source"), "fsdd");
            char spk[32];
            int digit, rep;
            if (v == NULL)
                continue;
            assert_int_equal(sscanf(json_string_value(v), "%d_%31[a-z]_%d",
                                    &digit, spk, &rep), 3);
            assert_int_equal(digit, json_integer_value(
                                        json_object_get(rec, "label")));
            if (p == NPARTS - 1) {
                assert_true(rep <= 4);
                continue;
            }
            assert_true(rep >= 5);
            if (speakers[p][0] == '\0')
                snprintf(speakers[p], sizeof(speakers[p]), "%s", spk);
            assert_string_equal(speakers[p], spk);
        }
    }
    for (int p = 0; p < NPARTS - 1; p++)
        for (int q = p + 1; q < NPARTS - 1; q++)
            if (speakers[p][0] != '\0')
                assert_string_not_equal(speakers[p], speakers[q]);
    for (int p = 0; p < NPARTS; p++)
        json_decref(parts[p]);
}

/* ---- modalities --------------------------------------------------------- */

/* The modalities a record names, as FF_MOD_BIT flags. */
static unsigned
record_mods(json_t *rec)
{
    json_t *s = json_object_get(rec, "sensors");
    unsigned m = 0;

    m |= json_object_get(rec, "image") ? FF_MOD_BIT(FF_MOD_IMAGE) : 0;
    m |= json_object_get(rec, "text") ? FF_MOD_BIT(FF_MOD_TEXT) : 0;
    m |= json_object_get(s, "audio") ? FF_MOD_BIT(FF_MOD_AUDIO) : 0;
    m |= json_object_get(s, "pen") ? FF_MOD_BIT(FF_MOD_PEN) : 0;
    return m;
}

/* Part p: every record has the modalities in always, none outside
 * allowed, and for each modality with a planned missing share q, label
 * l misses it in exactly lround(q * n_l) records. */
static void
check_design(json_t *recs, const char *name, unsigned always,
             unsigned allowed, const double miss[FF_MOD_COUNT])
{
    size_t n[FF_NUM_CLASSES] = {0}, lacking[FF_MOD_COUNT][FF_NUM_CLASSES];
    size_t i, total = json_array_size(recs);
    json_t *rec;

    memset(lacking, 0, sizeof(lacking));
    json_array_foreach(recs, i, rec) {
        unsigned m = record_mods(rec);
        int l = (int)json_integer_value(json_object_get(rec, "label"));
        assert_true(m != 0);
        assert_int_equal(m & always, always);
        assert_int_equal(m & ~allowed, 0);
        n[l]++;
        for (int k = 0; k < FF_MOD_COUNT; k++)
            lacking[k][l] += !(m & FF_MOD_BIT(k));
    }
    for (int k = 0; k < FF_MOD_COUNT; k++) {
        size_t sum = 0;
        if (miss[k] <= 0.0)
            continue;
        for (int l = 0; l < FF_NUM_CLASSES; l++) {
            assert_int_equal(lacking[k][l], (size_t)lround(miss[k] * n[l]));
            sum += lacking[k][l];
        }
        printf("%s: %zu of %zu records (%.1f%%) miss modality %d (planned "
               "%.0f%% per label)\n", name, sum, total, 100.0 * sum / total,
               k, 100.0 * miss[k]);
    }
}

static void
test_modality_design(void **state)
{
    const unsigned I = FF_MOD_BIT(FF_MOD_IMAGE), A = FF_MOD_BIT(FF_MOD_AUDIO),
                   P = FF_MOD_BIT(FF_MOD_PEN), T = FF_MOD_BIT(FF_MOD_TEXT);
    const double none[FF_MOD_COUNT] = {0}, s5[FF_MOD_COUNT] = {0.3, 0.3, 0, 0},
                 s6[FF_MOD_COUNT] = {0, 0, 0.4, 0};
    json_t *parts[NPARTS];

    (void)state;
    for (int p = 0; p < NPARTS; p++)
        parts[p] = read_manifest("a", p);
    check_design(parts[0], "site-1", I | A | P | T, I | A | P | T, none);
    check_design(parts[1], "site-2", I | A | T, I | A | T, none);
    check_design(parts[2], "site-3", A | P | T, A | P | T, none);
    check_design(parts[3], "site-4", I | T, I | T, none);
    check_design(parts[4], "site-5", P | T, I | A | P | T, s5);
    check_design(parts[5], "site-6", I | A | T, I | A | P | T, s6);
    check_design(parts[6], "test", I | A | P | T, I | A | P | T, none);
    assert_int_equal(json_array_size(parts[6]), 2000);
    for (int p = 0; p < NPARTS - 1; p++) {
        size_t n = json_array_size(parts[p]);
        assert_true(n >= 190 && n <= 210); /* 200 +- 5% */
    }
    for (int p = 0; p < NPARTS; p++)
        json_decref(parts[p]);
}

/* ---- determinism -------------------------------------------------------- */

/* Compares tmp/a/<rel> and tmp/<other>/<rel>; returns 1 when equal. */
static int
same_file(const char *other, const char *rel)
{
    char pa[4096], pb[4096];
    size_t la = 0, lb = 0;
    int same;

    snprintf(pa, sizeof(pa), "%s/a/%s", tmp, rel);
    snprintf(pb, sizeof(pb), "%s/%s/%s", tmp, other, rel);
    char *a = slurp(pa, &la), *b = slurp(pb, &lb);
    assert_non_null(a);
    same = b != NULL && la == lb && memcmp(a, b, la) == 0;
    free(a);
    free(b);
    return same;
}

static void
test_seed_determinism(void **state)
{
    char rel[256];
    size_t files = 0;

    (void)state;
    assert_true(same_file("b", "summary.json"));
    for (int p = 0; p < NPARTS; p++) {
        json_t *recs = read_manifest("a", p), *rec;
        size_t i;
        snprintf(rel, sizeof(rel), "%s/manifest.jsonl", part_names[p]);
        assert_true(same_file("b", rel));
        files++;
        json_array_foreach(recs, i, rec) {
            json_t *img = json_object_get(rec, "image");
            json_t *pen = json_object_get(
                json_object_get(json_object_get(rec, "sensors"), "pen"),
                "file");
            if (img != NULL) {
                snprintf(rel, sizeof(rel), "%s/%s", part_names[p],
                         json_string_value(img));
                assert_true(same_file("b", rel));
                files++;
            }
            if (pen != NULL) {
                snprintf(rel, sizeof(rel), "%s/%s", part_names[p],
                         json_string_value(pen));
                assert_true(same_file("b", rel));
                files++;
            }
        }
        json_decref(recs);
    }
    /* Another seed gives another federation. */
    assert_false(same_file("c", "site-1/manifest.jsonl"));
    printf("seed 7 twice: %zu files byte-identical; seed 8 differs\n", files);
}

/* ---- loading ------------------------------------------------------------ */

static void
test_manifests_load(void **state)
{
    char path[4096];
    struct timespec t0, t1;

    (void)state;
    for (int p = 0; p < NPARTS; p++) {
        ff_sample_set set;
        ff_load_report rep;
        ff_error err = {0};
        json_t *recs = read_manifest("a", p);

        snprintf(path, sizeof(path), "%s/a/%s/manifest.jsonl", tmp,
                 part_names[p]);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (ff_dataset_load(path, &set, &rep, &err) != FF_OK)
            fail_msg("%s", ff_error_text(&err));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) +
                   (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        printf("%s: %zu records loaded in %.2f s (image %zu, audio %zu, pen "
               "%zu, text %zu)\n", part_names[p], rep.records, s,
               rep.present[FF_MOD_IMAGE], rep.present[FF_MOD_AUDIO],
               rep.present[FF_MOD_PEN], rep.present[FF_MOD_TEXT]);
        assert_int_equal(rep.records, json_array_size(recs));
        assert_int_equal(rep.skipped, 0);
        for (int m = 0; m < FF_MOD_COUNT; m++) {
            assert_int_equal(rep.unreadable[m], 0);
            assert_int_equal(rep.present[m], rep.declared[m]);
        }
        /* A 2,000-record manifest loads in a few seconds at most. */
        assert_true(s < 10.0);
        ff_dataset_cleanup(&set);
        json_decref(recs);
    }
}

static void
test_summary_matches(void **state)
{
    char path[4096];
    json_error_t e;
    json_t *sum;

    (void)state;
    snprintf(path, sizeof(path), "%s/a/summary.json", tmp);
    sum = json_load_file(path, 0, &e);
    assert_non_null(sum);
    for (int p = 0; p < NPARTS; p++) {
        json_t *s = p < NPARTS - 1
                        ? json_array_get(json_object_get(sum, "sites"),
                                         (size_t)p)
                        : json_object_get(sum, "test");
        json_t *recs = read_manifest("a", p);
        assert_string_equal(json_string_value(json_object_get(s, "name")),
                            part_names[p]);
        assert_int_equal(json_integer_value(json_object_get(s, "records")),
                         json_array_size(recs));
        json_decref(recs);
    }
    /* The UNIPEN reader resolved every segment of the donors it read. */
    json_t *u = json_object_get(json_object_get(sum, "sources"), "unipen");
    assert_int_equal(json_integer_value(
                         json_object_get(u, "skipped_unresolved")), 0);
    json_decref(sum);
}

/* Bad options are refused with exit status 2; --help succeeds. */
static void
test_options(void **state)
{
    char out[128];
    const char *help[] = {"--help", NULL};
    const char *no_out[] = {"--seed", "1", NULL};
    const char *few[] = {"--out", out, "--records", "5", NULL};
    const char *alpha[] = {"--out", out, "--alpha", "-1", NULL};
    const char *nodata[] = {"--out", out, "--data", "/nonexistent", NULL};

    (void)state;
    snprintf(out, sizeof(out), "%s/opts", tmp);
    assert_int_equal(run_builder(help), 0);
    assert_int_equal(run_builder(no_out), 2);
    assert_int_equal(run_builder(few), 2);
    assert_int_equal(run_builder(alpha), 2);
    assert_int_equal(run_builder(nodata), 1);
}

/* Without --data the builder reads the configured FF_DATA_DIR, from any
 * working folder; --out refuses the root folder and an existing file. */
static void
test_default_data_and_out_checks(void **state)
{
    char out[128], file[192], errpath[128];
    const char *nodata[] = {"--out", out, "--records", "10",
                            "--test-records", "10", NULL};
    const char *root[] = {"--out", "/", NULL};
    const char *notdir[] = {"--out", file, NULL};

    (void)state;
    snprintf(out, sizeof(out), "%s/default-data", tmp);
    snprintf(file, sizeof(file), "%s/a-file", tmp);
    snprintf(errpath, sizeof(errpath), "%s/stderr.txt", tmp);
    assert_int_equal(run_builder_at("/", NULL, nodata), 0);
    snprintf(file, sizeof(file), "%s/site-1/manifest.jsonl", out);
    assert_int_equal(access(file, R_OK), 0);

    assert_int_equal(run_builder_at(NULL, errpath, root), 2);
    char *msg = slurp(errpath, NULL);
    assert_non_null(msg);
    print_message("--out /: %s", msg);
    assert_non_null(strstr(msg, "root folder"));
    free(msg);

    /* file is now an existing manifest: not a directory. */
    assert_int_equal(run_builder_at(NULL, errpath, notdir), 2);
    msg = slurp(errpath, NULL);
    assert_non_null(msg);
    print_message("--out FILE: %s", msg);
    assert_non_null(strstr(msg, "not a directory"));
    free(msg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_disjoint),
        cmocka_unit_test(test_modality_design),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_manifests_load),
        cmocka_unit_test(test_summary_matches),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_default_data_and_out_checks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
