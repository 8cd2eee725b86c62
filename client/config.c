/*
 * config.c - site options from defaults, an INI file and flags.
 */
#include "config.h"

#include <math.h>
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
        "  --identity FILE          the site's Ed25519 identity key, made\n"
        "                           on first start (mode 0600; default\n"
        "                           site.identity next to the manifest)\n"
        "  --help                   this text\n",
        f);
}

/* Sets option k (flag name without dashes) to v (an ff_config_set_fn). */
static ff_status set_option(void *ctx, const char *k, const char *v,
                            ff_error *err)
{
    ff_site_config *c = ctx;
    double x = 0.0;
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
    if (strcmp(k, "threads") == 0) {
        st = ff_config_parse_double(v, 1, 64, &x, k, err);
        if (st == FF_OK && x != floor(x))
            st = ff_error_set(err, FF_ERR_CONFIG, "threads: '%s' is not "
                              "an integer", v);
        if (st == FF_OK)
            c->threads = (int)x;
        return st;
    }
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
    return ff_error_set(err, FF_ERR_CONFIG, "unknown option '%s'", k);
}

/* The INI sections that hold site options. */
static const char *const site_sections[] = {"site", NULL};

ff_status ff_site_config_parse(ff_site_config *c, int argc, char **argv,
                               int *help, ff_error *err)
{
    ff_config_options o = {site_sections, set_option, c};

    return ff_config_args_parse(&o, argc, argv, help, err);
}

ff_status ff_site_config_check(const ff_site_config *c, ff_error *err)
{
    if (c->id[0] == '\0')
        return ff_error_set(err, FF_ERR_CONFIG, "no site id: give --id");
    if (c->manifest[0] == '\0')
        return ff_error_set(err, FF_ERR_CONFIG,
                            "no records: give --manifest PATH");
    return ff_config_check_address("coordinator", c->coordinator, 0, err);
}
