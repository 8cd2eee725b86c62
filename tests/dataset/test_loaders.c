/*
 * test_loaders.c - each modality loader on the real public files (through
 * FEDFUSE_DATA) and on files the test writes itself.
 */
#include <math.h>
#include <samplerate.h>
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

#include "dstest.h"
#include "ff_dataset.h"
#include "ff_sources.h"

/* A real FSDD clip used by the audio tests. */
#define FSDD_CLIP "fsdd/recordings/3_theo_12.wav"

/* ---- images ------------------------------------------------------------- */

static ff_mnist mnist;
static char tmp[64];

static int
setup(void **state)
{
    ff_error err = {0};

    (void)state;
    if (ff_mnist_load(dstest_data("mnist"), &mnist, &err) != FF_OK)
        fail_msg("MNIST: %s", ff_error_text(&err));
    dstest_tempdir(tmp);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    ff_mnist_cleanup(&mnist);
    dstest_rmtree(tmp);
    return 0;
}

/* Largest |a[i] - b[i]| and mean |a[i] - b[i]|. */
static double
max_diff(const float *a, const float *b, size_t n, double *mean)
{
    double mx = 0.0, sum = 0.0;

    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        mx = d > mx ? d : mx;
        sum += d;
    }
    if (mean != NULL)
        *mean = sum / (double)n;
    return mx;
}

/* MNIST image i as floats in [0, 1]. */
static void
mnist_float(size_t i, float *out)
{
    for (int k = 0; k < FF_IMAGE_SIZE; k++)
        out[k] = mnist.pixels[i * FF_MNIST_PIXELS + (size_t)k] / 255.0f;
}

/* An MNIST image written as PGM loads back as its pixels / 255. */
static void
test_image_pgm_roundtrip(void **state)
{
    static const size_t idx[] = {0, 1, 4242, 9999};
    float got[FF_IMAGE_SIZE], want[FF_IMAGE_SIZE];
    char path[4096];
    double worst = 0.0;
    ff_error err = {0};

    (void)state;
    assert_int_equal(mnist.count, 10000);
    for (size_t k = 0; k < sizeof(idx) / sizeof(idx[0]); k++) {
        snprintf(path, sizeof(path), "%s/m%zu.pgm", tmp, idx[k]);
        assert_int_equal(ff_mnist_write_pgm(&mnist, idx[k], path, &err),
                         FF_OK);
        assert_int_equal(ff_image_load(path, got, &err), FF_OK);
        mnist_float(idx[k], want);
        double d = max_diff(got, want, FF_IMAGE_SIZE, NULL);
        worst = d > worst ? d : worst;
    }
    printf("PGM round trip: largest difference %.3g (tolerance 1e-6)\n",
           worst);
    assert_true(worst <= 1e-6);
}

/* Dark ink on light paper (RGB PNG) is inverted to 1 = ink. */
static void
test_image_png_light_paper(void **state)
{
    unsigned char rgb[FF_IMAGE_SIZE * 3];
    float got[FF_IMAGE_SIZE], want[FF_IMAGE_SIZE];
    char path[4096];
    ff_error err = {0};

    (void)state;
    for (int k = 0; k < FF_IMAGE_SIZE; k++)
        for (int c = 0; c < 3; c++)
            rgb[k * 3 + c] = (unsigned char)(255 - mnist.pixels[7 * 784 + k]);
    snprintf(path, sizeof(path), "%s/light.png", tmp);
    assert_true(stbi_write_png(path, 28, 28, 3, rgb, 28 * 3));
    assert_int_equal(ff_image_load(path, got, &err), FF_OK);
    mnist_float(7, want);
    double d = max_diff(got, want, FF_IMAGE_SIZE, NULL);
    printf("PNG light paper: largest difference %.3g (tolerance 1e-6)\n", d);
    assert_true(d <= 1e-6);
}

/* A JPEG (lossy) of the same image stays close. */
static void
test_image_jpeg(void **state)
{
    float got[FF_IMAGE_SIZE], want[FF_IMAGE_SIZE];
    char path[4096];
    double mean;
    ff_error err = {0};

    (void)state;
    snprintf(path, sizeof(path), "%s/m3.jpg", tmp);
    assert_true(stbi_write_jpg(path, 28, 28, 1, mnist.pixels + 3 * 784, 95));
    assert_int_equal(ff_image_load(path, got, &err), FF_OK);
    mnist_float(3, want);
    double d = max_diff(got, want, FF_IMAGE_SIZE, &mean);
    printf("JPEG q95: largest difference %.3f, mean %.4f (tolerance: "
           "mean 0.02, largest 0.3)\n", d, mean);
    assert_true(mean <= 0.02);
    assert_true(d <= 0.3);
}

/* An image three times larger is resized back close to the original. */
static void
test_image_resized(void **state)
{
    unsigned char big[84 * 84];
    float got[FF_IMAGE_SIZE], want[FF_IMAGE_SIZE];
    char path[4096];
    double mean;
    ff_error err = {0};

    (void)state;
    for (int y = 0; y < 84; y++)
        for (int x = 0; x < 84; x++)
            big[y * 84 + x] = mnist.pixels[11 * 784 + (y / 3) * 28 + x / 3];
    snprintf(path, sizeof(path), "%s/big.png", tmp);
    assert_true(stbi_write_png(path, 84, 84, 1, big, 84));
    assert_int_equal(ff_image_load(path, got, &err), FF_OK);
    mnist_float(11, want);
    double d = max_diff(got, want, FF_IMAGE_SIZE, &mean);
    printf("84x84 -> 28x28: largest difference %.3f, mean %.4f "
           "(tolerance: mean 0.05)\n", d, mean);
    assert_true(mean <= 0.05);
}

/* A wide image is padded to a square, not stretched: a horizontal bar in
 * the middle of a 60x30 image stays a thin bar in the middle rows. */
static void
test_image_keeps_aspect(void **state)
{
    unsigned char wide[60 * 30] = {0};
    float got[FF_IMAGE_SIZE];
    char path[4096];
    ff_error err = {0};
    double top = 0.0, mid = 0.0;

    (void)state;
    for (int y = 10; y < 20; y++)
        memset(wide + y * 60, 255, 60);
    snprintf(path, sizeof(path), "%s/wide.png", tmp);
    assert_true(stbi_write_png(path, 60, 30, 1, wide, 60));
    assert_int_equal(ff_image_load(path, got, &err), FF_OK);
    for (int x = 0; x < 28; x++) {
        for (int y = 0; y < 10; y++)
            top = fmax(top, got[y * 28 + x]);
        mid += got[14 * 28 + x] / 28.0;
    }
    printf("aspect: rows 0-9 peak %.3f (want < 0.02), row 14 mean %.3f "
           "(want > 0.9)\n", top, mid);
    assert_true(top < 0.02);
    assert_true(mid > 0.9);
}

/* A JPEG whose Huffman table claims too many codes is refused before the
 * decoder sees it. */
static void
test_image_bad_jpeg_table(void **state)
{
    float got[FF_IMAGE_SIZE];
    char path[4096];
    unsigned char *b;
    size_t len = 0, at = 0;
    FILE *f;
    ff_error err = {0};

    (void)state;
    snprintf(path, sizeof(path), "%s/table.jpg", tmp);
    assert_true(stbi_write_jpg(path, 28, 28, 1, mnist.pixels, 90));
    assert_int_equal(ff_image_load(path, got, &err), FF_OK);
    f = fopen(path, "rb");
    assert_non_null(f);
    b = malloc(65536);
    assert_non_null(b);
    len = fread(b, 1, 65536, f);
    fclose(f);
    for (size_t i = 2; i + 1 < len && at == 0; i++)
        if (b[i] == 0xFF && b[i + 1] == 0xC4)
            at = i;
    assert_true(at > 0);
    memset(b + at + 5, 0xFF, 16); /* 16 counts of 255 codes */
    dstest_write(tmp, "table.jpg", b, len, path);
    assert_int_equal(ff_image_load(path, got, &err), FF_ERR_FORMAT);
    printf("bad JPEG table: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "Huffman"));
    free(b);
}

static void
test_image_errors(void **state)
{
    float got[FF_IMAGE_SIZE];
    char path[4096];
    ff_error err = {0};

    (void)state;
    dstest_write_str(tmp, "not.png", "this is not an image\n", path);
    assert_int_equal(ff_image_load(path, got, &err), FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "not.png"));
    snprintf(path, sizeof(path), "%s/missing.png", tmp);
    assert_int_equal(ff_image_load(path, got, &err), FF_ERR_IO);
}

/* ---- audio -------------------------------------------------------------- */

/* Reads a mono WAV fully; returns samples (malloc) and sets n, rate. */
static float *
read_wav(const char *path, size_t *n, int *rate)
{
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    float *buf;

    if (sf == NULL)
        fail_msg("%s: %s", path, sf_strerror(NULL));
    assert_int_equal(info.channels, 1);
    buf = malloc(sizeof(float) * (size_t)info.frames);
    assert_non_null(buf);
    *n = (size_t)sf_readf_float(sf, buf, info.frames);
    *rate = info.samplerate;
    sf_close(sf);
    return buf;
}

/* Writes float samples as a WAV with the given rate and channels. */
static void
write_wav(const char *path, const float *pcm, size_t frames, int rate,
          int channels)
{
    SF_INFO info = {0};
    SNDFILE *sf;

    info.samplerate = rate;
    info.channels = channels;
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    sf = sf_open(path, SFM_WRITE, &info);
    if (sf == NULL)
        fail_msg("%s: %s", path, sf_strerror(NULL));
    assert_int_equal(sf_writef_float(sf, pcm, (sf_count_t)frames),
                     (sf_count_t)frames);
    sf_close(sf);
}

static int
frames_of(size_t n)
{
    if (n <= FF_AUDIO_WINDOW)
        return 1;
    size_t f = (n - FF_AUDIO_WINDOW) / FF_AUDIO_HOP + 1;
    return f > FF_AUDIO_FRAMES ? FF_AUDIO_FRAMES : (int)f;
}

/* A real clip gives finite features, zero mean and unit variance over
 * the frames the clip has, padded with the clip's minimum. */
static void
test_audio_fsdd_unit_variance(void **state)
{
    float f[FF_AUDIO_SIZE];
    size_t n;
    int rate;
    float *pcm = read_wav(dstest_data(FSDD_CLIP), &n, &rate);
    ff_error err = {0};
    double sum = 0.0, sq = 0.0;
    float lo = INFINITY;

    (void)state;
    free(pcm);
    assert_int_equal(rate, 8000);
    assert_int_equal(ff_audio_load_wav(dstest_data(FSDD_CLIP), f, &err),
                     FF_OK);
    int nf = frames_of(n);
    for (int b = 0; b < FF_AUDIO_BANDS; b++)
        for (int t = 0; t < nf; t++) {
            float v = f[b * FF_AUDIO_FRAMES + t];
            assert_true(isfinite(v));
            sum += v;
            sq += (double)v * v;
            lo = v < lo ? v : lo;
        }
    double cnt = (double)nf * FF_AUDIO_BANDS, mean = sum / cnt;
    double var = sq / cnt - mean * mean;
    printf("FSDD %s: %zu samples, %d frames, mean %.2e, variance %.6f "
           "(tolerance 1e-4)\n", FSDD_CLIP, n, nf, mean, var);
    assert_true(fabs(mean) < 1e-4);
    assert_true(fabs(var - 1.0) < 1e-4);
    for (int b = 0; b < FF_AUDIO_BANDS; b++)
        for (int t = nf; t < FF_AUDIO_FRAMES; t++)
            assert_true(f[b * FF_AUDIO_FRAMES + t] == lo);
}

/* The same clip resampled to 16 kHz (by libsamplerate, written by
 * libsndfile) gives features close to the 8 kHz ones. */
static void
test_audio_16k_close(void **state)
{
    float a[FF_AUDIO_SIZE], b[FF_AUDIO_SIZE];
    char path[4096];
    size_t n;
    int rate;
    float *pcm = read_wav(dstest_data(FSDD_CLIP), &n, &rate);
    float *up = malloc(sizeof(float) * (2 * n + 64));
    SRC_DATA d = {0};
    ff_error err = {0};
    double worst = 0.0, sum = 0.0, worst_low = 0.0;

    (void)state;
    assert_non_null(up);
    d.data_in = pcm;
    d.input_frames = (long)n;
    d.data_out = up;
    d.output_frames = (long)(2 * n + 64);
    d.src_ratio = 2.0;
    assert_int_equal(src_simple(&d, SRC_SINC_BEST_QUALITY, 1), 0);
    snprintf(path, sizeof(path), "%s/clip16k.wav", tmp);
    write_wav(path, up, (size_t)d.output_frames_gen, 16000, 1);

    assert_int_equal(ff_audio_load_wav(dstest_data(FSDD_CLIP), a, &err),
                     FF_OK);
    assert_int_equal(ff_audio_load_wav(path, b, &err), FF_OK);
    int nf = frames_of(n);
    for (int band = 0; band < FF_AUDIO_BANDS; band++)
        for (int t = 0; t < nf; t++) {
            double diff = fabs(a[band * FF_AUDIO_FRAMES + t] -
                               b[band * FF_AUDIO_FRAMES + t]);
            worst = diff > worst ? diff : worst;
            if (band < FF_AUDIO_BANDS - 4)
                worst_low = diff > worst_low ? diff : worst_low;
            sum += diff;
        }
    double mean = sum / ((double)nf * FF_AUDIO_BANDS);
    /* The top 4 bands reach the Nyquist edge, where the two resamplers'
     * anti-alias filters differ; they count only in the mean. */
    printf("16 kHz vs 8 kHz: mean |diff| %.4f (tolerance 0.05), largest "
           "%.3f in the 28 bands below 3.04 kHz (tolerance 0.1), largest in "
           "all bands %.3f\n", mean, worst_low, worst);
    assert_true(mean < 0.05);
    assert_true(worst_low < 0.1);
    free(pcm);
    free(up);
}

/* A 1 kHz tone puts its energy in the band whose centre is nearest. */
static void
test_audio_tone_band(void **state)
{
    float pcm[8000], f[FF_AUDIO_SIZE];
    ff_error err = {0};
    double top = 2595.0 * log10(1.0 + 4000.0 / 700.0), best = 1e9;
    int want = -1, got = 0;

    (void)state;
    for (int i = 0; i < 8000; i++)
        pcm[i] = 0.5f * (float)sin(2.0 * M_PI * 1000.0 * i / 8000.0);
    assert_int_equal(ff_audio_features(pcm, 8000, f, &err), FF_OK);
    for (int b = 0; b < FF_AUDIO_BANDS; b++) {
        double mel = top * (b + 1) / (FF_AUDIO_BANDS + 1);
        double hz = 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
        if (fabs(hz - 1000.0) < best) {
            best = fabs(hz - 1000.0);
            want = b;
        }
        if (f[b * FF_AUDIO_FRAMES + 10] > f[got * FF_AUDIO_FRAMES + 10])
            got = b;
    }
    printf("1 kHz tone: loudest band %d, expected %d\n", got, want);
    assert_int_equal(got, want);
}

/* Only the first channel of a stereo file is used. */
static void
test_audio_first_channel(void **state)
{
    float a[FF_AUDIO_SIZE], b[FF_AUDIO_SIZE];
    char path[4096];
    size_t n;
    int rate;
    float *pcm = read_wav(dstest_data(FSDD_CLIP), &n, &rate);
    float *st = malloc(sizeof(float) * 2 * n);
    ff_error err = {0};

    (void)state;
    assert_non_null(st);
    for (size_t i = 0; i < n; i++) {
        st[2 * i] = pcm[i];
        st[2 * i + 1] = (float)((i * 7919) % 101) / 101.0f - 0.5f;
    }
    snprintf(path, sizeof(path), "%s/stereo.wav", tmp);
    write_wav(path, st, n, 8000, 2);
    assert_int_equal(ff_audio_features(pcm, n, a, &err), FF_OK);
    assert_int_equal(ff_audio_load_wav(path, b, &err), FF_OK);
    double d = max_diff(a, b, FF_AUDIO_SIZE, NULL);
    printf("stereo first channel vs mono: largest difference %.2e "
           "(tolerance 1e-4)\n", d);
    assert_true(d < 1e-4);
    free(pcm);
    free(st);
}

static void
test_audio_errors(void **state)
{
    float f[FF_AUDIO_SIZE], nan_pcm[4] = {0.0f, NAN, 0.0f, 0.0f};
    char path[4096];
    ff_error err = {0};

    (void)state;
    dstest_write_str(tmp, "noise.wav", "RIFF but not really", path);
    assert_int_equal(ff_audio_load_wav(path, f, &err), FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "noise.wav"));
    snprintf(path, sizeof(path), "%s/absent.wav", tmp);
    assert_int_equal(ff_audio_load_wav(path, f, &err), FF_ERR_IO);
    assert_int_equal(ff_audio_features(nan_pcm, 4, f, &err),
                     FF_ERR_NONFINITE);
    assert_int_equal(ff_audio_features(nan_pcm, 0, f, &err), FF_ERR_FORMAT);
}

/* ---- pen ---------------------------------------------------------------- */

/* Two vertical strokes of length 10, 5 units apart: the resampled points
 * follow them exactly and the lift falls on the first point of the
 * second stroke. */
static void
test_pen_two_strokes(void **state)
{
    double x[] = {0, 0, 0, 5, 5}, y[] = {10, 4, 0, 10, 0};
    int stroke[] = {0, 0, 0, 1, 1};
    float f[FF_PEN_SIZE];
    ff_error err = {0};
    double worst = 0.0;
    int lifts = 0, lift_at = -1;

    (void)state;
    assert_int_equal(ff_pen_features(x, y, stroke, 5, f, &err), FF_OK);
    for (int j = 0; j < FF_PEN_POINTS; j++) {
        double s = 20.0 * j / (FF_PEN_POINTS - 1);
        double ex = s <= 10.0 ? 0.0 : 5.0;
        double ey = s <= 10.0 ? 10.0 - s : 10.0 - (s - 10.0);
        /* centre (2.5, 5), scale 10 */
        ex = (ex - 2.5) / 10.0;
        ey = (ey - 5.0) / 10.0;
        worst = fmax(worst, fabs(f[j] - ex));
        worst = fmax(worst, fabs(f[FF_PEN_POINTS + j] - ey));
        if (f[4 * FF_PEN_POINTS + j] != 0.0f) {
            lifts++;
            lift_at = j;
        }
    }
    printf("two strokes: largest position error %.2e (tolerance 1e-6), "
           "lift at point %d\n", worst, lift_at);
    assert_true(worst < 1e-6);
    assert_int_equal(lifts, 1);
    assert_int_equal(lift_at, 32); /* s = 10.16, past the first stroke */
    assert_true(fabs(f[2 * FF_PEN_POINTS + 32] - 0.5) < 1e-6); /* dx jump */
}

/* Writes a w x h PGM of mid grey with a dark first row. */
static void
write_pgm(const char *name, int w, int h, char *path)
{
    size_t n = (size_t)w * (size_t)h;
    unsigned char *buf = malloc(n + 32);
    int head;

    assert_non_null(buf);
    head = snprintf((char *)buf, 32, "P5\n%d %d\n255\n", w, h);
    memset(buf + head, 128, n);
    memset(buf + head, 0, (size_t)w);
    dstest_write(tmp, name, buf, (size_t)head + n, path);
    free(buf);
}

/* Images are capped at 4096 pixels a side, read from the header before
 * any pixel is decoded: 4096 x 2 loads, 4097 x 1 and 1 x 4097 do not. */
static void
test_image_size_cap(void **state)
{
    float out[FF_IMAGE_SIZE];
    char path[4096];
    ff_error err = {0};

    (void)state;
    write_pgm("wide-ok.pgm", 4096, 2, path);
    assert_int_equal(ff_image_load(path, out, &err), FF_OK);
    write_pgm("wide.pgm", 4097, 1, path);
    assert_int_equal(ff_image_load(path, out, &err), FF_ERR_FORMAT);
    printf("4097 x 1: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "4097x1"));
    assert_non_null(strstr(err.msg, "wide.pgm"));
    write_pgm("tall.pgm", 1, 4097, path);
    assert_int_equal(ff_image_load(path, out, &err), FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "1x4097"));
}

/* 1 when all n values are finite. */
static int
all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* Writes a pen CSV of n points (t = i / 200 s, stroke 0). */
static void
write_pen_csv(const char *name, const double *x, const double *y, size_t n,
              char *path)
{
    size_t cap = 64 + n * 96;
    char *text = malloc(cap);
    size_t len = 0;

    assert_non_null(text);
    len += (size_t)snprintf(text, cap, "t,x,y,stroke\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "%.3f,%.17g,%.17g,0\n",
                                (double)i / 200.0, x[i], y[i]);
    dstest_write_str(tmp, name, text, path);
    free(text);
}

/* Huge but finite coordinates (1e308, DBL_MAX, 40 points jumping by 1e307)
 * give finite features equal to those of the same trace scaled down by
 * 1e-300 (the features are scale-free). Before the fix they were NaN. */
static void
test_pen_huge_coordinates(void **state)
{
    static const double big[][2] = {{1e308, 1e-300}, {1e307, 1e-300},
                                    {1.7976931348623157e308, 1e-300}};
    double x[40], y[40], xs[40], ys[40];
    float f[FF_PEN_SIZE], g[FF_PEN_SIZE];
    char path[4096];
    ff_error err = {0};
    double worst = 0.0;

    (void)state;
    for (size_t c = 0; c < 3; c++) {
        double v = big[c][0], k = big[c][1];
        size_t n;

        /* The adversarial triangle, then 40 alternating points. */
        if (c != 1) {
            double tx[3] = {v, -v, 0}, ty[3] = {0, 0, v};
            memcpy(x, tx, sizeof(tx));
            memcpy(y, ty, sizeof(ty));
            n = 3;
        } else {
            for (size_t i = 0; i < 40; i++) {
                x[i] = i % 2 ? v : 0.0;
                y[i] = v / 100.0 * (double)i;
            }
            n = 40;
        }
        for (size_t i = 0; i < n; i++) {
            xs[i] = x[i] * k;
            ys[i] = y[i] * k;
        }
        write_pen_csv("huge.csv", x, y, n, path);
        ff_status st = ff_pen_load_csv(path, 0.0, f, &err);
        if (st != FF_OK)
            fail_msg("case %zu: %s", c, ff_error_text(&err));
        assert_true(all_finite(f, FF_PEN_SIZE));
        int stroke[40] = {0};
        assert_int_equal(ff_pen_features(xs, ys, stroke, n, g, &err), FF_OK);
        worst = fmax(worst, max_diff(f, g, FF_PEN_SIZE, NULL));
    }
    printf("huge pen coordinates: features finite; largest difference to "
           "the scaled-down trace %.2e (tolerance 1e-5)\n", worst);
    assert_true(worst < 1e-5);
}

/* A UNIPEN digit written as CSV loads to the features of its points. */
static void
test_pen_unipen_csv(void **state)
{
    static const char *const donors[] = {"apb", "ced"};
    ff_unipen u;
    ff_error err = {0};
    float a[FF_PEN_SIZE], b[FF_PEN_SIZE];
    char path[4096];
    size_t napb = 0, nced = 0, point_form = 0;

    (void)state;
    assert_int_equal(ff_unipen_load(dstest_data("unipen-1a"), donors, 2, &u,
                                    &err), FF_OK);
    for (size_t i = 0; i < u.count; i++)
        *(u.samples[i].donor == 0 ? &napb : &nced) += 1;
    printf("UNIPEN apb %zu digits, ced %zu digits, %zu segments, %zu "
           "unresolved\n", napb, nced, u.stats.segments,
           u.stats.unresolved);
    /* The README's counts: apb 2033, ced 1369 (incl. point forms). */
    assert_int_equal(napb, 2033);
    assert_int_equal(nced, 1369);
    assert_int_equal(u.stats.unresolved, 0);
    /* Point forms: "426:18-426:68" is points 18..68 of one component;
     * "468,471" is a list of two components. */
    for (size_t i = 0; i < u.count; i++) {
        const ff_unipen_sample *p = &u.samples[i];
        if (strcmp(p->source, "ced/nank4257_s_12.dat#13") == 0) {
            assert_int_equal(p->label, 0);
            assert_int_equal(p->npoints, 51);
            point_form++;
        } else if (strcmp(p->source, "ced/flad4341_s_jh.dat#20") == 0) {
            assert_int_equal(p->label, 9);
            assert_int_equal(u.stroke[p->first + p->npoints - 1], 1);
            point_form++;
        }
    }
    assert_int_equal(point_form, 2);

    /* Sample 5 of apb: CSV round trip, then the loader's features. */
    const ff_unipen_sample *s = &u.samples[5];
    double *x = malloc(sizeof(double) * s->npoints);
    double *y = malloc(sizeof(double) * s->npoints);
    assert_non_null(x);
    assert_non_null(y);
    for (size_t j = 0; j < s->npoints; j++) {
        x[j] = u.x[s->first + j];
        y[j] = u.y[s->first + j];
    }
    assert_int_equal(ff_pen_features(x, y, u.stroke + s->first, s->npoints,
                                     a, &err), FF_OK);
    snprintf(path, sizeof(path), "%s/pen.csv", tmp);
    assert_int_equal(ff_unipen_write_csv(&u, 5, path, &err), FF_OK);
    assert_int_equal(ff_pen_load_csv(path, s->rate_hz, b, &err), FF_OK);
    double d = max_diff(a, b, FF_PEN_SIZE, NULL);
    double w = 0.0, h = 0.0, x0 = 1, x1 = -1, y0 = 1, y1 = -1;
    for (int j = 0; j < FF_PEN_POINTS; j++) {
        x0 = fmin(x0, b[j]);
        x1 = fmax(x1, b[j]);
        y0 = fmin(y0, b[FF_PEN_POINTS + j]);
        y1 = fmax(y1, b[FF_PEN_POINTS + j]);
    }
    w = x1 - x0;
    h = y1 - y0;
    printf("UNIPEN %s (label %d, %zu points, %.0f Hz): CSV vs direct "
           "largest difference %.2e (tolerance 1e-6); box %.3f x %.3f\n",
           s->source, s->label, s->npoints, s->rate_hz, d, w, h);
    assert_true(d < 1e-6);
    assert_true(x0 >= -0.5 - 1e-6 && x1 <= 0.5 + 1e-6);
    assert_true(y0 >= -0.5 - 1e-6 && y1 <= 0.5 + 1e-6);
    assert_true(fmax(w, h) > 0.8); /* the larger side spans the box */

    /* The stated rate is checked: 200 Hz does not match 60 Hz data. */
    assert_int_equal(ff_pen_load_csv(path, 200.0, b, &err), FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "rate_hz"));
    free(x);
    free(y);
    ff_unipen_cleanup(&u);
}

static void
test_pen_csv_errors(void **state)
{
    float f[FF_PEN_SIZE];
    char path[4096];
    ff_error err = {0};

    (void)state;
    dstest_write_str(tmp, "h.csv", "x,y,t,stroke\n0,0,0,0\n", path);
    assert_int_equal(ff_pen_load_csv(path, 0, f, &err), FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "h.csv:1:"));

    dstest_write_str(tmp, "t.csv", "t,x,y,stroke\n0,0,0,0\n0.01,1,1,0\n"
                     "0.005,2,2,0\n", path);
    assert_int_equal(ff_pen_load_csv(path, 0, f, &err), FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "t.csv:4:"));
    assert_non_null(strstr(err.msg, "time"));

    dstest_write_str(tmp, "n.csv", "t,x,y,stroke\n0,nan,0,0\n0.1,1,1,0\n",
                     path);
    assert_int_equal(ff_pen_load_csv(path, 0, f, &err), FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "n.csv:2:"));

    dstest_write_str(tmp, "one.csv", "t,x,y,stroke\n0,1,1,0\n", path);
    assert_int_equal(ff_pen_load_csv(path, 0, f, &err), FF_ERR_FORMAT);
    printf("pen CSV errors: last message \"%s\"\n", err.msg);
}

/* ---- text --------------------------------------------------------------- */

static void
test_cldr_en_de(void **state)
{
    static const char *const en[10] = {"zero", "one", "two", "three",
                                       "four", "five", "six", "seven",
                                       "eight", "nine"};
    static const char *const de[10] = {"null", "eins", "zwei", "drei",
                                       "vier", "f\xc3\xbcnf", "sechs",
                                       "sieben", "acht", "neun"};
    ff_cldr c;
    ff_error err = {0};

    (void)state;
    assert_int_equal(ff_cldr_load(dstest_data("cldr-rbnf"), &c, &err),
                     FF_OK);
    printf("CLDR: %zu usable locales, %zu files skipped\n", c.count,
           c.skipped);
    assert_true(c.count >= 80);
    const ff_cldr_locale *e = ff_cldr_find(&c, "en");
    const ff_cldr_locale *g = ff_cldr_find(&c, "de");
    assert_non_null(e);
    assert_non_null(g);
    for (int d = 0; d < 10; d++) {
        assert_string_equal(e->words[d], en[d]);
        assert_string_equal(g->words[d], de[d]);
    }
    assert_null(ff_cldr_find(&c, "root")); /* only inherits: skipped */
    ff_cldr_cleanup(&c);
}

/* FNV-1a (32 bit) of a byte string, written here from the definition. */
static unsigned
fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h % FF_TEXT_BUCKETS;
}

static void
test_text_ngrams(void **state)
{
    uint16_t a[FF_TEXT_MAX_NGRAMS], b[FF_TEXT_MAX_NGRAMS];
    char many[2048] = "";

    (void)state;
    /* "<drei>": 6 unigrams + 5 bigrams + 4 trigrams, position-major. */
    assert_int_equal(ff_text_features("drei", a), 15);
    assert_int_equal(a[0], fnv1a("<", 1));
    assert_int_equal(a[1], fnv1a("<d", 2));
    assert_int_equal(a[2], fnv1a("<dr", 3));
    assert_int_equal(a[14], fnv1a(">", 1));
    /* ASCII is lower-cased; other code points are kept whole. */
    assert_int_equal(ff_text_features("DREI", b), 15);
    assert_memory_equal(a, b, sizeof(uint16_t) * 15);
    assert_int_equal(ff_text_features("f\xc3\xbcnf", a), 15);
    assert_int_equal(a[3], fnv1a("f", 1));
    assert_int_equal(a[4], fnv1a("f\xc3\xbc", 3));
    /* Two words are two padded words. */
    assert_int_equal(ff_text_features("a b", a), 12);
    assert_int_equal(a[6], fnv1a("<", 1));
    /* Invalid UTF-8 and empty text are refused. */
    assert_int_equal(ff_text_features("\xff", a), -1);
    assert_int_equal(ff_text_features("\xc0\xaf", a), -1);     /* overlong */
    assert_int_equal(ff_text_features("\xed\xa0\x80", a), -1); /* surrogate */
    assert_int_equal(ff_text_features("ok \xe2\x82", a), -1);  /* cut */
    assert_int_equal(ff_text_features("", a), -1);
    assert_int_equal(ff_text_features(" \t ", a), -1);
    /* At most FF_TEXT_MAX_NGRAMS ids. */
    for (int i = 0; i < 100; i++)
        strcat(many, "sieben ");
    assert_int_equal(ff_text_features(many, a), FF_TEXT_MAX_NGRAMS);
    for (int i = 0; i < FF_TEXT_MAX_NGRAMS; i++)
        assert_true(a[i] < FF_TEXT_BUCKETS);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_pgm_roundtrip),
        cmocka_unit_test(test_image_png_light_paper),
        cmocka_unit_test(test_image_jpeg),
        cmocka_unit_test(test_image_resized),
        cmocka_unit_test(test_image_keeps_aspect),
        cmocka_unit_test(test_image_bad_jpeg_table),
        cmocka_unit_test(test_image_errors),
        cmocka_unit_test(test_image_size_cap),
        cmocka_unit_test(test_audio_fsdd_unit_variance),
        cmocka_unit_test(test_audio_16k_close),
        cmocka_unit_test(test_audio_tone_band),
        cmocka_unit_test(test_audio_first_channel),
        cmocka_unit_test(test_audio_errors),
        cmocka_unit_test(test_pen_two_strokes),
        cmocka_unit_test(test_pen_unipen_csv),
        cmocka_unit_test(test_pen_csv_errors),
        cmocka_unit_test(test_pen_huge_coordinates),
        cmocka_unit_test(test_cldr_en_de),
        cmocka_unit_test(test_text_ngrams),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
