/*
 * ff_site_rpc.h - the site's calls to the coordinator (gRPC C core, one
 * channel, blocking calls). A site only ever connects out.
 *
 * Every reply is checked before use: message sizes against
 * FF_WIRE_MESSAGE_MAX (also set as the channel's receive limit), a model
 * download against its announced length (capped before allocating) and its
 * BLAKE2b-256 digest.
 *
 * Errors of every call: FF_ERR_RPC (transport failure, deadline, or a
 * status other than those below; the message names the method, status
 * and details), FF_ERR_REJECTED (PERMISSION_DENIED: the coordinator
 * refuses this site), FF_ERR_STATE (FAILED_PRECONDITION: e.g. the site is
 * not registered, or the round is closed), FF_ERR_FORMAT /
 * FF_ERR_TOO_LARGE (a reply that does not decode), FF_ERR_NOMEM.
 *
 * The caller owns grpc_init()/grpc_shutdown() around the object's life.
 * Not thread-safe: one ff_site_rpc per thread.
 */
#ifndef FF_SITE_RPC_H
#define FF_SITE_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"
#include "../proto/ff_wire.h"

typedef struct ff_site_rpc ff_site_rpc;

/* The site's TLS material: paths of PEM files (borrowed). */
typedef struct ff_site_tls {
    const char *ca;     /* the consortium CA: the coordinator's certificate
                           must chain to it and name the target host */
    const char *cert;   /* this site's certificate (fedfuse-site enroll,
                           fedfusectl sites approve); NULL: none is
                           presented (the coordinator refuses every call:
                           tests use it to check that) */
    const char *key;    /* its private key (ignored without cert) */
} ff_site_tls;

/* Opens a channel to target ("127.0.0.1:PORT"); connects lazily. With
 * tls the channel is mutual TLS (the key file is read, used and wiped);
 * tls NULL opens an insecure channel (logged as a WARN). *out owned by
 * the caller. Errors: FF_ERR_NOMEM, FF_ERR_ARG, FF_ERR_IO /
 * FF_ERR_TOO_LARGE (a PEM file), FF_ERR_INTERNAL. */
FF_MUST_USE ff_status ff_site_rpc_create(ff_site_rpc **out,
                                         const char *target,
                                         const ff_site_tls *tls,
                                         ff_error *err);

/* Closes the channel and frees r. Accepts NULL. */
void ff_site_rpc_destroy(ff_site_rpc *r);

/* Register; an answered refusal is rep->accepted == 0, not an error. */
FF_MUST_USE ff_status ff_site_rpc_register(ff_site_rpc *r,
                                           const ff_wire_register *req,
                                           ff_wire_register_reply *rep,
                                           double timeout_s, ff_error *err);

/* Poll. */
FF_MUST_USE ff_status ff_site_rpc_poll(ff_site_rpc *r,
                                       const ff_wire_poll *req,
                                       ff_wire_poll_reply *rep,
                                       double timeout_s, ff_error *err);

/* Frees the secure aggregation task a Poll reply may hold (rep->secagg);
 * accepts NULL. Call it after every successful Poll. */
void ff_site_rpc_poll_reply_cleanup(ff_wire_poll_reply *rep);

/*
 * SecAgg: sends one stage message (req: site id, round, stage, data
 * borrowed) and reads the answer into *rep: status OK, WAIT or ABORTED,
 * a reason and data that stays valid until ff_site_rpc_secagg_cleanup(rep)
 * (call it after success). Errors as above.
 */
FF_MUST_USE ff_status ff_site_rpc_secagg(ff_site_rpc *r,
                                         const ff_wire_secagg_msg *req,
                                         ff_wire_secagg_msg *rep,
                                         double timeout_s, ff_error *err);

/* Frees what a SecAgg answer holds; accepts NULL and a zeroed answer. */
void ff_site_rpc_secagg_cleanup(ff_wire_secagg_msg *rep);

/* A downloaded model with the claim its signature covers. */
typedef struct ff_site_model {
    uint8_t *artifact;                  /* malloc'd */
    size_t len;
    int version;
    int parent;                         /* 0: none */
    char model[FF_WIRE_ID_MAX + 1];
    uint8_t digest[FF_WIRE_DIGEST_BYTES];
    int is_signed;                      /* signature and signer_key set */
    uint8_t signature[FF_WIRE_SIG_BYTES];
    uint8_t signer_key[FF_WIRE_SIGNER_BYTES];
    char *metadata;                     /* malloc'd signed JSON ("") */
} ff_site_model;

/* Frees what m holds and zeroes it; accepts NULL. */
void ff_site_model_cleanup(ff_site_model *m);

/* DownloadModel: reassembles the artifact in order into m->artifact
 * after checking every chunk's offset, total length and digest against
 * the first, then the complete length and the BLAKE2b-256 digest; the
 * first chunk's model, parent, metadata and signature fill the rest of
 * *m. Nothing here checks the signature: ff_site_model_verify does. On
 * error *m is zeroed. Extra errors: FF_ERR_DIGEST (content does not
 * match the digest), FF_ERR_NOT_FOUND (no such model: a production
 * download before anything was promoted). */
FF_MUST_USE ff_status ff_site_rpc_download(ff_site_rpc *r,
                                           const ff_wire_download *req,
                                           ff_site_model *m,
                                           double timeout_s, ff_error *err);

/* Verifies m against the coordinator key the site pinned (pk): signed,
 * by that key, over (model, version, parent, digest, metadata), and the
 * artifact hashing to the signed digest (ff_trust_model_verify). Errors:
 * FF_ERR_AUTH with a message fit for the operator ("refusing model
 * version 4: the signature does not verify with the pinned coordinator
 * key ab12...; not training" when what is "not training"). */
FF_MUST_USE ff_status ff_site_model_verify(const ff_site_model *m,
                                           const uint8_t pk[32],
                                           const char *what, ff_error *err);

/*
 * UploadUpdate: sends the header, then data (len bytes, normally
 * float32 little-endian deltas) in chunks of chunk_bytes (0 means
 * FF_WIRE_CHUNK_MAX), then reads the verdict into *rep. A refusal is
 * rep->accepted == 0 with its reason, not an error. The chunk size is
 * not capped here so that tests can send what a faulty site would.
 * Test hook (tests only): FEDFUSE_TEST_UPLOAD_PAUSE_MS=N pauses N ms
 * (at most 10000) after the header, holding the coordinator's buffer.
 */
FF_MUST_USE ff_status ff_site_rpc_upload(ff_site_rpc *r,
                                         const ff_wire_update_header *h,
                                         const uint8_t *data, size_t len,
                                         size_t chunk_bytes,
                                         ff_wire_upload_reply *rep,
                                         double timeout_s, ff_error *err);

/*
 * ff_site_rpc_upload, sent again while the coordinator answers busy
 * (rep->retry_after_ms > 0): each time it waits retry_after_ms plus up to
 * half of it again (random jitter), for at most wait_s seconds in all.
 * Errors: those of ff_site_rpc_upload, and FF_ERR_TIMEOUT when the
 * coordinator is still busy after wait_s.
 */
FF_MUST_USE ff_status ff_site_rpc_upload_patient(
    ff_site_rpc *r, const ff_wire_update_header *h, const uint8_t *data,
    size_t len, ff_wire_upload_reply *rep, double timeout_s, double wait_s,
    ff_error *err);

#endif
