/*
 * ff_artifact.c - the serialised model.
 *
 * Layout (all integers and floats little-endian):
 *   0   8 bytes  magic "FFMODEL1"
 *   8   u32      format version (1)
 *   12  u32      group count (FF_GROUP_COUNT)
 *   16  u64      parameter count
 *   24  group table, FF_GROUP_COUNT entries of 32 bytes:
 *         char name[16] (NUL-padded), u64 offset, u64 length
 *   ..  parameter count float32 values
 * The reader checks every field before it touches the model, in the order
 * magic, size of the header, version, group table, total size, shape
 * against the model, finiteness; a failure leaves the model unchanged.
 */
#include "ff_model_internal.h"

#include <math.h>
#include <string.h>

#define ART_MAGIC "FFMODEL1"
#define ART_VERSION 1u
#define ART_NAME_LEN 16
#define ART_GROUP_BYTES (ART_NAME_LEN + 16)
#define ART_HEADER_BYTES (24 + FF_GROUP_COUNT * ART_GROUP_BYTES)
/* No fedfuse model comes near this; it keeps the size arithmetic safe. */
#define ART_MAX_PARAMS ((uint64_t)1 << 30)

/* ---- little-endian helpers --------------------------------------------- */

static void
put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get_u32(const uint8_t *p)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t
get_u64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static float
get_f32(const uint8_t *p)
{
    uint32_t bits = get_u32(p);
    float f;

    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* ---- write ------------------------------------------------------------- */

size_t
ff_model_artifact_size(const ff_model *m)
{
    return ART_HEADER_BYTES + m->count * 4;
}

ff_status
ff_model_artifact_write(const ff_model *m, uint8_t *buf, size_t len,
                        ff_error *err)
{
    size_t need = ff_model_artifact_size(m);

    if (len < need)
        return ff_error_set(err, FF_ERR_ARG,
                            "artifact buffer holds %zu bytes, needs %zu", len,
                            need);

    /* Header and group table. */
    memset(buf, 0, ART_HEADER_BYTES);
    memcpy(buf, ART_MAGIC, 8);
    put_u32(buf + 8, ART_VERSION);
    put_u32(buf + 12, FF_GROUP_COUNT);
    put_u64(buf + 16, m->count);
    for (int g = 0; g < FF_GROUP_COUNT; g++) {
        uint8_t *e = buf + 24 + (size_t)g * ART_GROUP_BYTES;
        const char *name = ff_model_group_name(g);
        memcpy(e, name, strlen(name)); /* names are < 16 bytes */
        put_u64(e + ART_NAME_LEN, m->group_off[g]);
        put_u64(e + ART_NAME_LEN + 8, m->group_len[g]);
    }

    /* Parameters. */
    for (size_t i = 0; i < m->count; i++) {
        uint32_t bits;
        memcpy(&bits, &m->params[i], sizeof(bits));
        put_u32(buf + ART_HEADER_BYTES + 4 * i, bits);
    }
    return FF_OK;
}

/* ---- read -------------------------------------------------------------- */

/* Checks the group table against itself (known names in order, ranges
 * back to back covering `count`) and then against m's layout. */
static ff_status
groups_check(const ff_model *m, const uint8_t *buf, uint64_t count,
             ff_error *err)
{
    uint64_t at = 0;
    int same = 1;

    for (int g = 0; g < FF_GROUP_COUNT; g++) {
        const uint8_t *e = buf + 24 + (size_t)g * ART_GROUP_BYTES;
        char name[ART_NAME_LEN + 1] = {0};
        uint64_t off = get_u64(e + ART_NAME_LEN);
        uint64_t len = get_u64(e + ART_NAME_LEN + 8);

        memcpy(name, e, ART_NAME_LEN);
        if (strcmp(name, ff_model_group_name(g)) != 0)
            return ff_error_set(err, FF_ERR_FORMAT,
                                "artifact group table: entry %d is named "
                                "\"%.16s\", expected \"%s\"", g, name,
                                ff_model_group_name(g));
        if (off != at || len > count - at)
            return ff_error_set(err, FF_ERR_FORMAT,
                                "artifact group table: group %s range "
                                "[%llu, +%llu) does not follow on at %llu "
                                "within %llu parameters", name,
                                (unsigned long long)off,
                                (unsigned long long)len,
                                (unsigned long long)at,
                                (unsigned long long)count);
        at += len;
        same &= len == m->group_len[g];
    }
    if (at != count)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "artifact group table covers %llu of %llu "
                            "parameters", (unsigned long long)at,
                            (unsigned long long)count);
    if (count != m->count || !same)
        return ff_error_set(err, FF_ERR_SHAPE,
                            "artifact is for another architecture: %llu "
                            "parameters, this model has %zu (or the groups "
                            "differ)", (unsigned long long)count, m->count);
    return FF_OK;
}

/* Checks the fixed header: magic, size, version, group count, and the
 * parameter count against its cap and the buffer length. */
static ff_status
header_check(const uint8_t *buf, size_t len, uint64_t *count, ff_error *err)
{
    if (len < 8 || memcmp(buf, ART_MAGIC, 8) != 0)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "not a model artifact: bad magic (want \"%s\")",
                            ART_MAGIC);
    if (len < ART_HEADER_BYTES)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "artifact truncated: %zu bytes, the header "
                            "alone needs %d", len, ART_HEADER_BYTES);
    if (get_u32(buf + 8) != ART_VERSION)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "artifact format version %u, this build reads "
                            "%u", get_u32(buf + 8), ART_VERSION);
    if (get_u32(buf + 12) != FF_GROUP_COUNT)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "artifact has %u parameter groups, expected %d",
                            get_u32(buf + 12), FF_GROUP_COUNT);
    *count = get_u64(buf + 16);
    if (*count > ART_MAX_PARAMS)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "artifact claims %llu parameters, more than the "
                            "cap of %llu", (unsigned long long)*count,
                            (unsigned long long)ART_MAX_PARAMS);
    size_t want = ART_HEADER_BYTES + (size_t)*count * 4;
    if (len != want)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "artifact %s: %zu bytes, but its header declares "
                            "%llu parameters (%zu bytes)",
                            len < want ? "truncated" : "has trailing bytes",
                            len, (unsigned long long)*count, want);
    return FF_OK;
}

ff_status
ff_model_artifact_read(ff_model *m, const uint8_t *buf, size_t len,
                       ff_error *err)
{
    const uint8_t *data = buf + ART_HEADER_BYTES;
    uint64_t count = 0;
    ff_status status;

    /* Structure first. */
    status = header_check(buf, len, &count, err);
    if (status == FF_OK)
        status = groups_check(m, buf, count, err);
    if (status != FF_OK)
        return status;

    /* Every value finite before any is copied. */
    for (size_t i = 0; i < m->count; i++)
        if (!isfinite(get_f32(data + 4 * i))) {
            int g = 0;
            while (g + 1 < FF_GROUP_COUNT && i >= m->group_off[g + 1])
                g++;
            return ff_error_set(err, FF_ERR_NONFINITE,
                                "artifact parameter %zu (group %s) is NaN "
                                "or Inf", i, ff_model_group_name(g));
        }
    for (size_t i = 0; i < m->count; i++)
        m->params[i] = get_f32(data + 4 * i);
    return FF_OK;
}
