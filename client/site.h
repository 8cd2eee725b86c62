/*
 * site.h - a fedfuse site: its records, its model and its conversation
 * with the coordinator (register, poll, download, train, upload).
 * Not thread-safe: one ff_site per process.
 */
#ifndef FF_SITE_H
#define FF_SITE_H

#include "../common/ff_status.h"
#include "config.h"
#include "ff_site_rpc.h"

typedef struct ff_site ff_site;

/* Loads the manifest (logging its load report), computes its digest,
 * opens the privacy ledger (when dp is on) and prepares the models and the
 * channel. cfg is copied; *out owned by the caller. Errors: those of
 * ff_dataset_load and ff_site_ledger_load (FF_ERR_FORMAT: a corrupt
 * ledger, which the site never resets), FF_ERR_NOMEM, FF_ERR_ARG. */
FF_MUST_USE ff_status ff_site_create(ff_site **out, const ff_site_config *cfg,
                                     ff_error *err);

/* Frees s. Accepts NULL. */
void ff_site_destroy(ff_site *s);

/* Opens the channel to cfg->coordinator: mutual TLS with cfg's CA,
 * certificate and key, or insecure with tls off (WARN). *out owned by
 * the caller. Errors: those of ff_site_rpc_create. */
FF_MUST_USE ff_status ff_site_channel_open(const ff_site_config *cfg,
                                           ff_site_rpc **out, ff_error *err);

/*
 * `fedfuse-site deploy`: downloads the coordinator's production version,
 * verifies its signature and digest against the pinned coordinator key,
 * and writes the artifact to cfg->out atomically (a temp file beside it,
 * fsync, rename; an existing symlink at cfg->out is refused). Prints the
 * version, digest and signer to stdout. Errors: FF_ERR_AUTH (the model
 * does not verify: nothing is written), FF_ERR_NOT_FOUND (no production
 * version), FF_ERR_REJECTED, FF_ERR_RPC, FF_ERR_IO, FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_site_deploy(const ff_site_config *cfg,
                                     ff_error *err);

/*
 * Registers, then polls and trains the rounds it is asked to until the
 * coordinator says FINISHED (returns FF_OK). A round that would exceed the
 * site's privacy budget is refused (WARN, METRIC, a refusal upload) and
 * the site goes on polling. A failed call is retried with backoff; a
 * fault in one round (bad model, diverged training, refused update) is
 * logged and the site goes on polling. Errors: FF_ERR_REJECTED
 * (the coordinator refused this site), FF_ERR_RPC (the coordinator stayed
 * unreachable for cfg->retry_seconds).
 */
FF_MUST_USE ff_status ff_site_run(ff_site *s, ff_error *err);

#endif
