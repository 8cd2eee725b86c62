/*
 * aggregate.h - federated averaging weighted by example counts, per
 * parameter group, as a running sum.
 *
 * For each group g with parameter range [off_g, off_g + len_g):
 *   new_g = old_g + sum_s n_{s,g} * delta_{s,g} / sum_s n_{s,g}
 * and a group that no site trained (sum_s n_{s,g} = 0) keeps old_g.
 *
 * Memory is O(model size): one double accumulator per parameter, whatever
 * the number of sites. Each update is checked (length, finiteness, counts)
 * before any of it is added, so a rejected update leaves the sum as it
 * was. This is the coordinator's seam for secure aggregation: it only ever
 * needs the weighted sum.
 *
 * Not thread-safe: callers serialise access to one ff_aggregate.
 */
#ifndef FF_AGGREGATE_H
#define FF_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"

typedef struct ff_aggregate ff_aggregate;

/* Most groups an aggregate handles. */
#define FF_AGGREGATE_MAX_GROUPS 16

/*
 * Creates an empty aggregate for n_params parameters split into n_groups
 * groups; group g covers [offset[g], offset[g] + length[g]). Groups must
 * lie inside [0, n_params) and must not overlap; parameters outside every
 * group are never changed. *out is owned by the caller (ff_aggregate_destroy).
 * Errors: FF_ERR_ARG (bad ranges or counts), FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_aggregate_create(ff_aggregate **out, size_t n_params,
                                          int n_groups, const size_t *offset,
                                          const size_t *length,
                                          ff_error *err);

/* Frees a. Accepts NULL. */
void ff_aggregate_destroy(ff_aggregate *a);

/* Empties the sum for a new round. */
void ff_aggregate_reset(ff_aggregate *a);

/*
 * Adds one site's update: delta holds n float32 values (local - global),
 * examples[g] the records that trained group g. Weights are taken as given;
 * the caller bounds them. Nothing is added unless the whole update passes.
 * Errors: FF_ERR_SHAPE (n or n_groups differ from the aggregate's),
 * FF_ERR_NONFINITE (a NaN or Inf in delta; the message names the first
 * index), FF_ERR_ARG (every count is zero).
 */
FF_MUST_USE ff_status ff_aggregate_add(ff_aggregate *a, const float *delta,
                                       size_t n, const uint64_t *examples,
                                       int n_groups, ff_error *err);

/*
 * Adds an already summed set of updates (secure aggregation): wsum holds n
 * values, wsum[i] = sum_s n_{s,g} * delta_{s,i} for the parameters of each
 * group g (values outside groups are ignored), examples[g] = sum_s n_{s,g},
 * and inputs the number of updates in the sum. Nothing is added unless all
 * of it passes. Errors: FF_ERR_SHAPE, FF_ERR_NONFINITE (names the index),
 * FF_ERR_ARG (inputs 0 or every count zero).
 */
FF_MUST_USE ff_status ff_aggregate_add_sum(ff_aggregate *a, const float *wsum,
                                           size_t n, const uint64_t *examples,
                                           int n_groups, size_t inputs,
                                           ff_error *err);

/* Number of updates added since the last reset. */
size_t ff_aggregate_count(const ff_aggregate *a);

/* Total examples of group g over the updates added (0 for a bad g). */
uint64_t ff_aggregate_group_examples(const ff_aggregate *a, int g);

/*
 * Writes the averaged model: params[i] += sum_i / N_g for every parameter
 * i of a group g with N_g > 0; other parameters are left as they are.
 * Errors: FF_ERR_SHAPE (n differs), FF_ERR_STATE (nothing was added),
 * FF_ERR_NONFINITE (a result is not finite; params unchanged).
 */
FF_MUST_USE ff_status ff_aggregate_apply(const ff_aggregate *a,
                                         float *params, size_t n,
                                         ff_error *err);

#endif
