/*
 * ff_train.c - training (mini-batch SGD with momentum or Adam, modality
 * dropout), evaluation and the loss/gradient entry point. The DP-SGD
 * epoch lives in ff_dpsgd.c and shares the optimizer from here.
 */
#include "ff_model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ff_layers.h"

/* Records per batch when evaluating: the workspace grows to this (about
 * 0.9 MB per record), and larger batches barely run faster. */
#define EVAL_BATCH 32
/* Upper bounds that keep a bad config from asking for absurd work. */
#define MAX_EPOCHS 100000
#define MAX_BATCH 4096

#define ADAM_BETA1 0.9
#define ADAM_BETA2 0.999
#define ADAM_EPS 1e-8

void
ff_train_config_default(ff_train_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->epochs = 10;
    cfg->batch_size = 32;
    cfg->lr = 0.002f;
    cfg->lr_schedule = FF_LR_COSINE;
    cfg->optimizer = FF_OPT_ADAM;
    cfg->momentum = 0.9f;
    cfg->weight_decay = 0.0f;
    cfg->modality_dropout = 0.5f;
    cfg->seed = 1;
}

static double
now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- checks ------------------------------------------------------------ */

static ff_status
config_check(const ff_train_config *c, ff_error *err)
{
    if (c->epochs < 1 || c->epochs > MAX_EPOCHS)
        return ff_error_set(err, FF_ERR_ARG, "epochs %d outside 1..%d",
                            c->epochs, MAX_EPOCHS);
    if (c->dp == NULL && (c->batch_size < 1 || c->batch_size > MAX_BATCH))
        return ff_error_set(err, FF_ERR_ARG, "batch size %d outside 1..%d",
                            c->batch_size, MAX_BATCH);
    if (!(c->lr > 0.0f) || !isfinite(c->lr))
        return ff_error_set(err, FF_ERR_ARG,
                            "learning rate %g must be finite and > 0",
                            (double)c->lr);
    if (c->lr_schedule != FF_LR_CONSTANT && c->lr_schedule != FF_LR_COSINE)
        return ff_error_set(err, FF_ERR_ARG, "unknown learning-rate "
                            "schedule %d", (int)c->lr_schedule);
    if (c->optimizer != FF_OPT_SGD && c->optimizer != FF_OPT_ADAM)
        return ff_error_set(err, FF_ERR_ARG, "unknown optimizer %d",
                            (int)c->optimizer);
    if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
        return ff_error_set(err, FF_ERR_ARG, "momentum %g outside [0, 1)",
                            (double)c->momentum);
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay))
        return ff_error_set(err, FF_ERR_ARG,
                            "weight decay %g must be finite and >= 0",
                            (double)c->weight_decay);
    if (!(c->modality_dropout >= 0.0f && c->modality_dropout <= 1.0f))
        return ff_error_set(err, FF_ERR_ARG,
                            "modality dropout %g outside [0, 1]",
                            (double)c->modality_dropout);
    if (c->dp != NULL)
        return ff_dpsgd_check(c->dp, err); /* batch_size is then unused */
    return FF_OK;
}

/* Checks every record of items[0..count) under masks (NULL = all). */
static ff_status
records_check(const ff_sample *items, size_t count, const uint32_t *masks,
              ff_error *err)
{
    if (count == 0 || items == NULL)
        return ff_error_set(err, FF_ERR_ARG, "empty sample set");
    for (size_t i = 0; i < count; i++) {
        uint32_t mask = masks != NULL ? masks[i] : FF_MOD_ALL;
        ff_status st = ff_model_sample_check(&items[i], mask, i, 1, err);
        if (st != FF_OK)
            return st;
    }
    return FF_OK;
}

/* ---- modality dropout -------------------------------------------------- */

/* Hides each present modality with probability p, keeping at least one
 * (a uniformly chosen present one when all would be hidden). */
uint32_t
ff_train_dropout_mask(ff_rng *rng, uint32_t present, float p)
{
    uint32_t keep = 0;
    int have[FF_MOD_COUNT], n = 0;

    if (p <= 0.0f)
        return present;
    for (int m = 0; m < FF_MOD_COUNT; m++) {
        if (!(present & FF_MOD_BIT(m)))
            continue;
        have[n++] = m;
        if (ff_rng_uniform(rng) >= (double)p)
            keep |= FF_MOD_BIT(m);
    }
    if (keep == 0 && n > 0)
        keep = FF_MOD_BIT(have[ff_rng_below(rng, (uint64_t)n)]);
    return keep;
}

/* ---- optimizer --------------------------------------------------------- */

static void
train_state_cleanup(ff_train_state *st)
{
    free(st->dp_rec);
    free(st->dp_idx);
    free(st->masks);
    free(st->recs);
    free(st->backup);
    free(st->mom2);
    free(st->mom1);
    free(st->grad);
    free(st->order);
    memset(st, 0, sizeof(*st));
}

static ff_status
train_state_init(ff_train_state *st, const ff_model *m, size_t count,
                 const ff_train_config *cfg, ff_error *err)
{
    size_t n = m->count;
    int dp = cfg->dp != NULL;
    /* DP-SGD computes one record at a time. */
    size_t batch = dp ? 1 : (size_t)cfg->batch_size;

    memset(st, 0, sizeof(*st));
    st->order = malloc(count * sizeof(*st->order));
    st->grad = malloc(n * sizeof(float));
    st->mom1 = calloc(n, sizeof(float));
    if (cfg->optimizer == FF_OPT_ADAM)
        st->mom2 = calloc(n, sizeof(float)); /* SGD has no second moment */
    st->backup = malloc(n * sizeof(float));
    st->recs = malloc(batch * sizeof(*st->recs));
    st->masks = malloc(batch * sizeof(*st->masks));
    if (dp) {
        st->dp_idx = malloc(count * sizeof(*st->dp_idx));
        st->dp_rec = malloc(n * sizeof(float));
    }
    if (!st->order || !st->grad || !st->mom1 || !st->backup || !st->recs ||
        !st->masks || (cfg->optimizer == FF_OPT_ADAM && !st->mom2) ||
        (dp && (!st->dp_idx || !st->dp_rec))) {
        train_state_cleanup(st);
        return ff_error_set(err, FF_ERR_NOMEM,
                            "training state for %zu parameters", n);
    }
    for (size_t i = 0; i < count; i++)
        st->order[i] = i;
    memcpy(st->backup, m->params, n * sizeof(float));
    if (dp)
        st->steps = (long)cfg->epochs *
                    ff_dpsgd_steps_per_epoch(cfg->dp->sampling_rate);
    else
        st->steps = (long)cfg->epochs *
                    (long)((count + (size_t)cfg->batch_size - 1) /
                           (size_t)cfg->batch_size);
    ff_rng_init(&st->rng, cfg->seed);
    return FF_OK;
}

/* Learning rate for the step about to be taken (st->step already
 * counts it). */
static float
step_lr(const ff_train_state *st, const ff_train_config *cfg)
{
    if (cfg->lr_schedule == FF_LR_CONSTANT || st->steps <= 1)
        return cfg->lr;
    double t = (double)(st->step - 1) / (double)st->steps;
    return (float)(cfg->lr * 0.5 * (1.0 + cos(3.14159265358979323846 * t)));
}

void
ff_train_optimizer_step(ff_model *m, ff_train_state *st,
                        const ff_train_config *cfg)
{
    /* Four distinct buffers: restrict lets the compiler vectorise. */
    float *restrict w = m->params, *restrict g = st->grad;
    float *restrict v = st->mom1, *restrict s = st->mom2;
    float wd = cfg->weight_decay, mu = cfg->momentum;
    size_t n = m->count;

    st->step++;
    float lr = step_lr(st, cfg);
    if (wd > 0.0f)
        for (size_t i = 0; i < n; i++)
            g[i] += wd * w[i];

    /* SGD: v = mu v + g; w -= lr v. */
    if (cfg->optimizer == FF_OPT_SGD) {
        for (size_t i = 0; i < n; i++) {
            v[i] = mu * v[i] + g[i];
            w[i] -= lr * v[i];
        }
        return;
    }

    /* Adam with bias correction folded into the step size. */
    double c1 = 1.0 - pow(ADAM_BETA1, (double)st->step);
    double c2 = 1.0 - pow(ADAM_BETA2, (double)st->step);
    float step = (float)(lr * sqrt(c2) / c1);
    float eps = (float)(ADAM_EPS * sqrt(c2));
    float b1 = (float)ADAM_BETA1, b2 = (float)ADAM_BETA2;
    for (size_t i = 0; i < n; i++) {
        v[i] = b1 * v[i] + (1.0f - b1) * g[i];
        s[i] = b2 * s[i] + (1.0f - b2) * g[i] * g[i];
        w[i] -= step * v[i] / (sqrtf(s[i]) + eps);
    }
}

/* ---- training ---------------------------------------------------------- */

/* Shuffles order[0..n) in place (Fisher-Yates). */
static void
shuffle(ff_rng *rng, size_t *order, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)ff_rng_below(rng, i);
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

/* Draws the batch's records and dropout masks, and counts which groups
 * each record will train. */
static void
batch_draw(ff_train_state *st, const ff_sample_set *set, size_t start,
           int n, float dropout, ff_train_stats *es)
{
    for (int b = 0; b < n; b++) {
        const ff_sample *s = &set->items[st->order[start + (size_t)b]];
        uint32_t mask = ff_train_dropout_mask(&st->rng, s->present,
                                              dropout);
        st->recs[b] = s;
        st->masks[b] = mask;
        for (int mod = 0; mod < FF_MOD_COUNT; mod++)
            es->group_examples[mod] += (mask & FF_MOD_BIT(mod)) != 0;
        es->group_examples[FF_GROUP_HEAD]++;
    }
}

/* One pass over set; fills es with this epoch's figures. */
static ff_status
train_epoch(ff_model *m, const ff_sample_set *set, const ff_train_config *cfg,
            ff_train_state *st, int epoch, ff_train_stats *es, ff_error *err)
{
    double loss_sum = 0.0;
    size_t correct = 0;

    memset(es, 0, sizeof(*es));
    shuffle(&st->rng, st->order, set->count);
    for (size_t start = 0; start < set->count; start += cfg->batch_size) {
        size_t left = set->count - start;
        int n = left < (size_t)cfg->batch_size ? (int)left : cfg->batch_size;

        /* Forward. */
        batch_draw(st, set, start, n, cfg->modality_dropout, es);
        ff_model_batch_load(m, st->recs, st->masks, n);
        ff_model_batch_encode(m);
        double loss = ff_model_batch_head(m, FF_MOD_ALL);
        if (!isfinite(loss))
            return ff_error_set(err, FF_ERR_NONFINITE,
                                "training diverged: loss %g at epoch %d, "
                                "record %zu", loss, epoch, start);
        loss_sum += loss;
        for (int b = 0; b < n; b++)
            correct += ff_model_batch_argmax(m, b) == m->ws.labels[b];

        /* Backward (mean loss over the batch) and update. */
        ff_layers_zero(st->grad, m->count);
        ff_model_batch_backward(m, st->grad, 1.0f / (float)n);
        ff_train_optimizer_step(m, st, cfg);
    }
    es->examples = set->count;
    es->loss = loss_sum / (double)set->count;
    es->accuracy = (double)correct / (double)set->count;
    return FF_OK;
}

/* Nonzero when every parameter is finite. */
static int
params_finite(const ff_model *m)
{
    for (size_t i = 0; i < m->count; i++)
        if (!isfinite(m->params[i]))
            return 0;
    return 1;
}

ff_status
ff_model_train(ff_model *m, const ff_sample_set *set,
               const ff_train_config *cfg, ff_train_stats *stats,
               ff_error *err)
{
    ff_train_state st;
    ff_train_stats es = {0}, dp_total = {0};
    double t0 = now_seconds();
    ff_status status;

    /* Refuse bad input before touching anything. */
    status = config_check(cfg, err);
    if (status == FF_OK)
        status = records_check(set->items, set->count, NULL, err);
    if (status != FF_OK)
        return status;
    status = train_state_init(&st, m, set->count, cfg, err);
    if (status != FF_OK)
        return status;
    status = ff_model_reserve(m, cfg->dp != NULL ? 1 : cfg->batch_size, err);

    /* Epochs; the callback sees each one (DP counters so far). */
    for (int epoch = 1; status == FF_OK && epoch <= cfg->epochs; epoch++) {
        if (cfg->dp != NULL)
            status = ff_dpsgd_epoch(m, set, cfg, &st, epoch, &es, &dp_total,
                                    err);
        else
            status = train_epoch(m, set, cfg, &st, epoch, &es, err);
        es.seconds = now_seconds() - t0;
        es.dp_steps = dp_total.dp_steps;
        es.dp_records = dp_total.dp_records;
        es.dp_clipped = dp_total.dp_clipped;
        if (status == FF_OK && cfg->on_epoch != NULL)
            cfg->on_epoch(cfg->on_epoch_ctx, epoch, &es);
    }
    if (status == FF_OK && !params_finite(m))
        status = ff_error_set(err, FF_ERR_NONFINITE,
                              "training diverged: a parameter became NaN "
                              "or Inf");

    /* On any failure put the parameters back as they were. */
    if (status != FF_OK)
        memcpy(m->params, st.backup, m->count * sizeof(float));
    else if (stats != NULL)
        *stats = es;
    train_state_cleanup(&st);
    return status;
}

/* ---- evaluation -------------------------------------------------------- */

ff_status
ff_model_evaluate(ff_model *m, const ff_sample_set *set, ff_eval *out,
                  ff_error *err)
{
    const ff_sample *recs[EVAL_BATCH];
    uint32_t masks[EVAL_BATCH];
    size_t correct = 0, alone_ok[FF_MOD_COUNT] = {0};
    size_t alone_n[FF_MOD_COUNT] = {0};
    double loss = 0.0;
    ff_status status;

    status = records_check(set->items, set->count, NULL, err);
    if (status == FF_OK)
        status = ff_model_reserve(m, EVAL_BATCH, err);
    if (status != FF_OK)
        return status;

    for (size_t start = 0; start < set->count; start += EVAL_BATCH) {
        size_t left = set->count - start;
        int n = left < EVAL_BATCH ? (int)left : EVAL_BATCH;

        /* Encode each record's modalities once. */
        for (int b = 0; b < n; b++) {
            recs[b] = &set->items[start + (size_t)b];
            masks[b] = FF_MOD_ALL;
        }
        ff_model_batch_load(m, recs, masks, n);
        ff_model_batch_encode(m);

        /* Fused, then the head on each modality alone. */
        loss += ff_model_batch_head(m, FF_MOD_ALL);
        for (int b = 0; b < n; b++)
            correct += ff_model_batch_argmax(m, b) == m->ws.labels[b];
        for (int mod = 0; mod < FF_MOD_COUNT; mod++) {
            if (m->ws.rows[mod] == 0)
                continue;
            (void)ff_model_batch_head(m, FF_MOD_BIT(mod));
            for (int b = 0; b < n; b++) {
                if (m->ws.pos[(size_t)b * FF_MOD_COUNT + mod] < 0)
                    continue;
                alone_n[mod]++;
                alone_ok[mod] +=
                    ff_model_batch_argmax(m, b) == m->ws.labels[b];
            }
        }
    }

    out->count = set->count;
    out->accuracy = (double)correct / (double)set->count;
    out->loss = loss / (double)set->count;
    for (int mod = 0; mod < FF_MOD_COUNT; mod++)
        out->accuracy_alone[mod] =
            alone_n[mod] ? (double)alone_ok[mod] / (double)alone_n[mod] : -1.0;
    return FF_OK;
}

/* ---- loss and gradient -------------------------------------------------- */

ff_status
ff_model_loss_grad(ff_model *m, const ff_sample *samples, size_t count,
                   const uint32_t *masks, float *grad, double *loss,
                   ff_error *err)
{
    const ff_sample *recs[EVAL_BATCH];
    uint32_t use[EVAL_BATCH];
    double sum = 0.0;
    ff_status status;

    status = records_check(samples, count, masks, err);
    if (status == FF_OK)
        status = ff_model_reserve(m, EVAL_BATCH, err);
    if (status != FF_OK)
        return status;

    /* Chunks of EVAL_BATCH; each adds its share of the mean's gradient. */
    if (grad != NULL)
        ff_layers_zero(grad, m->count);
    for (size_t start = 0; start < count; start += EVAL_BATCH) {
        size_t left = count - start;
        int n = left < EVAL_BATCH ? (int)left : EVAL_BATCH;
        for (int b = 0; b < n; b++) {
            recs[b] = &samples[start + (size_t)b];
            use[b] = masks != NULL ? masks[start + (size_t)b] : FF_MOD_ALL;
        }
        ff_model_batch_load(m, recs, use, n);
        ff_model_batch_encode(m);
        sum += ff_model_batch_head(m, FF_MOD_ALL);
        if (grad != NULL)
            ff_model_batch_backward(m, grad, 1.0f / (float)count);
    }
    *loss = sum / (double)count;
    if (!isfinite(*loss))
        return ff_error_set(err, FF_ERR_NONFINITE, "loss is %g", *loss);
    return FF_OK;
}
