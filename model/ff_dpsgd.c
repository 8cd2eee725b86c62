/*
 * ff_dpsgd.c - DP-SGD (Abadi et al. 2016) inside ff_model_train: Poisson
 * batches from the caller's sampler, one gradient per record clipped to
 * an L2 norm, the clipped sum noised by the caller's mechanism and divided
 * by the expected batch size. ff_model.h states the contract.
 *
 * Per-record gradients: each record runs alone through the batch steps (a
 * batch of one). Its gradient can be nonzero only in the groups of the
 * modalities it uses, in the head, and in the text-table rows of its
 * n-grams, so only those "touched" ranges of the per-record buffer are
 * zeroed, measured and added to the sum; the rest is never read. With all
 * four modalities that is about 220,000 of the 483,914 floats (the text
 * table is 262,144). tests/model/test_dpsgd.c checks the result against
 * dense per-record gradients from ff_model_loss_grad.
 */
#include "ff_model_internal.h"

#include <math.h>
#include <string.h>

#include "ff_layers.h"

/* A sampling rate below 1e-6 would ask for more steps per epoch than any
 * site needs (q = batch / records, records <= 200,000). */
#define DP_MAX_STEPS_PER_EPOCH 1000000.0
/* Per-record clipping aims this fraction below the clip (see
 * touched_clip), and gives up shrinking by ratios after this many passes
 * (then the record adds zero; each pass lands within ~1e-7 of the aim,
 * so one or two suffice). */
#define DP_CLIP_MARGIN 1e-9
#define DP_CLIP_PASSES 8

/* ---- checks ------------------------------------------------------------ */

ff_status
ff_dpsgd_check(const ff_dp_sgd *dp, ff_error *err)
{
    double q = dp->sampling_rate;

    if (!(dp->clip > 0.0) || !isfinite(dp->clip))
        return ff_error_set(err, FF_ERR_ARG,
                            "dp.clip %g must be finite and > 0", dp->clip);
    if (!(dp->noise_multiplier >= 0.0) || !isfinite(dp->noise_multiplier))
        return ff_error_set(err, FF_ERR_ARG,
                            "dp.noise_multiplier %g must be finite and >= 0",
                            dp->noise_multiplier);
    if (!isfinite(dp->noise_multiplier * dp->clip))
        return ff_error_set(err, FF_ERR_ARG,
                            "dp.noise_multiplier %g times dp.clip %g "
                            "overflows", dp->noise_multiplier, dp->clip);
    if (!(q > 0.0 && q <= 1.0))
        return ff_error_set(err, FF_ERR_ARG,
                            "dp.sampling_rate %g outside (0, 1]", q);
    if (1.0 / q > DP_MAX_STEPS_PER_EPOCH)
        return ff_error_set(err, FF_ERR_ARG,
                            "dp.sampling_rate %g asks for %.0f steps per "
                            "epoch, more than %.0f", q, 1.0 / q,
                            DP_MAX_STEPS_PER_EPOCH);
    if (dp->ops.sample == NULL)
        return ff_error_set(err, FF_ERR_ARG, "dp.ops.sample is NULL");
    if (dp->ops.noise == NULL)
        return ff_error_set(err, FF_ERR_ARG, "dp.ops.noise is NULL");
    return FF_OK;
}

long
ff_dpsgd_steps_per_epoch(double q)
{
    long steps = lround(1.0 / q);

    return steps < 1 ? 1 : steps;
}

/* ---- the ranges one record's gradient touches --------------------------- */

typedef struct touched {
    size_t off[FF_GROUP_COUNT], len[FF_GROUP_COUNT]; /* whole groups */
    int groups;
    uint16_t rows[FF_TEXT_MAX_NGRAMS];               /* distinct text ids */
    int nrows;
    size_t text_off;                                 /* the table */
} touched;

/* Fills t for record s seen through use (= s->present & its mask). */
static void
touched_find(const ff_model *m, const ff_sample *s, uint32_t use,
             touched *t)
{
    uint64_t seen[FF_TEXT_BUCKETS / 64] = {0};

    /* The head always; each used encoder whole. */
    t->groups = 0;
    for (int g = 0; g < FF_GROUP_COUNT; g++) {
        int used = g == FF_GROUP_HEAD ||
                   (g != FF_MOD_TEXT && (use & FF_MOD_BIT(g)));
        if (!used)
            continue;
        t->off[t->groups] = m->group_off[g];
        t->len[t->groups] = m->group_len[g];
        t->groups++;
    }

    /* Text: the rows of its distinct n-gram ids (ids repeat). */
    t->nrows = 0;
    t->text_off = m->off[FF_P_TEXT_EMB];
    if (!(use & FF_MOD_BIT(FF_MOD_TEXT)))
        return;
    for (int j = 0; j < s->text_len; j++) {
        uint16_t id = s->text[j];
        uint64_t bit = (uint64_t)1 << (id % 64);
        if (seen[id / 64] & bit)
            continue;
        seen[id / 64] |= bit;
        t->rows[t->nrows++] = id;
    }
}

/* Zeroes g over t's ranges. */
static void
touched_zero(const touched *t, float *g)
{
    for (int k = 0; k < t->groups; k++)
        ff_layers_zero(g + t->off[k], t->len[k]);
    for (int r = 0; r < t->nrows; r++)
        ff_layers_zero(g + t->text_off + (size_t)t->rows[r] * FF_EMB_DIM,
                       FF_EMB_DIM);
}

/* Sum of squares of v[0..n), in double. */
static double
sum_squares(const float *v, size_t n)
{
    double s = 0.0;

    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * (double)v[i];
    return s;
}

/* L2 norm of g over t's ranges (each text row once). */
static double
touched_norm(const touched *t, const float *g)
{
    double s = 0.0;

    for (int k = 0; k < t->groups; k++)
        s += sum_squares(g + t->off[k], t->len[k]);
    for (int r = 0; r < t->nrows; r++)
        s += sum_squares(g + t->text_off + (size_t)t->rows[r] * FF_EMB_DIM,
                         FF_EMB_DIM);
    return sqrt(s);
}

/* g *= scale over t's ranges, in place (each product rounded to float
 * and stored, so what is measured afterwards is what gets added). */
static void
touched_scale(const touched *t, float *g, float scale)
{
    for (int k = 0; k < t->groups; k++)
        for (size_t i = t->off[k]; i < t->off[k] + t->len[k]; i++)
            g[i] *= scale;
    for (int r = 0; r < t->nrows; r++) {
        size_t at = t->text_off + (size_t)t->rows[r] * FF_EMB_DIM;
        for (size_t i = at; i < at + FF_EMB_DIM; i++)
            g[i] *= scale;
    }
}

/* sum += g over t's ranges. */
static void
touched_add(const touched *t, float *restrict sum, const float *restrict g)
{
    for (int k = 0; k < t->groups; k++)
        for (size_t i = t->off[k]; i < t->off[k] + t->len[k]; i++)
            sum[i] += g[i];
    for (int r = 0; r < t->nrows; r++) {
        size_t at = t->text_off + (size_t)t->rows[r] * FF_EMB_DIM;
        for (size_t i = at; i < at + FF_EMB_DIM; i++)
            sum[i] += g[i];
    }
}

/*
 * Scales g (norm `norm`, over t's ranges) in place so that the float
 * vector that is then added has an L2 norm, computed in double, of at most
 * clip (1 - DP_CLIP_MARGIN). The float scale and the float products each
 * round, so one scaling can land a few 1e-8 above the clip: the result is
 * measured again and shrunk again until it is below. The margin keeps a
 * norm summed in another order (up to ~1e-11 apart over 220,000 values)
 * at or below the clip too. Returns the norm of the scaled vector.
 */
static double
touched_clip(const touched *t, float *g, double norm, double clip)
{
    double target = clip * (1.0 - DP_CLIP_MARGIN);

    for (int pass = 0; norm > target; pass++) {
        float scale = pass < DP_CLIP_PASSES
                          ? nextafterf((float)(target / norm), 0.0f)
                          : 0.0f; /* never reached in practice */
        touched_scale(t, g, scale);
        norm = touched_norm(t, g);
    }
    return norm;
}

/* ---- one step ---------------------------------------------------------- */

/* What one epoch has seen so far. */
typedef struct epoch_tally {
    double loss;
    size_t correct;
    size_t records;
} epoch_tally;

/* Draws the step's batch into st->dp_idx and checks what the sampler
 * returned, since the records are read through it. */
static ff_status
batch_sample(const ff_dp_sgd *dp, ff_train_state *st, size_t count,
             size_t *n, int epoch, long k, ff_error *err)
{
    ff_status status;

    *n = 0;
    status = dp->ops.sample(dp->ops.ctx, dp->sampling_rate, count,
                            st->dp_idx, n, err);
    if (status != FF_OK)
        return ff_error_wrap(err, status, "DP-SGD sampling at epoch %d, "
                             "step %ld", epoch, k + 1);
    if (*n > count)
        return ff_error_set(err, FF_ERR_ARG, "dp.ops.sample returned %zu "
                            "records of %zu", *n, count);
    for (size_t j = 0; j < *n; j++)
        if (st->dp_idx[j] >= count ||
            (j > 0 && st->dp_idx[j] <= st->dp_idx[j - 1]))
            return ff_error_set(err, FF_ERR_ARG,
                                "dp.ops.sample returned index %zu at "
                                "position %zu (of %zu records): indices must "
                                "increase and stay below the count",
                                st->dp_idx[j], j, count);
    return FF_OK;
}

/* Computes record i's gradient alone (dropout applied), clips it to
 * dp->clip and adds it to st->grad; counts it in es, tally and total. */
static ff_status
record_add_clipped(ff_model *m, const ff_sample_set *set,
                   const ff_train_config *cfg, ff_train_state *st, size_t i,
                   ff_train_stats *es, epoch_tally *tally,
                   ff_train_stats *total, ff_error *err)
{
    const ff_sample *s = &set->items[i];
    uint32_t mask = ff_train_dropout_mask(&st->rng, s->present,
                                          cfg->modality_dropout);
    double clip = cfg->dp->clip;
    touched t;

    /* Forward and backward as a batch of one. */
    ff_model_batch_load(m, &s, &mask, 1);
    ff_model_batch_encode(m);
    double loss = ff_model_batch_head(m, FF_MOD_ALL);
    if (!isfinite(loss))
        return ff_error_set(err, FF_ERR_NONFINITE, "training diverged: "
                            "loss %g of record %zu", loss, i);
    touched_find(m, s, s->present & mask, &t);
    touched_zero(&t, st->dp_rec);
    ff_model_batch_backward(m, st->dp_rec, 1.0f);

    /* Clip to norm <= clip, checked on the floats that are added (a zero
     * gradient adds nothing). */
    double norm = touched_norm(&t, st->dp_rec);
    if (!isfinite(norm))
        return ff_error_set(err, FF_ERR_NONFINITE, "training diverged: "
                            "gradient norm %g of record %zu", norm, i);
    if (norm > 0.0) {
        (void)touched_clip(&t, st->dp_rec, norm, clip);
        touched_add(&t, st->grad, st->dp_rec);
    }

    /* Count it. */
    total->dp_records++;
    total->dp_clipped += norm > clip;
    tally->loss += loss;
    tally->correct += ff_model_batch_argmax(m, 0) == m->ws.labels[0];
    tally->records++;
    for (int mod = 0; mod < FF_MOD_COUNT; mod++)
        es->group_examples[mod] += (mask & FF_MOD_BIT(mod)) != 0;
    es->group_examples[FF_GROUP_HEAD]++;
    return FF_OK;
}

/* Noises the clipped sum st->grad and divides it by the expected batch
 * size q * count. noise() is not called when the std is 0. */
static ff_status
sum_noise_and_scale(const ff_model *m, const ff_dp_sgd *dp,
                    ff_train_state *st, size_t count, int epoch, long k,
                    ff_error *err)
{
    double std = dp->noise_multiplier * dp->clip;
    float inv = (float)(1.0 / (dp->sampling_rate * (double)count));

    if (std > 0.0) {
        ff_status status = dp->ops.noise(dp->ops.ctx, st->grad, m->count,
                                         std, err);
        if (status != FF_OK)
            return ff_error_wrap(err, status, "DP-SGD noise at epoch %d, "
                                 "step %ld", epoch, k + 1);
    }
    for (size_t i = 0; i < m->count; i++)
        st->grad[i] *= inv;
    return FF_OK;
}

/* ---- one epoch --------------------------------------------------------- */

ff_status
ff_dpsgd_epoch(ff_model *m, const ff_sample_set *set,
               const ff_train_config *cfg, ff_train_state *st, int epoch,
               ff_train_stats *es, ff_train_stats *total, ff_error *err)
{
    const ff_dp_sgd *dp = cfg->dp;
    long steps = ff_dpsgd_steps_per_epoch(dp->sampling_rate);
    epoch_tally tally = {0};
    ff_status status = FF_OK;

    memset(es, 0, sizeof(*es));
    for (long k = 0; status == FF_OK && k < steps; k++) {
        size_t n;

        /* The batch; an empty one still takes a pure-noise step. */
        status = batch_sample(dp, st, set->count, &n, epoch, k, err);
        if (status != FF_OK)
            break;

        /* Sum of the clipped per-record gradients. */
        ff_layers_zero(st->grad, m->count);
        for (size_t j = 0; status == FF_OK && j < n; j++)
            status = record_add_clipped(m, set, cfg, st, st->dp_idx[j], es,
                                        &tally, total, err);

        /* Noise, scale, then the optimizer (weight decay inside). */
        if (status == FF_OK)
            status = sum_noise_and_scale(m, dp, st, set->count, epoch, k,
                                         err);
        if (status == FF_OK) {
            ff_train_optimizer_step(m, st, cfg);
            total->dp_steps++;
        }
    }

    /* Loss and accuracy over the records this epoch drew. */
    es->examples = tally.records;
    es->loss = tally.records ? tally.loss / (double)tally.records : 0.0;
    es->accuracy =
        tally.records ? (double)tally.correct / (double)tally.records : 0.0;
    return status;
}
