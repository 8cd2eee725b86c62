/*
 * dstest.h - helpers shared by the dataset tests: where the public data
 * lives (env FEDFUSE_DATA), temporary folders, small files.
 */
#ifndef DSTEST_H
#define DSTEST_H

#include <stddef.h>

/* Path of rel under $FEDFUSE_DATA, in a static buffer of 4096 bytes
 * (rotating among 4, so a few can be held at once). Fails the test with
 * a clear message when FEDFUSE_DATA is unset. */
const char *dstest_data(const char *rel);

/* Creates a fresh temporary folder and returns its path (static buffer
 * of the caller's choosing: out must hold 64 bytes). */
void dstest_tempdir(char out[64]);

/* Removes a folder tree made by the tests. */
void dstest_rmtree(const char *dir);

/* Writes len bytes to dir/name and returns the full path in out (4096). */
void dstest_write(const char *dir, const char *name, const void *data,
                  size_t len, char *out);

/* Same for a NUL-terminated string. */
void dstest_write_str(const char *dir, const char *name, const char *text,
                      char *out);

#endif
