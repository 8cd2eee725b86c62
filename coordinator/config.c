/*
 * config.c - coordinator options from defaults, an INI file and flags.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "../common/ff_config.h"

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
    c->secagg = 1;
    c->secagg_clip = 4096.0;
    c->secagg_stage_deadline = 20.0;
    c->secagg_dropout = 0.34;
    c->secagg_corrupt = 0.1;
    c->secagg_max_uploads = 4;
    c->site_dp = FF_WIRE_SITE_DP_NONE;
    c->site_dp_clip = 1.0;
    c->site_dp_noise = 1.0;
    c->site_dp_bits = 20;
    c->model_delta = 0.0;       /* not given */
    c->tls = 1;
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
        "  --secagg on|off      securely sum each round (SecAgg+; needs 3+\n"
        "                       sites); default on\n"
        "  --secagg-clip C      clip of example-weighted deltas (4096)\n"
        "  --secagg-stage-deadline SEC  wait of each later stage (20)\n"
        "  --secagg-dropout X --secagg-corrupt X\n"
        "                       dropout and collusion rates (k, t) must\n"
        "                       tolerate (0.34, 0.1)\n"
        "  --secagg-max-uploads N  uploads (masked or plain) buffered at\n"
        "                       once, 1..1024; more are answered busy and\n"
        "                       the site retries (4)\n"
        "  --site-dp off|central|distributed\n"
        "                       site-level DP of the model: central noise\n"
        "                       added by the coordinator, or distributed\n"
        "                       discrete Gaussian noise added by the sites\n"
        "                       (needs --secagg on and 3+ sites); off\n"
        "  --site-dp-clip C     L2 clip of each site's update (1.0)\n"
        "  --site-dp-noise Z    noise multiplier: std Z x clip (1.0)\n"
        "  --site-dp-bits B     distributed: sum modulo 2^B, 8..32 (20)\n"
        "  --site-dp-adaptive on|off  adaptive clipping (off; central only,\n"
        "                       needs min-sites above 10 x Z)\n"
        "  --model-epsilon E --model-delta D\n"
        "                       the model's privacy budget at start: set\n"
        "                       when none is stored, lowered but never\n"
        "                       raised when one is; a round that would\n"
        "                       exceed it is refused\n"
        "Security (docs/protocol.md, \"Security\"):\n"
        "  --tls on|off         mutual TLS; off only for insecure tests (on)\n"
        "  --ca FILE            the consortium CA certificate (PEM)\n"
        "  --cert FILE --key FILE\n"
        "                       this coordinator's certificate and key\n"
        "                       (fedfusectl coordinator cert)\n"
        "  --signing-key FILE   Ed25519 key that signs every version,\n"
        "                       created (0600) on first use; its public\n"
        "                       half goes to FILE.pub (default:\n"
        "                       signing_key beside the port file)\n"
        "  --help               this text\n",
        f);
}

/* ---- values ---- */

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

/* Parses "on" or "off" into *out. */
static ff_status parse_on_off(const char *k, const char *v, int *out,
                              ff_error *err)
{
    if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
        return ff_error_set(err, FF_ERR_CONFIG, "%s: '%s' is not on or off",
                            k, v);
    *out = strcmp(v, "on") == 0;
    return FF_OK;
}

/* Site-level DP and model budget options; FF_ERR_NOT_FOUND for a key it
 * does not know. */
static ff_status set_privacy(ff_coord_config *c, const char *k,
                             const char *v, ff_error *err)
{
    int bits = 0;
    ff_status st;

    if (strcmp(k, "site-dp") == 0) {
        if (strcmp(v, "off") == 0)
            c->site_dp = FF_WIRE_SITE_DP_NONE;
        else if (strcmp(v, "central") == 0)
            c->site_dp = FF_WIRE_SITE_DP_CENTRAL;
        else if (strcmp(v, "distributed") == 0)
            c->site_dp = FF_WIRE_SITE_DP_DISTRIBUTED;
        else
            return ff_error_set(err, FF_ERR_CONFIG, "site-dp: '%s' is not "
                                "off, central or distributed", v);
        return FF_OK;
    }
    if (strcmp(k, "site-dp-clip") == 0)
        return ff_config_parse_double(v, 1e-9, 1e9, &c->site_dp_clip, k,
                                      err);
    if (strcmp(k, "site-dp-noise") == 0)
        return ff_config_parse_double(v, 1e-3, 1e6, &c->site_dp_noise, k,
                                      err);
    if (strcmp(k, "site-dp-bits") == 0) {
        st = ff_config_parse_int(v, 8, 32, &bits, k, err);
        if (st == FF_OK)
            c->site_dp_bits = (unsigned)bits;
        return st;
    }
    if (strcmp(k, "site-dp-adaptive") == 0)
        return parse_on_off(k, v, &c->site_dp_adaptive, err);
    if (strcmp(k, "model-epsilon") == 0)
        return ff_config_parse_double(v, 1e-9, 1e9, &c->model_epsilon, k,
                                      err);
    if (strcmp(k, "model-delta") == 0) {
        st = ff_config_parse_double(v, 0.0, 1.0, &c->model_delta, k, err);
        if (st == FF_OK && !(c->model_delta > 0.0 && c->model_delta < 1.0))
            return ff_error_set(err, FF_ERR_CONFIG, "model-delta: must lie "
                                "strictly between 0 and 1, got %s", v);
        return st;
    }
    return FF_ERR_NOT_FOUND;
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
        return ff_config_parse_int(v, 1, 1000, &t->epochs, k, err);
    if (strcmp(k, "batch") == 0)
        return ff_config_parse_int(v, 1, 65536, &t->batch_size, k, err);
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
        st = ff_config_parse_u64(v, &t->seed, k, err);
        c->init_seed = t->seed;
        return st;
    }
    if (strcmp(k, "lr") == 0 || strcmp(k, "momentum") == 0 ||
        strcmp(k, "dropout") == 0 || strcmp(k, "weight-decay") == 0) {
        double hi = strcmp(k, "lr") == 0 ? 100.0 : 0.999999;
        st = ff_config_parse_double(v, 0.0, hi, &x, k, err);
        if (st != FF_OK)
            return st;
        if (strcmp(k, "lr") == 0 && !(x > 0.0))
            return ff_error_set(err, FF_ERR_CONFIG, "lr: must be above 0, "
                                "got %s", v);
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

/* Sets option k (flag name without dashes) to v (an ff_config_set_fn). */
static ff_status set_option(void *ctx, const char *k, const char *v,
                            ff_error *err)
{
    ff_coord_config *c = ctx;
    int ms = 0;
    ff_status st;

    if (strcmp(k, "listen") == 0)
        return ff_config_copy_str(c->listen, sizeof c->listen, v, k, err);
    if (strcmp(k, "port-file") == 0)
        return ff_config_copy_str(c->port_file, sizeof c->port_file, v, k, err);
    if (strcmp(k, "db") == 0)
        return ff_config_copy_str(c->db, sizeof c->db, v, k, err);
    if (strcmp(k, "test") == 0)
        return ff_config_copy_str(c->test_manifest, sizeof c->test_manifest, v,
                                  k, err);
    if (strcmp(k, "model") == 0) {
        if (!ff_wire_id_valid(v))
            return ff_error_set(err, FF_ERR_CONFIG,
                                "model: '%s' is not a valid name", v);
        return ff_config_copy_str(c->model, sizeof c->model, v, k, err);
    }
    if (strcmp(k, "sites") == 0)
        return parse_sites(c, v, err);
    if (strcmp(k, "rounds") == 0)
        return ff_config_parse_int(v, 1, 1000000, &c->rounds, k, err);
    if (strcmp(k, "min-sites") == 0)
        return ff_config_parse_int(v, 1, FF_COORD_MAX_SITES, &c->min_sites, k,
                                   err);
    if (strcmp(k, "threads") == 0)
        return ff_config_parse_int(v, 1, 64, &c->threads, k, err);
    if (strcmp(k, "wait-sites") == 0)
        return ff_config_parse_double(v, 0.0, 86400.0, &c->wait_sites, k, err);
    if (strcmp(k, "deadline") == 0)
        return ff_config_parse_double(v, 0.1, 86400.0, &c->deadline, k, err);
    if (strcmp(k, "finish-grace") == 0)
        return ff_config_parse_double(v, 0.0, 3600.0, &c->finish_grace, k, err);
    if (strcmp(k, "secagg") == 0)
        return parse_on_off(k, v, &c->secagg, err);
    if (strcmp(k, "secagg-clip") == 0)
        return ff_config_parse_double(v, 1e-6, 1e9, &c->secagg_clip, k, err);
    if (strcmp(k, "secagg-stage-deadline") == 0)
        return ff_config_parse_double(v, 0.1, 86400.0,
                                      &c->secagg_stage_deadline, k, err);
    if (strcmp(k, "secagg-dropout") == 0)
        return ff_config_parse_double(v, 0.0, 0.9, &c->secagg_dropout, k,
                                      err);
    if (strcmp(k, "secagg-corrupt") == 0)
        return ff_config_parse_double(v, 0.0, 0.9, &c->secagg_corrupt, k,
                                      err);
    if (strcmp(k, "secagg-max-uploads") == 0)
        return ff_config_parse_int(v, 1, 1024, &c->secagg_max_uploads, k,
                                   err);
    if (strcmp(k, "tls") == 0)
        return parse_on_off(k, v, &c->tls, err);
    if (strcmp(k, "ca") == 0)
        return ff_config_copy_str(c->ca, sizeof c->ca, v, k, err);
    if (strcmp(k, "cert") == 0)
        return ff_config_copy_str(c->cert, sizeof c->cert, v, k, err);
    if (strcmp(k, "key") == 0)
        return ff_config_copy_str(c->key, sizeof c->key, v, k, err);
    if (strcmp(k, "signing-key") == 0)
        return ff_config_copy_str(c->signing_key, sizeof c->signing_key, v,
                                  k, err);
    if (strcmp(k, "poll-interval") == 0) {
        st = ff_config_parse_int(v, 10, 60000, &ms, k, err);
        if (st == FF_OK)
            c->poll_interval_ms = (unsigned)ms;
        return st;
    }
    st = set_train(c, k, v, err);
    if (st == FF_ERR_NOT_FOUND)
        st = set_privacy(c, k, v, err);
    if (st == FF_ERR_NOT_FOUND)
        return ff_error_set(err, FF_ERR_CONFIG, "unknown option '%s'", k);
    return st;
}

/* ---- command line and INI file ---- */

/* The INI sections that hold coordinator options. */
static const char *const coord_sections[] = {"coordinator", "training",
                                             "privacy", NULL};

ff_status ff_coord_config_parse(ff_coord_config *c, int argc, char **argv,
                                int *help, ff_error *err)
{
    ff_config_options o = {coord_sections, set_option, c};
    const char *env = getenv("FEDFUSE_DB");
    ff_status st = ff_config_args_parse(&o, argc, argv, help, err);

    /* The environment names the database when nothing else did. */
    if (st != FF_OK || *help)
        return st;
    if (c->db[0] == '\0' && env != NULL)
        return ff_config_copy_str(c->db, sizeof c->db, env, "FEDFUSE_DB", err);
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
    if (c->secagg && c->n_sites < 3)
        return ff_error_set(err, FF_ERR_CONFIG,
                            "secagg on needs at least 3 known sites, got %d "
                            "(or give --secagg off)", c->n_sites);
    if (c->site_dp == FF_WIRE_SITE_DP_DISTRIBUTED && !c->secagg)
        return ff_error_set(err, FF_ERR_CONFIG,
                            "site-dp distributed needs secure aggregation: "
                            "give --secagg on (or --site-dp central)");
    if (c->site_dp == FF_WIRE_SITE_DP_DISTRIBUTED && c->n_sites < 3)
        return ff_error_set(err, FF_ERR_CONFIG,
                            "site-dp distributed needs at least 3 known "
                            "sites, got %d", c->n_sites);
    if (c->site_dp_adaptive && c->site_dp == FF_WIRE_SITE_DP_NONE)
        return ff_error_set(err, FF_ERR_CONFIG,
                            "site-dp-adaptive on needs --site-dp central");
    if (c->site_dp_adaptive && c->site_dp == FF_WIRE_SITE_DP_DISTRIBUTED)
        return ff_error_set(err, FF_ERR_CONFIG,
                            "site-dp-adaptive on: adaptive clipping needs "
                            "central mode: under distributed DP the count "
                            "would reach the coordinator unnoised (give "
                            "--site-dp central or --site-dp-adaptive off)");
    if (c->site_dp_adaptive &&
        !(2.0 * c->min_sites / FF_COORD_DP_COUNT_STD_DIV > c->site_dp_noise))
        return ff_error_set(err, FF_ERR_CONFIG,
                            "site-dp-adaptive on with --site-dp-noise %g "
                            "needs min-sites above %g, got %d: the unclipped "
                            "count's noise (std sites / %g) must exceed z / 2 "
                            "for the update to keep any noise",
                            c->site_dp_noise,
                            FF_COORD_DP_COUNT_STD_DIV / 2.0 * c->site_dp_noise,
                            c->min_sites, FF_COORD_DP_COUNT_STD_DIV);
    if (c->tls && (c->ca[0] == '\0' || c->cert[0] == '\0' ||
                   c->key[0] == '\0'))
        return ff_error_set(err, FF_ERR_CONFIG,
                            "tls on needs --ca, --cert and --key (or give "
                            "--tls off for an insecure test setup)");
    {
        char path[FF_COORD_STR_MAX];
        ff_status st = ff_coord_config_signing_path(c, path, sizeof path,
                                                    err);
        if (st != FF_OK)
            return st;
    }
    return ff_config_check_address("listen", c->listen, 1, err);
}

ff_status ff_coord_config_signing_path(const ff_coord_config *c, char *out,
                                       size_t cap, ff_error *err)
{
    const char *slash = strrchr(c->port_file, '/');
    int n;

    if (c->signing_key[0] != '\0')
        n = snprintf(out, cap, "%s", c->signing_key);
    else if (c->port_file[0] == '\0')
        return ff_error_set(err, FF_ERR_CONFIG,
                            "no signing key: give --signing-key FILE (or "
                            "--port-file, beside which it is kept)");
    else if (slash == NULL)
        n = snprintf(out, cap, "signing_key");
    else
        n = snprintf(out, cap, "%.*s/signing_key",
                     (int)(slash - c->port_file), c->port_file);
    if (n < 0 || (size_t)n >= cap)
        return ff_error_set(err, FF_ERR_CONFIG, "signing key path is "
                            "longer than %zu bytes", cap - 1);
    return FF_OK;
}
