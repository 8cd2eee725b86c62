/*
 * file.c - reading PEM and key files with a size cap, and creating files
 * that must not exist yet without ever leaving a partial one behind.
 */
#include "ff_trust.h"
#include "trust_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

/* Writes all len bytes to fd, retrying short writes and EINTR. */
static int
write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ff_status
ff_trust_file_create(const char *path, const void *data, size_t len,
                     mode_t mode, ff_error *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof(".XXXXXX"));
    int fd = -1;
    ff_status st = FF_OK;

    if (tmp == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "creating %s: out of memory",
                            path);

    /* A private temporary file next to path (mkstemp: O_EXCL, 0600). */
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", sizeof(".XXXXXX"));
    fd = mkstemp(tmp);
    if (fd < 0) {
        st = ff_error_set(err, FF_ERR_IO, "creating a temporary file for "
                          "%s: %s", path, strerror(errno));
        goto out;
    }

    /* The bytes, the final mode, on disk before the name appears. */
    if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 ||
        fsync(fd) != 0) {
        st = ff_error_set(err, FF_ERR_IO, "writing %s: %s", tmp,
                          strerror(errno));
        goto out;
    }

    /* link() never replaces an existing path: the no-overwrite rule. */
    if (link(tmp, path) != 0) {
        if (errno == EEXIST)
            st = ff_error_set(err, FF_ERR_STATE, "%s already exists; "
                              "refusing to overwrite it", path);
        else
            st = ff_error_set(err, FF_ERR_IO, "creating %s: %s", path,
                              strerror(errno));
    }

out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(tmp);
    return st;
}

/* Reads path (a regular file of at most FF_TRUST_PEM_MAX bytes) into a
 * NUL-terminated buffer; when private, refuses group/other access. */
static ff_status
file_read(const char *path, int private, char **out, size_t *len,
          ff_error *err)
{
    struct stat sb;
    char *buf = NULL;
    size_t got = 0;
    int fd;
    ff_status st = FF_OK;

    *out = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ff_error_set(err, FF_ERR_IO, "opening %s: %s", path,
                            strerror(errno));

    /* What it is, how large, and (for secrets) who may read it. */
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = ff_error_set(err, FF_ERR_IO, "%s is not a regular file", path);
        goto out;
    }
    if (sb.st_size > FF_TRUST_PEM_MAX) {
        st = ff_error_set(err, FF_ERR_TOO_LARGE, "%s holds %lld bytes, more "
                          "than the %d a key or certificate file may", path,
                          (long long)sb.st_size, FF_TRUST_PEM_MAX);
        goto out;
    }
    if (private && (sb.st_mode & 077) != 0) {
        st = ff_error_set(err, FF_ERR_FORMAT, "private key file %s has mode "
                          "%04o: group or others may access it; refusing "
                          "it (chmod 600)", path,
                          (unsigned)(sb.st_mode & 07777));
        goto out;
    }

    /* The bytes; a file that grew past the cap since fstat is refused. */
    buf = malloc((size_t)FF_TRUST_PEM_MAX + 2);
    if (buf == NULL) {
        st = ff_error_set(err, FF_ERR_NOMEM, "reading %s: out of memory",
                          path);
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + got, (size_t)FF_TRUST_PEM_MAX + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st = ff_error_set(err, FF_ERR_IO, "reading %s: %s", path,
                              strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got > FF_TRUST_PEM_MAX) {
            st = ff_error_set(err, FF_ERR_TOO_LARGE, "%s holds more than "
                              "%d bytes", path, FF_TRUST_PEM_MAX);
            goto out;
        }
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;

out:
    if (buf != NULL) {
        sodium_memzero(buf, (size_t)FF_TRUST_PEM_MAX + 2);
        free(buf);
    }
    close(fd);
    return st;
}

ff_status
ff_trust_file_read(const char *path, char **out, size_t *len, ff_error *err)
{
    return file_read(path, 0, out, len, err);
}

ff_status
ff_trust_file_read_private(const char *path, char **out, size_t *len,
                           ff_error *err)
{
    return file_read(path, 1, out, len, err);
}
