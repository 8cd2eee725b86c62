/*
 * ff_input.h - the model's input specification: the harmonised form that
 * every site record takes before it reaches the encoder.
 *
 * Loaders (dataset/) turn raw site files into ff_sample; the model reads
 * only ff_sample. A modality that a record lacks has its bit clear in
 * `present` and its tensor is never read.
 */
#ifndef FF_INPUT_H
#define FF_INPUT_H

#include <stddef.h>
#include <stdint.h>

typedef enum ff_modality {
    FF_MOD_IMAGE = 0, /* grey image, FF_IMAGE_SIDE x FF_IMAGE_SIDE */
    FF_MOD_AUDIO,     /* log-spectrogram of a mono sound stream */
    FF_MOD_PEN,       /* pen trajectory resampled along its trace */
    FF_MOD_TEXT,      /* hashed character n-grams of a UTF-8 string */
    FF_MOD_COUNT
} ff_modality;

#define FF_MOD_BIT(m) (1u << (m))
#define FF_MOD_ALL ((1u << FF_MOD_COUNT) - 1u)

#define FF_NUM_CLASSES 10

/* Image: row-major, values in [0, 1], 1 = ink. */
#define FF_IMAGE_SIDE 28
#define FF_IMAGE_SIZE (FF_IMAGE_SIDE * FF_IMAGE_SIDE)

/* Audio: resampled to FF_AUDIO_RATE Hz, frames of FF_AUDIO_WINDOW samples
 * every FF_AUDIO_HOP samples, FF_AUDIO_BANDS log band energies per frame,
 * FF_AUDIO_FRAMES frames (about one second); layout [band][frame]. */
#define FF_AUDIO_RATE 8000
#define FF_AUDIO_WINDOW 256
#define FF_AUDIO_HOP 128
#define FF_AUDIO_BANDS 32
#define FF_AUDIO_FRAMES 64
#define FF_AUDIO_SIZE (FF_AUDIO_BANDS * FF_AUDIO_FRAMES)

/* Pen: FF_PEN_POINTS points equally spaced along the written trace,
 * channels x, y (normalised to the digit's box), dx, dy, pen-lift flag;
 * layout [channel][point]. */
#define FF_PEN_POINTS 64
#define FF_PEN_CHANNELS 5
#define FF_PEN_SIZE (FF_PEN_CHANNELS * FF_PEN_POINTS)

/* Text: ids of hashed character n-grams (n = 1..3, with word-boundary
 * marks), each in [0, FF_TEXT_BUCKETS). */
#define FF_TEXT_BUCKETS 4096
#define FF_TEXT_MAX_NGRAMS 96

/* One harmonised record: 12,812 bytes (8 + 4 x (784 + 2048 + 320) +
 * 2 x 96 + 4), which is why dataset/ff_dataset.h caps a manifest at
 * FF_MANIFEST_MAX_RECORDS = 200,000 records (2.56 GB). Every float
 * feature of a present modality is finite (the manifest loader checks). */
typedef struct ff_sample {
    int32_t label;                 /* class in [0, FF_NUM_CLASSES) */
    uint32_t present;              /* FF_MOD_BIT(m) set when m is present */
    float image[FF_IMAGE_SIZE];
    float audio[FF_AUDIO_SIZE];
    float pen[FF_PEN_SIZE];
    uint16_t text[FF_TEXT_MAX_NGRAMS];
    int32_t text_len;              /* number of valid ids in text[] */
} ff_sample;

/* A set of samples. Owned by whoever filled it; see ff_dataset_cleanup in
 * dataset/ff_dataset.h for sets that a loader allocated. */
typedef struct ff_sample_set {
    ff_sample *items;
    size_t count;
} ff_sample_set;

/* Returns "image", "audio", "pen" or "text"; NULL for an invalid m. */
const char *ff_modality_name(ff_modality m);

/* Returns the modality named name, or -1. */
int ff_modality_parse(const char *name);

#endif
