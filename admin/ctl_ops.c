/*
 * ctl_ops.c - what fedfusectl commands share (connecting, parsing numbers,
 * printing JSON) and two commands that change something: export (writes
 * a file) and migrate (upgrades the schema; open to anyone who can reach
 * the database, since deploy scripts run it before any certificate
 * exists).
 */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

/* Opens the registry without looking at its schema. */
static ff_status
ctl_open(ff_ctl *ctl, ff_registry **out, ff_error *err)
{
    if (ctl->reg == NULL) {
        if (ctl->db == NULL || ctl->db[0] == '\0')
            return ff_error_set(err, FF_ERR_ARG,
                                "no database given: pass --db CONNINFO or "
                                "set FEDFUSE_DB");
        ff_status st = ff_registry_open(&ctl->reg, ctl->db, err);
        if (st != FF_OK)
            return st;
    }
    *out = ctl->reg;
    return FF_OK;
}

ff_status
ff_ctl_connect(ff_ctl *ctl, ff_registry **out, ff_error *err)
{
    int current = 0, latest = 0;

    ff_status st = ctl_open(ctl, out, err);
    if (st == FF_OK)
        st = ff_registry_schema_version(*out, &current, &latest, err);
    if (st != FF_OK)
        return st;
    if (current == 0)
        return ff_error_set(err, FF_ERR_STATE,
                            "the database holds no fedfuse registry "
                            "(run 'fedfusectl migrate' to create it)");
    if (current < latest)
        fprintf(stderr,
                "fedfusectl: warning: schema version %d is older than %d; "
                "run 'fedfusectl migrate'\n",
                current, latest);
    if (current > latest)
        fprintf(stderr,
                "fedfusectl: warning: schema version %d is newer than this "
                "program's %d\n",
                current, latest);
    if (ctl->no_identity)
        return FF_OK;
    return ff_ctl_identify(ctl, *out, err);
}

ff_status
ff_ctl_parse_int(const char *text, const char *what, long min, long max,
                 long *out, ff_error *err)
{
    char *end;

    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno == 0 && end != text && *end == '\0' && (v < min || v > max))
        return ff_error_set(err, FF_ERR_ARG, "%s must be %ld..%ld, not %ld",
                            what, min, max, v);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return ff_error_set(err, FF_ERR_ARG,
                            "%s must be a whole number from %ld to %ld, not "
                            "'%.40s'",
                            what, min, max, text);
    *out = v;
    return FF_OK;
}

ff_status
ff_ctl_print_json(const json_t *j, ff_error *err)
{
    if (json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY) != 0 ||
        fputc('\n', stdout) == EOF || fflush(stdout) != 0)
        return ff_error_set(err, FF_ERR_IO, "writing JSON to stdout failed");
    return FF_OK;
}

/* Hashes the whole file behind fd from its start. */
static ff_status
hash_fd(int fd, char hex[65], size_t *len, ff_error *err)
{
    crypto_generichash_state state;
    unsigned char sum[32];
    static unsigned char buf[1 << 20];
    ssize_t n;

    *len = 0;
    if (lseek(fd, 0, SEEK_SET) != 0)
        return ff_error_set(err, FF_ERR_IO, "rewinding: %s",
                            strerror(errno));
    crypto_generichash_init(&state, NULL, 0, sizeof(sum));
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ff_error_set(err, FF_ERR_IO, "reading back: %s",
                                strerror(errno));
        crypto_generichash_update(&state, buf, (unsigned long long)n);
        *len += (size_t)n;
    }
    crypto_generichash_final(&state, sum, sizeof(sum));
    sodium_bin2hex(hex, 65, sum, sizeof(sum));
    return FF_OK;
}

/* Writes all of data to fd. */
static ff_status
write_all(int fd, const uint8_t *data, size_t len, ff_error *err)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ff_error_set(err, FF_ERR_IO, "writing: %s",
                                strerror(errno));
        data += n;
        len -= (size_t)n;
    }
    return FF_OK;
}

/* The kind of a non-regular file, for messages. */
static const char *
file_kind(mode_t mode)
{
    if (S_ISLNK(mode))
        return "a symbolic link";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

ff_status
ff_ctl_target_check(const char *path, ff_error *err)
{
    struct stat st;

    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return FF_OK;
        return ff_error_set(err, FF_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return ff_error_set(err, FF_ERR_IO,
                            "%s exists and is %s, not a regular file; "
                            "refusing to replace it",
                            path, file_kind(st.st_mode));
    return FF_OK;
}

/*
 * Writes data to a temporary file beside path, reads it back, and renames
 * it to path only when the bytes on disk hash to `stored`. Otherwise the
 * temporary file is removed. *actual receives the digest of what was
 * written. Errors: FF_ERR_IO, FF_ERR_DIGEST, FF_ERR_NOMEM.
 */
static ff_status
export_atomic(const char *path, const uint8_t *data, size_t len,
              const char stored[65], char actual[65], ff_error *err)
{
    size_t on_disk = 0;
    int fd = -1;
    int created = 0;
    ff_status st = FF_OK;

    size_t n = strlen(path) + sizeof(".tmp.XXXXXX");
    char *tmp = malloc(n);
    if (tmp == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);

    /* Write, make durable, read back and hash. */
    fd = mkstemp(tmp);
    if (fd < 0) {
        st = ff_error_set(err, FF_ERR_IO, "creating a file beside %s: %s",
                          path, strerror(errno));
        goto done;
    }
    created = 1;
    mode_t mask = umask(0);
    umask(mask);
    st = write_all(fd, data, len, err);
    if (st == FF_OK && (fchmod(fd, 0666 & ~mask) != 0 || fsync(fd) != 0))
        st = ff_error_set(err, FF_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (st == FF_OK)
        st = hash_fd(fd, actual, &on_disk, err);
    if (st == FF_OK && close(fd) != 0)
        st = ff_error_set(err, FF_ERR_IO, "closing %s: %s", tmp,
                          strerror(errno));
    fd = -1;
    if (st != FF_OK)
        goto done;

    /* Only verified bytes get the final name. */
    if (on_disk != len || sodium_memcmp(actual, stored, 64) != 0) {
        st = ff_error_set(err, FF_ERR_DIGEST,
                          "digest mismatch: the artifact hashes to blake2b "
                          "%s but the registry records %s; %s not written",
                          actual, stored, path);
        goto done;
    }
    st = ff_ctl_target_check(path, err);
    if (st == FF_OK && rename(tmp, path) != 0)
        st = ff_error_set(err, FF_ERR_IO, "renaming to %s: %s", path,
                          strerror(errno));

done:
    if (fd >= 0)
        close(fd);
    if (st != FF_OK && created)
        unlink(tmp);
    free(tmp);
    return st;
}

ff_status
ff_ctl_export(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    long version = 0;
    uint8_t *bytes = NULL;
    size_t len = 0;
    char stored[65], actual[65];

    const char *model = ctl->pos[0];
    const char *path = ctl->pos[2];
    ff_status st = ff_ctl_parse_int(ctl->pos[1], "VERSION", 1, INT_MAX,
                                    &version, err);
    if (st == FF_OK && path[0] == '\0')
        st = ff_error_set(err, FF_ERR_ARG, "FILE is empty");
    if (st == FF_OK)
        st = ff_ctl_target_check(path, err);
    if (st == FF_OK)
        st = ff_ctl_connect(ctl, &r, err);
    if (st == FF_OK) {
        st = ff_registry_version_artifact(r, model, (int)version, &bytes,
                                          &len, stored, err);
        if (st == FF_ERR_NOT_FOUND)
            st = ff_error_wrap(err, st, "%.60s", model);
    }
    if (st == FF_OK)
        st = export_atomic(path, bytes, len, stored, actual, err);
    free(bytes);
    if (st != FF_OK)
        return st;

    /* Report what was verified. */
    if (ctl->json) {
        json_t *j = json_pack("{s:s, s:i, s:s, s:I, s:s, s:b}", "model",
                              model, "version", (int)version, "file", path,
                              "bytes", (json_int_t)len, "digest", actual,
                              "verified", 1);
        if (j == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
        st = ff_ctl_print_json(j, err);
        json_decref(j);
        return st;
    }
    char *safe = ff_ctl_escape(path, 0);
    printf("verified blake2b %s (%zu bytes) -> %s\n", actual, len,
           safe ? safe : "?");
    free(safe);
    return FF_OK;
}

ff_status
ff_ctl_migrate(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    int before = 0, after = 0, latest = 0;

    ff_status st = ctl_open(ctl, &r, err);
    if (st == FF_OK)
        st = ff_registry_schema_version(r, &before, &latest, err);
    if (st == FF_OK)
        st = ff_registry_migrate(r, &after, err);
    if (st != FF_OK)
        return st;

    if (ctl->json) {
        json_t *j = json_pack("{s:i, s:i, s:i}", "version", after,
                              "previous", before, "applied", after - before);
        if (j == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
        st = ff_ctl_print_json(j, err);
        json_decref(j);
        return st;
    }
    if (after == before)
        printf("schema version %d (up to date)\n", after);
    else
        printf("schema version %d (was %d; applied %d migration%s)\n", after,
               before, after - before, after - before == 1 ? "" : "s");
    return FF_OK;
}
