/*
 * ff_wire_codec.h - what the two conversion modules (coordinator/wire.c and
 * client/wire.c) share: bounded parsing and packing of any protobuf-c
 * message, and the checks of fields that both sides read or write. Each
 * side keeps its own message-specific conversions.
 *
 * This header exposes protobuf-c's runtime types (never the generated
 * header): only coordinator/wire.c, client/wire.c and proto/ include it,
 * which tests/common/check-layering.sh checks.
 *
 * Thread-safe: no state.
 */
#ifndef FF_WIRE_CODEC_H
#define FF_WIRE_CODEC_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"
#include "ff_wire.h"

/*
 * Parses len untrusted bytes at buf as one message of type d, after
 * refusing a length over FF_WIRE_MESSAGE_MAX. On success *out holds the
 * message, owned by the caller, who frees it with the type's
 * free_unpacked function; on error *out is NULL. d is borrowed. Errors
 * name the type (d->short_name): FF_ERR_TOO_LARGE for the length,
 * FF_ERR_FORMAT for bytes that do not parse.
 */
FF_MUST_USE ff_status ff_wire_unpack(const ProtobufCMessageDescriptor *d,
                                     const uint8_t *buf, size_t len,
                                     ProtobufCMessage **out, ff_error *err);

/*
 * Serialises m (borrowed) into out->data, malloc'd and owned by the caller
 * (free()); out->len is its length. Errors: FF_ERR_NOMEM (out->data is
 * then NULL).
 */
FF_MUST_USE ff_status ff_wire_pack(const ProtobufCMessage *m,
                                   ff_wire_bytes *out, ff_error *err);

/*
 * Copies the received text field src (NULL reads as "") into dst of cap
 * bytes. field names it in errors: FF_ERR_TOO_LARGE when it has cap bytes
 * or more, FF_ERR_FORMAT when it holds control characters (bytes below
 * 0x20, 0x7f); dst is unchanged on error.
 */
FF_MUST_USE ff_status ff_wire_text_copy(char *dst, size_t cap,
                                        const char *src, const char *field,
                                        ff_error *err);

#endif
