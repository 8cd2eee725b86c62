/*
 * Tests of the secure aggregation wiring that need no network: the site's
 * quantised vector (client/update.c) summed as the library sums it and
 * decoded as the coordinator decodes it, the aggregate's pre-summed path,
 * and the SecAgg / PollReply task conversions, with mutation fuzzing of
 * their decoders.
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

#include "../../client/ff_site_update.h"
#include "../../client/wire.h"
#include "../../coordinator/aggregate.h"
#include "../../coordinator/wire.h"
#include "../../privacy/ff_secagg.h"

enum { SITES = 3 };

/* Three updates from three local models around one global model. */
typedef struct fixture {
    ff_model *global;
    ff_site_update u[SITES];
    size_t n;
} fixture;

static void fixture_make(fixture *fx)
{
    ff_error err = {0};
    ff_train_stats st;

    memset(fx, 0, sizeof *fx);
    assert_int_equal(ff_model_create(&fx->global, 1, &err), FF_OK);
    fx->n = ff_model_param_count(fx->global);
    for (int s = 0; s < SITES; s++) {
        ff_model *local = NULL;
        assert_int_equal(ff_model_create(&local, 1, &err), FF_OK);
        for (size_t i = 0; i < fx->n; i++)
            ff_model_params(local)[i] +=
                0.01f * (float)((int)((i * 7 + (size_t)s * 13) % 21) - 10);
        memset(&st, 0, sizeof st);
        st.loss = 1.0 + s;
        for (int g = 0; g < FF_GROUP_COUNT; g++)
            st.group_examples[g] = (size_t)(g == s ? 0 : 40 + 10 * s + g);
        assert_int_equal(ff_site_update_prepare("s", 1, fx->global, local,
                                                &st, &fx->u[s], &err),
                         FF_OK);
        ff_model_destroy(local);
    }
}

static void fixture_free(fixture *fx)
{
    for (int s = 0; s < SITES; s++)
        ff_site_update_cleanup(&fx->u[s]);
    ff_model_destroy(fx->global);
}

static float le_float(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                 (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float v;

    memcpy(&v, &u, sizeof v);
    return v;
}

/* Quantise three updates, add the words mod 2^32 (what the unmasked sum
 * is), decode as the coordinator does: the example-weighted sums and the
 * counts come back, within the stated quantisation bound. */
static void quantised_sum_decodes_to_weighted_sum(void **state)
{
    fixture fx;
    const float clip = 1024.0f;
    uint32_t maxv = 0xffffffffu / SITES;
    size_t m, clipped = 0;
    uint32_t *w, *sum;
    float *out;
    double worst = 0.0, bound;
    ff_privacy_error pe = {0};
    ff_error err = {0};

    (void)state;
    fixture_make(&fx);
    m = fx.n + 1 + FF_GROUP_COUNT;
    w = malloc(m * sizeof *w);
    sum = calloc(m, sizeof *sum);
    out = malloc((fx.n + 1) * sizeof *out);
    assert_non_null(w);
    assert_non_null(sum);
    assert_non_null(out);
    for (int s = 0; s < SITES; s++) {
        assert_int_equal(ff_site_update_quantize(&fx.u[s], fx.global, clip,
                                                 maxv, w, m, &clipped, &err),
                         FF_OK);
        assert_int_equal(clipped, 0);
        for (size_t i = 0; i < m; i++)
            sum[i] += w[i];
    }
    assert_int_equal(ff_secagg_dequantize_sum(sum, fx.n + 1, SITES, clip,
                                              maxv, out, &pe),
                     FF_PRIVACY_OK);

    /* Each parameter against sum_s n_{s,g} delta; counts exactly. */
    for (int g = 0; g < FF_GROUP_COUNT; g++) {
        size_t off, len;
        uint64_t want = 0;
        ff_model_group_range(fx.global, g, &off, &len);
        for (int s = 0; s < SITES; s++)
            want += fx.u[s].header.group_examples[g];
        assert_int_equal(sum[fx.n + 1 + (size_t)g], want);
        for (size_t i = off; i < off + len; i++) {
            double ref = 0.0;
            for (int s = 0; s < SITES; s++)
                ref += (double)fx.u[s].header.group_examples[g] *
                       (double)le_float(fx.u[s].data + 4 * i);
            if (fabs(ref - out[i]) > worst)
                worst = fabs(ref - out[i]);
        }
    }
    bound = SITES * (double)clip / maxv + 1e-5;
    printf("secure sum of %d updates, %zu words: largest error %.3g "
           "(bound %.3g)\n", SITES, m, worst, bound);
    assert_true(worst <= bound);

    /* Refusals: a wrong length, a count above max_value. */
    assert_int_equal(ff_site_update_quantize(&fx.u[0], fx.global, clip, maxv,
                                             w, m - 1, &clipped, &err),
                     FF_ERR_SHAPE);
    assert_int_equal(ff_site_update_quantize(&fx.u[0], fx.global, clip, 10,
                                             w, m, &clipped, &err),
                     FF_ERR_ARG);
    free(out);
    free(sum);
    free(w);
    fixture_free(&fx);
}

/* ff_aggregate_add_sum of a weighted sum matches adding the updates. */
static void presummed_aggregate_matches_plain(void **state)
{
    fixture fx;
    ff_aggregate *a = NULL, *b = NULL;
    size_t off[FF_GROUP_COUNT], len[FF_GROUP_COUNT];
    uint64_t ex[FF_GROUP_COUNT] = {0};
    float *ws, *pa, *pb;
    double worst = 0.0;
    ff_error err = {0};

    (void)state;
    fixture_make(&fx);
    for (int g = 0; g < FF_GROUP_COUNT; g++)
        ff_model_group_range(fx.global, g, &off[g], &len[g]);
    assert_int_equal(ff_aggregate_create(&a, fx.n, FF_GROUP_COUNT, off, len,
                                         &err), FF_OK);
    assert_int_equal(ff_aggregate_create(&b, fx.n, FF_GROUP_COUNT, off, len,
                                         &err), FF_OK);
    ws = calloc(fx.n, sizeof *ws);
    pa = calloc(fx.n, sizeof *pa);
    pb = calloc(fx.n, sizeof *pb);
    assert_non_null(ws);
    assert_non_null(pa);
    assert_non_null(pb);
    for (int s = 0; s < SITES; s++) {
        float *d = malloc(fx.n * sizeof *d);
        assert_non_null(d);
        for (size_t i = 0; i < fx.n; i++)
            d[i] = le_float(fx.u[s].data + 4 * i);
        assert_int_equal(ff_aggregate_add(a, d, fx.n,
                                          fx.u[s].header.group_examples,
                                          FF_GROUP_COUNT, &err), FF_OK);
        for (int g = 0; g < FF_GROUP_COUNT; g++) {
            ex[g] += fx.u[s].header.group_examples[g];
            for (size_t i = off[g]; i < off[g] + len[g]; i++)
                ws[i] += (float)fx.u[s].header.group_examples[g] * d[i];
        }
        free(d);
    }
    assert_int_equal(ff_aggregate_add_sum(b, ws, fx.n, ex, FF_GROUP_COUNT,
                                          SITES, &err), FF_OK);
    assert_int_equal(ff_aggregate_count(b), SITES);
    assert_int_equal(ff_aggregate_apply(a, pa, fx.n, &err), FF_OK);
    assert_int_equal(ff_aggregate_apply(b, pb, fx.n, &err), FF_OK);
    for (size_t i = 0; i < fx.n; i++)
        if (fabs((double)pa[i] - pb[i]) > worst)
            worst = fabs((double)pa[i] - pb[i]);
    printf("pre-summed aggregate vs plain: largest difference %.3g "
           "(tolerance 1e-6)\n", worst);
    assert_true(worst <= 1e-6);

    /* Refusals: a NaN, no inputs. */
    ws[5] = NAN;
    assert_int_equal(ff_aggregate_add_sum(b, ws, fx.n, ex, FF_GROUP_COUNT, 1,
                                          &err), FF_ERR_NONFINITE);
    ws[5] = 0.0f;
    assert_int_equal(ff_aggregate_add_sum(b, ws, fx.n, ex, FF_GROUP_COUNT, 0,
                                          &err), FF_ERR_ARG);
    free(pb);
    free(pa);
    free(ws);
    ff_aggregate_destroy(b);
    ff_aggregate_destroy(a);
    fixture_free(&fx);
}

/* A poll reply carrying a task, encoded by the coordinator. */
static void task_encode(uint32_t n, uint32_t index, ff_wire_bytes *out)
{
    static uint8_t keys[8 * 32];
    ff_wire_poll_reply r;
    ff_error err = {0};

    memset(&r, 0, sizeof r);
    r.action = FF_WIRE_TRAIN;
    r.round = 2;
    r.config.epochs = 1;
    r.config.batch_size = 8;
    r.config.lr = 0.1f;
    strcpy(r.config.optimizer, "sgd");
    strcpy(r.config.lr_schedule, "constant");
    for (size_t i = 0; i < sizeof keys; i++)
        keys[i] = (uint8_t)i;
    r.secagg = 1;
    r.task = (ff_wire_secagg_task){index, n, n - 1, 2, 32, 100, 12345,
                                   {7}, 4.0f, keys};
    assert_int_equal(ff_coord_wire_poll_reply_encode(&r, out, &err), FF_OK);
}

static void secagg_messages_round_trip(void **state)
{
    ff_wire_secagg_msg req, got, rep;
    ff_wire_poll_reply pr;
    ff_wire_bytes b = {NULL, 0};
    uint8_t data[40];
    ff_error err = {0};

    (void)state;
    /* Task: every field across; a bad index refused. */
    task_encode(4, 3, &b);
    assert_int_equal(ff_site_wire_poll_reply_decode(b.data, b.len, &pr,
                                                    &err), FF_OK);
    assert_true(pr.secagg && pr.task.n_sites == 4 &&
                pr.task.site_index == 3 && pr.task.degree == 3 &&
                pr.task.threshold == 2 && pr.task.length == 100 &&
                pr.task.max_value == 12345 && pr.task.clip == 4.0f &&
                pr.task.graph_seed[0] == 7 &&
                pr.task.identity_keys[4 * 32 - 1] == 4 * 32 - 1);
    ff_site_wire_poll_reply_cleanup(&pr);
    free(b.data);
    task_encode(4, 4, &b);
    assert_int_equal(ff_site_wire_poll_reply_decode(b.data, b.len, &pr,
                                                    &err), FF_ERR_FORMAT);
    printf("bad task refused: %s\n", err.msg);
    free(b.data);

    /* Stage request and reply. */
    memset(&req, 0, sizeof req);
    strcpy(req.site_id, "site-2");
    req.round = 5;
    req.stage = FF_WIRE_SA_SHARES;
    memset(data, 0xab, sizeof data);
    req.data = data;
    req.len = sizeof data;
    assert_int_equal(ff_site_wire_secagg_encode(&req, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_secagg_decode(b.data, b.len, &got, &err),
                     FF_OK);
    assert_string_equal(got.site_id, "site-2");
    assert_true(got.round == 5 && got.stage == FF_WIRE_SA_SHARES &&
                got.len == sizeof data && memcmp(got.data, data, 40) == 0);
    ff_coord_wire_secagg_cleanup(&got);
    free(b.data);
    req.stage = (ff_wire_secagg_stage)9;
    assert_int_equal(ff_site_wire_secagg_encode(&req, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_secagg_decode(b.data, b.len, &got, &err),
                     FF_ERR_FORMAT);
    ff_coord_wire_secagg_cleanup(&got);
    free(b.data);
    memset(&rep, 0, sizeof rep);
    rep.status = FF_WIRE_SA_ABORTED;
    strcpy(rep.reason, "round aborted");
    assert_int_equal(ff_coord_wire_secagg_reply_encode(&rep, &b, &err),
                     FF_OK);
    assert_int_equal(ff_site_wire_secagg_reply_decode(b.data, b.len, &got,
                                                      &err), FF_OK);
    assert_true(got.status == FF_WIRE_SA_ABORTED);
    assert_string_equal(got.reason, "round aborted");
    ff_site_wire_secagg_reply_cleanup(&got);
    free(b.data);
}

static uint64_t fz = 0x9e3779b97f4a7c15ull;
static uint32_t fz_next(void)
{
    fz ^= fz << 13;
    fz ^= fz >> 7;
    fz ^= fz << 17;
    return (uint32_t)fz;
}

/* The three new decoders return OK within limits or a refusal for
 * corrupted input (flips, overwrites, truncations). */
static void secagg_decoders_survive_mutations(void **state)
{
    ff_wire_bytes src[3];
    ff_wire_secagg_msg req, rep;
    uint8_t buf[2048], data[64] = {1};
    ff_error err = {0};
    int ok = 0, refused = 0;

    (void)state;
    memset(&req, 0, sizeof req);
    strcpy(req.site_id, "site-1");
    req.round = 1;
    req.stage = FF_WIRE_SA_ADVERT;
    req.data = data;
    req.len = sizeof data;
    memset(&rep, 0, sizeof rep);
    rep.data = data;
    rep.len = sizeof data;
    assert_int_equal(ff_site_wire_secagg_encode(&req, &src[0], &err), FF_OK);
    assert_int_equal(ff_coord_wire_secagg_reply_encode(&rep, &src[1], &err),
                     FF_OK);
    task_encode(8, 1, &src[2]);
    for (int r = 0; r < 6000; r++) {
        int which = r % 3;
        size_t n = src[which].len, at;
        ff_status st;
        memcpy(buf, src[which].data, n);
        for (int k = 0; k < 1 + (int)(fz_next() % 3); k++) {
            at = fz_next() % n;
            if (fz_next() % 3 == 0)
                n = at + 1;
            else
                buf[at] ^= (uint8_t)(1u << (fz_next() % 8));
        }
        if (which == 0) {
            ff_wire_secagg_msg o;
            st = ff_coord_wire_secagg_decode(buf, n, &o, &err);
            if (st == FF_OK)
                assert_true(ff_wire_id_valid(o.site_id) && o.round >= 1 &&
                            o.len <= FF_WIRE_SECAGG_DATA_MAX);
            ff_coord_wire_secagg_cleanup(&o);
        } else if (which == 1) {
            ff_wire_secagg_msg o;
            st = ff_site_wire_secagg_reply_decode(buf, n, &o, &err);
            if (st == FF_OK)
                assert_true(o.status <= FF_WIRE_SA_ABORTED);
            ff_site_wire_secagg_reply_cleanup(&o);
        } else {
            ff_wire_poll_reply o;
            st = ff_site_wire_poll_reply_decode(buf, n, &o, &err);
            if (st == FF_OK && o.secagg)
                assert_true(o.task.site_index < o.task.n_sites &&
                            o.task.identity_keys != NULL);
            if (st == FF_OK)
                ff_site_wire_poll_reply_cleanup(&o);
        }
        assert_true(st == FF_OK || st == FF_ERR_FORMAT ||
                    st == FF_ERR_TOO_LARGE);
        if (st == FF_OK)
            ok++;
        else
            refused++;
    }
    printf("secagg mutations: %d decoded within limits, %d refused\n", ok,
           refused);
    assert_true(refused > 0);
    for (int i = 0; i < 3; i++)
        free(src[i].data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quantised_sum_decodes_to_weighted_sum),
        cmocka_unit_test(presummed_aggregate_matches_plain),
        cmocka_unit_test(secagg_messages_round_trip),
        cmocka_unit_test(secagg_decoders_survive_mutations),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
