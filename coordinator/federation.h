/*
 * federation.h - the coordinator's federation: known sites, the round state
 * machine, the running aggregate and the current global model, and the
 * request handlers the gRPC server calls with plain structs.
 *
 * Threads: ff_federation_run runs the rounds on the caller's thread (the
 * main thread); the handlers are called from the server's worker threads
 * and may run concurrently with it and with each other; ff_federation_stop
 * may be called from any thread. Everything shared sits behind one mutex,
 * and no database call is made while holding it.
 */
#ifndef FF_FEDERATION_H
#define FF_FEDERATION_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"
#include "../proto/ff_wire.h"
#include "config.h"

typedef struct ff_federation ff_federation;

/* The serialised global model as served to sites: immutable once made,
 * shared by reference between the federation and running downloads. */
typedef struct ff_model_blob {
    uint8_t *data;
    size_t len;
    uint8_t digest[FF_WIRE_DIGEST_BYTES];  /* BLAKE2b-256 of data */
    int version;                           /* 0: the initial model */
    int parent;                            /* 0: none */
    int refs;                              /* guarded by the federation */
    /* the coordinator's signature over (model, version, parent, digest,
     * metadata), sent with the first chunk */
    int is_signed;
    uint8_t signature[FF_WIRE_SIG_BYTES];
    uint8_t signer_key[FF_WIRE_SIGNER_BYTES];
    char *metadata;                        /* malloc'd JSON, or NULL */
} ff_model_blob;

/* An upload in progress (one per UploadUpdate call). */
typedef struct ff_upload ff_upload;

/*
 * Creates the federation: opens the registry (cfg->db) and runs its
 * migrations, records the model, loads the test set, restores the latest
 * published version (or draws the initial model from cfg->init_seed),
 * marks an unfinished earlier round aborted ("coordinator restarted") and
 * audits "coordinator.started". cfg is copied. *out owned by the caller.
 * Errors: FF_ERR_DB, FF_ERR_IO / FF_ERR_FORMAT (test manifest),
 * FF_ERR_SHAPE / FF_ERR_DIGEST (stored model unusable), FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_federation_create(ff_federation **out,
                                           const ff_coord_config *cfg,
                                           const char *address,
                                           ff_error *err);

/* Frees f (the server must be shut down first). Accepts NULL. */
void ff_federation_destroy(ff_federation *f);

/*
 * Runs rounds until round cfg->rounds is over, then tells the sites
 * FINISHED (waiting at most cfg->finish_grace seconds for them to poll).
 * Returns FF_OK then, or when stopped by ff_federation_stop (the round in
 * progress is aborted). Errors: FF_ERR_STATE (fewer than min-sites sites
 * came within wait-sites seconds), FF_ERR_DB (the registry failed where
 * going on would lose a decision).
 */
FF_MUST_USE ff_status ff_federation_run(ff_federation *f, ff_error *err);

/* Asks ff_federation_run to stop soon; why is copied. Thread-safe. */
void ff_federation_stop(ff_federation *f, const char *why);

/* Register: fills reply (refusing unknown sites, with a logged reason and
 * an audit row "site.refused"). serial is the authenticated certificate's
 * serial from ff_federation_authorize ("" with TLS off): the identity key
 * is pinned to it. Errors: FF_ERR_DB (registration could not be recorded;
 * the site should retry). */
FF_MUST_USE ff_status ff_federation_register(ff_federation *f,
                                             const char *serial,
                                             const ff_wire_register *req,
                                             ff_wire_register_reply *reply,
                                             ff_error *err);

/* Poll: fills reply. Errors: FF_ERR_REJECTED (unknown site), FF_ERR_STATE
 * (site not registered: it should register again). */
FF_MUST_USE ff_status ff_federation_poll(ff_federation *f,
                                         const ff_wire_poll *req,
                                         ff_wire_poll_reply *reply,
                                         ff_error *err);

/* Download: returns a reference to the current model in *blob, to hand
 * back with ff_federation_blob_release; with req->production, the
 * registry's production version instead (read on each call, signature as
 * stored). Errors: FF_ERR_REJECTED (unknown site), FF_ERR_STATE (not
 * registered, or not selected for that round), FF_ERR_NOT_FOUND (no
 * production version), FF_ERR_DB, FF_ERR_DIGEST (stored artifact does not
 * match its digest), FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_federation_download(ff_federation *f,
                                             const ff_wire_download *req,
                                             ff_model_blob **blob,
                                             ff_error *err);

/* Drops a reference taken by ff_federation_download. Accepts NULL. */
void ff_federation_blob_release(ff_federation *f, ff_model_blob *blob);

/* The model's name (for the chunks' signed claim). Borrowed, lives as
 * long as f. */
const char *ff_federation_model(const ff_federation *f);

/*
 * Authenticates one call (mTLS): peer_pem is the client certificate the
 * TLS handshake presented (x509_pem_cert; NULL or len 0 when none), claimed
 * the site id the message names, method the RPC's name for the log. With
 * TLS on, the certificate must verify against the consortium CA, carry
 * role site and CN == claimed, and the registry must know it unrevoked
 * (ff_registry_cert_check, cached for at most one second per serial).
 * On success *serial (FF_TRUST_SERIAL_HEX + 1 bytes, may be NULL) holds
 * the certificate's serial ("" with TLS off). A refusal logs one WARN
 * line with the reason, audits "site.refused" at most once per site and
 * reason, and a revoked site in a round in flight is dropped from it (its
 * pending upload refused; under secure aggregation a dropout). With TLS
 * off the claimed name is the identity, as before. Errors:
 * FF_ERR_REJECTED (err holds the reason), FF_ERR_DB (the revocation check
 * failed: refused too, the site should retry). Thread-safe.
 */
FF_MUST_USE ff_status ff_federation_authorize(ff_federation *f,
                                              const char *peer_pem,
                                              size_t len,
                                              const char *claimed,
                                              const char *method,
                                              char *serial, ff_error *err);

/*
 * Upload, step 1: checks the header (known, selected site; the open
 * round; no earlier update this round; parameter and group counts; example
 * counts within what the site registered) and allocates the buffer for
 * its data. On a refusal, logs one WARN line, audits "update.rejected",
 * and returns FF_ERR_REJECTED with the reason in err.
 * When the header is acceptable but --secagg-max-uploads buffers are in
 * use already, allocates nothing, sets *retry_after_ms > 0 and returns
 * FF_ERR_STATE ("busy", not a refusal: no audit row, one INFO line per
 * site and round); *retry_after_ms is 0 otherwise.
 * *up owned by the caller until finish or abandon.
 */
FF_MUST_USE ff_status ff_federation_upload_begin(
    ff_federation *f, const ff_wire_update_header *h, ff_upload **up,
    uint32_t *retry_after_ms, ff_error *err);

/* Upload, step 2: appends one chunk (in order, within the announced
 * length). On a refusal it logs and audits as above, frees up and returns
 * FF_ERR_REJECTED. */
FF_MUST_USE ff_status ff_federation_upload_chunk(
    ff_federation *f, ff_upload *up, const ff_wire_update_chunk *c,
    ff_error *err);

/* Upload, step 3 (the stream ended): checks the length and the values,
 * adds the update to the round's running sum and audits
 * "update.accepted", or refuses it as above. Frees up either way.
 * Errors: FF_ERR_REJECTED. */
FF_MUST_USE ff_status ff_federation_upload_finish(ff_federation *f,
                                                  ff_upload *up,
                                                  ff_error *err);

/* The site id an upload's header claimed (borrowed from up). */
const char *ff_federation_upload_site(const ff_upload *up);

/* Abandons an upload: when reason is not NULL the update is refused with
 * it (logged and audited); NULL means the stream broke (logged only).
 * Frees up; accepts NULL. */
void ff_federation_upload_abandon(ff_federation *f, ff_upload *up,
                                  const char *reason);

/*
 * SecAgg: one secure aggregation stage message of req (borrowed). Fills
 * reply: status OK (accepted, or reply->data holds what was asked for,
 * malloc'd and owned by the caller), WAIT (not available yet) or ABORTED
 * with a reason (the round is over for this site; logged). Errors:
 * FF_ERR_REJECTED (unknown site), FF_ERR_STATE (not registered),
 * FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_federation_secagg(ff_federation *f,
                                           const ff_wire_secagg_msg *req,
                                           ff_wire_secagg_msg *reply,
                                           ff_error *err);

/* Refuses an upload that never produced a valid header (logged and
 * audited; site may be NULL when unknown). */
void ff_federation_upload_refuse(ff_federation *f, const char *site,
                                 int round, const char *reason);

#endif
