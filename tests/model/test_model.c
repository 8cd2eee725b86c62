/*
 * test_model - the whole model: its gradient against finite differences on
 * a small batch with mixed modality masks, absent modalities never read,
 * training on a separable synthetic set, the per-group example counts,
 * determinism, input checks, and rollback on failure.
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
#include "ff_rng.h"
#include "synth.h"

/* Finite differences of the mean loss: along a random unit direction
 * inside each group (step DIR_STEP), and on the 3 coordinates of each group
 * with the largest gradient (step COORD_STEP). Error as in test_layers:
 * |a - n| / max(|a| + |n|, 1e-3). */
#define DIR_STEP 1e-2
#define COORD_STEP 2e-3
#define DIR_TOL 1e-2
#define COORD_TOL 3e-2
#define FD_FLOOR 1e-3

static ff_sample *
samples_new(size_t n, uint64_t seed, double noise)
{
    ff_sample *s = calloc(n, sizeof(*s));

    assert_non_null(s);
    synth_fill(s, n, seed, noise);
    return s;
}

static ff_model *
model_new(uint64_t seed)
{
    ff_model *m = NULL;
    ff_error err = {0};

    assert_int_equal(ff_model_create(&m, seed, &err), FF_OK);
    return m;
}

static double
loss_of(ff_model *m, const ff_sample *s, size_t n, const uint32_t *masks)
{
    double loss = 0.0;
    ff_error err = {0};

    assert_int_equal(ff_model_loss_grad(m, s, n, masks, NULL, &loss, &err),
                     FF_OK);
    return loss;
}

static double
rel_err(double a, double n)
{
    double den = fabs(a) + fabs(n);

    return fabs(a - n) / (den > FD_FLOOR ? den : FD_FLOOR);
}

/* ---- gradient of the whole model --------------------------------------- */

/* Directional derivative of the loss inside group g vs grad . v. */
static double
check_direction(ff_model *m, const ff_sample *s, size_t n,
                const uint32_t *masks, const float *grad, int g)
{
    size_t off, len;
    float *p = ff_model_params(m);
    ff_rng r;

    ff_model_group_range(m, g, &off, &len);
    float *v = malloc(len * sizeof(float)), *keep = malloc(len * 4);
    assert_non_null(v);
    assert_non_null(keep);
    memcpy(keep, p + off, len * 4);

    /* A random unit direction. */
    double norm = 0.0, an = 0.0;
    ff_rng_init(&r, 100 + (uint64_t)g);
    for (size_t i = 0; i < len; i++) {
        v[i] = (float)ff_rng_normal(&r);
        norm += (double)v[i] * v[i];
    }
    for (size_t i = 0; i < len; i++) {
        v[i] = (float)(v[i] / sqrt(norm));
        an += (double)grad[off + i] * v[i];
    }

    /* Central difference along it. */
    for (size_t i = 0; i < len; i++)
        p[off + i] = keep[i] + (float)DIR_STEP * v[i];
    double lp = loss_of(m, s, n, masks);
    for (size_t i = 0; i < len; i++)
        p[off + i] = keep[i] - (float)DIR_STEP * v[i];
    double lm = loss_of(m, s, n, masks);
    memcpy(p + off, keep, len * 4);
    double num = (lp - lm) / (2 * DIR_STEP);

    double e = rel_err(an, num);
    printf("  %-5s direction: analytic %+.6e numeric %+.6e rel err %.2e "
           "(tol %.0e)\n", ff_model_group_name(g), an, num, e, DIR_TOL);
    free(v);
    free(keep);
    return e;
}

/* The 3 coordinates of group g with the largest |gradient|. */
static double
check_coordinates(ff_model *m, const ff_sample *s, size_t n,
                  const uint32_t *masks, const float *grad, int g)
{
    size_t off, len, top[3] = {0, 0, 0};
    float *p = ff_model_params(m);
    double worst = 0.0;

    ff_model_group_range(m, g, &off, &len);
    for (size_t i = 0; i < len; i++)
        for (int k = 0; k < 3; k++)
            if (fabsf(grad[off + i]) > fabsf(grad[off + top[k]])) {
                memmove(&top[k + 1], &top[k], (size_t)(2 - k) * sizeof(*top));
                top[k] = i;
                break;
            }
    for (int k = 0; k < 3; k++) {
        float *x = &p[off + top[k]], keep = *x;
        *x = keep + (float)COORD_STEP;
        double lp = loss_of(m, s, n, masks);
        *x = keep - (float)COORD_STEP;
        double lm = loss_of(m, s, n, masks);
        *x = keep;
        double num = (lp - lm) / (2 * COORD_STEP);
        double e = rel_err(grad[off + top[k]], num);
        worst = e > worst ? e : worst;
    }
    printf("  %-5s top-3 coordinates: max rel err %.2e (tol %.0e)\n",
           ff_model_group_name(g), worst, COORD_TOL);
    return worst;
}

static void
test_model_gradient_matches_finite_differences(void **state)
{
    /* Six records, each seen through a different modality mask. */
    static const uint32_t masks[6] = {
        FF_MOD_ALL,
        FF_MOD_BIT(FF_MOD_IMAGE),
        FF_MOD_BIT(FF_MOD_AUDIO) | FF_MOD_BIT(FF_MOD_TEXT),
        FF_MOD_BIT(FF_MOD_PEN) | FF_MOD_BIT(FF_MOD_IMAGE),
        FF_MOD_BIT(FF_MOD_TEXT),
        FF_MOD_BIT(FF_MOD_AUDIO) | FF_MOD_BIT(FF_MOD_PEN),
    };
    ff_sample *s = samples_new(6, 3, 0.5);
    ff_model *m = model_new(5);
    float *grad = malloc(ff_model_param_count(m) * sizeof(float));
    double loss, worst_dir = 0.0, worst_coord = 0.0;
    size_t off, len;
    ff_error err = {0};

    (void)state;
    assert_non_null(grad);

    /* Off the initial point: the text table starts at zero, which would
     * put a text-only record's hidden ReLUs exactly on their kink. */
    ff_model_group_range(m, FF_MOD_TEXT, &off, &len);
    synth_normal(ff_model_params(m) + off, len, 77, 0.3);
    ff_model_group_range(m, FF_GROUP_HEAD, &off, &len);
    float *noise = malloc(len * sizeof(float));
    assert_non_null(noise);
    synth_normal(noise, len, 78, 0.05);
    for (size_t i = 0; i < len; i++)
        ff_model_params(m)[off + i] += noise[i];
    free(noise);
    assert_int_equal(ff_model_loss_grad(m, s, 6, masks, grad, &loss, &err),
                     FF_OK);
    printf("  loss %.6f on 6 records with mixed masks\n", loss);
    for (int g = 0; g < FF_GROUP_COUNT; g++) {
        double d = check_direction(m, s, 6, masks, grad, g);
        double c = check_coordinates(m, s, 6, masks, grad, g);
        worst_dir = d > worst_dir ? d : worst_dir;
        worst_coord = c > worst_coord ? c : worst_coord;
    }
    printf("  worst: direction %.2e, coordinates %.2e\n", worst_dir,
           worst_coord);
    assert_true(worst_dir < DIR_TOL);
    assert_true(worst_coord < COORD_TOL);
    free(grad);
    free(s);
    ff_model_destroy(m);
}

/* ---- absent modalities --------------------------------------------------- */

/* Largest |g| over group g. */
static double
group_max_abs(const ff_model *m, const float *grad, int g)
{
    size_t off, len;
    double mx = 0.0;

    ff_model_group_range(m, g, &off, &len);
    for (size_t i = 0; i < len; i++)
        mx = fabs(grad[off + i]) > mx ? fabs(grad[off + i]) : mx;
    return mx;
}

static void
fill_nan(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = NAN;
}

static void
test_absent_modality_is_unread_and_gets_no_gradient(void **state)
{
    ff_sample *clean = samples_new(4, 9, 0.5), *dirty = samples_new(4, 9, 0.5);
    ff_model *m = model_new(6);
    size_t np = ff_model_param_count(m);
    float *g1 = malloc(np * 4), *g2 = malloc(np * 4);
    double l1, l2;
    ff_error err = {0};

    (void)state;
    assert_non_null(g1);
    assert_non_null(g2);

    /* Nobody has audio; record 1 lacks pen too. clean holds zeros where
     * dirty holds NaN (and a text length that would be invalid). */
    for (int i = 0; i < 4; i++) {
        clean[i].present = dirty[i].present =
            FF_MOD_ALL & ~FF_MOD_BIT(FF_MOD_AUDIO);
        memset(clean[i].audio, 0, sizeof(clean[i].audio));
        fill_nan(dirty[i].audio, FF_AUDIO_SIZE);
    }
    clean[1].present = dirty[1].present &= ~FF_MOD_BIT(FF_MOD_PEN);
    memset(clean[1].pen, 0, sizeof(clean[1].pen));
    fill_nan(dirty[1].pen, FF_PEN_SIZE);
    clean[2].present = dirty[2].present &= ~FF_MOD_BIT(FF_MOD_TEXT);
    dirty[2].text_len = 100000;

    /* Same loss and gradient, bit for bit; audio's gradient is zero. */
    assert_int_equal(ff_model_loss_grad(m, clean, 4, NULL, g1, &l1, &err),
                     FF_OK);
    assert_int_equal(ff_model_loss_grad(m, dirty, 4, NULL, g2, &l2, &err),
                     FF_OK);
    assert_true(l1 == l2 && isfinite(l1));
    assert_memory_equal(g1, g2, np * 4);
    printf("  loss with absent tensors zero %.9f, NaN %.9f; max |grad| "
           "audio %.1e, image %.1e\n", l1, l2,
           group_max_abs(m, g2, FF_MOD_AUDIO),
           group_max_abs(m, g2, FF_MOD_IMAGE));
    assert_true(group_max_abs(m, g2, FF_MOD_AUDIO) == 0.0);
    assert_true(group_max_abs(m, g2, FF_MOD_IMAGE) > 0.0);

    /* Predictions agree, with and without a mask hiding a present but
     * poisoned modality. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(ff_model_predict(m, &clean[i], FF_MOD_ALL),
                         ff_model_predict(m, &dirty[i], FF_MOD_ALL));
    dirty[0].present = FF_MOD_ALL;
    fill_nan(dirty[0].image, FF_IMAGE_SIZE);
    fill_nan(dirty[0].audio, FF_AUDIO_SIZE);
    uint32_t no_image = FF_MOD_ALL & ~FF_MOD_BIT(FF_MOD_IMAGE) &
                        ~FF_MOD_BIT(FF_MOD_AUDIO);
    assert_int_equal(ff_model_predict(m, &dirty[0], no_image),
                     ff_model_predict(m, &clean[0], no_image));
    assert_int_equal(ff_model_predict(m, &dirty[0], FF_MOD_ALL), -1);
    assert_int_equal(ff_model_predict(m, &dirty[0], 0), -1);

    free(g1), free(g2), free(clean), free(dirty);
    ff_model_destroy(m);
}

/* ---- training ----------------------------------------------------------- */

/* Gives record i a mix of modalities (every pattern with >= 1 bit). */
static void
mix_presence(ff_sample *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s[i].present = (uint32_t)(1 + (i * 7) % 15);
}

static void
train_and_report(ff_optimizer opt, float lr, const char *name)
{
    ff_sample_set set = {samples_new(300, 21, 1.0), 300};
    ff_model *m = model_new(8);
    ff_train_config cfg;
    ff_train_stats st;
    ff_eval ev;
    ff_error err = {0};

    mix_presence(set.items, set.count);
    ff_train_config_default(&cfg);
    cfg.optimizer = opt;
    cfg.lr = lr;
    cfg.epochs = 6;
    cfg.modality_dropout = 0.0f; /* the optimizer alone */
    double before = loss_of(m, set.items, set.count, NULL);
    assert_int_equal(ff_model_train(m, &set, &cfg, &st, &err), FF_OK);
    double after = loss_of(m, set.items, set.count, NULL);
    assert_int_equal(ff_model_evaluate(m, &set, &ev, &err), FF_OK);
    printf("  %s: loss %.4f -> %.4f (last epoch %.4f), train accuracy "
           "%.3f, %.2f s\n", name, before, after, st.loss, ev.accuracy,
           st.seconds);
    assert_true(after < 0.25 * before);
    assert_true(ev.accuracy > 0.9);
    free(set.items);
    ff_model_destroy(m);
}

static void
test_training_reduces_loss(void **state)
{
    (void)state;
    train_and_report(FF_OPT_ADAM, 0.002f, "adam");
    train_and_report(FF_OPT_SGD, 0.1f, "sgd+momentum");
}

/* Counts records whose present mask has modality mod. */
static size_t
count_with(const ff_sample_set *set, int mod)
{
    size_t n = 0;

    for (size_t i = 0; i < set->count; i++)
        n += (set->items[i].present & FF_MOD_BIT(mod)) != 0;
    return n;
}

static void
test_group_examples_count_records_per_group(void **state)
{
    ff_sample_set set = {samples_new(120, 4, 1.0), 120};
    ff_model *m = model_new(2);
    ff_train_config cfg;
    ff_train_stats st;
    ff_error err = {0};

    (void)state;
    mix_presence(set.items, set.count);
    ff_train_config_default(&cfg);
    cfg.epochs = 1;

    /* No dropout: the records that have each modality. */
    cfg.modality_dropout = 0.0f;
    assert_int_equal(ff_model_train(m, &set, &cfg, &st, &err), FF_OK);
    for (int g = 0; g < FF_MOD_COUNT; g++)
        assert_int_equal(st.group_examples[g], count_with(&set, g));
    assert_int_equal(st.group_examples[FF_GROUP_HEAD], set.count);
    assert_int_equal(st.examples, set.count);

    /* Heavy dropout: fewer per modality, never below one per record. */
    cfg.modality_dropout = 0.7f;
    assert_int_equal(ff_model_train(m, &set, &cfg, &st, &err), FF_OK);
    size_t sum = 0;
    for (int g = 0; g < FF_MOD_COUNT; g++) {
        assert_true(st.group_examples[g] <= count_with(&set, g));
        sum += st.group_examples[g];
    }
    printf("  dropout 0.7: image %zu/%zu audio %zu/%zu pen %zu/%zu text "
           "%zu/%zu head %zu\n", st.group_examples[0], count_with(&set, 0),
           st.group_examples[1], count_with(&set, 1), st.group_examples[2],
           count_with(&set, 2), st.group_examples[3], count_with(&set, 3),
           st.group_examples[FF_GROUP_HEAD]);
    assert_true(sum >= set.count && sum < 2 * set.count);
    assert_int_equal(st.group_examples[FF_GROUP_HEAD], set.count);

    /* One modality per record: dropout must keep it, so counts are exact. */
    for (size_t i = 0; i < set.count; i++)
        set.items[i].present = FF_MOD_BIT(i % FF_MOD_COUNT);
    cfg.modality_dropout = 1.0f;
    assert_int_equal(ff_model_train(m, &set, &cfg, &st, &err), FF_OK);
    for (int g = 0; g < FF_MOD_COUNT; g++)
        assert_int_equal(st.group_examples[g], set.count / FF_MOD_COUNT);
    free(set.items);
    ff_model_destroy(m);
}

static void
test_training_is_deterministic(void **state)
{
    ff_sample_set set = {samples_new(64, 5, 1.0), 64};
    ff_model *a = model_new(3), *b = model_new(3), *c = model_new(4);
    ff_train_config cfg;
    ff_error err = {0};
    size_t bytes = ff_model_param_count(a) * sizeof(float);

    (void)state;
    mix_presence(set.items, set.count);
    assert_memory_equal(ff_model_params(a), ff_model_params(b), bytes);
    assert_memory_not_equal(ff_model_params(a), ff_model_params(c), bytes);
    ff_train_config_default(&cfg);
    cfg.epochs = 2;
    assert_int_equal(ff_model_train(a, &set, &cfg, NULL, &err), FF_OK);
    assert_int_equal(ff_model_train(b, &set, &cfg, NULL, &err), FF_OK);
    assert_memory_equal(ff_model_params(a), ff_model_params(b), bytes);
    free(set.items);
    ff_model_destroy(a), ff_model_destroy(b), ff_model_destroy(c);
}

/* ---- bad input and rollback --------------------------------------------- */

/* Trains and expects status want with msg in the reason, model unchanged. */
static void
expect_train_error(ff_model *m, const ff_sample_set *set,
                   const ff_train_config *cfg, ff_status want,
                   const char *msg)
{
    size_t bytes = ff_model_param_count(m) * sizeof(float);
    float *before = malloc(bytes);
    ff_error err = {0};

    assert_non_null(before);
    memcpy(before, ff_model_params(m), bytes);
    assert_int_equal(ff_model_train(m, set, cfg, NULL, &err), want);
    printf("  %-16s -> %s: %s\n", msg, ff_status_name(err.status),
           ff_error_text(&err));
    assert_non_null(strstr(err.msg, msg));
    assert_memory_equal(before, ff_model_params(m), bytes);
    free(before);
}

static void
test_bad_input_is_refused_and_model_unchanged(void **state)
{
    ff_sample_set set = {samples_new(20, 6, 1.0), 20};
    ff_sample_set empty = {set.items, 0};
    ff_model *m = model_new(7);
    ff_train_config cfg, bad;
    ff_eval ev;
    ff_error err = {0};

    (void)state;
    ff_train_config_default(&cfg);
    cfg.epochs = 1;

    bad = cfg, bad.lr = -1.0f;
    expect_train_error(m, &set, &bad, FF_ERR_ARG, "learning rate");
    bad = cfg, bad.batch_size = 0;
    expect_train_error(m, &set, &bad, FF_ERR_ARG, "batch size");
    bad = cfg, bad.modality_dropout = 1.5f;
    expect_train_error(m, &set, &bad, FF_ERR_ARG, "modality dropout");
    expect_train_error(m, &empty, &cfg, FF_ERR_ARG, "empty");

    set.items[3].label = 10;
    expect_train_error(m, &set, &cfg, FF_ERR_ARG, "record 3: label 10");
    set.items[3].label = 3;
    set.items[4].present = 0;
    expect_train_error(m, &set, &cfg, FF_ERR_ARG, "record 4: no modality");
    set.items[4].present = FF_MOD_ALL;
    set.items[5].text[2] = FF_TEXT_BUCKETS;
    expect_train_error(m, &set, &cfg, FF_ERR_ARG, "record 5: text id");
    set.items[5].text[2] = 1;
    set.items[6].pen[7] = INFINITY;
    expect_train_error(m, &set, &cfg, FF_ERR_NONFINITE, "record 6: pen");
    assert_int_equal(ff_model_evaluate(m, &set, &ev, &err), FF_ERR_NONFINITE);
    set.items[6].pen[7] = 0.0f;

    /* A learning rate that blows up: rolled back. */
    bad = cfg, bad.optimizer = FF_OPT_SGD, bad.lr = 1e30f;
    bad.batch_size = 4;
    expect_train_error(m, &set, &bad, FF_ERR_NONFINITE, "diverged");
    assert_int_equal(ff_model_evaluate(m, &empty, &ev, &err), FF_ERR_ARG);
    free(set.items);
    ff_model_destroy(m);
}

/* ---- evaluation and layout --------------------------------------------- */

static void
test_evaluate_reports_each_modality_alone(void **state)
{
    ff_sample_set set = {samples_new(30, 8, 1.0), 30};
    ff_model *m = model_new(9);
    ff_eval ev;
    ff_error err = {0};

    (void)state;
    for (size_t i = 0; i < set.count; i++)
        set.items[i].present &= ~FF_MOD_BIT(FF_MOD_PEN);
    assert_int_equal(ff_model_evaluate(m, &set, &ev, &err), FF_OK);
    assert_int_equal(ev.count, 30);
    assert_true(ev.accuracy_alone[FF_MOD_PEN] == -1.0);
    for (int g = 0; g < FF_MOD_COUNT; g++)
        if (g != FF_MOD_PEN)
            assert_true(ev.accuracy_alone[g] >= 0.0 &&
                        ev.accuracy_alone[g] <= 1.0);

    /* Alone on image = predict with the image mask, record by record. */
    size_t ok = 0;
    for (size_t i = 0; i < set.count; i++)
        ok += ff_model_predict(m, &set.items[i], FF_MOD_BIT(FF_MOD_IMAGE)) ==
              set.items[i].label;
    assert_true(fabs(ev.accuracy_alone[FF_MOD_IMAGE] - ok / 30.0) < 1e-12);
    free(set.items);
    ff_model_destroy(m);
}

static void
test_groups_tile_the_parameter_buffer(void **state)
{
    ff_model *m = model_new(1);
    size_t at = 0, off, len;

    (void)state;
    for (int g = 0; g < FF_GROUP_COUNT; g++) {
        ff_model_group_range(m, g, &off, &len);
        printf("  group %-5s offset %7zu length %7zu\n",
               ff_model_group_name(g), off, len);
        assert_int_equal(off, at);
        assert_true(len > 0);
        at += len;
    }
    assert_int_equal(at, ff_model_param_count(m));
    assert_string_equal(ff_model_group_name(FF_GROUP_HEAD), "head");
    assert_string_equal(ff_model_group_name(FF_MOD_PEN), "pen");
    assert_int_equal(ff_modality_parse("audio"), FF_MOD_AUDIO);
    assert_int_equal(ff_modality_parse("smell"), -1);
    assert_null(ff_modality_name(FF_MOD_COUNT));
    ff_model_destroy(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_gradient_matches_finite_differences),
        cmocka_unit_test(test_absent_modality_is_unread_and_gets_no_gradient),
        cmocka_unit_test(test_training_reduces_loss),
        cmocka_unit_test(test_group_examples_count_records_per_group),
        cmocka_unit_test(test_training_is_deterministic),
        cmocka_unit_test(test_bad_input_is_refused_and_model_unchanged),
        cmocka_unit_test(test_evaluate_reports_each_modality_alone),
        cmocka_unit_test(test_groups_tile_the_parameter_buffer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
