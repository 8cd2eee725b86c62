/*
 * test_mutations.c - a deterministic mutation run over every decoder of
 * untrusted bytes (manifest line, pen CSV, images, WAV, text): each seed
 * input is mutated many times and fed to its decoder, which must answer
 * with a documented error or accept it - never crash, hang or give an
 * unexpected status (dsfuzz aborts then). Longer runs: the libFuzzer
 * target fuzz_dataset (see tests/dataset/CMakeLists.txt).
 */
#include <setjmp.h>
#include <sndfile.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

#include "dsfuzz.h"
#include "dstest.h"

#define ROUNDS 400

static char tmp[64];

static int
setup(void **state)
{
    (void)state;
    dstest_tempdir(tmp);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    dstest_rmtree(tmp);
    return 0;
}

static uint64_t
next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Tokens that tend to matter to parsers. */
static const char *const tokens[] = {
    "\"", "{", "}", ",", ":", "\n", "-1", "0", "99999999999", "1e309",
    "\\u0000", "\\ud800", "\xff", "\xc3", "nan", "P5\n", "\r\n", "[]",
    "null", "28 28\n255\n", "0:5-9:2", ".."};

/* Applies 1..4 random edits to buf (length *n, capacity cap). */
static void
mutate(uint8_t *buf, size_t *n, size_t cap, uint64_t *s)
{
    int edits = 1 + (int)(next(s) % 4);

    for (int e = 0; e < edits; e++) {
        size_t at = *n ? next(s) % *n : 0;
        switch (next(s) % 6) {
        case 0: /* flip a byte */
            if (*n)
                buf[at] ^= (uint8_t)(1u << (next(s) % 8));
            break;
        case 1: /* random byte */
            if (*n)
                buf[at] = (uint8_t)next(s);
            break;
        case 2: /* delete a run */
            if (*n) {
                size_t len = 1 + next(s) % 8;
                len = len > *n - at ? *n - at : len;
                memmove(buf + at, buf + at + len, *n - at - len);
                *n -= len;
            }
            break;
        case 3: { /* insert a token */
            const char *t = tokens[next(s) % (sizeof(tokens) /
                                              sizeof(tokens[0]))];
            size_t len = strlen(t);
            if (*n + len <= cap) {
                memmove(buf + at + len, buf + at, *n - at);
                memcpy(buf + at, t, len);
                *n += len;
            }
            break;
        }
        case 4: /* truncate */
            *n = at;
            break;
        default: { /* duplicate a chunk */
            size_t len = 1 + next(s) % 32;
            len = len > *n - at ? *n - at : len;
            if (*n + len <= cap) {
                memmove(buf + at + len, buf + at, *n - at);
                *n += len;
            }
            break;
        }
        }
    }
}

/* Runs ROUNDS mutations of seed through decoder kind. */
static void
run_kind(int kind, const uint8_t *seed, size_t len, uint64_t s)
{
    size_t cap = len * 2 + 256, accepted = 0;
    uint8_t *buf = malloc(cap);

    assert_non_null(buf);
    /* The seed itself must be accepted. */
    assert_int_equal(dsfuzz_one(kind, seed, len, tmp), 0);
    for (int r = 0; r < ROUNDS; r++) {
        size_t n = len;
        memcpy(buf, seed, len);
        mutate(buf, &n, cap, &s);
        accepted += dsfuzz_one(kind, buf, n, tmp) == 0;
    }
    printf("decoder %d: %d mutations, %zu accepted, the rest refused with "
           "a documented error\n", kind, ROUNDS, accepted);
    free(buf);
}

static void
test_mutate_manifest(void **state)
{
    static const char seed[] =
        "{\"id\":\"s/1\",\"time\":\"2024-03-05T10:00:00Z\",\"label\":3,"
        "\"text\":\"drei\",\"image\":\"images/x.pgm\",\"sensors\":{\"audio\":"
        "{\"file\":\"a.wav\"},\"pen\":{\"file\":\"p.csv\",\"rate_hz\":200}}}\n"
        "{\"id\":\"s/2\",\"time\":\"2024-03-05T10:04:00+01:00\",\"label\":9,"
        "\"text\":\"neun\"}\n";

    (void)state;
    run_kind(DSFUZZ_MANIFEST, (const uint8_t *)seed, sizeof(seed) - 1, 1);
}

static void
test_mutate_pen(void **state)
{
    char seed[2048] = "t,x,y,stroke\n";

    (void)state;
    for (int i = 0; i < 40; i++) {
        char line[64];
        snprintf(line, sizeof(line), "%.2f,%d,%d,%d\n", i * 0.01,
                 100 + (i * 37) % 50, 200 + (i * 11) % 80, i / 20);
        strcat(seed, line);
    }
    run_kind(DSFUZZ_PEN, (const uint8_t *)seed, strlen(seed), 2);
}

/* stb_image_write callback appending to a buffer. */
typedef struct membuf {
    uint8_t data[8192];
    size_t n;
} membuf;

static void
mem_write(void *ctx, void *data, int size)
{
    membuf *m = ctx;
    if (m->n + (size_t)size <= sizeof(m->data)) {
        memcpy(m->data + m->n, data, (size_t)size);
        m->n += (size_t)size;
    }
}

static void
test_mutate_images(void **state)
{
    uint8_t px[16 * 12];
    membuf png = {{0}, 0}, jpg = {{0}, 0};
    uint8_t pgm[15 + sizeof(px)];
    int head;

    (void)state;
    for (size_t i = 0; i < sizeof(px); i++)
        px[i] = (uint8_t)(i * 7);
    assert_true(stbi_write_png_to_func(mem_write, &png, 16, 12, 1, px, 16));
    assert_true(stbi_write_jpg_to_func(mem_write, &jpg, 16, 12, 1, px, 90));
    head = snprintf((char *)pgm, sizeof(pgm), "P5\n16 12\n255\n");
    memcpy(pgm + head, px, sizeof(px));
    run_kind(DSFUZZ_IMAGE, png.data, png.n, 3);
    run_kind(DSFUZZ_IMAGE, jpg.data, jpg.n, 4);
    run_kind(DSFUZZ_IMAGE, pgm, (size_t)head + sizeof(px), 5);
}

static void
test_mutate_wav(void **state)
{
    char path[4096];
    short pcm[800];
    SF_INFO info = {0};
    size_t n;

    (void)state;
    for (int i = 0; i < 800; i++)
        pcm[i] = (short)((i * 97) % 2000 - 1000);
    snprintf(path, sizeof(path), "%s/seed.wav", tmp);
    info.samplerate = 8000;
    info.channels = 1;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    assert_non_null(sf);
    assert_int_equal(sf_write_short(sf, pcm, 800), 800);
    sf_close(sf);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t buf[4096];
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    run_kind(DSFUZZ_AUDIO, buf, n, 6);
}

static void
test_mutate_text(void **state)
{
    static const char seed[] = "drei f\xc3\xbcnf \xe4\xb8\x83 sieben";

    (void)state;
    run_kind(DSFUZZ_TEXT, (const uint8_t *)seed, sizeof(seed) - 1, 7);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutate_manifest),
        cmocka_unit_test(test_mutate_pen),
        cmocka_unit_test(test_mutate_images),
        cmocka_unit_test(test_mutate_wav),
        cmocka_unit_test(test_mutate_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
