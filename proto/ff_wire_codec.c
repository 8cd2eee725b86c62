/*
 * ff_wire_codec.c - the conversions both sides of the protocol share.
 */
#include "ff_wire_codec.h"

#include <stdlib.h>
#include <string.h>

ff_status ff_wire_unpack(const ProtobufCMessageDescriptor *d,
                         const uint8_t *buf, size_t len,
                         ProtobufCMessage **out, ff_error *err)
{
    /* The length is bounded before protobuf-c allocates anything. */
    *out = NULL;
    if (len > FF_WIRE_MESSAGE_MAX)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "%s of %zu bytes exceeds the %u-byte limit",
                            d->short_name, len,
                            (unsigned)FF_WIRE_MESSAGE_MAX);
    *out = protobuf_c_message_unpack(d, NULL, len, buf);
    if (*out == NULL)
        return ff_error_set(err, FF_ERR_FORMAT, "%s does not parse",
                            d->short_name);
    return FF_OK;
}

ff_status ff_wire_pack(const ProtobufCMessage *m, ff_wire_bytes *out,
                       ff_error *err)
{
    size_t n = protobuf_c_message_get_packed_size(m);

    out->data = malloc(n > 0 ? n : 1);
    out->len = 0;
    if (out->data == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory packing %zu "
                            "bytes", n);
    out->len = protobuf_c_message_pack(m, out->data);
    return FF_OK;
}

ff_status ff_wire_text_copy(char *dst, size_t cap, const char *src,
                            const char *field, ff_error *err)
{
    size_t i, n;

    if (src == NULL)
        src = "";
    n = strlen(src);
    if (n >= cap)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "%s has %zu bytes, more than %zu", field, n,
                            cap - 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c < 0x20 || c == 0x7f)
            return ff_error_set(err, FF_ERR_FORMAT,
                                "%s holds control characters", field);
    }
    memcpy(dst, src, n + 1);
    return FF_OK;
}
