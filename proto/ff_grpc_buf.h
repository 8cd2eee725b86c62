/*
 * ff_grpc_buf.h - serialised messages in and out of gRPC byte buffers, and
 * the message-size limit as gRPC arguments: the same on the site
 * (client/rpc.c) and the coordinator (coordinator/server.c). With its .c,
 * the only file in proto/ that sees gRPC, which
 * tests/common/check-layering.sh checks.
 *
 * Thread-safe: no state.
 */
#ifndef FF_GRPC_BUF_H
#define FF_GRPC_BUF_H

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>

#include "../common/ff_status.h"
#include "ff_wire.h"

/* The number of arguments ff_grpc_buf_limit_args fills. */
#define FF_GRPC_BUF_LIMIT_ARGS 2

/* Fills args[0 .. FF_GRPC_BUF_LIMIT_ARGS-1] (caller storage) with the
 * channel or server arguments that cap received and sent messages at
 * FF_WIRE_MESSAGE_MAX. */
void ff_grpc_buf_limit_args(grpc_arg *args);

/*
 * Wraps b's bytes in a new byte buffer without copying them: the buffer
 * takes ownership of b->data (freed with free() when gRPC is done with
 * it) and b->data becomes NULL. The caller owns the result and destroys
 * it with grpc_byte_buffer_destroy.
 */
grpc_byte_buffer *ff_grpc_buf_from_bytes(ff_wire_bytes *b);

/*
 * Joins the received buffer bb (borrowed) into one slice *out, which the
 * caller unrefs, refusing a buffer over FF_WIRE_MESSAGE_MAX before
 * copying. what names the buffer in errors ("reply", "message"):
 * FF_ERR_TOO_LARGE for its length, FF_ERR_FORMAT when gRPC cannot read
 * it.
 */
FF_MUST_USE ff_status ff_grpc_buf_read(grpc_byte_buffer *bb, const char *what,
                                       grpc_slice *out, ff_error *err);

#endif
