/*
 * test_dpsgd - DP-SGD in ff_model_train on real records (a small feddigits
 * federation built by fedfuse-feddigits from the shared data):
 *
 *   - with no noise and a sampler that picks given records, one step
 *     equals the clipped sum of per-record gradients computed densely and
 *     independently with ff_model_loss_grad, divided by q * count; with a
 *     huge clip it equals the plain full-batch mean-gradient step;
 *   - noise() gets std = noise_multiplier * clip and the whole parameter
 *     vector, once per step, and empty batches still take a noise step
 *     scaled by 1 / (q * count);
 *   - bad DP settings and misbehaving callbacks are refused, naming the
 *     field, with the parameters untouched;
 *   - every record's contribution has L2 norm <= clip (checked inside a
 *     noise callback that sees the clipped sum), exactly (no tolerance)
 *     when a step holds one record;
 *   - with modest noise the training loss still falls.
 *
 * Needs env FEDFUSE_BIN (built programs) and FEDFUSE_DATA (datasets).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ff_dataset.h"
#include "ff_model.h"
#include "ff_rng.h"

/* Step comparisons: with lr 1 the step is w_before - w_after, exact up to
 * the float rounding of w (half an ulp: 2.4e-7 for |w| < 4) and of the
 * float sums (about 1e-7 of the step). The tests print the largest step
 * coordinate beside the difference: a missing clip or a wrong divisor
 * would move it by a sizeable fraction, far above 1e-6. */
#define STEP_TOL 1e-6
/* Clip bound: float sums against the double norm. */
#define CLIP_REL_TOL 1e-5
/* Learning: DP-SGD (Adam, clip 1) over the pooled sites must bring the
 * training loss below this fraction of the untrained model's, within a
 * time bound that leaves room on a loaded 2-core machine. */
#define LEARN_EPOCHS 10
#define LEARN_BATCH 16.0
#define LEARN_NOISE 0.5
#define LEARN_OPT FF_OPT_ADAM
#define LEARN_LR 0.01f
#define LEARN_LOSS_FRACTION 0.8
#define LEARN_MAX_SECONDS 60.0

static char dir[] = "/tmp/ff-dpsgd-XXXXXX";
/* mixed: sites 3 and 5 (some records lack image, audio or pen);
 * learn: sites 1, 2, 4 and 6 for the learning test. */
static ff_sample_set mixed, learn;

/* ---- fixture: a small real federation ---------------------------------- */

/* Appends the records of manifest site/manifest.jsonl to out. */
static int
pool_site(const char *site, ff_sample_set *out)
{
    char path[1024];
    ff_sample_set one = {0};
    ff_error err = {0};

    snprintf(path, sizeof(path), "%s/%s/manifest.jsonl", dir, site);
    if (ff_dataset_load(path, &one, NULL, &err) != FF_OK) {
        fprintf(stderr, "test_dpsgd: %s\n", ff_error_text(&err));
        return -1;
    }
    ff_sample *grown = realloc(out->items, (out->count + one.count) *
                                               sizeof(ff_sample));
    if (grown == NULL) {
        ff_dataset_cleanup(&one);
        return -1;
    }
    memcpy(grown + out->count, one.items, one.count * sizeof(ff_sample));
    out->items = grown;
    out->count += one.count;
    ff_dataset_cleanup(&one);
    return 0;
}

static int
setup(void **state)
{
    const char *bin = getenv("FEDFUSE_BIN"), *data = getenv("FEDFUSE_DATA");
    char cmd[4096];

    (void)state;
    if (bin == NULL || data == NULL) {
        fprintf(stderr, "test_dpsgd: set FEDFUSE_BIN and FEDFUSE_DATA "
                        "(ctest does)\n");
        return -1;
    }
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd),
             "'%s/fedfuse-feddigits' --data '%s' --out '%s' --seed 5 "
             "--records 40 --test-records 10 >/dev/null 2>&1", bin, data,
             dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_dpsgd: fedfuse-feddigits failed: %s\n", cmd);
        return -1;
    }
    if (pool_site("site-3", &mixed) || pool_site("site-5", &mixed) ||
        pool_site("site-1", &learn) || pool_site("site-2", &learn) ||
        pool_site("site-4", &learn) || pool_site("site-6", &learn))
        return -1;
    printf("  records: %zu mixed (sites 3, 5), %zu for learning "
           "(sites 1, 2, 4, 6)\n", mixed.count, learn.count);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[2048];

    (void)state;
    free(mixed.items);
    free(learn.items);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- test callbacks ---------------------------------------------------- */

/* The one context both callbacks share (ff_dp_sgd_ops has one ctx).
 * Sampler: fixed indices (fixed != NULL), exactly one record per step in
 * turn (one), or Poisson from a seeded generator; fail = 1 returns an
 * error, fail = 2 an index out of range. Noise: records what it was
 * given, checks the clipped sum's norm against last_n * clip, then adds
 * Gaussian noise of the std asked for (gauss) or the constant add. */
typedef struct dp_test_ctx {
    /* sampler */
    const size_t *fixed;
    size_t nfixed;
    int one;
    size_t next;
    int fail;
    size_t last_n;             /* size of the last batch */
    int sample_calls;
    /* noise */
    double clip;
    int gauss;
    float add;
    int noise_calls;
    double std_seen;           /* std of the first call */
    int std_mismatch;          /* calls whose std differed from it */
    size_t n_seen;
    double worst_ratio;        /* max ||sum|| / (last_n * clip) */
    double worst_one;          /* max ||sum|| of one-record steps */
    int one_over;              /* one-record steps with ||sum|| > clip */
    ff_rng rng;
} dp_test_ctx;

static ff_status
sample_cb(void *ctx, double q, size_t count, size_t *idx, size_t *n,
          ff_error *err)
{
    dp_test_ctx *c = ctx;

    c->sample_calls++;
    *n = 0;
    if (c->fail == 1)
        return ff_error_set(err, FF_ERR_INTERNAL, "test sampler refused");
    if (c->fail == 2) {
        idx[(*n)++] = count;
    } else if (c->fixed != NULL) {
        for (size_t j = 0; j < c->nfixed; j++)
            idx[(*n)++] = c->fixed[j];
    } else if (c->one) {
        idx[(*n)++] = c->next++ % count;
    } else {
        for (size_t i = 0; i < count; i++)
            if (ff_rng_uniform(&c->rng) < q)
                idx[(*n)++] = i;
    }
    c->last_n = *n;
    return FF_OK;
}

static ff_status
noise_cb(void *ctx, float *v, size_t n, double std, ff_error *err)
{
    dp_test_ctx *c = ctx;
    double ss = 0.0;

    (void)err;
    if (c->noise_calls++ == 0)
        c->std_seen = std;
    c->std_mismatch += std != c->std_seen;
    c->n_seen = n;
    for (size_t i = 0; i < n; i++)
        ss += (double)v[i] * v[i];
    if (c->last_n > 0) {
        double r = sqrt(ss) / ((double)c->last_n * c->clip);
        if (r > c->worst_ratio)
            c->worst_ratio = r;
    }
    if (c->last_n == 1) {
        if (sqrt(ss) > c->worst_one)
            c->worst_one = sqrt(ss);
        c->one_over += sqrt(ss) > c->clip;
    }
    for (size_t i = 0; i < n; i++)
        v[i] += c->gauss ? (float)(std * ff_rng_normal(&c->rng)) : c->add;
    return FF_OK;
}

/* ---- helpers ----------------------------------------------------------- */

static ff_model *
model_new(uint64_t seed)
{
    ff_model *m = NULL;
    ff_error err = {0};

    assert_int_equal(ff_model_create(&m, seed, &err), FF_OK);
    return m;
}

/* DP settings whose callbacks share ctx. */
static ff_dp_sgd
dp_make(double clip, double noise, double q, dp_test_ctx *ctx)
{
    ff_dp_sgd dp = {clip, noise, q, {sample_cb, noise_cb, ctx}};

    ctx->clip = clip;
    return dp;
}

/* Plain SGD with lr 1, no momentum, constant rate, no dropout: a step is
 * then w_before - w_after. batch_size 0 shows DP ignores it. */
static void
config_sgd1(ff_train_config *cfg, const ff_dp_sgd *dp)
{
    ff_train_config_default(cfg);
    cfg->epochs = 1;
    cfg->batch_size = 0;
    cfg->optimizer = FF_OPT_SGD;
    cfg->momentum = 0.0f;
    cfg->lr = 1.0f;
    cfg->lr_schedule = FF_LR_CONSTANT;
    cfg->modality_dropout = 0.0f;
    cfg->dp = dp;
}

static double
norm_of(const float *v, size_t n)
{
    double s = 0.0;

    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Largest |(before - after) - want| over the parameters. */
static double
step_diff(const float *before, const float *after, const double *want,
          size_t n)
{
    double worst = 0.0;

    for (size_t i = 0; i < n; i++) {
        double d = fabs(((double)before[i] - after[i]) - want[i]);
        if (d > worst)
            worst = d;
    }
    return worst;
}

/* ---- (a) one step against independent per-record gradients ------------- */

#define NPICK 12

static void
test_step_equals_clipped_sum(void **state)
{
    static const size_t pick[NPICK] = {0, 3, 7, 12, 20, 33, 41, 44, 50, 58,
                                       66, 71};
    ff_model *m = model_new(11);
    size_t p = ff_model_param_count(m);
    float *g = malloc(p * sizeof(float)), *before = malloc(p * 4);
    double *want = calloc(p, sizeof(double)), norms[NPICK], sorted[NPICK];
    double q = 0.8, loss; /* round(1 / 0.8) = 1 step */
    size_t clipped = 0;
    ff_error err = {0};

    (void)state;
    assert_non_null(g);
    assert_non_null(before);
    assert_non_null(want);
    assert_true(mixed.count > pick[NPICK - 1]);
    memcpy(before, ff_model_params(m), p * 4);

    /* Each record's gradient alone, densely; clip between the middle two
     * norms so that half are clipped. */
    for (size_t j = 0; j < NPICK; j++) {
        assert_int_equal(ff_model_loss_grad(m, &mixed.items[pick[j]], 1,
                                            NULL, g, &loss, &err), FF_OK);
        norms[j] = sorted[j] = norm_of(g, p);
    }
    qsort(sorted, NPICK, sizeof(double), cmp_double);
    double clip = 0.5 * (sorted[NPICK / 2 - 1] + sorted[NPICK / 2]);

    /* The expected step: clipped sum / (q * count). */
    for (size_t j = 0; j < NPICK; j++) {
        assert_int_equal(ff_model_loss_grad(m, &mixed.items[pick[j]], 1,
                                            NULL, g, &loss, &err), FF_OK);
        double scale = norms[j] > clip ? clip / norms[j] : 1.0;
        clipped += norms[j] > clip;
        for (size_t i = 0; i < p; i++)
            want[i] += scale * g[i] / (q * (double)mixed.count);
    }

    /* One DP step with no noise. */
    dp_test_ctx ctx = {.fixed = pick, .nfixed = NPICK};
    ff_dp_sgd dp = dp_make(clip, 0.0, q, &ctx);
    ff_train_config cfg;
    ff_train_stats ts;
    config_sgd1(&cfg, &dp);
    assert_int_equal(ff_model_train(m, &mixed, &cfg, &ts, &err), FF_OK);

    double d = step_diff(before, ff_model_params(m), want, p), big = 0.0;
    for (size_t i = 0; i < p; i++)
        big = fmax(big, fabs(want[i]));
    printf("  %d records, clip %.4f (norms %.4f..%.4f), %zu clipped: "
           "max |step - clipped sum / (q n)| = %.3e (tol %.0e; largest "
           "step coordinate %.3e)\n", NPICK, clip, sorted[0],
           sorted[NPICK - 1], clipped, d, STEP_TOL, big);
    assert_true(d <= STEP_TOL);
    assert_int_equal(ctx.noise_calls, 0); /* noise 0: never called */
    assert_int_equal(ts.dp_steps, 1);
    assert_int_equal(ts.dp_records, NPICK);
    assert_int_equal(ts.dp_clipped, clipped);
    assert_int_equal(ts.examples, NPICK);
    assert_true(clipped > 0 && clipped < NPICK);
    free(want);
    free(before);
    free(g);
    ff_model_destroy(m);
}

/* With a clip no gradient reaches, q = 1 and every record drawn, the DP
 * step is the plain full-batch mean-gradient step. */
static void
test_huge_clip_equals_plain_mean_step(void **state)
{
    ff_model *a = model_new(12), *b = model_new(12);
    size_t p = ff_model_param_count(a);
    size_t *all = malloc(mixed.count * sizeof(size_t));
    ff_error err = {0};

    (void)state;
    assert_non_null(all);
    for (size_t i = 0; i < mixed.count; i++)
        all[i] = i;

    /* DP-SGD, clip 1e6, no noise. */
    dp_test_ctx ctx = {.fixed = all, .nfixed = mixed.count};
    ff_dp_sgd dp = dp_make(1e6, 0.0, 1.0, &ctx);
    ff_train_config cfg;
    ff_train_stats ts;
    config_sgd1(&cfg, &dp);
    assert_int_equal(ff_model_train(a, &mixed, &cfg, &ts, &err), FF_OK);
    assert_int_equal(ts.dp_clipped, 0);

    /* Plain training, one batch of everything. */
    config_sgd1(&cfg, NULL);
    cfg.batch_size = (int)mixed.count;
    assert_int_equal(ff_model_train(b, &mixed, &cfg, NULL, &err), FF_OK);

    const float *pa = ff_model_params_const(a);
    const float *pb = ff_model_params_const(b);
    double worst = 0.0;
    for (size_t i = 0; i < p; i++)
        worst = fmax(worst, fabs((double)pa[i] - pb[i]));
    printf("  %zu records, clip 1e6: max |DP step - plain mean step| = "
           "%.3e (tol %.0e)\n", mixed.count, worst, STEP_TOL);
    assert_true(worst <= STEP_TOL);
    free(all);
    ff_model_destroy(b);
    ff_model_destroy(a);
}

/* ---- (b) what noise() receives ----------------------------------------- */

static void
test_noise_gets_std_and_whole_vector(void **state)
{
    ff_model *m = model_new(13);
    dp_test_ctx ctx = {0};
    ff_dp_sgd dp = dp_make(0.7, 1.3, 0.25, &ctx); /* 4 steps per epoch */
    ff_train_config cfg;
    ff_train_stats ts;
    ff_error err = {0};

    (void)state;
    ff_rng_init(&ctx.rng, 5);
    ctx.gauss = 1;
    config_sgd1(&cfg, &dp);
    cfg.epochs = 2;
    cfg.lr = 0.01f;
    assert_int_equal(ff_model_train(m, &mixed, &cfg, &ts, &err), FF_OK);
    printf("  noise calls %d (steps %ld), std %.6f (want %.6f), n %zu "
           "(params %zu), records drawn %zu\n", ctx.noise_calls,
           ts.dp_steps, ctx.std_seen, 1.3 * 0.7, ctx.n_seen,
           ff_model_param_count(m), ts.dp_records);
    assert_int_equal(ctx.noise_calls, 8);
    assert_int_equal(ctx.sample_calls, 8);
    assert_int_equal(ts.dp_steps, 8);
    assert_int_equal(ctx.std_mismatch, 0);
    assert_true(fabs(ctx.std_seen - 1.3 * 0.7) <= 1e-12);
    assert_int_equal(ctx.n_seen, ff_model_param_count(m));
    ff_model_destroy(m);
}

/* Empty batches still step: the noise alone, divided by q * count. */
static void
test_empty_batches_take_noise_steps(void **state)
{
    static const size_t none[1] = {0};
    ff_model *m = model_new(14);
    size_t p = ff_model_param_count(m);
    float *before = malloc(p * 4);
    double *want = malloc(p * sizeof(double));
    dp_test_ctx ctx = {.fixed = none, .nfixed = 0, .add = 1.0f};
    ff_dp_sgd dp = dp_make(1.0, 0.5, 0.5, &ctx); /* 2 steps */
    ff_train_config cfg;
    ff_train_stats ts;
    ff_error err = {0};

    (void)state;
    assert_non_null(before);
    assert_non_null(want);
    memcpy(before, ff_model_params(m), p * 4);
    config_sgd1(&cfg, &dp);
    assert_int_equal(ff_model_train(m, &mixed, &cfg, &ts, &err), FF_OK);
    for (size_t i = 0; i < p; i++)
        want[i] = 2.0 / (0.5 * (double)mixed.count);
    double d = step_diff(before, ff_model_params(m), want, p);
    printf("  2 empty steps, noise +1 each: max |step - 2 / (q n)| = %.3e "
           "(tol %.0e)\n", d, STEP_TOL);
    assert_true(d <= STEP_TOL);
    assert_int_equal(ts.dp_steps, 2);
    assert_int_equal(ts.dp_records, 0);
    assert_int_equal(ts.examples, 0);
    free(want);
    free(before);
    ff_model_destroy(m);
}

/* ---- (c) bad settings -------------------------------------------------- */

typedef struct bad_case {
    double clip, noise, q;
    int null_sample, null_noise;
    const char *field;
} bad_case;

static void
test_bad_dp_configs_are_rejected(void **state)
{
    static const bad_case bad[] = {
        {0.0, 1.0, 0.1, 0, 0, "dp.clip"},
        {-1.0, 1.0, 0.1, 0, 0, "dp.clip"},
        {NAN, 1.0, 0.1, 0, 0, "dp.clip"},
        {INFINITY, 1.0, 0.1, 0, 0, "dp.clip"},
        {1.0, -0.5, 0.1, 0, 0, "dp.noise_multiplier"},
        {1.0, NAN, 0.1, 0, 0, "dp.noise_multiplier"},
        {1.0, INFINITY, 0.1, 0, 0, "dp.noise_multiplier"},
        {1e200, 1e200, 0.1, 0, 0, "dp.noise_multiplier"},
        {1.0, 1.0, 0.0, 0, 0, "dp.sampling_rate"},
        {1.0, 1.0, -0.1, 0, 0, "dp.sampling_rate"},
        {1.0, 1.0, 1.5, 0, 0, "dp.sampling_rate"},
        {1.0, 1.0, NAN, 0, 0, "dp.sampling_rate"},
        {1.0, 1.0, 1e-9, 0, 0, "dp.sampling_rate"},
        {1.0, 1.0, 0.1, 1, 0, "dp.ops.sample"},
        {1.0, 1.0, 0.1, 0, 1, "dp.ops.noise"},
    };
    ff_model *m = model_new(15);
    size_t p = ff_model_param_count(m);
    float *keep = malloc(p * 4);

    (void)state;
    assert_non_null(keep);
    memcpy(keep, ff_model_params(m), p * 4);
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        dp_test_ctx ctx = {0};
        ff_dp_sgd dp = dp_make(bad[k].clip, bad[k].noise, bad[k].q, &ctx);
        ff_train_config cfg;
        ff_error err = {0};
        if (bad[k].null_sample)
            dp.ops.sample = NULL;
        if (bad[k].null_noise)
            dp.ops.noise = NULL;
        config_sgd1(&cfg, &dp);
        ff_status st = ff_model_train(m, &mixed, &cfg, NULL, &err);
        printf("  %-20s -> %s: %s\n", bad[k].field, ff_status_name(st),
               ff_error_text(&err));
        assert_int_equal(st, FF_ERR_ARG);
        assert_non_null(strstr(err.msg, bad[k].field));
        assert_int_equal(ctx.sample_calls, 0);
    }
    assert_memory_equal(keep, ff_model_params(m), p * 4);
    free(keep);
    ff_model_destroy(m);
}

/* A sampler that fails, or returns an index out of range, stops training
 * with the reason, and the parameters go back as they were. */
static void
test_bad_sampler_output_rolls_back(void **state)
{
    static const struct {
        int fail;
        ff_status want;
        const char *text;
    } cases[] = {
        {1, FF_ERR_INTERNAL, "test sampler refused"},
        {2, FF_ERR_ARG, "dp.ops.sample returned index"},
    };
    ff_model *m = model_new(16);
    size_t p = ff_model_param_count(m);
    float *keep = malloc(p * 4);

    (void)state;
    assert_non_null(keep);
    memcpy(keep, ff_model_params(m), p * 4);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        dp_test_ctx ctx = {.fail = cases[k].fail};
        ff_dp_sgd dp = dp_make(1.0, 1.0, 0.5, &ctx);
        ff_train_config cfg;
        ff_error err = {0};
        config_sgd1(&cfg, &dp);
        ff_status st = ff_model_train(m, &mixed, &cfg, NULL, &err);
        printf("  sampler fault %d -> %s: %s\n", cases[k].fail,
               ff_status_name(st), ff_error_text(&err));
        assert_int_equal(st, cases[k].want);
        assert_non_null(strstr(err.msg, cases[k].text));
    }
    assert_memory_equal(keep, ff_model_params(m), p * 4);
    free(keep);
    ff_model_destroy(m);
}

/* ---- (d) every contribution within the clip ---------------------------- */

/* Runs 2 epochs with dropout and returns the worst ||sum|| / (n clip)
 * the noise callback saw; one = one record per step. */
static double
worst_clip_ratio(int one, double clip, double q, ff_train_stats *ts)
{
    ff_model *m = model_new(17);
    dp_test_ctx ctx = {.one = one};
    ff_dp_sgd dp = dp_make(clip, 1.0, q, &ctx);
    ff_train_config cfg;
    ff_error err = {0};

    ff_rng_init(&ctx.rng, 9);
    config_sgd1(&cfg, &dp);
    cfg.epochs = 2;
    cfg.lr = 0.05f;
    cfg.modality_dropout = 0.5f;
    assert_int_equal(ff_model_train(m, &mixed, &cfg, ts, &err), FF_OK);
    assert_int_equal(ctx.noise_calls, ts->dp_steps);
    ff_model_destroy(m);
    return ctx.worst_ratio;
}

static void
test_each_contribution_within_clip(void **state)
{
    ff_train_stats ts;

    (void)state;

    /* One record per step: the sum is that record's clipped gradient. */
    double r1 = worst_clip_ratio(1, 0.05, 0.1, &ts);
    printf("  one record per step, clip 0.05: max ||g|| / clip = %.7f "
           "(tol 1 + %.0e), %zu of %zu clipped\n", r1, CLIP_REL_TOL,
           ts.dp_clipped, ts.dp_records);
    assert_true(r1 <= 1.0 + CLIP_REL_TOL);
    assert_true(ts.dp_clipped > 0);
    /* All were clipped at this clip, so each sits on the bound. */
    if (ts.dp_clipped == ts.dp_records)
        assert_true(r1 >= 1.0 - CLIP_REL_TOL);

    /* Poisson batches: ||sum|| <= batch * clip. */
    double rb = worst_clip_ratio(0, 0.5, 0.2, &ts);
    printf("  Poisson q 0.2, clip 0.5: max ||sum|| / (batch clip) = %.7f "
           "(tol 1 + %.0e), %zu of %zu clipped over %ld steps\n", rb,
           CLIP_REL_TOL, ts.dp_clipped, ts.dp_records, ts.dp_steps);
    assert_true(rb <= 1.0 + CLIP_REL_TOL);
    assert_true(ts.dp_records > 0);
}

/* One record per step, so the sum the noise callback sees is exactly that
 * record's clipped contribution: its L2 norm (in double, over the whole
 * vector) must be <= clip with no tolerance, for clips from tiny to
 * larger than some gradients. */
static void
test_each_contribution_exactly_within_clip(void **state)
{
    static const double clips[] = {1e-3, 0.05, 0.37, 1.3, 6.7};
    size_t clipped = 0, records = 0;
    int over = 0;

    (void)state;
    for (size_t k = 0; k < sizeof(clips) / sizeof(clips[0]); k++) {
        ff_model *m = model_new(19);
        dp_test_ctx ctx = {.one = 1};
        ff_dp_sgd dp = dp_make(clips[k], 1e-3, 0.05, &ctx);
        ff_train_config cfg;
        ff_train_stats ts;
        ff_error err = {0};

        ff_rng_init(&ctx.rng, 23);
        config_sgd1(&cfg, &dp);
        cfg.lr = 0.05f;
        cfg.modality_dropout = 0.3f;
        assert_int_equal(ff_model_train(m, &mixed, &cfg, &ts, &err), FF_OK);
        printf("  clip %g: largest ||g|| = %.17g, ||g|| - clip = %.3g "
               "(tolerance 0), %d above, %zu of %zu clipped\n", clips[k],
               ctx.worst_one, ctx.worst_one - clips[k], ctx.one_over,
               ts.dp_clipped, ts.dp_records);
        over += ctx.one_over;
        clipped += ts.dp_clipped;
        records += ts.dp_records;
        assert_true(ctx.worst_one <= clips[k]);
        ff_model_destroy(m);
    }
    assert_int_equal(over, 0);
    assert_true(clipped > 0 && clipped < records);
}

/* ---- (e) it still learns ----------------------------------------------- */

static double
now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void
test_dp_sgd_learns_with_modest_noise(void **state)
{
    ff_model *m = model_new(18);
    dp_test_ctx ctx = {.gauss = 1};
    ff_dp_sgd dp = dp_make(1.0, LEARN_NOISE, LEARN_BATCH /
                           (double)learn.count, &ctx);
    ff_train_config cfg;
    ff_train_stats ts;
    ff_eval e0, e1;
    ff_error err = {0};

    (void)state;
    ff_rng_init(&ctx.rng, 21);
    assert_int_equal(ff_model_evaluate(m, &learn, &e0, &err), FF_OK);
    ff_train_config_default(&cfg);
    cfg.epochs = LEARN_EPOCHS;
    cfg.optimizer = LEARN_OPT;
    cfg.lr = LEARN_LR;
    cfg.dp = &dp;
    double t0 = now_s();
    assert_int_equal(ff_model_train(m, &learn, &cfg, &ts, &err), FF_OK);
    double secs = now_s() - t0;
    assert_int_equal(ff_model_evaluate(m, &learn, &e1, &err), FF_OK);
    printf("  %zu records, q %.3f, noise %.2f, %ld steps in %.2f s: loss "
           "%.4f -> %.4f, accuracy %.3f -> %.3f (%zu of %zu clipped)\n",
           learn.count, dp.sampling_rate, dp.noise_multiplier, ts.dp_steps,
           secs, e0.loss, e1.loss, e0.accuracy, e1.accuracy, ts.dp_clipped,
           ts.dp_records);
    assert_true(e1.loss < LEARN_LOSS_FRACTION * e0.loss);
    assert_true(secs < LEARN_MAX_SECONDS);
    ff_model_destroy(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_equals_clipped_sum),
        cmocka_unit_test(test_huge_clip_equals_plain_mean_step),
        cmocka_unit_test(test_noise_gets_std_and_whole_vector),
        cmocka_unit_test(test_empty_batches_take_noise_steps),
        cmocka_unit_test(test_bad_dp_configs_are_rejected),
        cmocka_unit_test(test_bad_sampler_output_rolls_back),
        cmocka_unit_test(test_each_contribution_within_clip),
        cmocka_unit_test(test_each_contribution_exactly_within_clip),
        cmocka_unit_test(test_dp_sgd_learns_with_modest_noise),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
