/*
 * config.c - site options from defaults, an INI file and flags.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ff_site_config_default(ff_site_config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->coordinator, "127.0.0.1:7070");
    c->threads = 1;
    c->retry_seconds = 60.0;
    c->rpc_timeout = 10.0;
    c->transfer_timeout = 120.0;
}

void ff_site_config_usage(FILE *f)
{
    fputs(
        "usage: fedfuse-site [--config FILE] [options]\n"
        "Takes part in a fedfuse federation: registers with the\n"
        "coordinator, trains each round on the local records and sends the\n"
        "update. Only connects out. Flags override the INI file.\n"
        "  --config FILE            INI file (section [site])\n"
        "  --id NAME                this site's id\n"
        "  --coordinator HOST:PORT  the coordinator's address\n"
        "  --manifest PATH          the site's records (JSON Lines)\n"
        "  --threads N              OpenBLAS threads\n"
        "  --retry-seconds S        keep retrying an unreachable\n"
        "                           coordinator this long (default 60)\n"
        "  --rpc-timeout S          deadline of Register and Poll calls\n"
        "  --transfer-timeout S     deadline of a download or upload\n"
        "  --help                   this text\n",
        f);
}

static ff_status parse_double(const char *v, double lo, double hi,
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

static ff_status copy_str(char *dst, size_t cap, const char *v,
                          const char *key, ff_error *err)
{
    if (strlen(v) >= cap)
        return ff_error_set(err, FF_ERR_CONFIG, "%s: value longer than %zu "
                            "bytes", key, cap - 1);
    strcpy(dst, v);
    return FF_OK;
}

/* Sets option k (flag name without dashes) to v. */
static ff_status set_option(ff_site_config *c, const char *k, const char *v,
                            ff_error *err)
{
    double x = 0.0;
    ff_status st;

    if (strcmp(k, "id") == 0) {
        if (!ff_wire_id_valid(v))
            return ff_error_set(err, FF_ERR_CONFIG,
                                "id: '%s' is not 1-%d characters of "
                                "[A-Za-z0-9._-]", v, FF_WIRE_ID_MAX);
        return copy_str(c->id, sizeof c->id, v, k, err);
    }
    if (strcmp(k, "coordinator") == 0)
        return copy_str(c->coordinator, sizeof c->coordinator, v, k, err);
    if (strcmp(k, "manifest") == 0)
        return copy_str(c->manifest, sizeof c->manifest, v, k, err);
    if (strcmp(k, "threads") == 0) {
        st = parse_double(v, 1, 64, &x, k, err);
        if (st == FF_OK && x != floor(x))
            st = ff_error_set(err, FF_ERR_CONFIG, "threads: '%s' is not "
                              "an integer", v);
        if (st == FF_OK)
            c->threads = (int)x;
        return st;
    }
    if (strcmp(k, "retry-seconds") == 0)
        return parse_double(v, 0.0, 86400.0, &c->retry_seconds, k, err);
    if (strcmp(k, "rpc-timeout") == 0)
        return parse_double(v, 0.1, 3600.0, &c->rpc_timeout, k, err);
    if (strcmp(k, "transfer-timeout") == 0)
        return parse_double(v, 0.1, 86400.0, &c->transfer_timeout, k, err);
    return ff_error_set(err, FF_ERR_CONFIG, "unknown option '%s'", k);
}

typedef struct ini_ctx {
    ff_site_config *c;
    ff_error *err;
    ff_status st;
} ini_ctx;

/* inih callback: one key of [site]. */
static int ini_key(void *user, const char *section, const char *name,
                   const char *value)
{
    ini_ctx *x = user;
    char key[64];
    size_t i;

    if (strcmp(section, "site") != 0) {
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
    x->st = set_option(x->c, key, value, x->err);
    return x->st == FF_OK;
}

static ff_status load_ini(ff_site_config *c, const char *path, ff_error *err)
{
    ini_ctx x = {c, err, FF_OK};
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

ff_status ff_site_config_parse(ff_site_config *c, int argc, char **argv,
                               int *help, ff_error *err)
{
    char key[64];
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
            st = load_ini(c, value, err);
            if (st != FF_OK)
                return st;
        }
    }

    /* Second pass: every other flag overrides the file. */
    for (i = 1; i < argc; i++) {
        st = next_flag(argc, argv, &i, key, sizeof key, &value, err);
        if (st == FF_OK && strcmp(key, "config") != 0)
            st = set_option(c, key, value, err);
        if (st != FF_OK)
            return ff_error_wrap(err, FF_ERR_CONFIG, "command line");
    }
    return FF_OK;
}

ff_status ff_site_config_check(const ff_site_config *c, ff_error *err)
{
    if (c->id[0] == '\0')
        return ff_error_set(err, FF_ERR_CONFIG, "no site id: give --id");
    if (c->manifest[0] == '\0')
        return ff_error_set(err, FF_ERR_CONFIG,
                            "no records: give --manifest PATH");
    if (strchr(c->coordinator, ':') == NULL)
        return ff_error_set(err, FF_ERR_CONFIG,
                            "coordinator: '%s' is not HOST:PORT",
                            c->coordinator);
    return FF_OK;
}
