/*
 * wire.h - the coordinator's side of the protocol conversions: decodes the
 * requests sites send and encodes the replies, between serialised protobuf
 * bytes and the plain structs of proto/ff_wire.h. The only coordinator
 * module that sees protobuf.
 *
 * Decoders treat their input as untrusted: the byte length is checked
 * against FF_WIRE_MESSAGE_MAX before parsing, and every string, count and
 * chunk against its limit in ff_wire.h. They return FF_ERR_TOO_LARGE for
 * an over-limit length, FF_ERR_FORMAT for bytes that do not parse or a
 * field out of range, with a message naming the field.
 *
 * Thread-safe: no state.
 */
#ifndef FF_COORD_WIRE_H
#define FF_COORD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"
#include "../proto/ff_wire.h"

/* Decodes a RegisterRequest into *out (site id validated, modality names
 * turned into bits). */
FF_MUST_USE ff_status ff_coord_wire_register_decode(const uint8_t *buf,
                                                    size_t len,
                                                    ff_wire_register *out,
                                                    ff_error *err);

/* Decodes a PollRequest into *out. */
FF_MUST_USE ff_status ff_coord_wire_poll_decode(const uint8_t *buf,
                                                size_t len, ff_wire_poll *out,
                                                ff_error *err);

/* Decodes a DownloadRequest into *out: round >= 1, or 0 with
 * production set. */
FF_MUST_USE ff_status ff_coord_wire_download_decode(const uint8_t *buf,
                                                    size_t len,
                                                    ff_wire_download *out,
                                                    ff_error *err);

/*
 * Decodes one UpdateMessage. A chunk's data points into storage held by
 * out->chunk.owner: call ff_coord_wire_update_msg_cleanup when done with
 * it (also after an error; it accepts a zeroed or half-filled message).
 * Errors as above; a chunk over FF_WIRE_CHUNK_MAX gives FF_ERR_TOO_LARGE,
 * a length or offset that is not a multiple of 4 gives FF_ERR_FORMAT.
 */
FF_MUST_USE ff_status ff_coord_wire_update_decode(const uint8_t *buf,
                                                  size_t len,
                                                  ff_wire_update_msg *out,
                                                  ff_error *err);

/* Frees what ff_coord_wire_update_decode kept for msg and zeroes it. */
void ff_coord_wire_update_msg_cleanup(ff_wire_update_msg *msg);

/* Encoders: serialise the reply into out->data (malloc'd; the caller frees
 * it). Errors: FF_ERR_ARG (a string over its limit, a chunk over
 * FF_WIRE_CHUNK_MAX, a bad action, optimizer or lr schedule; a first
 * model chunk without a valid model name, or whose data and metadata
 * together exceed FF_WIRE_CHUNK_MAX), FF_ERR_NOMEM. The model chunk
 * encoder sends model, parent, metadata and (when is_signed) signature
 * and signer key with the chunk at offset 0 only. */
FF_MUST_USE ff_status ff_coord_wire_register_reply_encode(
    const ff_wire_register_reply *r, ff_wire_bytes *out, ff_error *err);
FF_MUST_USE ff_status ff_coord_wire_poll_reply_encode(
    const ff_wire_poll_reply *r, ff_wire_bytes *out, ff_error *err);
FF_MUST_USE ff_status ff_coord_wire_model_chunk_encode(
    const ff_wire_model_chunk *c, ff_wire_bytes *out, ff_error *err);
FF_MUST_USE ff_status ff_coord_wire_upload_reply_encode(
    const ff_wire_upload_reply *r, ff_wire_bytes *out, ff_error *err);

/*
 * Decodes a SecAggRequest (site id, round >= 1, a known stage, data of at
 * most FF_WIRE_SECAGG_DATA_MAX bytes). out->data points into storage held
 * by out->owner: call ff_coord_wire_secagg_cleanup when done (also after
 * an error; it accepts a zeroed message).
 */
FF_MUST_USE ff_status ff_coord_wire_secagg_decode(const uint8_t *buf,
                                                  size_t len,
                                                  ff_wire_secagg_msg *out,
                                                  ff_error *err);

/* Frees what ff_coord_wire_secagg_decode kept for msg and zeroes it. */
void ff_coord_wire_secagg_cleanup(ff_wire_secagg_msg *msg);

/* Encodes a SecAggReply from r's status, reason and data (borrowed).
 * Errors: FF_ERR_ARG (reason or data over its limit), FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_coord_wire_secagg_reply_encode(
    const ff_wire_secagg_msg *r, ff_wire_bytes *out, ff_error *err);

#endif
