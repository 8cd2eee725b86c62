/*
 * ff_dataset_util.h - helpers shared by the dataset loaders and the
 * feddigits builder. Internal to dataset/ (not part of the public API).
 */
#ifndef FF_DATASET_UTIL_H
#define FF_DATASET_UTIL_H

#include <stddef.h>

#include "../common/ff_status.h"

/* Reads the whole regular file at path into *out (malloc'd, owned by the
 * caller, NUL-terminated one byte past *len) after checking that its size
 * is 1..max bytes. Errors: FF_ERR_IO (cannot open or read, not a regular
 * file), FF_ERR_TOO_LARGE (over max), FF_ERR_FORMAT (empty),
 * FF_ERR_NOMEM. Thread-safe. */
FF_MUST_USE ff_status ff_file_read_all(const char *path, size_t max,
                                       unsigned char **out, size_t *len,
                                       ff_error *err);

/* Opens path read-only without blocking on FIFOs or devices and returns
 * the descriptor (caller closes it) when it is a regular file; else -1
 * with FF_ERR_IO in err. Thread-safe. */
int ff_file_open_regular(const char *path, ff_error *err);

/* Joins dir and rel into out (size cap) unless rel is absolute, in which
 * case rel is copied. Errors: FF_ERR_TOO_LARGE when it does not fit. */
FF_MUST_USE ff_status ff_path_join(char *out, size_t cap, const char *dir,
                                   const char *rel, ff_error *err);

/* Offset of the first byte of s[0..n) that does not start a valid UTF-8
 * sequence (shortest form, no surrogates, at most U+10FFFF), or n when
 * all of it is valid. */
size_t ff_utf8_check(const char *s, size_t n);

#endif
