#include "ff_dataset_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
ff_file_open_regular(const char *path, ff_error *err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0) {
        ff_error_set(err, FF_ERR_IO, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        ff_error_set(err, FF_ERR_IO, "%s: not a regular file", path);
        return -1;
    }
    /* Regular files ignore O_NONBLOCK; clear it anyway for stdio. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

ff_status
ff_file_read_all(const char *path, size_t max, unsigned char **out,
                 size_t *len, ff_error *err)
{
    struct stat st;
    unsigned char *buf;
    size_t size;
    FILE *f;
    int fd = ff_file_open_regular(path, err);

    /* Check what the file is and how big before allocating. */
    if (fd < 0)
        return err ? err->status : FF_ERR_IO;
    f = fdopen(fd, "rb");
    if (f == NULL) {
        close(fd);
        return ff_error_set(err, FF_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return ff_error_set(err, FF_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if ((unsigned long long)st.st_size > max) {
        fclose(f);
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "%s: %lld bytes, more than the limit of %zu",
                            path, (long long)st.st_size, max);
    }
    if (st.st_size == 0) {
        fclose(f);
        return ff_error_set(err, FF_ERR_FORMAT, "%s: empty file", path);
    }
    size = (size_t)st.st_size;

    /* Read it whole, with a terminating NUL for text parsers. */
    buf = malloc(size + 1);
    if (buf == NULL) {
        fclose(f);
        return ff_error_set(err, FF_ERR_NOMEM, "%s: no memory", path);
    }
    if (fread(buf, 1, size, f) != size) {
        free(buf);
        fclose(f);
        return ff_error_set(err, FF_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    buf[size] = '\0';
    *out = buf;
    *len = size;
    return FF_OK;
}

ff_status
ff_path_join(char *out, size_t cap, const char *dir, const char *rel,
             ff_error *err)
{
    int n;

    if (rel[0] == '/' || dir == NULL || dir[0] == '\0')
        n = snprintf(out, cap, "%s", rel);
    else
        n = snprintf(out, cap, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= cap)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "path longer than %zu bytes: %.60s...", cap, rel);
    return FF_OK;
}
