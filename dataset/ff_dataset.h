/*
 * ff_dataset.h - a site's records: the manifest format and the loaders that
 * harmonise each modality into the model's input (model/ff_input.h).
 *
 * Manifest: JSON Lines, one record per line, documented in
 * docs/site-data-format.md. Relative file paths are resolved against the
 * manifest's folder. A record whose modality file is missing or unreadable
 * keeps that modality absent and is counted in ff_load_report; a malformed
 * line is an error that names the file and the line.
 *
 * Thread-safe: loaders keep no mutable global state (the one FFTW plan
 * is made once, under pthread_once, and only executed afterwards).
 */
#ifndef FF_DATASET_H
#define FF_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"
#include "../model/ff_input.h"

/* Hard caps on untrusted input, checked before allocating.
 * Records: one ff_sample is 12,812 bytes (8 + 4 x (784 + 2048 + 320)
 * + 2 x 96 + 4), so 200,000 records hold 200,000 x 12,812 = 2.56 GB
 * (2.39 GiB) in memory, the most one site process should take. */
#define FF_MANIFEST_MAX_LINE (64 * 1024)
#define FF_MANIFEST_MAX_RECORDS 200000
#define FF_FILE_MAX_BYTES (64 * 1024 * 1024)
#define FF_TEXT_MAX_BYTES 4096
#define FF_ID_MAX_BYTES 256          /* record id length */
#define FF_PEN_MAX_POINTS 100000     /* points in one pen CSV */
#define FF_RATE_MAX_HZ 100000.0      /* sensors.pen.rate_hz */

typedef struct ff_load_report {
    size_t records;                   /* records loaded */
    size_t declared[FF_MOD_COUNT];    /* records that named the modality */
    size_t present[FF_MOD_COUNT];     /* ...and whose file loaded */
    size_t unreadable[FF_MOD_COUNT];  /* ...whose file was missing or bad */
    size_t label_counts[FF_NUM_CLASSES];
    size_t skipped;                   /* records dropped because none of
                                         their modalities could be loaded
                                         (not in records) */
} ff_load_report;

/* Loads every record of the manifest at path into set (allocated; free with
 * ff_dataset_cleanup; set is zeroed on error). report may be NULL.
 * Errors: FF_ERR_IO (manifest unreadable), FF_ERR_FORMAT (malformed line:
 * the message names file:line and the field; also an empty manifest or one
 * where no record could be loaded), FF_ERR_TOO_LARGE (line or record count
 * over the caps; names file:line), FF_ERR_NOMEM. A modality file that is
 * missing or cannot be decoded is not an error: see ff_load_report.
 * Thread-safe (one call per set). */
FF_MUST_USE ff_status ff_dataset_load(const char *path, ff_sample_set *set,
                                      ff_load_report *report, ff_error *err);

/* Frees what ff_dataset_load allocated and zeroes set. Accepts NULL. */
void ff_dataset_cleanup(ff_sample_set *set);

/* Digest (hex BLAKE2b-256 of the manifest bytes) for lineage records;
 * out must hold 65 bytes (caller-owned). Errors: FF_ERR_IO,
 * FF_ERR_INTERNAL (libsodium failed to initialise). Thread-safe. */
FF_MUST_USE ff_status ff_dataset_manifest_digest(const char *path,
                                                 char out[65], ff_error *err);

/* Loads a PNG, JPEG or PGM image, converts it to grey (luminance), pads it
 * to a square (keeping the aspect), resizes it to FF_IMAGE_SIDE square and
 * scales to [0, 1] with 1 = ink (images whose border is light, i.e. dark
 * ink on light paper, are inverted). out is caller-owned. Errors:
 * FF_ERR_IO, FF_ERR_FORMAT (not an image, truncated or damaged, over 4096
 * pixels a side), FF_ERR_TOO_LARGE (file over FF_FILE_MAX_BYTES),
 * FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_image_load(const char *path, float out[FF_IMAGE_SIZE],
                                    ff_error *err);

/* Loads a WAV (any rate 1 kHz..384 kHz, mono or first channel), resamples
 * it to FF_AUDIO_RATE and computes the log-band spectrogram. Only the first
 * ~1.05 s are read (what FF_AUDIO_FRAMES frames need). out is
 * caller-owned. Errors: FF_ERR_IO, FF_ERR_FORMAT, FF_ERR_NOMEM,
 * FF_ERR_INTERNAL (resampler or FFTW failed). */
FF_MUST_USE ff_status ff_audio_load_wav(const char *path,
                                        float out[FF_AUDIO_SIZE],
                                        ff_error *err);

/* Spectrogram of n mono samples already at FF_AUDIO_RATE (values as read
 * by libsndfile, about [-1, 1]); frames past FF_AUDIO_FRAMES are cut.
 * Errors: FF_ERR_FORMAT (n == 0), FF_ERR_NONFINITE, FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_audio_features(const float *pcm, size_t n,
                                        float out[FF_AUDIO_SIZE],
                                        ff_error *err);

/* Loads a pen trace from CSV with header "t,x,y,stroke" (seconds, tablet
 * units with y upwards, stroke index) and resamples it along the trace.
 * rate_hz is the stated sampling rate (0 = not stated); when stated, the
 * median time step within strokes must lie within a factor 2 of
 * 1 / rate_hz. Time and stroke must not decrease. Errors: FF_ERR_IO,
 * FF_ERR_FORMAT (names the line), FF_ERR_TOO_LARGE (over
 * FF_PEN_MAX_POINTS points), FF_ERR_ARG (negative rate), FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_pen_load_csv(const char *path, double rate_hz,
                                      float out[FF_PEN_SIZE], ff_error *err);

/* Resamples n points (x, y, stroke index) along the trace: 64 points at
 * equal arc length along the pen-down strokes (the jump from one stroke to
 * the next adds no length), centred on the bounding box and divided by its
 * larger side. Any finite coordinates are accepted: the trace is first
 * scaled by a power of two into (-1, 1), so 1e308 cannot overflow.
 * Errors: FF_ERR_FORMAT (fewer than 2 points, zero extent, no pen-down
 * length, a non-finite point, or a feature that came out non-finite),
 * FF_ERR_TOO_LARGE (n overflows the work buffer), FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_pen_features(const double *x, const double *y,
                                      const int *stroke, size_t n,
                                      float out[FF_PEN_SIZE], ff_error *err);

/* Hashes the character n-grams of UTF-8 text into ids; returns the count
 * written (<= FF_TEXT_MAX_NGRAMS), or -1 when text is not valid UTF-8 or
 * holds no word (empty or whitespace only). n-grams n = 1..3 of the code
 * points of "<" word ">" per whitespace-separated word, ASCII lower-cased,
 * FNV-1a 32-bit modulo FF_TEXT_BUCKETS, the first FF_TEXT_MAX_NGRAMS kept
 * (word by word, position by position, n = 1..3). */
int ff_text_features(const char *text, uint16_t ids[FF_TEXT_MAX_NGRAMS]);

#endif
