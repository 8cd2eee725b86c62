/*
 * config.c - coordinator options from defaults, an INI file and flags.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ff_coord_config_default(ff_coord_config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->listen, "127.0.0.1:7070");
    strcpy(c->model, "feddigits");
    c->rounds = 3;
    c->min_sites = 1;
    c->wait_sites = 60.0;
    c->deadline = 120.0;
    c->finish_grace = 10.0;
    c->threads = 1;
    c->poll_interval_ms = 500;
    ff_train_config_default(&c->train);
    c->init_seed = c->train.seed;
}

void ff_coord_config_usage(FILE *f)
{
    fputs(
        "usage: fedfuse-coordinator [--config FILE] [options]\n"
        "Runs federated rounds over gRPC and publishes every averaged model\n"
        "version to the registry. Flags override the INI file.\n"
        "  --config FILE        INI file ([coordinator] and [training])\n"
        "  --listen HOST:PORT   address to serve on (port 0 picks one)\n"
        "  --port-file FILE     write the bound port there\n"
        "  --db CONNINFO        libpq conninfo (else env FEDFUSE_DB)\n"
        "  --model NAME         model name in the registry (feddigits)\n"
        "  --test MANIFEST      global test set every version is scored on\n"
        "  --sites a,b,c        the known sites; others are refused\n"
        "  --rounds R           last round number of the federation\n"
        "  --min-sites N        fewest updates that make a round\n"
        "  --wait-sites SEC     how long to wait for sites before a round\n"
        "  --deadline SEC       how long a round waits for updates\n"
        "  --finish-grace SEC   how long to wait for sites to hear FINISHED\n"
        "  --poll-interval MS   how often sites should poll\n"
        "  --epochs N --batch N --lr X --lr-schedule constant|cosine\n"
        "  --optimizer sgd|adam --momentum X\n"
        "  --weight-decay X --dropout X --seed N\n"
        "                       local training config sent to the sites;\n"
        "                       --seed also draws the initial model\n"
        "  --threads N          OpenBLAS threads\n"
        "  --help               this text\n",
        f);
}

/* ---- value parsers ---- */

static ff_status parse_int(const char *v, int lo, int hi, int *out,
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

static ff_status parse_u64(const char *v, uint64_t *out, const char *key,
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

static ff_status copy_str(char *dst, size_t cap, const char *v,
                          const char *key, ff_error *err)
{
    if (strlen(v) >= cap)
        return ff_error_set(err, FF_ERR_CONFIG, "%s: value longer than %zu "
                            "bytes", key, cap - 1);
    strcpy(dst, v);
    return FF_OK;
}

/* Splits "a, b,c" into validated, distinct site ids. */
static ff_status parse_sites(ff_coord_config *c, const char *v,
                             ff_error *err)
{
    const char *p = v;

    c->n_sites = 0;
    while (*p != '\0') {
        char id[FF_WIRE_ID_MAX + 2];
        size_t n;
        int k;

        /* One comma-separated item, blanks trimmed. */
        while (*p == ' ' || *p == '\t')
            p++;
        n = strcspn(p, ",");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0 || n > FF_WIRE_ID_MAX)
            return ff_error_set(err, FF_ERR_CONFIG,
                                "sites: empty or over-long name in '%s'", v);
        memcpy(id, p, n);
        id[n] = '\0';
        if (!ff_wire_id_valid(id))
            return ff_error_set(err, FF_ERR_CONFIG,
                                "sites: '%s' is not a valid site id", id);
        for (k = 0; k < c->n_sites; k++)
            if (strcmp(c->sites[k], id) == 0)
                return ff_error_set(err, FF_ERR_CONFIG,
                                    "sites: '%s' is listed twice", id);
        if (c->n_sites == FF_COORD_MAX_SITES)
            return ff_error_set(err, FF_ERR_CONFIG, "sites: more than %d",
                                FF_COORD_MAX_SITES);
        strcpy(c->sites[c->n_sites++], id);

        /* Past the item and its comma. */
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    return FF_OK;
}

static ff_status parse_optimizer(const char *v, ff_optimizer *out,
                                 ff_error *err)
{
    if (strcmp(v, "sgd") == 0)
        *out = FF_OPT_SGD;
    else if (strcmp(v, "adam") == 0)
        *out = FF_OPT_ADAM;
    else
        return ff_error_set(err, FF_ERR_CONFIG,
                            "optimizer: '%s' is not sgd or adam", v);
    return FF_OK;
}

/* ---- one option, from a flag or an INI key ---- */

/* Training options; returns FF_ERR_NOT_FOUND for a key it does not know. */
static ff_status set_train(ff_coord_config *c, const char *k, const char *v,
                           ff_error *err)
{
    ff_train_config *t = &c->train;
    double x = 0.0;
    ff_status st;

    if (strcmp(k, "epochs") == 0)
        return parse_int(v, 1, 1000, &t->epochs, k, err);
    if (strcmp(k, "batch") == 0)
        return parse_int(v, 1, 65536, &t->batch_size, k, err);
    if (strcmp(k, "optimizer") == 0)
        return parse_optimizer(v, &t->optimizer, err);
    if (strcmp(k, "lr-schedule") == 0) {
        if (strcmp(v, "constant") != 0 && strcmp(v, "cosine") != 0)
            return ff_error_set(err, FF_ERR_CONFIG, "lr-schedule: '%s' is "
                                "not constant or cosine", v);
        t->lr_schedule = strcmp(v, "cosine") == 0 ? FF_LR_COSINE
                                                  : FF_LR_CONSTANT;
        return FF_OK;
    }
    if (strcmp(k, "seed") == 0) {
        st = parse_u64(v, &t->seed, k, err);
        c->init_seed = t->seed;
        return st;
    }
    if (strcmp(k, "lr") == 0 || strcmp(k, "momentum") == 0 ||
        strcmp(k, "dropout") == 0 || strcmp(k, "weight-decay") == 0) {
        double hi = strcmp(k, "lr") == 0 ? 100.0 : 0.999999;
        st = parse_double(v, 0.0, hi, &x, k, err);
        if (st != FF_OK)
            return st;
        if (strcmp(k, "lr") == 0)
            t->lr = (float)x;
        else if (strcmp(k, "momentum") == 0)
            t->momentum = (float)x;
        else if (strcmp(k, "dropout") == 0)
            t->modality_dropout = (float)x;
        else
            t->weight_decay = (float)x;
        return FF_OK;
    }
    return FF_ERR_NOT_FOUND;
}

/* Sets option k (flag name without dashes) to v. */
static ff_status set_option(ff_coord_config *c, const char *k, const char *v,
                            ff_error *err)
{
    int ms = 0;
    ff_status st;

    if (strcmp(k, "listen") == 0)
        return copy_str(c->listen, sizeof c->listen, v, k, err);
    if (strcmp(k, "port-file") == 0)
        return copy_str(c->port_file, sizeof c->port_file, v, k, err);
    if (strcmp(k, "db") == 0)
        return copy_str(c->db, sizeof c->db, v, k, err);
    if (strcmp(k, "test") == 0)
        return copy_str(c->test_manifest, sizeof c->test_manifest, v, k,
                        err);
    if (strcmp(k, "model") == 0) {
        if (!ff_wire_id_valid(v))
            return ff_error_set(err, FF_ERR_CONFIG,
                                "model: '%s' is not a valid name", v);
        return copy_str(c->model, sizeof c->model, v, k, err);
    }
    if (strcmp(k, "sites") == 0)
        return parse_sites(c, v, err);
    if (strcmp(k, "rounds") == 0)
        return parse_int(v, 1, 1000000, &c->rounds, k, err);
    if (strcmp(k, "min-sites") == 0)
        return parse_int(v, 1, FF_COORD_MAX_SITES, &c->min_sites, k, err);
    if (strcmp(k, "threads") == 0)
        return parse_int(v, 1, 64, &c->threads, k, err);
    if (strcmp(k, "wait-sites") == 0)
        return parse_double(v, 0.0, 86400.0, &c->wait_sites, k, err);
    if (strcmp(k, "deadline") == 0)
        return parse_double(v, 0.1, 86400.0, &c->deadline, k, err);
    if (strcmp(k, "finish-grace") == 0)
        return parse_double(v, 0.0, 3600.0, &c->finish_grace, k, err);
    if (strcmp(k, "poll-interval") == 0) {
        st = parse_int(v, 10, 60000, &ms, k, err);
        if (st == FF_OK)
            c->poll_interval_ms = (unsigned)ms;
        return st;
    }
    st = set_train(c, k, v, err);
    if (st == FF_ERR_NOT_FOUND)
        return ff_error_set(err, FF_ERR_CONFIG, "unknown option '%s'", k);
    return st;
}

/* ---- INI file ---- */

typedef struct ini_ctx {
    ff_coord_config *c;
    ff_error *err;
    ff_status st;
} ini_ctx;

/* inih callback: one key of [coordinator] or [training]. */
static int ini_key(void *user, const char *section, const char *name,
                       const char *value)
{
    ini_ctx *x = user;
    char key[64];
    size_t i;

    if (strcmp(section, "coordinator") != 0 &&
        strcmp(section, "training") != 0) {
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

static ff_status load_ini(ff_coord_config *c, const char *path,
                          ff_error *err)
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

ff_status ff_coord_config_parse(ff_coord_config *c, int argc, char **argv,
                                int *help, ff_error *err)
{
    const char *env = getenv("FEDFUSE_DB");
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
    if (c->db[0] == '\0' && env != NULL)
        return copy_str(c->db, sizeof c->db, env, "FEDFUSE_DB", err);
    return FF_OK;
}

ff_status ff_coord_config_check(const ff_coord_config *c, ff_error *err)
{
    if (c->db[0] == '\0')
        return ff_error_set(err, FF_ERR_CONFIG,
                            "no database: give --db or set FEDFUSE_DB");
    if (c->test_manifest[0] == '\0')
        return ff_error_set(err, FF_ERR_CONFIG,
                            "no test set: give --test MANIFEST");
    if (c->n_sites == 0)
        return ff_error_set(err, FF_ERR_CONFIG,
                            "no known sites: give --sites a,b,c");
    if (c->min_sites > c->n_sites)
        return ff_error_set(err, FF_ERR_CONFIG,
                            "min-sites %d exceeds the %d known sites",
                            c->min_sites, c->n_sites);
    if (strchr(c->listen, ':') == NULL)
        return ff_error_set(err, FF_ERR_CONFIG,
                            "listen: '%s' is not HOST:PORT", c->listen);
    return FF_OK;
}
