/*
 * ff_config.c - option values, INI files (libinih) and command-line flags,
 * shared by the programs' configurations.
 */
#include "ff_config.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest option name, flag or INI key, plus its terminator. */
#define FF_CONFIG_KEY_CAP 64

/* ---- values ---- */

ff_status ff_config_parse_int(const char *v, int lo, int hi, int *out,
                              const char *key, ff_error *err)
{
    char *end;
    long x;

    errno = 0;
    x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi)
        return ff_error_set(err, FF_ERR_CONFIG,
                            "%s: '%s' is not an integer in %d..%d", key, v,
                            lo, hi);
    *out = (int)x;
    return FF_OK;
}

ff_status ff_config_parse_double(const char *v, double lo, double hi,
                                 double *out, const char *key, ff_error *err)
{
    char *end;
    double x;

    errno = 0;
    x = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !isfinite(x) || x < lo ||
        x > hi)
        return ff_error_set(err, FF_ERR_CONFIG,
                            "%s: '%s' is not a number in %g..%g", key, v, lo,
                            hi);
    *out = x;
    return FF_OK;
}

ff_status ff_config_parse_u64(const char *v, uint64_t *out, const char *key,
                              ff_error *err)
{
    char *end;
    unsigned long long x;

    errno = 0;
    x = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || v[0] == '-')
        return ff_error_set(err, FF_ERR_CONFIG,
                            "%s: '%s' is not an unsigned integer", key, v);
    *out = (uint64_t)x;
    return FF_OK;
}

ff_status ff_config_copy_str(char *dst, size_t cap, const char *v,
                             const char *key, ff_error *err)
{
    if (strlen(v) >= cap)
        return ff_error_set(err, FF_ERR_CONFIG, "%s: value longer than %zu "
                            "bytes", key, cap - 1);
    strcpy(dst, v);
    return FF_OK;
}

/* ---- INI file ---- */

typedef struct ini_ctx {
    const ff_config_options *o;
    ff_error *err;
    ff_status st;
} ini_ctx;

/* Returns 1 when section is one of o's. */
static int section_known(const ff_config_options *o, const char *section)
{
    const char *const *s;

    for (s = o->sections; *s != NULL; s++)
        if (strcmp(*s, section) == 0)
            return 1;
    return 0;
}

/* inih callback: one key, its '_' read as '-'. */
static int ini_key(void *user, const char *section, const char *name,
                   const char *value)
{
    ini_ctx *x = user;
    char key[FF_CONFIG_KEY_CAP];
    size_t i;

    if (!section_known(x->o, section)) {
        x->st = ff_error_set(x->err, FF_ERR_CONFIG, "unknown section [%s]",
                             section);
        return 0;
    }
    if (strlen(name) >= sizeof key) {
        x->st = ff_error_set(x->err, FF_ERR_CONFIG, "key too long");
        return 0;
    }
    for (i = 0; name[i] != '\0'; i++)
        key[i] = name[i] == '_' ? '-' : name[i];
    key[i] = '\0';
    x->st = x->o->set(x->o->ctx, key, value, x->err);
    return x->st == FF_OK;
}

/* Reads the whole config file at path into a new NUL-terminated buffer
 * (caller frees). Only a regular file of at most FF_CONFIG_MAX_BYTES is
 * read: /dev/zero, a FIFO or a directory is refused before any byte is
 * read, and a file that grows past the cap while being read too. */
static ff_status read_config_file(const char *path, char **out,
                                  ff_error *err)
{
    struct stat sb;
    char *buf = NULL;
    size_t len = 0;
    ff_status st = FF_OK;

    *out = NULL;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return ff_error_set(err, FF_ERR_IO, "cannot open config file %s: %s",
                            path, strerror(errno));

    /* Check what it is before reading. */
    if (fstat(fd, &sb) != 0) {
        st = ff_error_set(err, FF_ERR_IO, "config file %s: %s", path,
                          strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = ff_error_set(err, FF_ERR_CONFIG,
                          "config file %s is not a regular file", path);
        goto done;
    }
    if (sb.st_size > FF_CONFIG_MAX_BYTES) {
        st = ff_error_set(err, FF_ERR_CONFIG,
                          "config file %s is larger than %d bytes", path,
                          FF_CONFIG_MAX_BYTES);
        goto done;
    }

    /* Read up to the cap plus one byte, to notice growth. */
    buf = malloc(FF_CONFIG_MAX_BYTES + 2);
    if (buf == NULL) {
        st = ff_error_set(err, FF_ERR_NOMEM, "out of memory reading %s",
                          path);
        goto done;
    }
    while (len <= FF_CONFIG_MAX_BYTES) {
        ssize_t n = read(fd, buf + len, FF_CONFIG_MAX_BYTES + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st = ff_error_set(err, FF_ERR_IO, "reading config file %s: %s",
                              path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > FF_CONFIG_MAX_BYTES)
        st = ff_error_set(err, FF_ERR_CONFIG,
                          "config file %s is larger than %d bytes", path,
                          FF_CONFIG_MAX_BYTES);
    else if (memchr(buf, '\0', len) != NULL)
        st = ff_error_set(err, FF_ERR_CONFIG,
                          "config file %s contains a NUL byte", path);

done:
    close(fd);
    if (st != FF_OK) {
        free(buf);
        return st;
    }
    buf[len] = '\0';
    *out = buf;
    return FF_OK;
}

ff_status ff_config_ini_load(const ff_config_options *o, const char *path,
                             ff_error *err)
{
    ini_ctx x = {o, err, FF_OK};
    char *text = NULL;

    ff_status st = read_config_file(path, &text, err);
    if (st != FF_OK)
        return st;
    int rc = ini_parse_string(text, ini_key, &x);
    free(text);
    if (rc == -2)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory reading %s",
                            path);
    if (rc != 0) {
        if (x.st == FF_OK)
            return ff_error_set(err, FF_ERR_CONFIG, "%s:%d: syntax error",
                                path, rc);
        return ff_error_wrap(err, FF_ERR_CONFIG, "%s:%d", path, rc);
    }
    return FF_OK;
}

/* ---- command line ---- */

/* Splits argv[*i] ("--key", "--key=value") into key and value; a value not
 * joined by '=' is the next argument. */
static ff_status next_flag(int argc, char **argv, int *i, char *key,
                           size_t cap, const char **value, ff_error *err)
{
    const char *a = argv[*i];
    const char *eq;
    size_t n;

    if (strncmp(a, "--", 2) != 0)
        return ff_error_set(err, FF_ERR_CONFIG, "unexpected argument '%s'",
                            a);
    a += 2;
    eq = strchr(a, '=');
    n = eq ? (size_t)(eq - a) : strlen(a);
    if (n == 0 || n >= cap)
        return ff_error_set(err, FF_ERR_CONFIG, "bad option '%s'", argv[*i]);
    memcpy(key, a, n);
    key[n] = '\0';
    if (eq != NULL) {
        *value = eq + 1;
    } else if (strcmp(key, "help") == 0) {
        *value = NULL;
    } else {
        if (*i + 1 >= argc)
            return ff_error_set(err, FF_ERR_CONFIG, "--%s needs a value",
                                key);
        *value = argv[++*i];
    }
    return FF_OK;
}

ff_status ff_config_args_parse(const ff_config_options *o, int argc,
                               char **argv, int *help, ff_error *err)
{
    char key[FF_CONFIG_KEY_CAP];
    const char *value = NULL;
    ff_status st;
    int i;

    /* First pass: --help and --config. */
    *help = 0;
    for (i = 1; i < argc; i++) {
        st = next_flag(argc, argv, &i, key, sizeof key, &value, err);
        if (st != FF_OK)
            return st;
        if (strcmp(key, "help") == 0) {
            *help = 1;
            return FF_OK;
        }
        if (strcmp(key, "config") == 0) {
            st = ff_config_ini_load(o, value, err);
            if (st != FF_OK)
                return st;
        }
    }

    /* Second pass: every other flag overrides the file. */
    for (i = 1; i < argc; i++) {
        st = next_flag(argc, argv, &i, key, sizeof key, &value, err);
        if (st == FF_OK && strcmp(key, "config") != 0)
            st = o->set(o->ctx, key, value, err);
        if (st != FF_OK)
            return ff_error_wrap(err, FF_ERR_CONFIG, "command line");
    }
    return FF_OK;
}

ff_status
ff_config_check_address(const char *what, const char *addr, int allow_zero,
                        ff_error *err)
{
    const char *colon = strrchr(addr, ':');
    long port = 0;
    size_t digits;

    if (colon == NULL || colon == addr)
        return ff_error_set(err, FF_ERR_CONFIG, "%s: '%s' is not HOST:PORT",
                            what, addr);
    digits = strspn(colon + 1, "0123456789");
    if (digits == 0 || digits > 5 || colon[1 + digits] != '\0')
        return ff_error_set(err, FF_ERR_CONFIG, "%s: '%s' has no decimal "
                            "port after the last ':'", what, addr);
    port = strtol(colon + 1, NULL, 10);
    if (port > 65535 || (port == 0 && !allow_zero))
        return ff_error_set(err, FF_ERR_CONFIG, "%s: port %ld is outside "
                            "%d..65535", what, port, allow_zero ? 0 : 1);
    return FF_OK;
}
