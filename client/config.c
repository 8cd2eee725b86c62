/*
 * config.c - site options from defaults, an INI file and flags.
 */
#include "config.h"

#include <math.h>
#include <sodium.h>
#include <string.h>

#include "../common/ff_config.h"

void ff_site_config_default(ff_site_config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->coordinator, "127.0.0.1:7070");
    c->threads = 1;
    c->retry_seconds = 60.0;
    c->rpc_timeout = 10.0;
    c->transfer_timeout = 120.0;
    ff_site_privacy_config_default(&c->privacy);
    c->tls = 1;
}

void ff_site_config_usage(FILE *f)
{
    fputs(
        "usage: fedfuse-site [--config FILE] [options]\n"
        "       fedfuse-site deploy --out FILE [--config FILE] [options]\n"
        "       fedfuse-site enroll --id SITE --key FILE --csr FILE\n"
        "Takes part in a fedfuse federation: registers with the\n"
        "coordinator, trains each round on the local records and sends the\n"
        "update. Only connects out. Flags override the INI file.\n"
        "deploy fetches the production version, verifies its signature\n"
        "and writes it to FILE; enroll makes this site's key and CSR.\n"
        "  --config FILE            INI file (section [site])\n"
        "  --id NAME                this site's id\n"
        "  --coordinator HOST:PORT  the coordinator's address\n"
        "  --manifest PATH          the site's records (JSON Lines)\n"
        "  --threads N              OpenBLAS threads\n"
        "  --retry-seconds S        keep retrying an unreachable\n"
        "                           coordinator this long (default 60)\n"
        "  --rpc-timeout S          deadline of Register and Poll calls\n"
        "  --transfer-timeout S     deadline of a download or upload\n"
        "  --identity FILE          the site's Ed25519 identity key, made\n"
        "                           on first start (mode 0600; default\n"
        "                           site.identity next to the manifest)\n"
        "Security (docs/protocol.md, \"Security\"):\n"
        "  --tls on|off             mutual TLS (default on; off only for\n"
        "                           insecure tests)\n"
        "  --ca FILE                the consortium CA certificate\n"
        "  --cert FILE --key FILE   this site's certificate and key\n"
        "                           (fedfuse-site enroll, then an operator\n"
        "                           approves the CSR)\n"
        "  --coordinator-key HEX    the coordinator's model signing key;\n"
        "  --coordinator-key-file FILE  or a file holding it (its\n"
        "                           signing_key.pub); models that do not\n"
        "                           verify with it are refused\n"
        "Record-level privacy (section [privacy]; docs/site-privacy.md):\n"
        "  --dp on|off              DP-SGD on this site's records\n"
        "                           (default on)\n"
        "  --epsilon-budget E       the most epsilon these records may\n"
        "                           ever spend; rounds beyond it are\n"
        "                           refused (default 8)\n"
        "  --delta D                delta of the guarantee, at most 1e-3 and\n"
        "                           below 1 / records (default 1e-5)\n"
        "  --clip C                 per-record L2 clip norm (default 1)\n"
        "  --noise-multiplier Z     noise std / clip; 0 plans it so that\n"
        "                           planned-rounds rounds spend the\n"
        "                           budget (default 0)\n"
        "  --planned-rounds N       rounds the plan covers (default 10)\n"
        "  --batch B                expected Poisson batch size\n"
        "                           (default 64)\n"
        "  --ledger FILE            the site's privacy ledger (default\n"
        "                           privacy-ledger.json next to the\n"
        "                           manifest); never delete it\n"
        "  --help                   this text\n",
        f);
}

/* Parses a whole number in lo..hi. */
static ff_status parse_whole(const char *v, double lo, double hi, int *out,
                             const char *k, ff_error *err)
{
    double x = 0.0;
    ff_status st = ff_config_parse_double(v, lo, hi, &x, k, err);

    if (st == FF_OK && x != floor(x))
        st = ff_error_set(err, FF_ERR_CONFIG, "%s: '%s' is not an integer",
                          k, v);
    if (st == FF_OK)
        *out = (int)x;
    return st;
}

/* Sets a [privacy] option; FF_ERR_NOT_FOUND when k is none of them. */
static ff_status set_privacy(ff_site_privacy_config *p, const char *k,
                             const char *v, ff_error *err)
{
    if (strcmp(k, "dp") == 0) {
        if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
            return ff_error_set(err, FF_ERR_CONFIG, "dp: '%s' is not on or "
                                "off", v);
        p->dp = strcmp(v, "on") == 0;
        return FF_OK;
    }
    if (strcmp(k, "epsilon-budget") == 0)
        return ff_config_parse_double(v, 1e-6, 1e6, &p->epsilon_budget, k,
                                      err);
    if (strcmp(k, "delta") == 0)
        return ff_config_parse_double(v, 1e-300, FF_SITE_DELTA_MAX,
                                      &p->delta, k, err);
    if (strcmp(k, "clip") == 0)
        return ff_config_parse_double(v, 1e-9, 1e9, &p->clip, k, err);
    if (strcmp(k, "noise-multiplier") == 0)
        return ff_config_parse_double(v, 0.0, 1e6, &p->noise_multiplier, k,
                                      err);
    if (strcmp(k, "planned-rounds") == 0)
        return parse_whole(v, 1, 100000, &p->planned_rounds, k, err);
    if (strcmp(k, "batch") == 0)
        return parse_whole(v, 1, 10000000, &p->batch, k, err);
    if (strcmp(k, "ledger") == 0)
        return ff_config_copy_str(p->ledger, sizeof p->ledger, v, k, err);
    return FF_ERR_NOT_FOUND;
}

/* Sets a security option; FF_ERR_NOT_FOUND when k is none of them. */
static ff_status set_security(ff_site_config *c, const char *k,
                              const char *v, ff_error *err)
{
    if (strcmp(k, "tls") == 0) {
        if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
            return ff_error_set(err, FF_ERR_CONFIG, "tls: '%s' is not on "
                                "or off", v);
        c->tls = strcmp(v, "on") == 0;
        return FF_OK;
    }
    if (strcmp(k, "ca") == 0)
        return ff_config_copy_str(c->ca, sizeof c->ca, v, k, err);
    if (strcmp(k, "cert") == 0)
        return ff_config_copy_str(c->cert, sizeof c->cert, v, k, err);
    if (strcmp(k, "key") == 0)
        return ff_config_copy_str(c->key, sizeof c->key, v, k, err);
    if (strcmp(k, "coordinator-key") == 0)
        return ff_config_copy_str(c->coordinator_key,
                                  sizeof c->coordinator_key, v, k, err);
    if (strcmp(k, "coordinator-key-file") == 0)
        return ff_config_copy_str(c->coordinator_key_file,
                                  sizeof c->coordinator_key_file, v, k, err);
    if (strcmp(k, "out") == 0)
        return ff_config_copy_str(c->out, sizeof c->out, v, k, err);
    return FF_ERR_NOT_FOUND;
}

/* Sets option k (flag name without dashes) to v (an ff_config_set_fn). */
static ff_status set_option(void *ctx, const char *k, const char *v,
                            ff_error *err)
{
    ff_site_config *c = ctx;
    ff_status st;

    if (strcmp(k, "id") == 0) {
        if (!ff_wire_id_valid(v))
            return ff_error_set(err, FF_ERR_CONFIG,
                                "id: '%s' is not 1-%d characters of "
                                "[A-Za-z0-9._-]", v, FF_WIRE_ID_MAX);
        return ff_config_copy_str(c->id, sizeof c->id, v, k, err);
    }
    if (strcmp(k, "coordinator") == 0)
        return ff_config_copy_str(c->coordinator, sizeof c->coordinator, v, k,
                                  err);
    if (strcmp(k, "manifest") == 0)
        return ff_config_copy_str(c->manifest, sizeof c->manifest, v, k, err);
    if (strcmp(k, "threads") == 0)
        return parse_whole(v, 1, 64, &c->threads, k, err);
    if (strcmp(k, "retry-seconds") == 0)
        return ff_config_parse_double(v, 0.0, 86400.0, &c->retry_seconds, k,
                                      err);
    if (strcmp(k, "rpc-timeout") == 0)
        return ff_config_parse_double(v, 0.1, 3600.0, &c->rpc_timeout, k, err);
    if (strcmp(k, "transfer-timeout") == 0)
        return ff_config_parse_double(v, 0.1, 86400.0, &c->transfer_timeout, k,
                                      err);
    if (strcmp(k, "identity") == 0)
        return ff_config_copy_str(c->identity, sizeof c->identity, v, k, err);
    st = set_security(c, k, v, err);
    if (st != FF_ERR_NOT_FOUND)
        return st;
    st = set_privacy(&c->privacy, k, v, err);
    if (st != FF_ERR_NOT_FOUND)
        return st;
    return ff_error_set(err, FF_ERR_CONFIG, "unknown option '%s'", k);
}

/* The INI sections that hold site options. */
static const char *const site_sections[] = {"site", "privacy", NULL};

ff_status ff_site_config_parse(ff_site_config *c, int argc, char **argv,
                               int *help, ff_error *err)
{
    ff_config_options o = {site_sections, set_option, c};

    return ff_config_args_parse(&o, argc, argv, help, err);
}

/* What both modes need: an id, the address, TLS files when on, and a
 * pinned coordinator key. */
static ff_status check_common(const ff_site_config *c, ff_error *err)
{
    if (c->id[0] == '\0')
        return ff_error_set(err, FF_ERR_CONFIG, "no site id: give --id");
    if (c->tls && (c->ca[0] == '\0' || c->cert[0] == '\0' ||
                   c->key[0] == '\0'))
        return ff_error_set(err, FF_ERR_CONFIG,
                            "tls on needs --ca, --cert and --key (or give "
                            "--tls off for an insecure test setup)");
    if (c->coordinator_key[0] == '\0' && c->coordinator_key_file[0] == '\0')
        return ff_error_set(err, FF_ERR_CONFIG,
                            "no pinned coordinator key: give "
                            "--coordinator-key HEX or --coordinator-key-file "
                            "FILE (the coordinator's signing_key.pub)");
    if (c->coordinator_key[0] != '\0' && c->coordinator_key_file[0] != '\0')
        return ff_error_set(err, FF_ERR_CONFIG, "give coordinator-key or "
                            "coordinator-key-file, not both");
    return ff_config_check_address("coordinator", c->coordinator, 0, err);
}

ff_status ff_site_config_check(const ff_site_config *c, ff_error *err)
{
    if (c->manifest[0] == '\0')
        return ff_error_set(err, FF_ERR_CONFIG,
                            "no records: give --manifest PATH");
    return check_common(c, err);
}

ff_status ff_site_config_check_deploy(const ff_site_config *c,
                                      ff_error *err)
{
    if (c->out[0] == '\0')
        return ff_error_set(err, FF_ERR_CONFIG,
                            "deploy: give --out FILE");
    return check_common(c, err);
}

ff_status ff_site_config_coordinator_key(const ff_site_config *c,
                                         uint8_t pk[32], ff_error *err)
{
    char text[2 * 32 + 2] = "";
    const char *from = c->coordinator_key;
    size_t n = 0;

    /* From the flag, or the first line of the file. */
    if (c->coordinator_key_file[0] != '\0') {
        FILE *fp = fopen(c->coordinator_key_file, "r");
        if (fp == NULL)
            return ff_error_set(err, FF_ERR_IO, "cannot read the "
                                "coordinator key file %s",
                                c->coordinator_key_file);
        n = fread(text, 1, 64, fp);
        fclose(fp);
        text[n] = '\0';
        from = text;
    }
    if (strlen(from) != 64 ||
        sodium_hex2bin(pk, 32, from, 64, NULL, &n, NULL) != 0 || n != 32)
        return ff_error_set(err, FF_ERR_CONFIG, "the coordinator key%s%s "
                            "is not 64 hex digits",
                            c->coordinator_key_file[0] ? " in " : "",
                            c->coordinator_key_file);
    return FF_OK;
}
