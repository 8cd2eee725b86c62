/*
 * update.c - builds a site's update: the seam where privacy mechanisms
 * transform it before it leaves the site (today: the quantised vector of
 * secure aggregation; clipping for it happens here too).
 */
#include "ff_site_update.h"

#include "../privacy/ff_dp.h"
#include "../privacy/ff_secagg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Writes v as 4 little-endian bytes. */
static void float_to_le(float v, uint8_t *p)
{
    uint32_t u;

    memcpy(&u, &v, sizeof u);
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

/* Fills the header from the round and the training statistics. */
static ff_status header_fill(const char *site_id, int round, size_t n,
                             const ff_train_stats *stats,
                             ff_wire_update_header *h, ff_error *err)
{
    uint64_t total = 0;
    int g;

    if (!ff_wire_id_valid(site_id) || round < 1)
        return ff_error_set(err, FF_ERR_ARG, "bad site id or round %d",
                            round);
    memset(h, 0, sizeof *h);
    strcpy(h->site_id, site_id);
    h->round = round;
    h->param_count = n;
    h->n_groups = FF_GROUP_COUNT;
    for (g = 0; g < FF_GROUP_COUNT; g++) {
        h->group_examples[g] = stats->group_examples[g];
        total += stats->group_examples[g];
    }
    if (total == 0)
        return ff_error_set(err, FF_ERR_ARG, "training touched no group");
    h->train_loss = stats->loss;
    h->train_accuracy = stats->accuracy;
    return FF_OK;
}

ff_status ff_site_update_prepare(const char *site_id, int round,
                                 const ff_model *global,
                                 const ff_model *local,
                                 const ff_train_stats *stats,
                                 ff_site_update *out, ff_error *err)
{
    size_t n = ff_model_param_count(global), i;
    const float *g = ff_model_params_const(global);
    const float *l = ff_model_params_const(local);
    ff_status st;

    memset(out, 0, sizeof *out);
    if (ff_model_param_count(local) != n || n > FF_WIRE_MAX_PARAMS)
        return ff_error_set(err, FF_ERR_SHAPE,
                            "local model has %zu parameters, global %zu",
                            ff_model_param_count(local), n);
    st = header_fill(site_id, round, n, stats, &out->header, err);
    if (st != FF_OK)
        return st;

    /* The delta, checked value by value as it is written. */
    out->data = malloc(n * 4);
    if (out->data == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory for an "
                            "update of %zu parameters", n);
    out->len = n * 4;
    for (i = 0; i < n; i++) {
        float d = l[i] - g[i];
        if (!isfinite(d))
            return ff_error_set(err, FF_ERR_NONFINITE,
                                "update value %zu is not finite", i);
        float_to_le(d, out->data + 4 * i);
    }
    return FF_OK;
}

/* Reads 4 little-endian bytes as a float. */
static float float_from_le(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                 (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float v;

    memcpy(&v, &u, sizeof v);
    return v;
}

/* Fills x (P + 1 floats) with the example-weighted deltas and the
 * weighted loss; counts the values beyond clip. */
static void weighted_fill(const ff_site_update *u, const ff_model *global,
                          float clip, float *x, size_t *clipped)
{
    size_t p = (size_t)u->header.param_count, i;
    int g;

    memset(x, 0, (p + 1) * sizeof *x);
    for (g = 0; g < FF_GROUP_COUNT; g++) {
        size_t off, len;
        double w = (double)u->header.group_examples[g];
        ff_model_group_range(global, g, &off, &len);
        for (i = off; i < off + len && i < p; i++)
            x[i] = (float)(w * (double)float_from_le(u->data + 4 * i));
    }
    x[p] = (float)((double)u->header.group_examples[FF_GROUP_HEAD] *
                   u->header.train_loss);
    *clipped = 0;
    for (i = 0; i <= p; i++)
        *clipped += fabsf(x[i]) > clip;
}

ff_status ff_site_update_quantize(const ff_site_update *u,
                                  const ff_model *global, float clip,
                                  uint32_t max_value, uint32_t *words,
                                  size_t m, size_t *clipped, ff_error *err)
{
    size_t p = (size_t)u->header.param_count;
    ff_privacy_error pe = {0};
    float *x;
    int g;

    if (m != p + 1 + FF_GROUP_COUNT || p != ff_model_param_count(global))
        return ff_error_set(err, FF_ERR_SHAPE,
                            "secagg vector of %zu words for %zu parameters "
                            "and %d groups", m, p, FF_GROUP_COUNT);
    for (g = 0; g < FF_GROUP_COUNT; g++)
        if (u->header.group_examples[g] > max_value)
            return ff_error_set(err, FF_ERR_ARG,
                                "group %d has %llu examples, more than "
                                "max_value %u", g,
                                (unsigned long long)
                                    u->header.group_examples[g],
                                (unsigned)max_value);

    /* Weighted values quantised; counts as they are. */
    x = malloc((p + 1) * sizeof *x);
    if (x == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    weighted_fill(u, global, clip, x, clipped);
    if (ff_secagg_quantize(x, p + 1, clip, max_value, false, words, &pe) !=
        FF_PRIVACY_OK) {
        free(x);
        return ff_error_set(err, FF_ERR_ARG, "quantising: %s",
                            ff_privacy_error_text(&pe));
    }
    free(x);
    for (g = 0; g < FF_GROUP_COUNT; g++)
        words[p + 1 + (size_t)g] = (uint32_t)u->header.group_examples[g];
    return FF_OK;
}

/* ---- site-level DP ---- */

/* The delta as floats (malloc'd, caller frees), or NULL. */
static float *delta_floats(const ff_site_update *u)
{
    size_t p = (size_t)u->header.param_count, i;
    float *x = malloc((p > 0 ? p : 1) * sizeof *x);

    if (x == NULL)
        return NULL;
    for (i = 0; i < p; i++)
        x[i] = float_from_le(u->data + 4 * i);
    return x;
}

/* Clips x[0..p) to L2 norm clip; *norm gets the norm before. */
static ff_status clip_floats(float *x, size_t p, double clip, double *norm,
                             ff_error *err)
{
    if (!isfinite(clip) || clip <= 0.0)
        return ff_error_set(err, FF_ERR_ARG, "site dp clip %g is not "
                            "finite and > 0", clip);
    *norm = ff_dp_clip_l2(x, p, clip);
    if (*norm < 0.0)
        return ff_error_set(err, FF_ERR_NONFINITE, "the update holds a "
                            "value that is not finite");
    return FF_OK;
}

ff_status ff_site_update_clip(ff_site_update *u, double clip,
                              int report_unclipped, double *norm,
                              ff_error *err)
{
    size_t p = (size_t)u->header.param_count, i;
    double before = 0.0;
    float *x = delta_floats(u);
    ff_status st;

    if (x == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    st = clip_floats(x, p, clip, &before, err);
    if (st == FF_OK) {
        for (i = 0; i < p; i++)
            float_to_le(x[i], u->data + 4 * i);
        u->header.unclipped = report_unclipped && before <= clip;
        if (norm != NULL)
            *norm = before;
    }
    free(x);
    return st;
}

ff_status ff_site_update_central_words(const ff_site_update *u, float clip,
                                       uint32_t max_value,
                                       int report_unclipped, uint32_t *words,
                                       size_t m, double *norm, ff_error *err)
{
    size_t p = (size_t)u->header.param_count;
    ff_privacy_error pe = {0};
    double before = 0.0;
    float *x;
    ff_status st;
    int g;

    if (m != p + 1 + FF_GROUP_COUNT)
        return ff_error_set(err, FF_ERR_SHAPE,
                            "secagg vector of %zu words for %zu parameters "
                            "and %d groups", m, p, FF_GROUP_COUNT);
    x = delta_floats(u);
    if (x == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");

    /* Clipped in L2, so every coordinate lies within [-clip, clip]. */
    st = clip_floats(x, p, clip, &before, err);
    if (st == FF_OK &&
        ff_secagg_quantize(x, p, clip, max_value, false, words, &pe) !=
            FF_PRIVACY_OK)
        st = ff_error_set(err, FF_ERR_ARG, "quantising: %s",
                          ff_privacy_error_text(&pe));
    free(x);
    if (st != FF_OK)
        return st;

    /* The bit and the group ones travel raw. */
    words[p] = report_unclipped && before <= clip ? 1u : 0u;
    for (g = 0; g < FF_GROUP_COUNT; g++)
        words[p + 1 + (size_t)g] = 1u;
    if (norm != NULL)
        *norm = before;
    return FF_OK;
}

/* The encoder's parameters from the task, for p coordinates. */
static ff_status ddgauss_params(const ff_wire_site_dp_task *t, size_t p,
                                ff_ddgauss_params *dp, ff_error *err)
{
    uint64_t next = 1;

    while (next < p)
        next <<= 1;
    if (t->mode != FF_WIRE_SITE_DP_DISTRIBUTED || t->padded != next)
        return ff_error_set(err, FF_ERR_SHAPE,
                            "site dp task: padded length %llu for %zu "
                            "parameters (expected %llu)",
                            (unsigned long long)t->padded, p,
                            (unsigned long long)next);
    memset(dp, 0, sizeof *dp);
    dp->dim = p;
    dp->padded = t->padded;
    dp->bits = t->bits;
    dp->clip = t->clip;
    dp->scale = t->scale;
    dp->beta = t->beta;
    dp->local_sigma2 = t->local_sigma2;
    dp->sites = t->sites;
    memcpy(dp->rotation_seed, t->rotation_seed, sizeof dp->rotation_seed);
    return FF_OK;
}

ff_status ff_site_update_ddgauss_words(const ff_site_update *u,
                                       const ff_wire_site_dp_task *t,
                                       uint32_t *words, size_t m,
                                       double *norm, ff_error *err)
{
    size_t p = (size_t)u->header.param_count;
    ff_privacy_error pe = {0};
    ff_ddgauss_params dp;
    double before = 0.0;
    float *x;
    ff_status st = ddgauss_params(t, p, &dp, err);

    if (st != FF_OK)
        return st;
    if (m != t->padded + 1)
        return ff_error_set(err, FF_ERR_SHAPE, "secagg vector of %zu words "
                            "for a padded length of %llu", m,
                            (unsigned long long)t->padded);
    x = delta_floats(u);
    if (x == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    if (ff_ddgauss_encode(&dp, x, words, &before, &pe) != FF_PRIVACY_OK)
        st = ff_error_set(err, pe.status == FF_PRIVACY_ERR_NOMEM
                                   ? FF_ERR_NOMEM
                                   : FF_ERR_ARG,
                          "ddgauss encoding: %s",
                          ff_privacy_error_text(&pe));
    free(x);
    if (st != FF_OK)
        return st;
    words[t->padded] = t->report_unclipped && before <= t->clip ? 1u : 0u;
    if (norm != NULL)
        *norm = before;
    return FF_OK;
}

void ff_site_update_cleanup(ff_site_update *u)
{
    if (u == NULL)
        return;
    free(u->data);
    memset(u, 0, sizeof *u);
}
