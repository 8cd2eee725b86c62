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

/* ---- site-level DP (docs/privacy-accounting.md, "Site level") ----
 * Under site-level DP the update is the plain delta (local - global), not
 * weighted by example counts. */

/*
 * Central mode, plain upload: scales u's delta in place to L2 norm at most
 * clip (finite, > 0; ff_dp_clip_l2) and, when report_unclipped, sets
 * u->header.unclipped to (norm before clipping <= clip). *norm (may be
 * NULL) receives that norm. Errors: FF_ERR_ARG (bad clip),
 * FF_ERR_NONFINITE, FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_site_update_clip(ff_site_update *u, double clip,
                                          int report_unclipped, double *norm,
                                          ff_error *err);

/*
 * Central mode under secure aggregation: writes the m = P + 1 + G words
 *   [ delta L2-clipped to clip, quantised onto [0, max_value] with the
 *     per-coordinate clip `clip` (ff_secagg_quantize, nearest) ] (P words)
 *   [ the unclipped bit, raw 0/1 (0 unless report_unclipped) ]
 *   [ 1 for every group, raw ]
 * u is read only; words caller-owned. *norm (may be NULL) receives the
 * norm before clipping. Errors: FF_ERR_SHAPE (m), FF_ERR_ARG (clip or
 * max_value), FF_ERR_NONFINITE, FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_site_update_central_words(const ff_site_update *u,
                                                   float clip,
                                                   uint32_t max_value,
                                                   int report_unclipped,
                                                   uint32_t *words, size_t m,
                                                   double *norm,
                                                   ff_error *err);

/*
 * Distributed mode (secure aggregation required): writes the m =
 * t->padded + 1 words [ ff_ddgauss_encode of the delta with the task's
 * public parameters (clip, rotation, scale, rounding, local noise, wrap
 * into Z_(2^bits)) ] [ the unclipped bit, raw 0/1 (0 unless
 * t->report_unclipped) ]. The padded length must be the next power of two
 * of the parameter count. words caller-owned (they hold noise: wipe them).
 * *norm (may be NULL) receives the norm before clipping. Errors:
 * FF_ERR_SHAPE (m, or padded against the parameter count), FF_ERR_ARG
 * (a task value the encoder refuses: the message names it),
 * FF_ERR_NONFINITE, FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_site_update_ddgauss_words(
    const ff_site_update *u, const ff_wire_site_dp_task *t, uint32_t *words,
    size_t m, double *norm, ff_error *err);

/* Frees what ff_site_update_prepare allocated and zeroes u. Accepts NULL. */
void ff_site_update_cleanup(ff_site_update *u);

#endif
