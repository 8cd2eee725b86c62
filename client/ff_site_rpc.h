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

/* Opens a channel to target ("127.0.0.1:PORT"); connects lazily.
 * *out owned by the caller. Errors: FF_ERR_NOMEM, FF_ERR_ARG. */
FF_MUST_USE ff_status ff_site_rpc_create(ff_site_rpc **out,
                                         const char *target, ff_error *err);

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

/* DownloadModel: reassembles the artifact in order into *artifact
 * (malloc'd, caller frees; NULL on error) after checking every chunk's
 * offset, total length and digest against the first, then the complete
 * length and the BLAKE2b-256 digest. *version receives the model version.
 * Extra errors: FF_ERR_DIGEST (content does not match the digest). */
FF_MUST_USE ff_status ff_site_rpc_download(ff_site_rpc *r,
                                           const ff_wire_download *req,
                                           uint8_t **artifact, size_t *len,
                                           int *version, double timeout_s,
                                           ff_error *err);

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
