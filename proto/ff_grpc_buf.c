/*
 * ff_grpc_buf.c - serialised messages in and out of gRPC byte buffers;
 * the message-size limit as gRPC arguments.
 */
#include "ff_grpc_buf.h"

#include <grpc/byte_buffer_reader.h>
#include <stdlib.h>
#include <string.h>

void ff_grpc_buf_limit_args(grpc_arg *args)
{
    memset(args, 0, FF_GRPC_BUF_LIMIT_ARGS * sizeof *args);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)FF_WIRE_MESSAGE_MAX;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = (int)FF_WIRE_MESSAGE_MAX;
}

grpc_byte_buffer *ff_grpc_buf_from_bytes(ff_wire_bytes *b)
{
    grpc_slice s = grpc_slice_new(b->data, b->len, free);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);

    grpc_slice_unref(s);
    b->data = NULL;
    return bb;
}

ff_status ff_grpc_buf_read(grpc_byte_buffer *bb, const char *what,
                           grpc_slice *out, ff_error *err)
{
    grpc_byte_buffer_reader rd;
    size_t len = grpc_byte_buffer_length(bb);

    /* The length is known before anything is copied. */
    if (len > FF_WIRE_MESSAGE_MAX)
        return ff_error_set(err, FF_ERR_TOO_LARGE, "%s of %zu bytes exceeds %u",
                            what, len, (unsigned)FF_WIRE_MESSAGE_MAX);
    if (!grpc_byte_buffer_reader_init(&rd, bb))
        return ff_error_set(err, FF_ERR_FORMAT, "unreadable %s", what);
    *out = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    return FF_OK;
}
