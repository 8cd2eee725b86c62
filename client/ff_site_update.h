/*
 * ff_site_update.h - the one place every site update passes through
 * before it leaves the site: it computes the delta, checks it and attaches
 * the example counts, and for secure aggregation turns it into the
 * quantised vector that client/secagg.c masks (docs/secagg.md, "Wiring").
 * Nothing else builds an update.
 */
#ifndef FF_SITE_UPDATE_H
#define FF_SITE_UPDATE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"
#include "../model/ff_model.h"
#include "../proto/ff_wire.h"

/* An update ready to send: its header and its data (float32
 * little-endian deltas, local - global). */
typedef struct ff_site_update {
    ff_wire_update_header header;
    uint8_t *data;              /* malloc'd; ff_site_update_cleanup */
    size_t len;                 /* bytes: 4 * header.param_count */
} ff_site_update;

/*
 * Builds the update of round `round` for site `site_id`: delta = local -
 * global over the flat parameters, checked finite, with the per-group
 * example counts and the training loss and accuracy of stats. global,
 * local and stats are borrowed; out is caller storage (cleanup with
 * ff_site_update_cleanup, also after an error).
 * Errors: FF_ERR_SHAPE (the two models differ in size), FF_ERR_NONFINITE
 * (a delta is NaN or Inf; the message names the first index), FF_ERR_ARG
 * (bad site id or round, or no group trained), FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_site_update_prepare(const char *site_id, int round,
                                             const ff_model *global,
                                             const ff_model *local,
                                             const ff_train_stats *stats,
                                             ff_site_update *out,
                                             ff_error *err);

/*
 * Secure aggregation form of a prepared update u (docs/secagg.md,
 * "Wiring"): writes into words (caller-owned, length m = P + 1 + G for P
 * parameters and G groups) the quantised vector
 *   [ n_g * delta_i for every parameter i of group g (0 outside groups),
 *     n_head * train_loss ]  clipped to [-clip, clip] and quantised onto
 *                            [0, max_value] (nearest rounding), then
 *   [ n_g for every group ]  as exact integers (each must be <= max_value).
 * global gives the group ranges; all pointers borrowed. *clipped receives
 * how many values were clipped. Errors: FF_ERR_SHAPE (m does not match),
 * FF_ERR_ARG (a count over max_value, bad clip), FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_site_update_quantize(const ff_site_update *u,
                                              const ff_model *global,
                                              float clip, uint32_t max_value,
                                              uint32_t *words, size_t m,
                                              size_t *clipped, ff_error *err);

/* Frees what ff_site_update_prepare allocated and zeroes u. Accepts NULL. */
void ff_site_update_cleanup(ff_site_update *u);

#endif
