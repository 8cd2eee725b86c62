/*
 * test_manifest.c - the site manifest: a good manifest loads every
 * modality as the loaders do; each kind of malformed line is an error that
 * names file:line and the field; missing files leave the modality absent
 * and are counted; hostile text is just text.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sndfile.h>

#include "dstest.h"
#include "ff_dataset.h"

#define FSDD_CLIP "fsdd/recordings/7_george_20.wav"

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

/* Writes a 28x28 PGM with a vertical bar at columns 12..15. */
static void
write_bar_pgm(const char *dir, const char *name, char *path)
{
    unsigned char buf[15 + 784];
    int head = snprintf((char *)buf, sizeof(buf), "P5\n28 28\n255\n");

    memset(buf + head, 0, 784);
    for (int y = 4; y < 24; y++)
        memset(buf + head + y * 28 + 12, 255, 4);
    dstest_write(dir, name, buf, (size_t)head + 784, path);
}

/* Loads manifest text; returns the status and leaves the message in err. */
static ff_status
load_text(const char *name, const char *text, ff_sample_set *set,
          ff_load_report *rep, ff_error *err)
{
    char path[4096];

    dstest_write_str(tmp, name, text, path);
    memset(err, 0, sizeof(*err));
    return ff_dataset_load(path, set, rep, err);
}

/* A good manifest: every modality, relative and absolute paths, unknown
 * fields, CRLF line ends, a blank line. */
static void
test_manifest_good(void **state)
{
    char pgm[4096], csv[4096], manifest[8192];
    ff_sample_set set;
    ff_load_report rep;
    ff_error err = {0};
    float img[FF_IMAGE_SIZE], aud[FF_AUDIO_SIZE], pen[FF_PEN_SIZE];
    uint16_t ids[FF_TEXT_MAX_NGRAMS];

    (void)state;
    char sub[4096];
    snprintf(sub, sizeof(sub), "%s/images", tmp);
    assert_int_equal(mkdir(sub, 0755), 0);
    write_bar_pgm(sub, "a.pgm", pgm);
    dstest_write_str(tmp, "a.csv", "t,x,y,stroke\n0,0,0,0\n0.01,0,5,0\n"
                     "0.02,0,10,0\n0.05,4,10,1\n0.06,4,0,1\n", csv);
    snprintf(manifest, sizeof(manifest),
             "{\"id\":\"s/1\",\"time\":\"2024-03-05T10:00:00Z\",\"label\":7,"
             "\"text\":\"sieben\",\"image\":\"images/a.pgm\",\"sensors\":{"
             "\"audio\":{\"file\":\"%s\"},\"pen\":{\"file\":\"a.csv\","
             "\"rate_hz\":100}},\"ward\":\"B\",\"extra\":[1,2]}\r\n"
             "\n"
             "{\"id\":\"s/2\",\"time\":\"2024-03-05\",\"label\":0,"
             "\"text\":\"null\",\"sensors\":{\"thermo\":{\"file\":\"x\"}}}\r\n"
             "{\"id\":\"s/3\",\"time\":\"2024-03-05T10:00+01:00\","
             "\"label\":7,\"image\":\"%s\"}\n",
             dstest_data(FSDD_CLIP), pgm);
    assert_int_equal(load_text("good.jsonl", manifest, &set, &rep, &err),
                     FF_OK);
    assert_int_equal(set.count, 3);
    assert_int_equal(rep.records, 3);
    assert_int_equal(rep.present[FF_MOD_IMAGE], 2);
    assert_int_equal(rep.present[FF_MOD_AUDIO], 1);
    assert_int_equal(rep.present[FF_MOD_PEN], 1);
    assert_int_equal(rep.present[FF_MOD_TEXT], 2);
    assert_int_equal(rep.label_counts[7], 2);
    assert_int_equal(rep.label_counts[0], 1);
    assert_int_equal(set.items[0].present, FF_MOD_ALL);
    assert_int_equal(set.items[1].present, FF_MOD_BIT(FF_MOD_TEXT));
    assert_int_equal(set.items[2].present, FF_MOD_BIT(FF_MOD_IMAGE));

    /* Each modality equals what its loader gives on the same file. */
    assert_int_equal(ff_image_load(pgm, img, &err), FF_OK);
    assert_memory_equal(set.items[0].image, img, sizeof(img));
    assert_int_equal(ff_audio_load_wav(dstest_data(FSDD_CLIP), aud, &err),
                     FF_OK);
    assert_memory_equal(set.items[0].audio, aud, sizeof(aud));
    assert_int_equal(ff_pen_load_csv(csv, 100, pen, &err), FF_OK);
    assert_memory_equal(set.items[0].pen, pen, sizeof(pen));
    assert_int_equal(ff_text_features("sieben", ids), set.items[0].text_len);
    assert_memory_equal(set.items[0].text, ids,
                        sizeof(uint16_t) * (size_t)set.items[0].text_len);
    assert_int_equal(set.items[0].label, 7);
    ff_dataset_cleanup(&set);
    assert_null(set.items);
}

/* One malformed manifest and the words its error must contain. */
typedef struct bad_case {
    const char *text;
    ff_status status;
    const char *expect1, *expect2;
} bad_case;

#define OK_LINE "{\"id\":\"a\",\"time\":\"2024-01-01T00:00:00Z\"," \
                "\"label\":1,\"text\":\"one\"}\n"

static const bad_case bad_cases[] = {
    {OK_LINE "{\"id\":\"b\",\"time\":\"2024-01-01\",\"label\":1,\n",
     FF_ERR_FORMAT, "bad.jsonl:2:", "invalid JSON"},
    {"{\"time\":\"2024-01-01\",\"label\":1,\"text\":\"x\"}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "field \"id\": missing"},
    {OK_LINE OK_LINE, FF_ERR_FORMAT, "bad.jsonl:2:",
     "duplicate id \"a\" (first on line 1)"},
    {"{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":11,\"text\":\"x\"}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "field \"label\": outside 0..9"},
    {"{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":-1,\"text\":\"x\"}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "field \"label\""},
    {"{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":\"3\",\"text\":\"x\"}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "field \"label\": expected an integer"},
    {"{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":3.0,\"text\":\"x\"}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "expected an integer"},
    {"{\"id\":7,\"time\":\"2024-01-01\",\"label\":3,\"text\":\"x\"}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "field \"id\": expected a string"},
    {OK_LINE "{\"id\":\"b\",\"time\":\"2024-01-01\",\"label\":1,"
             "\"text\":\"bad \xff byte\"}\n",
     FF_ERR_FORMAT, "bad.jsonl:2:", "UTF-8"},
    {"{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":1,"
     "\"text\":\"\\ud800\"}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "invalid JSON"},
    {"{\"id\":\"a\",\"label\":1,\"text\":\"x\"}\n", FF_ERR_FORMAT,
     "bad.jsonl:1:", "field \"time\": missing"},
    {"{\"id\":\"a\",\"time\":\"yesterday\",\"label\":1,\"text\":\"x\"}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "field \"time\": not an ISO 8601"},
    {"{\"id\":\"a\",\"time\":\"2023-02-29T10:00:00Z\",\"label\":1,"
     "\"text\":\"x\"}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "field \"time\""},
    {"{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":1}\n", FF_ERR_FORMAT,
     "bad.jsonl:1:", "no modality"},
    {"{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":1,"
     "\"sensors\":{\"audio\":\"x.wav\"}}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "field \"sensors.audio\": expected an"},
    {"{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":1,"
     "\"sensors\":{\"pen\":{\"file\":\"p.csv\",\"rate_hz\":-5}}}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "field \"sensors.pen.rate_hz\""},
    {"{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":1,"
     "\"sensors\":{\"pen\":{\"rate_hz\":5}}}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "field \"sensors.pen.file\": missing"},
    {"{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":1,\"text\":\"\"}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "field \"text\": is empty"},
    {"{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":1,\"text\":\"   \"}\n",
     FF_ERR_FORMAT, "bad.jsonl:1:", "field \"text\""},
    {"[1,2,3]\n", FF_ERR_FORMAT, "bad.jsonl:1:", "not a JSON object"},
    {"{\"id\":\"a\",\"id\":\"b\",\"time\":\"2024-01-01\",\"label\":1,"
     "\"text\":\"x\"}\n", FF_ERR_FORMAT, "bad.jsonl:1:", "duplicate"},
    {"", FF_ERR_FORMAT, "bad.jsonl", "empty manifest"},
    {"\n  \n\n", FF_ERR_FORMAT, "bad.jsonl", "empty manifest"},
};

static void
test_manifest_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const bad_case *c = &bad_cases[i];
        ff_sample_set set;
        ff_error err;
        ff_status st = load_text("bad.jsonl", c->text, &set, NULL, &err);
        printf("case %2zu: %s\n", i, err.msg);
        assert_int_equal(st, c->status);
        assert_non_null(strstr(err.msg, c->expect1));
        assert_non_null(strstr(err.msg, c->expect2));
        assert_null(set.items);
        assert_int_equal(set.count, 0);
    }
}

/* A line over FF_MANIFEST_MAX_LINE is refused before it is parsed, and
 * so is text over FF_TEXT_MAX_BYTES. */
static void
test_manifest_oversized(void **state)
{
    size_t n = FF_MANIFEST_MAX_LINE + 100;
    char *text = malloc(n + 200);
    ff_sample_set set;
    ff_error err;

    (void)state;
    assert_non_null(text);
    strcpy(text, OK_LINE "{\"id\":\"b\",\"time\":\"2024-01-01\",\"label\":1,"
                         "\"text\":\"");
    size_t at = strlen(text);
    memset(text + at, 'x', n);
    strcpy(text + at + n, "\"}\n");
    assert_int_equal(load_text("big.jsonl", text, &set, NULL, &err),
                     FF_ERR_TOO_LARGE);
    printf("oversized line: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "big.jsonl:2:"));

    /* 5000 bytes of text fit in a line but not in the text field. */
    strcpy(text,
           "{\"id\":\"b\",\"time\":\"2024-01-01\",\"label\":1,\"text\":\"");
    at = strlen(text);
    memset(text + at, 'y', 5000);
    strcpy(text + at + 5000, "\"}\n");
    assert_int_equal(load_text("long.jsonl", text, &set, NULL, &err),
                     FF_ERR_FORMAT);
    printf("long text: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "long.jsonl:1: field \"text\""));
    free(text);
}

/* A missing or broken file leaves its modality absent, counted; a record
 * left with no modality is skipped and counted. */
static void
test_manifest_missing_files(void **state)
{
    char broken[4096];
    ff_sample_set set;
    ff_load_report rep;
    ff_error err;

    (void)state;
    dstest_write_str(tmp, "broken.pgm", "P5\n28 28\n255\nshort", broken);
    char fifo[4096];
    snprintf(fifo, sizeof(fifo), "%s/fifo.wav", tmp);
    assert_int_equal(mkfifo(fifo, 0600), 0); /* must not block the load */
    const char *text =
        "{\"id\":\"a\",\"time\":\"2024-01-01\",\"label\":4,\"text\":\"vier\","
        "\"image\":\"no-such.pgm\",\"sensors\":{\"audio\":{\"file\":"
        "\"no-such.wav\"},\"pen\":{\"file\":\"no-such.csv\"}}}\n"
        "{\"id\":\"b\",\"time\":\"2024-01-01\",\"label\":5,"
        "\"image\":\"broken.pgm\"}\n"
        "{\"id\":\"c\",\"time\":\"2024-01-01\",\"label\":6,\"text\":\"six\","
        "\"sensors\":{\"audio\":{\"file\":\"fifo.wav\"}}}\n";
    assert_int_equal(load_text("miss.jsonl", text, &set, &rep, &err), FF_OK);
    printf("missing files: records %zu, unreadable image %zu audio %zu pen "
           "%zu, skipped %zu\n", rep.records, rep.unreadable[FF_MOD_IMAGE],
           rep.unreadable[FF_MOD_AUDIO], rep.unreadable[FF_MOD_PEN],
           rep.skipped);
    assert_int_equal(set.count, 2);
    assert_int_equal(rep.records, 2);
    assert_int_equal(rep.skipped, 1);
    assert_int_equal(rep.declared[FF_MOD_IMAGE], 2);
    assert_int_equal(rep.present[FF_MOD_IMAGE], 0);
    assert_int_equal(rep.unreadable[FF_MOD_IMAGE], 2);
    assert_int_equal(rep.unreadable[FF_MOD_AUDIO], 2);
    assert_int_equal(rep.unreadable[FF_MOD_PEN], 1);
    assert_int_equal(set.items[0].present, FF_MOD_BIT(FF_MOD_TEXT));
    assert_int_equal(set.items[0].label, 4);
    assert_int_equal(set.items[1].label, 6);
    assert_int_equal(rep.label_counts[5], 0);
    ff_dataset_cleanup(&set);
}

/* Quotes, SQL and control characters in text are only text. */
static void
test_manifest_hostile_text(void **state)
{
    const char *decoded = "Robert'); DROP TABLE sites;-- \"q\" \x01\x1b[31m "
                          "<script>alert(1)</script> %s%n \\";
    const char *text =
        "{\"id\":\"x'; DELETE FROM runs; --\",\"time\":\"2024-01-01\","
        "\"label\":2,\"text\":\"Robert'); DROP TABLE sites;-- \\\"q\\\" "
        "\\u0001\\u001b[31m <script>alert(1)</script> %s%n \\\\\"}\n";
    uint16_t ids[FF_TEXT_MAX_NGRAMS];
    ff_sample_set set;
    ff_load_report rep;
    ff_error err;

    (void)state;
    assert_int_equal(load_text("hostile.jsonl", text, &set, &rep, &err),
                     FF_OK);
    assert_int_equal(set.count, 1);
    assert_int_equal(set.items[0].present, FF_MOD_BIT(FF_MOD_TEXT));
    int n = ff_text_features(decoded, ids);
    printf("hostile text: %d n-gram ids\n", n);
    assert_true(n > 0);
    assert_int_equal(set.items[0].text_len, n);
    assert_memory_equal(set.items[0].text, ids, sizeof(uint16_t) * (size_t)n);
    ff_dataset_cleanup(&set);

    /* A duplicate id with a newline in it cannot forge a log line. */
    const char *forge =
        "{\"id\":\"x\\nWARN forged\",\"time\":\"2024-01-01\",\"label\":2,"
        "\"text\":\"zwei\"}\n"
        "{\"id\":\"x\\nWARN forged\",\"time\":\"2024-01-01\",\"label\":2,"
        "\"text\":\"zwei\"}\n";
    assert_int_equal(load_text("forge.jsonl", forge, &set, &rep, &err),
                     FF_ERR_FORMAT);
    printf("forged id: %s\n", err.msg);
    assert_null(strchr(err.msg, '\n'));
    assert_non_null(strstr(err.msg, "x?WARN forged"));
}

/* A 32-bit float WAV whose samples are 1e30 (finite) overflows the
 * audio band energies in float: whatever the loader makes of it, no
 * non-finite value reaches the sample, and the record's text still
 * loads. (test_manifest_net checks the manifest's own finiteness net
 * with a loader that returns NaN.) */
static void
test_manifest_loud_audio_finite(void **state)
{
    char wav[4096], manifest[8192];
    static float pcm[4000];
    ff_sample_set set;
    ff_load_report rep;
    ff_error err;

    (void)state;
    SF_INFO info = {0};
    info.samplerate = 8000;
    info.channels = 1;
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    snprintf(wav, sizeof(wav), "%s/loud.wav", tmp);
    SNDFILE *sf = sf_open(wav, SFM_WRITE, &info);
    assert_non_null(sf);
    for (size_t i = 0; i < sizeof(pcm) / sizeof(pcm[0]); i++)
        pcm[i] = (i % 2 ? 1e30f : -1e30f) * (float)(1 + i % 7);
    assert_int_equal(sf_writef_float(sf, pcm, 4000), 4000);
    sf_close(sf);

    snprintf(manifest, sizeof(manifest),
             "{\"id\":\"loud\",\"time\":\"2024-01-01\",\"label\":3,"
             "\"text\":\"drei\",\"sensors\":{\"audio\":"
             "{\"file\":\"loud.wav\"}}}\n");
    assert_int_equal(load_text("loud.jsonl", manifest, &set, &rep, &err),
                     FF_OK);
    assert_int_equal(set.count, 1);
    const ff_sample *s = &set.items[0];
    int finite = 1;
    for (int i = 0; i < FF_AUDIO_SIZE; i++)
        finite &= isfinite(s->audio[i]) != 0;
    printf("loud audio: present 0x%x, audio unreadable %zu, all finite "
           "%d\n", s->present, rep.unreadable[FF_MOD_AUDIO], finite);
    assert_true(finite);
    assert_true(s->present & FF_MOD_BIT(FF_MOD_TEXT));
    assert_int_equal(rep.declared[FF_MOD_AUDIO], 1);
    ff_dataset_cleanup(&set);
}

/* The record cap is 200,000 (200,000 x 12,812-byte samples = 2.56 GB).
 * Records whose only file is missing are skipped and allocate nothing,
 * so the cap is tested without 2.5 GB: line 200,001 is refused. */
static void
test_manifest_record_cap(void **state)
{
    static const char rec[] =
        "{\"id\":\"r%07zu\",\"time\":\"2024-01-01\",\"label\":1,"
        "\"image\":\"none.pgm\"}\n";
    size_t n = (size_t)FF_MANIFEST_MAX_RECORDS + 1, cap = n * 80, len = 0;
    char *text = malloc(cap);
    ff_sample_set set;
    ff_error err;

    (void)state;
    assert_int_equal(FF_MANIFEST_MAX_RECORDS, 200000);
    assert_true(sizeof(ff_sample) * FF_MANIFEST_MAX_RECORDS <
                (size_t)2600 * 1000 * 1000);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, rec, i);
    assert_int_equal(load_text("cap.jsonl", text, &set, NULL, &err),
                     FF_ERR_TOO_LARGE);
    printf("record cap: %s (sample %zu bytes)\n", err.msg,
           sizeof(ff_sample));
    assert_non_null(strstr(err.msg, ":200001: more than 200000 records"));
    assert_null(set.items);
    free(text);
}

/* The digest is BLAKE2b-256 of the bytes (RFC 7693 values). */
static void
test_manifest_digest(void **state)
{
    char path[4096], hex[65];
    ff_error err = {0};

    (void)state;
    dstest_write_str(tmp, "empty", "", path);
    assert_int_equal(ff_dataset_manifest_digest(path, hex, &err), FF_OK);
    assert_string_equal(hex, "0e5751c026e543b2e8ab2eb06099daa1"
                             "d1e5df47778f7787faab45cdf12fe3a8");
    dstest_write_str(tmp, "abc", "abc", path);
    assert_int_equal(ff_dataset_manifest_digest(path, hex, &err), FF_OK);
    assert_string_equal(hex, "bddd813c634239723171ef3fee98579b"
                             "94964e3bb1cb3e427262c8c068d52319");
    snprintf(path, sizeof(path), "%s/none", tmp);
    assert_int_equal(ff_dataset_manifest_digest(path, hex, &err), FF_ERR_IO);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_good),
        cmocka_unit_test(test_manifest_errors),
        cmocka_unit_test(test_manifest_oversized),
        cmocka_unit_test(test_manifest_missing_files),
        cmocka_unit_test(test_manifest_hostile_text),
        cmocka_unit_test(test_manifest_digest),
        cmocka_unit_test(test_manifest_loud_audio_finite),
        cmocka_unit_test(test_manifest_record_cap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
