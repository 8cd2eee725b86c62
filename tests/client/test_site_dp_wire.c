/*
 * Tests for the site's wire conversions of differential privacy
 * (client/wire.c): the site-level DP task of a TRAIN PollReply, written
 * byte by byte with a tiny protobuf writer (independent of the generated
 * code), is accepted when well formed and refused, naming the field, for
 * each bad value; the new UpdateHeader fields (refusal, DP report,
 * unclipped bit) are encoded where fedfuse.proto says, read back with a
 * tiny protobuf reader.
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

#include "../../client/wire.h"

#include "../common/pb_writer.h"

/* ---- the messages ---- */

/* One field of the SiteDpTask to replace (0: none). */
typedef struct dp_fields {
    uint64_t mode, bits, padded, sites;
    double clip, scale, beta, local_sigma2;
    size_t seed_len;
} dp_fields;

static dp_fields good_distributed(void)
{
    dp_fields f = {2, 16, 1024, 3, 0.5, 37.0, 0.6, 4.0, 32};
    return f;
}

static void write_dp(pbuf *b, const dp_fields *f)
{
    uint8_t seed[40];

    memset(seed, 7, sizeof seed);
    pb_uint(b, 1, f->mode);
    pb_double(b, 2, f->clip);
    pb_uint(b, 3, 1);
    pb_uint(b, 4, f->bits);
    pb_uint(b, 5, f->padded);
    pb_double(b, 6, f->scale);
    pb_double(b, 7, f->beta);
    pb_double(b, 8, f->local_sigma2);
    pb_uint(b, 9, f->sites);
    pb_bytes(b, 10, seed, f->seed_len);
}

static void write_config(pbuf *c)
{
    pb_uint(c, 1, 1);
    pb_uint(c, 2, 16);
    pb_float(c, 3, 0.1f);
    pb_bytes(c, 4, "sgd", 3);
    pb_bytes(c, 9, "constant", 8);
}

/* A SecAggTask for three sites and length words. */
static void write_secagg(pbuf *t, uint64_t length)
{
    uint8_t keys[96], seed[32];

    memset(keys, 1, sizeof keys);
    memset(seed, 2, sizeof seed);
    pb_uint(t, 1, 0);
    pb_uint(t, 2, 3);
    pb_uint(t, 3, 2);
    pb_uint(t, 4, 2);
    pb_uint(t, 5, 16);
    pb_uint(t, 6, length);
    pb_uint(t, 7, 65535);
    pb_bytes(t, 8, seed, 32);
    pb_float(t, 9, 0.5f);
    pb_bytes(t, 10, keys, 96);
}

/* Decodes a TRAIN reply with the DP task f (and SecAgg when secagg). */
static ff_status decode_train(const dp_fields *f, int secagg,
                              ff_wire_poll_reply *out, ff_error *err)
{
    pbuf b = {0}, c = {0}, d = {0}, t = {0};
    ff_status st;

    write_config(&c);
    write_dp(&d, f);
    pb_uint(&b, 1, 1);
    pb_uint(&b, 2, 4);
    pb_bytes(&b, 4, c.p, c.n);
    if (secagg) {
        write_secagg(&t, 1025);
        pb_bytes(&b, 6, t.p, t.n);
    }
    pb_bytes(&b, 7, d.p, d.n);
    st = ff_site_wire_poll_reply_decode(b.p, b.n, out, err);
    pb_free(&b);
    pb_free(&c);
    pb_free(&d);
    pb_free(&t);
    return st;
}

/* ---- PollReply ---- */

/* A well-formed distributed task arrives field by field. */
static void distributed_task_decodes(void **state)
{
    dp_fields f = good_distributed();
    ff_wire_poll_reply out;
    ff_error err = {0};
    int i;

    (void)state;
    assert_int_equal(decode_train(&f, 1, &out, &err), FF_OK);
    assert_int_equal(out.site_dp.mode, FF_WIRE_SITE_DP_DISTRIBUTED);
    assert_true(out.site_dp.clip == 0.5);
    assert_true(out.site_dp.report_unclipped);
    assert_int_equal(out.site_dp.bits, 16);
    assert_int_equal(out.site_dp.padded, 1024);
    assert_true(out.site_dp.scale == 37.0 && out.site_dp.beta == 0.6 &&
                out.site_dp.local_sigma2 == 4.0);
    assert_int_equal(out.site_dp.sites, 3);
    for (i = 0; i < 32; i++)
        assert_int_equal(out.site_dp.rotation_seed[i], 7);
    assert_true(out.secagg);
    ff_site_wire_poll_reply_cleanup(&out);

    /* Central needs only a clip; no task at all means mode none. */
    memset(&f, 0, sizeof f);
    f.mode = 1;
    f.clip = 2.0;
    assert_int_equal(decode_train(&f, 0, &out, &err), FF_OK);
    assert_int_equal(out.site_dp.mode, FF_WIRE_SITE_DP_CENTRAL);
    assert_true(out.site_dp.clip == 2.0);
    f.mode = 0;
    f.clip = 0.0;
    assert_int_equal(decode_train(&f, 0, &out, &err), FF_OK);
    assert_int_equal(out.site_dp.mode, FF_WIRE_SITE_DP_NONE);
}

/* Expects decode_train to refuse f with FF_ERR_FORMAT naming `field`. */
static void expect_refused(const dp_fields *f, int secagg, const char *field)
{
    ff_wire_poll_reply out;
    ff_error err = {0};

    assert_int_equal(decode_train(f, secagg, &out, &err), FF_ERR_FORMAT);
    printf("refused (%s): %s\n", field, ff_error_text(&err));
    assert_non_null(strstr(ff_error_text(&err), field));
    assert_int_equal(out.secagg, 0);          /* nothing left to free */
    assert_null(out.task.identity_keys);
}

/* Every untrusted value of the task is range-checked. */
static void each_bad_field_is_refused(void **state)
{
    dp_fields f;

    (void)state;
#define BAD(field, value, name)                                            \
    do {                                                                   \
        f = good_distributed();                                            \
        f.field = value;                                                   \
        expect_refused(&f, 1, name);                                       \
    } while (0)
    BAD(mode, 3, "mode");
    BAD(mode, 1000, "mode");
    BAD(clip, 0.0, "clip");
    BAD(clip, -1.0, "clip");
    BAD(clip, NAN, "clip");
    BAD(clip, INFINITY, "clip");
    BAD(bits, 1, "bits");
    BAD(bits, 33, "bits");
    BAD(padded, 0, "padded");
    BAD(padded, 1000, "padded");
    BAD(padded, (uint64_t)1 << 40, "padded");
    BAD(scale, 0.0, "scale");
    BAD(scale, NAN, "scale");
    BAD(scale, INFINITY, "scale");
    BAD(beta, -0.1, "beta");
    BAD(beta, NAN, "beta");
    BAD(local_sigma2, -1.0, "local_sigma2");
    BAD(local_sigma2, NAN, "local_sigma2");
    BAD(local_sigma2, INFINITY, "local_sigma2");
    BAD(sites, 0, "sites");
    BAD(seed_len, 31, "seed");
    BAD(seed_len, 33, "seed");
#undef BAD

    /* A central clip is checked too; distributed needs secure
     * aggregation. */
    memset(&f, 0, sizeof f);
    f.mode = 1;
    f.clip = NAN;
    expect_refused(&f, 0, "clip");
    f = good_distributed();
    expect_refused(&f, 0, "secure aggregation");
}

/* ---- UpdateHeader ---- */

/* Reads a varint at *p; returns 0 at a malformed one. */
static int rd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    int shift = 0;

    *v = 0;
    while (*p < end && shift < 64) {
        uint8_t byte = *(*p)++;
        *v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return 1;
        shift += 7;
    }
    return 0;
}

/* What the reader found of the header's new fields. */
typedef struct hdr_seen {
    uint64_t varints[32];
    double doubles[32];
    char strings[32][300];
    int present[32];
} hdr_seen;

/* Walks the fields of a message, recording fields < 32. */
static void walk(const uint8_t *p, const uint8_t *end, hdr_seen *s)
{
    while (p < end) {
        uint64_t key, v, len;
        int field;
        assert_true(rd_varint(&p, end, &key));
        field = (int)(key >> 3);
        switch (key & 7) {
        case 0:
            assert_true(rd_varint(&p, end, &v));
            if (field < 32)
                s->varints[field] = v, s->present[field] = 1;
            break;
        case 1:
            assert_true(end - p >= 8);
            if (field < 32)
                memcpy(&s->doubles[field], p, 8), s->present[field] = 1;
            p += 8;
            break;
        case 2:
            assert_true(rd_varint(&p, end, &len));
            assert_true((uint64_t)(end - p) >= len);
            if (field < 32 && len < 300) {
                memcpy(s->strings[field], p, len);
                s->strings[field][len] = '\0';
                s->present[field] = 1;
            }
            p += len;
            break;
        default:
            fail_msg("unexpected wire type %d", (int)(key & 7));
        }
    }
}

/* The refusal and DP report travel in fields 8..18 of UpdateHeader. */
static void header_dp_fields_encoded(void **state)
{
    ff_wire_update_header h;
    ff_wire_bytes b = {NULL, 0};
    ff_error err = {0};
    hdr_seen s;
    const uint8_t *p;
    uint64_t key, len;

    (void)state;
    memset(&h, 0, sizeof h);
    strcpy(h.site_id, "site-2");
    h.round = 7;
    h.param_count = 10;
    h.n_groups = 1;
    h.group_examples[0] = 5;
    h.refused = 1;
    strcpy(h.refusal, "privacy budget exhausted: round 7");
    strcpy(h.dp_mechanism, "dp-sgd");
    h.dp_epsilon = 8.25;
    h.dp_delta = 1e-5;
    h.dp_epsilon_budget = 8.0;
    h.dp_noise_multiplier = 1.125;
    h.dp_clip = 0.75;
    h.dp_sampling_rate = 0.0625;
    h.dp_steps = 160;
    h.unclipped = 1;
    assert_int_equal(ff_site_wire_update_header_encode(&h, &b, &err), FF_OK);

    /* UpdateMessage.header (field 1) holds the UpdateHeader. */
    p = b.data;
    assert_true(rd_varint(&p, b.data + b.len, &key));
    assert_int_equal(key, 1u << 3 | 2);
    assert_true(rd_varint(&p, b.data + b.len, &len));
    assert_int_equal(len, (uint64_t)(b.data + b.len - p));
    memset(&s, 0, sizeof s);
    walk(p, p + len, &s);
    assert_int_equal(s.varints[8], 1);
    assert_string_equal(s.strings[9], h.refusal);
    assert_string_equal(s.strings[10], "dp-sgd");
    assert_true(s.doubles[11] == 8.25 && s.doubles[12] == 1e-5 &&
                s.doubles[13] == 8.0 && s.doubles[14] == 1.125 &&
                s.doubles[15] == 0.75 && s.doubles[16] == 0.0625);
    assert_int_equal(s.varints[17], 160);
    assert_int_equal(s.varints[18], 1);
    free(b.data);
}

/* Thousands of corrupted TRAIN replies: the decoder answers OK or an
 * error, never crashes, and whatever it accepts satisfies the limits. */
static void mutated_replies_are_safe(void **state)
{
    dp_fields f = good_distributed();
    pbuf b = {0}, c = {0}, d = {0}, t = {0};
    uint32_t x = 12345;
    size_t ok = 0, i;
    int k;

    (void)state;
    write_config(&c);
    write_dp(&d, &f);
    write_secagg(&t, 1025);
    pb_uint(&b, 1, 1);
    pb_uint(&b, 2, 4);
    pb_bytes(&b, 4, c.p, c.n);
    pb_bytes(&b, 6, t.p, t.n);
    pb_bytes(&b, 7, d.p, d.n);
    for (k = 0; k < 20000; k++) {
        uint8_t *m = malloc(b.n);
        ff_wire_poll_reply out;
        ff_error err = {0};
        assert_non_null(m);
        memcpy(m, b.p, b.n);
        for (i = 0; i < 1 + (size_t)(k % 4); i++) {
            x = x * 1103515245u + 12345u;
            m[(x >> 8) % b.n] ^= (uint8_t)(1u << ((x >> 4) % 8));
        }
        if (ff_site_wire_poll_reply_decode(m, b.n, &out, &err) == FF_OK) {
            const ff_wire_site_dp_task *s = &out.site_dp;
            ok++;
            if (s->mode != FF_WIRE_SITE_DP_NONE)
                assert_true(isfinite(s->clip) && s->clip > 0.0);
            if (s->mode == FF_WIRE_SITE_DP_DISTRIBUTED) {
                assert_true(out.secagg);
                assert_true(s->bits >= 2 && s->bits <= 32);
                assert_true(s->padded > 0 &&
                            (s->padded & (s->padded - 1)) == 0);
                assert_true(isfinite(s->scale) && s->scale > 0.0);
                assert_true(isfinite(s->local_sigma2) &&
                            s->local_sigma2 >= 0.0);
            }
            ff_site_wire_poll_reply_cleanup(&out);
        }
        free(m);
    }
    printf("mutated replies: %zu of 20000 accepted, all within limits\n",
           ok);
    pb_free(&b);
    pb_free(&c);
    pb_free(&d);
    pb_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(distributed_task_decodes),
        cmocka_unit_test(each_bad_field_is_refused),
        cmocka_unit_test(header_dp_fields_encoded),
        cmocka_unit_test(mutated_replies_are_safe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
