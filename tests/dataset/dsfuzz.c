#include "dsfuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ff_dataset.h"

/* Writes the bytes to dir/name; returns 0 on success. */
static int
put(const char *dir, const char *name, const uint8_t *d, size_t n,
    char path[4096])
{
    FILE *f;
    int ok;

    snprintf(path, 4096, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    ok = n == 0 || fwrite(d, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Aborts unless st is FF_OK or one of the allowed statuses. */
static int
expect(const char *what, ff_status st, ff_status a, ff_status b,
       const ff_error *err)
{
    if (st != FF_OK && st != a && st != b) {
        fprintf(stderr, "dsfuzz: %s returned %s: %s\n", what,
                ff_status_name(st), ff_error_text(err));
        abort();
    }
    return (int)st;
}

static int
run_text(const uint8_t *d, size_t n)
{
    char *s = malloc(n + 1);
    uint16_t ids[FF_TEXT_MAX_NGRAMS];
    int k;

    if (s == NULL)
        return 0;
    memcpy(s, d, n);
    s[n] = '\0';
    k = ff_text_features(s, ids);
    free(s);
    if (k < -1 || k > FF_TEXT_MAX_NGRAMS)
        abort();
    for (int i = 0; i < k; i++)
        if (ids[i] >= FF_TEXT_BUCKETS)
            abort();
    return k < 0;
}

int
dsfuzz_one(int kind, const uint8_t *d, size_t n, const char *dir)
{
    static float img[FF_IMAGE_SIZE], aud[FF_AUDIO_SIZE], pen[FF_PEN_SIZE];
    char path[4096];
    ff_error err = {0};
    ff_sample_set set;
    ff_load_report rep;
    ff_status st;

    switch (kind) {
    case DSFUZZ_MANIFEST:
        if (put(dir, "fuzz.jsonl", d, n, path) != 0)
            return -1;
        st = ff_dataset_load(path, &set, &rep, &err);
        if (st == FF_OK)
            ff_dataset_cleanup(&set);
        return expect("manifest", st, FF_ERR_FORMAT, FF_ERR_TOO_LARGE, &err);
    case DSFUZZ_PEN:
        if (put(dir, "fuzz.csv", d, n, path) != 0)
            return -1;
        expect("pen", ff_pen_load_csv(path, 0.0, pen, &err), FF_ERR_FORMAT,
               FF_ERR_TOO_LARGE, &err);
        return expect("pen@100Hz", ff_pen_load_csv(path, 100.0, pen, &err),
                      FF_ERR_FORMAT, FF_ERR_TOO_LARGE, &err);
    case DSFUZZ_IMAGE:
        if (put(dir, "fuzz.img", d, n, path) != 0)
            return -1;
        return expect("image", ff_image_load(path, img, &err),
                      FF_ERR_FORMAT, FF_ERR_FORMAT, &err);
    case DSFUZZ_AUDIO:
        if (put(dir, "fuzz.wav", d, n, path) != 0)
            return -1;
        return expect("audio", ff_audio_load_wav(path, aud, &err),
                      FF_ERR_FORMAT, FF_ERR_NONFINITE, &err);
    default:
        return run_text(d, n);
    }
}
