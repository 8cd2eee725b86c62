/*
 * config.h - fedfuse-site's configuration: defaults, then an INI file
 * (--config FILE, sections [site] and [privacy]), then command-line
 * flags, each
 * overriding the one before. INI keys are the flag names without the
 * leading dashes ('_' and '-' are the same); see deploy/site.ini.
 * Not thread-safe (called once at start).
 */
#ifndef FF_SITE_CONFIG_H
#define FF_SITE_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "../common/ff_status.h"
#include "../proto/ff_wire.h"
#include "ff_site_privacy.h"

/* Most bytes of a path or address option. */
#define FF_SITE_STR_MAX 1024

typedef struct ff_site_config {
    char id[FF_WIRE_ID_MAX + 1];
    char coordinator[FF_SITE_STR_MAX];  /* HOST:PORT */
    char manifest[FF_SITE_STR_MAX];
    int threads;                        /* OpenBLAS threads */
    double retry_seconds;   /* keep retrying a failing coordinator this
                               long (with backoff) before giving up */
    double rpc_timeout;     /* deadline of Register and Poll, seconds */
    double transfer_timeout;/* deadline of a download or upload */
    char identity[FF_SITE_STR_MAX]; /* Ed25519 identity key file; "" means
                                       <manifest dir>/site.identity */
    ff_site_privacy_config privacy; /* [privacy]: record-level DP */
    /* transport security and the pinned model signer */
    int tls;                        /* mutual TLS on (default) or off */
    char ca[FF_SITE_STR_MAX];       /* the consortium CA certificate */
    char cert[FF_SITE_STR_MAX];     /* this site's certificate */
    char key[FF_SITE_STR_MAX];      /* and its private key */
    char coordinator_key[2 * FF_WIRE_SIGNER_BYTES + 1]; /* hex, or "" */
    char coordinator_key_file[FF_SITE_STR_MAX];         /* or "" */
    char out[FF_SITE_STR_MAX];      /* deploy: where to write the model */
} ff_site_config;

/* Fills c with the defaults. */
void ff_site_config_default(ff_site_config *c);

/* Parses argv as ff_coord_config_parse does: --config FILE first, then
 * the other flags; sets *help for --help. Errors: FF_ERR_CONFIG (names
 * the option or file:line), FF_ERR_IO. */
FF_MUST_USE ff_status ff_site_config_parse(ff_site_config *c, int argc,
                                           char **argv, int *help,
                                           ff_error *err);

/* Checks that c is complete for taking part in rounds: id, manifest,
 * address, the pinned coordinator key, and with tls on the CA,
 * certificate and key (the [privacy] values are range-checked as they
 * are parsed). Errors: FF_ERR_CONFIG. */
FF_MUST_USE ff_status ff_site_config_check(const ff_site_config *c,
                                           ff_error *err);

/* Checks that c is complete for `fedfuse-site deploy`: as above, but
 * with --out instead of a manifest. Errors: FF_ERR_CONFIG. */
FF_MUST_USE ff_status ff_site_config_check_deploy(const ff_site_config *c,
                                                  ff_error *err);

/* Reads the pinned coordinator key into pk: coordinator_key (64 hex
 * digits) or the first 64 hex digits of coordinator_key_file (as the
 * coordinator writes signing_key.pub). Errors: FF_ERR_CONFIG (neither
 * set, or not 32 bytes of hex), FF_ERR_IO. */
FF_MUST_USE ff_status ff_site_config_coordinator_key(const ff_site_config *c,
                                                     uint8_t pk[32],
                                                     ff_error *err);

/* Writes the --help text to f. */
void ff_site_config_usage(FILE *f);

#endif
