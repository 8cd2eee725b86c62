/*
 * ff_config.c - option values, INI files (libinih) and command-line flags,
 * shared by the programs' configurations.
 */
#include "ff_config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

ff_status ff_config_ini_load(const ff_config_options *o, const char *path,
                             ff_error *err)
{
    ini_ctx x = {o, err, FF_OK};
    int rc = ini_parse(path, ini_key, &x);

    if (rc == -1)
        return ff_error_set(err, FF_ERR_IO, "cannot open config file %s",
                            path);
    if (rc == -2)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory reading %s",
                            path);
    if (rc > 0) {
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
