/*
 * deploy.c - `fedfuse-site deploy`: fetch the production version, verify
 * it against the pinned coordinator key, write it atomically; and the
 * channel both the site loop and deploy open.
 */
#include "site.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/ff_log.h"

ff_status ff_site_channel_open(const ff_site_config *cfg, ff_site_rpc **out,
                               ff_error *err)
{
    ff_site_tls tls = {cfg->ca, cfg->cert, cfg->key};

    return ff_site_rpc_create(out, cfg->coordinator, cfg->tls ? &tls : NULL,
                              err);
}

/* Writes len bytes to fd in full. Returns 0 or -1. */
static int write_all(int fd, const uint8_t *p, size_t len)
{
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

/* Writes data to path atomically: refuses a symlink at path, writes a
 * fresh temp file beside it (mkstemp, 0644), fsyncs it, renames it over
 * path and fsyncs the folder. Errors: FF_ERR_IO (naming the step). */
static ff_status file_write_atomic(const char *path, const uint8_t *data,
                                   size_t len, ff_error *err)
{
    char tmp[FF_SITE_STR_MAX + 16], dir[FF_SITE_STR_MAX];
    const char *slash = strrchr(path, '/');
    struct stat sb;
    int fd, dfd;

    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode))
        return ff_error_set(err, FF_ERR_IO, "%s is a symbolic link: "
                            "refusing to write through it", path);
    if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return ff_error_set(err, FF_ERR_IO, "%s exists and is not a "
                            "regular file", path);
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0)
        return ff_error_set(err, FF_ERR_IO, "cannot create a temporary "
                            "file beside %s: %s", path, strerror(errno));
    if (write_all(fd, data, len) != 0 || fchmod(fd, 0644) != 0 ||
        fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return ff_error_set(err, FF_ERR_IO, "cannot write %s: %s", tmp,
                            strerror(e));
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ff_error_set(err, FF_ERR_IO, "cannot move the model into "
                            "place at %s: %s", path, strerror(e));
    }

    /* The rename itself must survive a crash. */
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s",
                 slash == path ? 1 : (int)(slash - path), path);
    dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return FF_OK;
}

/* Downloads the production version into *m. */
static ff_status production_fetch(const ff_site_config *cfg,
                                  ff_site_model *m, ff_error *err)
{
    ff_wire_download req;
    ff_site_rpc *rpc = NULL;
    ff_status st = ff_site_channel_open(cfg, &rpc, err);

    if (st != FF_OK)
        return st;
    memset(&req, 0, sizeof req);
    snprintf(req.site_id, sizeof req.site_id, "%s", cfg->id);
    req.production = 1;
    st = ff_site_rpc_download(rpc, &req, m, cfg->transfer_timeout, err);
    ff_site_rpc_destroy(rpc);
    return st;
}

ff_status ff_site_deploy(const ff_site_config *cfg, ff_error *err)
{
    char digest[2 * FF_WIRE_DIGEST_BYTES + 1];
    char signer[2 * FF_WIRE_SIGNER_BYTES + 1];
    uint8_t pk[32];
    ff_site_model m;
    ff_status st;

    /* Fetch, then verify before a byte reaches the disk. */
    memset(&m, 0, sizeof m);
    st = ff_site_config_coordinator_key(cfg, pk, err);
    if (st == FF_OK)
        st = production_fetch(cfg, &m, err);
    if (st == FF_OK)
        st = ff_site_model_verify(&m, pk, "not deploying", err);
    if (st == FF_OK)
        st = file_write_atomic(cfg->out, m.artifact, m.len, err);
    if (st != FF_OK) {
        ff_site_model_cleanup(&m);
        return st;
    }

    /* What was deployed, for the operator and scripts. */
    sodium_bin2hex(digest, sizeof digest, m.digest, sizeof m.digest);
    sodium_bin2hex(signer, sizeof signer, m.signer_key,
                   sizeof m.signer_key);
    printf("deployed %s version %d to %s\n", m.model, m.version, cfg->out);
    printf("version %d\ndigest %s\nsigner %s\nbytes %zu\n", m.version,
           digest, signer, m.len);
    FF_INFO("deployed %s version %d (%zu bytes, digest %s, signed by %s) "
            "to %s", m.model, m.version, m.len, digest, signer, cfg->out);
    ff_site_model_cleanup(&m);
    return FF_OK;
}
