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
 * Thread-safe: loaders keep no global state.
 */
#ifndef FF_DATASET_H
#define FF_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"
#include "../model/ff_input.h"

/* Hard caps on untrusted input, checked before allocating. */
#define FF_MANIFEST_MAX_LINE (64 * 1024)
#define FF_MANIFEST_MAX_RECORDS 1000000
#define FF_FILE_MAX_BYTES (64 * 1024 * 1024)
#define FF_TEXT_MAX_BYTES 4096

typedef struct ff_load_report {
    size_t records;                   /* records loaded */
    size_t declared[FF_MOD_COUNT];    /* records that named the modality */
    size_t present[FF_MOD_COUNT];     /* ...and whose file loaded */
    size_t unreadable[FF_MOD_COUNT];  /* ...whose file was missing or bad */
    size_t label_counts[FF_NUM_CLASSES];
} ff_load_report;

/* Loads every record of the manifest at path into set (allocated; free with
 * ff_dataset_cleanup). report may be NULL. Errors: FF_ERR_IO (manifest
 * unreadable), FF_ERR_FORMAT (malformed line: message names file and line),
 * FF_ERR_TOO_LARGE (line or record count over the caps), FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_dataset_load(const char *path, ff_sample_set *set,
                                      ff_load_report *report, ff_error *err);

/* Frees what ff_dataset_load allocated and zeroes set. Accepts NULL. */
void ff_dataset_cleanup(ff_sample_set *set);

/* Digest (hex BLAKE2b-256 of the manifest bytes) for lineage records;
 * out must hold 65 bytes. Errors: FF_ERR_IO. */
FF_MUST_USE ff_status ff_dataset_manifest_digest(const char *path,
                                                 char out[65], ff_error *err);

/* Loads a PNG, JPEG or PGM image, converts it to grey, resizes it to
 * FF_IMAGE_SIDE square and scales to [0, 1] with 1 = ink (dark-on-light
 * images are inverted). Errors: FF_ERR_IO, FF_ERR_FORMAT. */
FF_MUST_USE ff_status ff_image_load(const char *path, float out[FF_IMAGE_SIZE],
                                    ff_error *err);

/* Loads a WAV (any rate, mono or first channel), resamples it to
 * FF_AUDIO_RATE and computes the log-band spectrogram. Errors: FF_ERR_IO,
 * FF_ERR_FORMAT. */
FF_MUST_USE ff_status ff_audio_load_wav(const char *path,
                                        float out[FF_AUDIO_SIZE],
                                        ff_error *err);

/* Spectrogram of mono samples already at FF_AUDIO_RATE. */
FF_MUST_USE ff_status ff_audio_features(const float *pcm, size_t n,
                                        float out[FF_AUDIO_SIZE],
                                        ff_error *err);

/* Loads a pen trace from CSV with header "t,x,y,stroke" (seconds, tablet
 * units, stroke index) and resamples it along the trace. rate_hz is the
 * stated sampling rate (checked against the time stamps when > 0).
 * Errors: FF_ERR_IO, FF_ERR_FORMAT (names the line). */
FF_MUST_USE ff_status ff_pen_load_csv(const char *path, double rate_hz,
                                      float out[FF_PEN_SIZE], ff_error *err);

/* Resamples n points (x, y, stroke index) along the trace. Errors:
 * FF_ERR_FORMAT (fewer than 2 points, zero extent, non-finite). */
FF_MUST_USE ff_status ff_pen_features(const double *x, const double *y,
                                      const int *stroke, size_t n,
                                      float out[FF_PEN_SIZE], ff_error *err);

/* Hashes the character n-grams of UTF-8 text into ids; returns the count
 * written (<= FF_TEXT_MAX_NGRAMS), or -1 when text is not valid UTF-8 or
 * is empty. */
int ff_text_features(const char *text, uint16_t ids[FF_TEXT_MAX_NGRAMS]);

#endif
