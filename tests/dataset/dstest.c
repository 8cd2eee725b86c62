#define _XOPEN_SOURCE 700 /* nftw */
#include "dstest.h"

#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

const char *
dstest_data(const char *rel)
{
    static char buf[4][4096];
    static int next;
    const char *root = getenv("FEDFUSE_DATA");
    char *out = buf[next++ % 4];

    if (root == NULL || root[0] == '\0')
        fail_msg("FEDFUSE_DATA is not set: run through ctest, or export "
                 "FEDFUSE_DATA=/path/to/shared/data");
    snprintf(out, 4096, "%s/%s", root, rel);
    return out;
}

void
dstest_tempdir(char out[64])
{
    snprintf(out, 64, "/tmp/ff-dataset-test-XXXXXX");
    if (mkdtemp(out) == NULL)
        fail_msg("mkdtemp failed");
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void
dstest_rmtree(const char *dir)
{
    if (strncmp(dir, "/tmp/ff-dataset-test-", 21) != 0)
        fail_msg("refusing to remove %s", dir);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void
dstest_write(const char *dir, const char *name, const void *data,
             size_t len, char *out)
{
    FILE *f;

    snprintf(out, 4096, "%s/%s", dir, name);
    f = fopen(out, "wb");
    if (f == NULL)
        fail_msg("cannot write %s", out);
    if (len > 0 && fwrite(data, 1, len, f) != len)
        fail_msg("short write to %s", out);
    fclose(f);
}

void
dstest_write_str(const char *dir, const char *name, const char *text,
                 char *out)
{
    dstest_write(dir, name, text, strlen(text), out);
}
