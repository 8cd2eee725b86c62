/*
 * tls_probe.c - a caller for fed_mtls.sh that presents what no honest site
 * would: no client certificate at all, or a certificate the test names,
 * with the site id it chooses. It registers once and prints the verdict:
 * "accepted", "refused: REASON" (the coordinator answered) or
 * "error: ..." (the call failed).
 *
 * Usage: tls_probe --coordinator HOST:PORT --ca CA --id ID
 *                  [--cert CERT --key KEY]
 * Exit status: 0 when the coordinator answered, 1 otherwise, 2 on usage.
 */
#include <grpc/grpc.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "../../client/ff_site_rpc.h"

/* The value of flag name in argv, or NULL. */
static const char *arg(int argc, char **argv, const char *name)
{
    int i;

    for (i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

int main(int argc, char **argv)
{
    ff_site_tls tls;
    ff_wire_register req;
    ff_wire_register_reply rep;
    ff_site_rpc *rpc = NULL;
    ff_error err = {0};
    const char *target = arg(argc, argv, "--coordinator");
    const char *id = arg(argc, argv, "--id");
    int rc = 1;

    tls.ca = arg(argc, argv, "--ca");
    tls.cert = arg(argc, argv, "--cert");
    tls.key = arg(argc, argv, "--key");
    if (target == NULL || id == NULL || tls.ca == NULL ||
        (tls.cert == NULL) != (tls.key == NULL) || sodium_init() < 0) {
        fprintf(stderr, "usage: tls_probe --coordinator HOST:PORT --ca CA "
                        "--id ID [--cert CERT --key KEY]\n");
        return 2;
    }

    /* One registration, as a site would send it. */
    memset(&req, 0, sizeof req);
    snprintf(req.site_id, sizeof req.site_id, "%s", id);
    strcpy(req.code_version, "probe");
    req.modalities = 1;
    req.example_count = 10;
    memset(req.manifest_digest, '0', FF_WIRE_DIGEST_HEX);
    grpc_init();
    if (ff_site_rpc_create(&rpc, target, &tls, &err) == FF_OK &&
        ff_site_rpc_register(rpc, &req, &rep, 10.0, &err) == FF_OK) {
        if (rep.accepted)
            printf("accepted\n");
        else
            printf("refused: %s\n", rep.reason);
        rc = 0;
    } else {
        printf("error: %s\n", ff_error_text(&err));
    }
    ff_site_rpc_destroy(rpc);
    grpc_shutdown();
    return rc;
}
