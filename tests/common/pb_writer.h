/*
 * pb_writer.h - a minimal protobuf writer for tests that hand-make wire
 * messages (malformed ones included) to feed the decoders. Test code only:
 * header-only, static functions, aborts when out of memory.
 */
#ifndef FF_TEST_PB_WRITER_H
#define FF_TEST_PB_WRITER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>


typedef struct pbuf {
    uint8_t *p;
    size_t n, cap;
} pbuf;

static inline void pb_raw(pbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL)
            abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static inline void pb_varint(pbuf *b, uint64_t v)
{
    uint8_t byte;

    do {
        byte = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            byte |= 0x80;
        pb_raw(b, &byte, 1);
    } while (v);
}

static inline void pb_uint(pbuf *b, int field, uint64_t v)
{
    pb_varint(b, (uint64_t)field << 3 | 0);
    pb_varint(b, v);
}

static inline void pb_bytes(pbuf *b, int field, const void *d, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    pb_raw(b, d, n);
}

static inline void pb_str(pbuf *b, int field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

static inline void pb_float(pbuf *b, int field, float v)
{
    pb_varint(b, (uint64_t)field << 3 | 5);
    pb_raw(b, &v, 4);                /* little-endian host */
}

static inline void pb_double(pbuf *b, int field, double v)
{
    pb_varint(b, (uint64_t)field << 3 | 1);
    pb_raw(b, &v, 8);
}

static inline void pb_free(pbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

#endif
