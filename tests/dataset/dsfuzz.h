/*
 * dsfuzz.h - one entry point that feeds untrusted bytes to a dataset
 * decoder and aborts when the decoder answers with a status it must never
 * give for bad input (or crashes, which the sanitizers catch). Shared by
 * the mutation test (test_mutations) and the libFuzzer target
 * (fuzz_dataset, built with clang and -DFF_DATASET_FUZZ=ON).
 */
#ifndef DSFUZZ_H
#define DSFUZZ_H

#include <stddef.h>
#include <stdint.h>

enum {
    DSFUZZ_MANIFEST = 0, /* ff_dataset_load on the bytes as a manifest */
    DSFUZZ_PEN,          /* ff_pen_load_csv, with and without a rate */
    DSFUZZ_IMAGE,        /* ff_image_load */
    DSFUZZ_AUDIO,        /* ff_audio_load_wav */
    DSFUZZ_TEXT,         /* ff_text_features */
    DSFUZZ_KINDS
};

/* Writes d[0..n) to a file in dir (when the decoder reads files) and runs
 * the decoder of kind. Returns the status it gave (0 = accepted). Aborts
 * on a status outside the decoder's documented set for bad input. */
int dsfuzz_one(int kind, const uint8_t *d, size_t n, const char *dir);

#endif
