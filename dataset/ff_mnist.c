/*
 * ff_mnist.c - reads the gzip'd MNIST IDX files with zlib and writes
 * single images as binary PGM.
 */
#include "ff_sources.h"
#include "ff_dataset_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u

static uint32_t
be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
           (uint32_t)b[3];
}

/* Reads exactly n bytes from g. */
static ff_status
gz_read_exact(gzFile g, const char *path, void *buf, size_t n, ff_error *err)
{
    unsigned char *p = buf;

    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(g, p, chunk);
        if (got <= 0) {
            int zerr = 0;
            const char *why = gzerror(g, &zerr);
            return ff_error_set(err, FF_ERR_FORMAT, "%s: truncated (%s)",
                                path, got < 0 ? why : "end of data");
        }
        p += got;
        n -= (size_t)got;
    }
    return FF_OK;
}

/* Opens an IDX file, checks its magic and reads ndims dimensions. */
static ff_status
idx_open(const char *path, uint32_t magic, int ndims, uint32_t *dims,
         gzFile *out, ff_error *err)
{
    unsigned char head[16];
    gzFile g = gzopen(path, "rb");
    ff_status st;

    if (g == NULL)
        return ff_error_set(err, FF_ERR_IO, "%s: %s", path, strerror(errno));
    st = gz_read_exact(g, path, head, 4 + 4 * (size_t)ndims, err);
    if (st == FF_OK && be32(head) != magic)
        st = ff_error_set(err, FF_ERR_FORMAT, "%s: magic 0x%08x, expected "
                          "0x%08x", path, be32(head), magic);
    if (st != FF_OK) {
        gzclose(g);
        return st;
    }
    for (int i = 0; i < ndims; i++)
        dims[i] = be32(head + 4 + 4 * i);
    *out = g;
    return FF_OK;
}

/* Reads the label file into m->labels; sets m->count. */
static ff_status
read_labels(const char *path, ff_mnist *m, ff_error *err)
{
    uint32_t n = 0;
    gzFile g = NULL;
    ff_status st = idx_open(path, IDX_LABELS_MAGIC, 1, &n, &g, err);

    if (st != FF_OK)
        return st;
    if (n == 0 || n > FF_MNIST_MAX_IMAGES) {
        gzclose(g);
        return ff_error_set(err, FF_ERR_TOO_LARGE, "%s: %u labels, limit %d",
                            path, n, FF_MNIST_MAX_IMAGES);
    }
    m->labels = malloc(n);
    if (m->labels == NULL) {
        gzclose(g);
        return ff_error_set(err, FF_ERR_NOMEM, "%s: no memory", path);
    }
    st = gz_read_exact(g, path, m->labels, n, err);
    gzclose(g);
    for (uint32_t i = 0; st == FF_OK && i < n; i++)
        if (m->labels[i] > 9)
            st = ff_error_set(err, FF_ERR_FORMAT, "%s: label %u of item %u",
                              path, m->labels[i], i);
    m->count = n;
    return st;
}

/* Reads the image file into m->pixels; its count must match m->count. */
static ff_status
read_images(const char *path, ff_mnist *m, ff_error *err)
{
    uint32_t d[3] = {0, 0, 0};
    gzFile g = NULL;
    ff_status st = idx_open(path, IDX_IMAGES_MAGIC, 3, d, &g, err);

    if (st != FF_OK)
        return st;
    if (d[0] != m->count || d[1] != FF_MNIST_SIDE || d[2] != FF_MNIST_SIDE) {
        gzclose(g);
        return ff_error_set(err, FF_ERR_FORMAT, "%s: %ux%ux%u images, "
                            "expected %zux28x28", path, d[0], d[1], d[2],
                            m->count);
    }
    m->pixels = malloc(m->count * FF_MNIST_PIXELS);
    if (m->pixels == NULL) {
        gzclose(g);
        return ff_error_set(err, FF_ERR_NOMEM, "%s: no memory", path);
    }
    st = gz_read_exact(g, path, m->pixels, m->count * FF_MNIST_PIXELS, err);
    gzclose(g);
    return st;
}

ff_status
ff_mnist_load(const char *dir, ff_mnist *m, ff_error *err)
{
    char path[4096];
    ff_status st;

    memset(m, 0, sizeof(*m));
    st = ff_path_join(path, sizeof(path), dir, "t10k-labels-idx1-ubyte.gz",
                      err);
    if (st == FF_OK)
        st = read_labels(path, m, err);
    if (st == FF_OK)
        st = ff_path_join(path, sizeof(path), dir,
                          "t10k-images-idx3-ubyte.gz", err);
    if (st == FF_OK)
        st = read_images(path, m, err);
    if (st != FF_OK)
        ff_mnist_cleanup(m);
    return st;
}

void
ff_mnist_cleanup(ff_mnist *m)
{
    if (m == NULL)
        return;
    free(m->pixels);
    free(m->labels);
    memset(m, 0, sizeof(*m));
}

ff_status
ff_mnist_write_pgm(const ff_mnist *m, size_t i, const char *path,
                   ff_error *err)
{
    FILE *f;
    int ok;

    if (i >= m->count)
        return ff_error_set(err, FF_ERR_ARG, "MNIST image %zu of %zu", i,
                            m->count);
    f = fopen(path, "wb");
    if (f == NULL)
        return ff_error_set(err, FF_ERR_IO, "%s: %s", path, strerror(errno));
    ok = fprintf(f, "P5\n%d %d\n255\n", FF_MNIST_SIDE, FF_MNIST_SIDE) > 0 &&
         fwrite(m->pixels + i * FF_MNIST_PIXELS, 1, FF_MNIST_PIXELS, f) ==
             FF_MNIST_PIXELS;
    if (fclose(f) != 0 || !ok)
        return ff_error_set(err, FF_ERR_IO, "%s: write failed", path);
    return FF_OK;
}
