/*
 * wire.h - the site's side of the protocol conversions: encodes the
 * requests a site sends and decodes the coordinator's replies, between
 * serialised protobuf bytes and the plain structs of proto/ff_wire.h. The
 * only site module that sees protobuf.
 *
 * Decoders treat their input as untrusted: the byte length is checked
 * against FF_WIRE_MESSAGE_MAX before parsing, and every field against its
 * limit in ff_wire.h. Errors: FF_ERR_TOO_LARGE for an over-limit length,
 * FF_ERR_FORMAT for bytes that do not parse or a field out of range, with a
 * message naming the field.
 *
 * Encoders write out->data (malloc'd; the caller frees it). They check what
 * the protocol requires of every sender (site id, text lengths) but leave
 * chunk sizes to the caller, so that tests can send what a faulty site
 * would. Errors: FF_ERR_ARG, FF_ERR_NOMEM.
 *
 * Thread-safe: no state.
 */
#ifndef FF_SITE_WIRE_H
#define FF_SITE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"
#include "../proto/ff_wire.h"

FF_MUST_USE ff_status ff_site_wire_register_encode(const ff_wire_register *r,
                                                   ff_wire_bytes *out,
                                                   ff_error *err);
FF_MUST_USE ff_status ff_site_wire_poll_encode(const ff_wire_poll *r,
                                               ff_wire_bytes *out,
                                               ff_error *err);
FF_MUST_USE ff_status ff_site_wire_download_encode(const ff_wire_download *r,
                                                   ff_wire_bytes *out,
                                                   ff_error *err);

/* Encodes an upload header, with its refusal and DP report fields; the
 * site id is not validated here (the coordinator does), so that tests can
 * send a bad one. Errors: FF_ERR_ARG also for a refusal over
 * FF_WIRE_TEXT_MAX or a mechanism over FF_WIRE_OPTIMIZER_MAX bytes. */
FF_MUST_USE ff_status ff_site_wire_update_header_encode(
    const ff_wire_update_header *h, ff_wire_bytes *out, ff_error *err);

/* Encodes an upload chunk of any length. */
FF_MUST_USE ff_status ff_site_wire_update_chunk_encode(
    const ff_wire_update_chunk *c, ff_wire_bytes *out, ff_error *err);

FF_MUST_USE ff_status ff_site_wire_register_reply_decode(
    const uint8_t *buf, size_t len, ff_wire_register_reply *out,
    ff_error *err);

/* Decodes a PollReply; for TRAIN the config is range-checked (epochs
 * 1..1000, batch 1..65536, finite lr > 0, optimizer sgd|adam, lr schedule
 * constant|cosine, momentum and dropout in [0, 1), weight decay >= 0) and
 * round must be >= 1. A site_dp task is checked too: mode known; for
 * central and distributed a finite clip > 0; for distributed secure
 * aggregation in the same reply, bits 2..32, padded a power of two in
 * 1..FF_DP_MAX_LENGTH, finite scale > 0, beta in [0, 1), finite
 * local_sigma2 >= 0, sites 1..FF_WIRE_SECAGG_MAX_SITES and a 32-byte
 * rotation seed (padded against the parameter count is the update
 * builder's check). On error out holds nothing to free. */
FF_MUST_USE ff_status ff_site_wire_poll_reply_decode(const uint8_t *buf,
                                                     size_t len,
                                                     ff_wire_poll_reply *out,
                                                     ff_error *err);

/* Frees the secagg task keys a decoded PollReply holds (out->secagg set by
 * the decoder; at least 3 sites, n x 32 key bytes, a 32-byte seed, a
 * positive clip). Accepts NULL and a reply without a task. */
void ff_site_wire_poll_reply_cleanup(ff_wire_poll_reply *r);

/* Encodes a SecAggRequest (site id, round, stage, data borrowed). */
FF_MUST_USE ff_status ff_site_wire_secagg_encode(const ff_wire_secagg_msg *r,
                                                 ff_wire_bytes *out,
                                                 ff_error *err);

/* Decodes a SecAggReply; out->data points into storage held by out->owner
 * until ff_site_wire_secagg_reply_cleanup (which accepts a zeroed one). */
FF_MUST_USE ff_status ff_site_wire_secagg_reply_decode(
    const uint8_t *buf, size_t len, ff_wire_secagg_msg *out, ff_error *err);

/* Frees what the SecAgg reply decoder kept and zeroes msg. */
void ff_site_wire_secagg_reply_cleanup(ff_wire_secagg_msg *msg);

/* Decodes a ModelChunk: data at most FF_WIRE_CHUNK_MAX bytes, total length
 * 1..FF_WIRE_MAX_ARTIFACT, offset + len within it, digest of 32 bytes;
 * signature and signer key of exactly 64 and 32 bytes or both empty
 * (is_signed 0), metadata at most FF_WIRE_METADATA_MAX bytes, a valid
 * model name on the first chunk. Nothing here verifies the signature.
 * out->data and out->metadata point into storage held by out->owner until
 * ff_site_wire_model_chunk_cleanup (which accepts a zeroed chunk). */
FF_MUST_USE ff_status ff_site_wire_model_chunk_decode(
    const uint8_t *buf, size_t len, ff_wire_model_chunk *out, ff_error *err);

/* Frees what the decoder kept for c and zeroes it. */
void ff_site_wire_model_chunk_cleanup(ff_wire_model_chunk *c);

FF_MUST_USE ff_status ff_site_wire_upload_reply_decode(
    const uint8_t *buf, size_t len, ff_wire_upload_reply *out,
    ff_error *err);

#endif
