/*
 * ff_image.c - image harmonisation: any PNG, JPEG or PGM file becomes a
 * FF_IMAGE_SIDE square of ink intensities in [0, 1].
 *
 * This is the one file of the project that compiles the stb_image and
 * stb_image_resize implementations.
 */
#include "ff_dataset.h"
#include "ff_dataset_util.h"

#include <stdlib.h>
#include <string.h>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNM
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
/* Zeroed allocations: stb may leave pixels of a damaged file unwritten,
 * and they must not carry whatever the heap held before. */
#define STBI_MALLOC(size) calloc(1, size)
#define STBI_REALLOC(p, size) realloc(p, size)
#define STBI_FREE(p) free(p)
#include <stb_image.h>

#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STBIR_DEFAULT_FILTER_DOWNSAMPLE STBIR_FILTER_TRIANGLE
#include <stb_image_resize.h>

/* Largest side we decode; bigger images are refused before decoding. */
#define IMAGE_MAX_SIDE 4096

/* Skips whitespace and '#' comments of a PNM header. */
static size_t
pnm_skip(const unsigned char *b, size_t len, size_t i)
{
    while (i < len) {
        if (b[i] == '#')
            while (i < len && b[i] != '\n')
                i++;
        else if (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')
            i++;
        else
            break;
    }
    return i;
}

/* Whether a PNM header is sane and a binary PGM/PPM (P5/P6) is 8-bit
 * (maxval 1..255) and holds all the pixels its header promises. Checked
 * before stb_image, which accepts truncated files, overflows an int on
 * header numbers of 10 digits and overruns its buffer on 16-bit files.
 * Other formats pass. */
static int
pnm_ok(const unsigned char *b, size_t len)
{
    unsigned long v[3];
    size_t i = 2;

    if (len < 2 || b[0] != 'P' || b[1] < '1' || b[1] > '6')
        return 1;
    for (int k = 0; k < 3; k++) {
        int ndigits = 0;
        i = pnm_skip(b, len, i);
        if (i >= len || b[i] < '0' || b[i] > '9')
            return 0;
        v[k] = 0;
        while (i < len && b[i] >= '0' && b[i] <= '9') {
            if (++ndigits > 6)
                return 0;
            v[k] = v[k] * 10 + (unsigned long)(b[i++] - '0');
        }
        if (k == 1 && (b[1] == '1' || b[1] == '4'))
            return 1; /* bitmaps have no maxval; stb refuses them anyway */
    }
    if (b[1] != '5' && b[1] != '6')
        return 1;
    /* 8-bit only: stb's 16-bit PNM path overruns its buffer. */
    if (v[2] < 1 || v[2] > 255)
        return 0;
    i++; /* the single whitespace byte before the pixels */
    unsigned long long need = (unsigned long long)v[0] * v[1] *
                              (b[1] == '6' ? 3u : 1u);
    return i <= len && len - i >= need;
}

/* Whether one DHT segment (bytes [p, end), after its length) lists at
 * most 256 codes per table. Bytes past the file read as 0, as in stb. */
static int
dht_ok(const unsigned char *b, size_t len, size_t p, size_t end)
{
    while (p < end) {
        size_t codes = 0;
        for (size_t k = 1; k <= 16; k++)
            codes += p + k < len ? b[p + k] : 0;
        if (codes > 256)
            return 0;
        p += 17 + codes;
    }
    return 1;
}

/* Whether the Huffman tables (DHT segments) of a JPEG are sane: no table
 * lists more than 256 codes. The stb_image of Debian 12 writes past its
 * tables on such files (stb issues 1289 and 1291), so they are refused
 * before stb sees them. The walk is as lenient as stb's: bytes between
 * segments (padding, entropy-coded data) are skipped up to the next
 * marker. Anything else odd is left for stb to judge. */
static int
jpeg_tables_ok(const unsigned char *b, size_t len)
{
    size_t i = 0;

    /* stb takes any number of 0xFF before the start-of-image marker. */
    while (i < len && b[i] == 0xFF)
        i++;
    if (i == 0 || i >= len || b[i] != 0xD8)
        return 1;
    i++;
    while (i < len) {
        if (b[i++] != 0xFF)
            continue;
        while (i < len && b[i] == 0xFF)
            i++;
        if (i >= len)
            return 1;
        unsigned m = b[i++];
        if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7))
            continue; /* stuffed byte or a marker without a length */
        if (m == 0xD9 || i + 2 > len)
            return 1;
        size_t end = i + ((size_t)b[i] << 8 | b[i + 1]);
        if (m == 0xC4 && !dht_ok(b, len, i + 2, end))
            return 0;
        i = end > i + 2 ? end : i + 2;
    }
    return 1;
}

/* Whether every chunk of a PNG fits in the file. stb_image grows its
 * buffer to a chunk's stated length before reading it, so a few hostile
 * bytes could make it allocate gigabytes. */
static int
png_chunks_ok(const unsigned char *b, size_t len)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G',
                                         '\r', '\n', 0x1A, '\n'};
    size_t i = 8;

    if (len < 8 || memcmp(b, sig, 8) != 0)
        return 1;
    while (i + 12 <= len) {
        size_t n = (size_t)b[i] << 24 | (size_t)b[i + 1] << 16 |
                   (size_t)b[i + 2] << 8 | b[i + 3];
        if (n > len - i - 12)
            return 0;
        if (memcmp(b + i + 4, "IEND", 4) == 0)
            return 1;
        i += 12 + n;
    }
    return 1; /* no IEND: stb decides */
}

/* Mean grey level (0..255) of the outermost ring of pixels. */
static double
border_mean(const unsigned char *px, int w, int h)
{
    double sum = 0.0;
    long count = 0;

    for (int x = 0; x < w; x++) {
        sum += px[x] + px[(size_t)(h - 1) * (size_t)w + (size_t)x];
        count += 2;
    }
    for (int y = 1; y < h - 1; y++) {
        sum += px[(size_t)y * (size_t)w] +
               px[(size_t)y * (size_t)w + (size_t)(w - 1)];
        count += 2;
    }
    return sum / (double)count;
}

/* Converts grey bytes to ink in [0, 1] on a zeroed square canvas of side
 * max(w, h), centred, inverting when the paper is light. */
static void
to_ink_square(const unsigned char *px, int w, int h, int invert,
              float *canvas, int side)
{
    int ox = (side - w) / 2, oy = (side - h) / 2;

    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float v = (float)px[(size_t)y * (size_t)w + (size_t)x] / 255.0f;
            canvas[(size_t)(y + oy) * (size_t)side + (size_t)(x + ox)] =
                invert ? 1.0f - v : v;
        }
}

/* Decodes, checks and harmonises the bytes of one image. */
static ff_status
image_from_memory(const char *path, const unsigned char *bytes, size_t len,
                  float out[FF_IMAGE_SIZE], ff_error *err)
{
    int w, h, comp, side, invert;
    unsigned char *px;
    float *canvas;

    /* Refuse broken and oversized images before stb decodes them. */
    if (!pnm_ok(bytes, len))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "%s: PNM header or pixels broken", path);
    if (!jpeg_tables_ok(bytes, len))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "%s: JPEG Huffman table with more than 256 codes",
                            path);
    if (!png_chunks_ok(bytes, len))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "%s: PNG chunk longer than the file", path);
    if (!stbi_info_from_memory(bytes, (int)len, &w, &h, &comp))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "%s: not a PNG, JPEG or PGM image (%s)", path,
                            stbi_failure_reason());
    if (w < 1 || h < 1 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "%s: %dx%d image outside 1..%d pixels a side",
                            path, w, h, IMAGE_MAX_SIDE);

    /* Decode to one grey channel (stb uses luminance weights). */
    px = stbi_load_from_memory(bytes, (int)len, &w, &h, &comp, 1);
    if (px == NULL)
        return ff_error_set(err, FF_ERR_FORMAT, "%s: cannot decode (%s)",
                            path, stbi_failure_reason());
    invert = border_mean(px, w, h) > 127.5;

    /* Pad to a square so that the digit keeps its aspect, then resize. */
    side = w > h ? w : h;
    canvas = calloc((size_t)side * (size_t)side, sizeof(float));
    if (canvas == NULL) {
        stbi_image_free(px);
        return ff_error_set(err, FF_ERR_NOMEM, "%s: no memory", path);
    }
    to_ink_square(px, w, h, invert, canvas, side);
    stbi_image_free(px);
    if (side == FF_IMAGE_SIDE) {
        memcpy(out, canvas, sizeof(float) * FF_IMAGE_SIZE);
    } else if (!stbir_resize_float(canvas, side, side, 0, out, FF_IMAGE_SIDE,
                                   FF_IMAGE_SIDE, 0, 1)) {
        free(canvas);
        return ff_error_set(err, FF_ERR_INTERNAL, "%s: resize failed", path);
    }
    free(canvas);

    /* Filters may overshoot a little: clamp to the stated range. */
    for (int i = 0; i < FF_IMAGE_SIZE; i++)
        out[i] = out[i] < 0.0f ? 0.0f : (out[i] > 1.0f ? 1.0f : out[i]);
    return FF_OK;
}

ff_status
ff_image_load(const char *path, float out[FF_IMAGE_SIZE], ff_error *err)
{
    unsigned char *bytes = NULL;
    size_t len = 0;
    ff_status st;

    st = ff_file_read_all(path, FF_FILE_MAX_BYTES, &bytes, &len, err);
    if (st != FF_OK)
        return st;
    st = image_from_memory(path, bytes, len, out, err);
    free(bytes);
    return st;
}
