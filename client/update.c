/*
 * update.c - builds a site's update: the seam where privacy mechanisms
 * (clipping, noise, masking) will transform it before it leaves the site.
 */
#include "ff_site_update.h"

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

void ff_site_update_cleanup(ff_site_update *u)
{
    if (u == NULL)
        return;
    free(u->data);
    memset(u, 0, sizeof *u);
}
