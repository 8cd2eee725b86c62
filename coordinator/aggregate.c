/*
 * aggregate.c - running weighted sum of site updates (federated averaging
 * per parameter group).
 */
#include "aggregate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ff_aggregate {
    size_t n_params;
    int n_groups;
    size_t offset[FF_AGGREGATE_MAX_GROUPS];
    size_t length[FF_AGGREGATE_MAX_GROUPS];
    uint64_t examples[FF_AGGREGATE_MAX_GROUPS]; /* sum over updates */
    size_t updates;
    double *sum;                /* n_params: sum_s n_{s,g} * delta_{s,i} */
};

/* Checks that the group ranges lie inside the model and do not overlap. */
static ff_status ranges_check(size_t n_params, int n_groups,
                              const size_t *offset, const size_t *length,
                              ff_error *err)
{
    int g, h;

    for (g = 0; g < n_groups; g++) {
        if (offset[g] > n_params || length[g] > n_params - offset[g])
            return ff_error_set(err, FF_ERR_ARG,
                                "group %d [%zu, +%zu) lies outside %zu "
                                "parameters", g, offset[g], length[g],
                                n_params);
        for (h = 0; h < g; h++) {
            int apart = offset[g] + length[g] <= offset[h] ||
                        offset[h] + length[h] <= offset[g];
            if (!apart)
                return ff_error_set(err, FF_ERR_ARG,
                                    "groups %d and %d overlap", h, g);
        }
    }
    return FF_OK;
}

ff_status ff_aggregate_create(ff_aggregate **out, size_t n_params,
                              int n_groups, const size_t *offset,
                              const size_t *length, ff_error *err)
{
    ff_aggregate *a;
    ff_status st;

    *out = NULL;
    if (n_params == 0 || n_groups < 1 || n_groups > FF_AGGREGATE_MAX_GROUPS)
        return ff_error_set(err, FF_ERR_ARG,
                            "aggregate of %zu parameters in %d groups",
                            n_params, n_groups);
    st = ranges_check(n_params, n_groups, offset, length, err);
    if (st != FF_OK)
        return st;

    a = calloc(1, sizeof *a);
    if (a == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    a->sum = calloc(n_params, sizeof *a->sum);
    if (a->sum == NULL) {
        free(a);
        return ff_error_set(err, FF_ERR_NOMEM,
                            "out of memory for %zu accumulators", n_params);
    }
    a->n_params = n_params;
    a->n_groups = n_groups;
    memcpy(a->offset, offset, (size_t)n_groups * sizeof *offset);
    memcpy(a->length, length, (size_t)n_groups * sizeof *length);
    *out = a;
    return FF_OK;
}

void ff_aggregate_destroy(ff_aggregate *a)
{
    if (a == NULL)
        return;
    free(a->sum);
    free(a);
}

void ff_aggregate_reset(ff_aggregate *a)
{
    memset(a->sum, 0, a->n_params * sizeof *a->sum);
    memset(a->examples, 0, sizeof a->examples);
    a->updates = 0;
}

/* Returns the index of the first non-finite value, or n when none. */
static size_t first_nonfinite(const float *v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return i;
    return n;
}

ff_status ff_aggregate_add(ff_aggregate *a, const float *delta, size_t n,
                           const uint64_t *examples, int n_groups,
                           ff_error *err)
{
    size_t bad, i;
    uint64_t total = 0;
    int g;

    /* Check the whole update before touching the sum. */
    if (n != a->n_params || n_groups != a->n_groups)
        return ff_error_set(err, FF_ERR_SHAPE,
                            "update of %zu parameters in %d groups, "
                            "expected %zu in %d", n, n_groups, a->n_params,
                            a->n_groups);
    bad = first_nonfinite(delta, n);
    if (bad < n)
        return ff_error_set(err, FF_ERR_NONFINITE,
                            "NaN or Inf in the update at parameter %zu", bad);
    for (g = 0; g < n_groups; g++)
        total += examples[g];
    if (total == 0)
        return ff_error_set(err, FF_ERR_ARG,
                            "update trained no group (all counts are 0)");

    /* Weight each group's slice by its example count. */
    for (g = 0; g < a->n_groups; g++) {
        double w = (double)examples[g];
        double *s = a->sum + a->offset[g];
        const float *d = delta + a->offset[g];
        if (examples[g] == 0)
            continue;
        for (i = 0; i < a->length[g]; i++)
            s[i] += w * (double)d[i];
        a->examples[g] += examples[g];
    }
    a->updates++;
    return FF_OK;
}

ff_status ff_aggregate_add_sum(ff_aggregate *a, const float *wsum, size_t n,
                               const uint64_t *examples, int n_groups,
                               size_t inputs, ff_error *err)
{
    uint64_t total = 0;
    size_t bad, i;
    int g;

    /* Check everything before touching the sum. */
    if (n != a->n_params || n_groups != a->n_groups)
        return ff_error_set(err, FF_ERR_SHAPE,
                            "sum of %zu parameters in %d groups, expected "
                            "%zu in %d", n, n_groups, a->n_params,
                            a->n_groups);
    bad = first_nonfinite(wsum, n);
    if (bad < n)
        return ff_error_set(err, FF_ERR_NONFINITE,
                            "NaN or Inf in the sum at parameter %zu", bad);
    for (g = 0; g < n_groups; g++)
        total += examples[g];
    if (inputs == 0 || total == 0)
        return ff_error_set(err, FF_ERR_ARG, "sum of %zu updates with %llu "
                            "examples", inputs, (unsigned long long)total);

    /* Group slices only, as ff_aggregate_add would have summed them. */
    for (g = 0; g < a->n_groups; g++) {
        if (examples[g] == 0)
            continue;
        for (i = a->offset[g]; i < a->offset[g] + a->length[g]; i++)
            a->sum[i] += (double)wsum[i];
        a->examples[g] += examples[g];
    }
    a->updates += inputs;
    return FF_OK;
}

size_t ff_aggregate_count(const ff_aggregate *a)
{
    return a->updates;
}

uint64_t ff_aggregate_group_examples(const ff_aggregate *a, int g)
{
    if (g < 0 || g >= a->n_groups)
        return 0;
    return a->examples[g];
}

ff_status ff_aggregate_apply(const ff_aggregate *a, float *params, size_t n,
                             ff_error *err)
{
    size_t i;
    int g;

    if (n != a->n_params)
        return ff_error_set(err, FF_ERR_SHAPE,
                            "model of %zu parameters, aggregate of %zu", n,
                            a->n_params);
    if (a->updates == 0)
        return ff_error_set(err, FF_ERR_STATE, "no update was added");

    /* Check every result first, so that params change all or nothing. */
    for (g = 0; g < a->n_groups; g++) {
        double inv = a->examples[g] ? 1.0 / (double)a->examples[g] : 0.0;
        for (i = a->offset[g]; inv > 0.0 && i < a->offset[g] + a->length[g];
             i++)
            if (!isfinite((float)((double)params[i] + a->sum[i] * inv)))
                return ff_error_set(err, FF_ERR_NONFINITE,
                                    "averaged parameter %zu is not finite",
                                    i);
    }
    for (g = 0; g < a->n_groups; g++) {
        double inv;
        if (a->examples[g] == 0)
            continue;
        inv = 1.0 / (double)a->examples[g];
        for (i = a->offset[g]; i < a->offset[g] + a->length[g]; i++)
            params[i] = (float)((double)params[i] + a->sum[i] * inv);
    }
    return FF_OK;
}
