/*
 * main.c - fedfuse-site: takes part in a federation from one site. Only
 * connects out to the coordinator.
 *
 * Exit status: 0 when the coordinator said FINISHED, 1 on failure (site
 * refused, coordinator unreachable for --retry-seconds, unusable
 * records, a corrupt privacy ledger), 2 on bad usage.
 */
#include <cblas.h>
#include <grpc/grpc.h>
#include <sodium.h>
#include <stdio.h>

#include "../common/ff_log.h"
#include "config.h"
#include "site.h"

int main(int argc, char **argv)
{
    static ff_site_config cfg;
    ff_site *site = NULL;
    ff_error err = {0};
    int help = 0, rc = 1;

    ff_log_set_role("site");
    ff_site_config_default(&cfg);
    if (ff_site_config_parse(&cfg, argc, argv, &help, &err) != FF_OK ||
        (!help && ff_site_config_check(&cfg, &err) != FF_OK)) {
        fprintf(stderr, "fedfuse-site: %s (see --help)\n",
                ff_error_text(&err));
        return 2;
    }
    if (help) {
        ff_site_config_usage(stdout);
        return 0;
    }
    if (sodium_init() < 0) {
        FF_ERROR("libsodium failed to initialise");
        return 1;
    }
    openblas_set_num_threads(cfg.threads);

    /* The site and its channel live between grpc_init and grpc_shutdown. */
    grpc_init();
    if (ff_site_create(&site, &cfg, &err) == FF_OK &&
        ff_site_run(site, &err) == FF_OK)
        rc = 0;
    if (rc != 0)
        FF_ERROR("%s", ff_error_text(&err));
    ff_site_destroy(site);
    grpc_shutdown();
    FF_INFO("exiting with status %d", rc);
    return rc;
}
