#include "synth.h"

#include <string.h>

#include "ff_rng.h"

void
synth_normal(float *v, size_t n, uint64_t seed, double sd)
{
    ff_rng r;

    ff_rng_init(&r, seed);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(sd * ff_rng_normal(&r));
}

/* Clamps x into [lo, hi]. */
static float
clampf(float x, float lo, float hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

void
synth_fill(ff_sample *items, size_t count, uint64_t seed, double noise)
{
    /* One fixed random template per class and modality. */
    static float tmpl[FF_NUM_CLASSES][FF_IMAGE_SIZE + FF_AUDIO_SIZE +
                                      FF_PEN_SIZE];
    ff_rng r;

    synth_normal(&tmpl[0][0], sizeof(tmpl) / sizeof(float), 0x5eed, 1.0);
    ff_rng_init(&r, seed);
    for (size_t n = 0; n < count; n++) {
        ff_sample *s = &items[n];
        int c = (int)(n % FF_NUM_CLASSES);
        const float *t = tmpl[c];

        memset(s, 0, sizeof(*s));
        s->label = c;
        s->present = FF_MOD_ALL;

        /* The value ranges the loaders produce: image in [0, 1], audio
         * about zero mean and unit variance, pen in a unit box. */
        for (size_t i = 0; i < FF_IMAGE_SIZE; i++)
            s->image[i] = clampf(0.5f * t[i] + 0.3f +
                                 (float)(0.3 * noise * ff_rng_normal(&r)),
                                 0.0f, 1.0f);
        t += FF_IMAGE_SIZE;
        for (size_t i = 0; i < FF_AUDIO_SIZE; i++)
            s->audio[i] = 0.7f * t[i] +
                          (float)(0.7 * noise * ff_rng_normal(&r));
        t += FF_AUDIO_SIZE;
        for (size_t i = 0; i < FF_PEN_SIZE; i++)
            s->pen[i] = 0.3f * t[i] +
                        (float)(0.3 * noise * ff_rng_normal(&r));

        /* Text: ids mostly from the class's own 50-bucket range. */
        s->text_len = 8 + (int)ff_rng_below(&r, 20);
        for (int j = 0; j < s->text_len; j++)
            s->text[j] = ff_rng_uniform(&r) < 0.7
                             ? (uint16_t)(c * 50 + ff_rng_below(&r, 50))
                             : (uint16_t)ff_rng_below(&r, FF_TEXT_BUCKETS);
    }
}
