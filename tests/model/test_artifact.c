/*
 * test_artifact - the serialised model: a round trip restores every
 * parameter bit for bit, and each kind of damage (truncation, wrong magic,
 * wrong version, wrong parameter count, a bad group table, another
 * architecture, NaN or Inf inside) is refused with its own status and
 * message while the model stays as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ff_model.h"

/* Header layout, restated from ff_artifact.c on purpose: the test pins the
 * format down. */
#define HDR_COUNT 16
#define HDR_TABLE 24
#define HDR_BYTES (24 + FF_GROUP_COUNT * 32)

static ff_model *
model_new(uint64_t seed)
{
    ff_model *m = NULL;
    ff_error err = {0};

    assert_int_equal(ff_model_create(&m, seed, &err), FF_OK);
    return m;
}

static uint8_t *
artifact_of(const ff_model *m, size_t *len)
{
    ff_error err = {0};

    *len = ff_model_artifact_size(m);
    uint8_t *buf = malloc(*len + 64);
    assert_non_null(buf);
    assert_int_equal(ff_model_artifact_write(m, buf, *len, &err), FF_OK);
    return buf;
}

static void
put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
test_round_trip_restores_every_bit(void **state)
{
    ff_model *a = model_new(1), *b = model_new(2);
    size_t len, bytes = ff_model_param_count(a) * sizeof(float);
    uint8_t *buf = artifact_of(a, &len);
    ff_error err = {0};

    (void)state;
    printf("  artifact %zu bytes for %zu parameters\n", len,
           ff_model_param_count(a));
    assert_int_equal(len, HDR_BYTES + bytes);
    assert_memory_equal(buf, "FFMODEL1", 8);
    assert_memory_not_equal(ff_model_params(a), ff_model_params(b), bytes);
    assert_int_equal(ff_model_artifact_read(b, buf, len, &err), FF_OK);
    assert_memory_equal(ff_model_params(a), ff_model_params(b), bytes);

    /* Too small a buffer to write into. */
    assert_int_equal(ff_model_artifact_write(a, buf, len - 1, &err),
                     FF_ERR_ARG);
    free(buf);
    ff_model_destroy(a), ff_model_destroy(b);
}

/* Reads a damaged artifact into m and expects want, a message holding
 * msg, and m's parameters untouched. */
static void
expect_refused(ff_model *m, const uint8_t *buf, size_t len, ff_status want,
               const char *msg, const char *what)
{
    size_t bytes = ff_model_param_count(m) * sizeof(float);
    float *before = malloc(bytes);
    ff_error err = {0};

    assert_non_null(before);
    memcpy(before, ff_model_params(m), bytes);
    assert_int_equal(ff_model_artifact_read(m, buf, len, &err), want);
    printf("  %-22s -> %-16s %s\n", what, ff_status_name(err.status),
           err.msg);
    assert_non_null(strstr(err.msg, msg));
    assert_memory_equal(before, ff_model_params(m), bytes);
    free(before);
}

static void
test_damaged_artifacts_are_refused(void **state)
{
    ff_model *src = model_new(3), *m = model_new(4);
    size_t len;
    uint8_t *good = artifact_of(src, &len);
    uint8_t *bad = malloc(len + 64);

    (void)state;
    assert_non_null(bad);

    /* Truncated: inside the parameters, inside the header, empty. */
    expect_refused(m, good, len - 3, FF_ERR_FORMAT, "truncated",
                   "truncated parameters");
    expect_refused(m, good, 40, FF_ERR_FORMAT, "truncated",
                   "truncated header");
    expect_refused(m, good, 0, FF_ERR_FORMAT, "bad magic", "empty");

    /* Trailing bytes. */
    memcpy(bad, good, len);
    expect_refused(m, bad, len + 4, FF_ERR_FORMAT, "trailing",
                   "trailing bytes");

    /* Wrong magic and version. */
    memcpy(bad, good, len);
    bad[7] = '2';
    expect_refused(m, bad, len, FF_ERR_FORMAT, "bad magic", "wrong magic");
    memcpy(bad, good, len);
    bad[8] = 9;
    expect_refused(m, bad, len, FF_ERR_FORMAT, "version", "wrong version");

    /* Parameter count that disagrees with the length, or is absurd. */
    char declares[64];
    snprintf(declares, sizeof(declares), "declares %zu parameters",
             ff_model_param_count(src) - 1);
    memcpy(bad, good, len);
    put_u64(bad + HDR_COUNT, ff_model_param_count(src) - 1);
    expect_refused(m, bad, len, FF_ERR_FORMAT, declares, "wrong count");
    put_u64(bad + HDR_COUNT, (uint64_t)1 << 40);
    expect_refused(m, bad, len, FF_ERR_FORMAT, "cap", "absurd count");

    /* Group table: a renamed group; ranges that do not tile. */
    memcpy(bad, good, len);
    memcpy(bad + HDR_TABLE, "imagf", 5);
    expect_refused(m, bad, len, FF_ERR_FORMAT, "named", "renamed group");
    memcpy(bad, good, len);
    put_u64(bad + HDR_TABLE + 32 + 16, 5); /* audio offset */
    expect_refused(m, bad, len, FF_ERR_FORMAT, "does not follow",
                   "overlapping groups");

    /* A consistent artifact of another architecture: one more head
     * parameter, table and length to match. */
    memcpy(bad, good, len);
    size_t count = ff_model_param_count(src), hoff, hlen;
    ff_model_group_range(src, FF_GROUP_HEAD, &hoff, &hlen);
    put_u64(bad + HDR_COUNT, count + 1);
    put_u64(bad + HDR_TABLE + 32 * FF_GROUP_HEAD + 24, hlen + 1);
    memset(bad + len, 0, 4);
    expect_refused(m, bad, len + 4, FF_ERR_SHAPE, "another architecture",
                   "other architecture");

    /* NaN and Inf inside (little-endian float32 bit patterns). */
    static const uint8_t nan_bits[4] = {0x00, 0x00, 0xc0, 0x7f};
    static const uint8_t inf_bits[4] = {0x00, 0x00, 0x80, 0xff};
    memcpy(bad, good, len);
    memcpy(bad + HDR_BYTES + 4 * 1234, nan_bits, 4);
    expect_refused(m, bad, len, FF_ERR_NONFINITE, "parameter 1234 (group "
                   "image)", "NaN inside");
    memcpy(bad, good, len);
    memcpy(bad + len - 4, inf_bits, 4);
    expect_refused(m, bad, len, FF_ERR_NONFINITE, "group head", "Inf inside");

    free(good), free(bad);
    ff_model_destroy(src), ff_model_destroy(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_restores_every_bit),
        cmocka_unit_test(test_damaged_artifacts_are_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
