/*
 * main.c - fedfuse-site: takes part in a federation from one site. Only
 * connects out to the coordinator.
 *
 *   fedfuse-site [options]                 train the rounds asked for
 *   fedfuse-site deploy --out FILE [opts]  fetch, verify and write the
 *                                          production model
 *   fedfuse-site enroll --id SITE --key FILE --csr FILE
 *                                          make this site's key and CSR
 *
 * Exit status: 0 when the coordinator said FINISHED (or the subcommand
 * succeeded), 1 on failure (site refused, coordinator unreachable for
 * --retry-seconds, unusable records, a corrupt privacy ledger, a model
 * that does not verify), 2 on bad usage.
 */
#include <cblas.h>
#include <grpc/grpc.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "../common/ff_log.h"
#include "../trust/ff_trust.h"
#include "config.h"
#include "site.h"

/* Parses and checks the options of the run (deploy set: of deploy);
 * returns the exit status to use, or -1 to go on. */
static int config_load(ff_site_config *cfg, int argc, char **argv,
                       int deploy)
{
    ff_error err = {0};
    int help = 0;

    ff_site_config_default(cfg);
    if (ff_site_config_parse(cfg, argc, argv, &help, &err) != FF_OK ||
        (!help && (deploy ? ff_site_config_check_deploy(cfg, &err)
                          : ff_site_config_check(cfg, &err)) != FF_OK)) {
        fprintf(stderr, "fedfuse-site: %s (see --help)\n",
                ff_error_text(&err));
        return 2;
    }
    if (help) {
        ff_site_config_usage(stdout);
        return 0;
    }
    return -1;
}

/* `enroll`: a new key (never leaves this machine) and its CSR. */
static int enroll(int argc, char **argv)
{
    const char *id = NULL, *key = NULL, *csr = NULL;
    ff_error err = {0};
    int i;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--id") == 0)
            id = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0)
            key = argv[i + 1];
        else if (strcmp(argv[i], "--csr") == 0)
            csr = argv[i + 1];
        else
            break;
    }
    if (i != argc || id == NULL || key == NULL || csr == NULL) {
        fprintf(stderr, "usage: fedfuse-site enroll --id SITE --key FILE "
                        "--csr FILE\n");
        return 2;
    }
    if (ff_trust_csr_create(key, csr, id, FF_TRUST_ROLE_SITE, &err) !=
        FF_OK) {
        fprintf(stderr, "fedfuse-site enroll: %s\n", ff_error_text(&err));
        return 1;
    }
    printf("site %s: key written to %s (mode 0600, keep it here), "
           "certificate request to %s\nan operator approves it with: "
           "fedfusectl sites approve %s --ca-dir DIR --out CERT\n", id, key,
           csr, csr);
    return 0;
}

/* `deploy`: the production model, verified, written atomically. */
static int deploy(int argc, char **argv)
{
    static ff_site_config cfg;
    ff_error err = {0};
    int rc = config_load(&cfg, argc, argv, 1);

    if (rc >= 0)
        return rc;
    grpc_init();
    rc = ff_site_deploy(&cfg, &err) == FF_OK ? 0 : 1;
    if (rc != 0)
        FF_ERROR("deploy: %s", ff_error_text(&err));
    grpc_shutdown();
    return rc;
}

int main(int argc, char **argv)
{
    static ff_site_config cfg;
    ff_site *site = NULL;
    ff_error err = {0};
    int rc;

    ff_log_set_role("site");
    if (sodium_init() < 0) {
        FF_ERROR("libsodium failed to initialise");
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "enroll") == 0)
        return enroll(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "deploy") == 0)
        return deploy(argc - 1, argv + 1);
    rc = config_load(&cfg, argc, argv, 0);
    if (rc >= 0)
        return rc;
    openblas_set_num_threads(cfg.threads);

    /* The site and its channel live between grpc_init and grpc_shutdown. */
    rc = 1;
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
