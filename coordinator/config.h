/*
 * config.h - the coordinator's configuration: defaults, then an INI file
 * (--config FILE), then command-line flags, each overriding the one before.
 * The database conninfo falls back to the environment variable FEDFUSE_DB
 * when neither the file nor a flag names one.
 *
 * INI keys are the flag names without the leading dashes ('_' and '-' are
 * the same), in the sections [coordinator], [training] and [privacy]; see
 * deploy/coordinator.ini. Not thread-safe (called once at start).
 */
#ifndef FF_COORD_CONFIG_H
#define FF_COORD_CONFIG_H

#include <stdio.h>

#include "../common/ff_status.h"
#include "../model/ff_model.h"
#include "../proto/ff_wire.h"

/* Most sites a coordinator knows. */
#define FF_COORD_MAX_SITES 64
/* Most bytes of a path, address or conninfo option. */
#define FF_COORD_STR_MAX 1024
/* Adaptive clipping releases the unclipped count with noise of std
 * sites / FF_COORD_DP_COUNT_STD_DIV (docs/privacy-accounting.md, sec. 11);
 * the update keeps noise only while that std exceeds z / 2, i.e. with more
 * than FF_COORD_DP_COUNT_STD_DIV z / 2 sites. */
#define FF_COORD_DP_COUNT_STD_DIV 20.0

typedef struct ff_coord_config {
    char listen[FF_COORD_STR_MAX];      /* host:port; port 0 picks one */
    char port_file[FF_COORD_STR_MAX];   /* "" or where to write the port */
    char db[FF_COORD_STR_MAX];          /* libpq conninfo */
    char model[FF_WIRE_ID_MAX + 1];     /* model name in the registry */
    char test_manifest[FF_COORD_STR_MAX];
    char sites[FF_COORD_MAX_SITES][FF_WIRE_ID_MAX + 1];
    int n_sites;
    int rounds;             /* the federation ends after round `rounds` */
    int min_sites;          /* fewest updates that make a round */
    double wait_sites;      /* seconds to wait for sites before a round */
    double deadline;        /* seconds a round waits for updates */
    double finish_grace;    /* seconds to wait for sites to hear FINISHED */
    int threads;            /* OpenBLAS threads */
    unsigned poll_interval_ms;
    ff_train_config train;  /* sent to the sites every round */
    uint64_t init_seed;     /* seed of the initial model (= train.seed) */
    int secagg;             /* rounds are securely summed (SecAgg+) */
    double secagg_clip;     /* n_{s,g} * delta clipped to [-clip, clip] */
    double secagg_stage_deadline; /* seconds each later stage waits */
    double secagg_dropout;  /* dropout rate the parameters tolerate */
    double secagg_corrupt;  /* colluding fraction they resist */
    int secagg_max_uploads; /* uploads buffered at once; more get "busy" */
    /* site-level differential privacy (docs/privacy-accounting.md) */
    ff_wire_site_dp_mode site_dp; /* off (NONE), central, distributed */
    double site_dp_clip;    /* L2 clip of each site's whole update */
    double site_dp_noise;   /* noise multiplier z (std z * clip) */
    unsigned site_dp_bits;  /* distributed: secure sum modulo 2^bits */
    int site_dp_adaptive;   /* adaptive clipping (Andrew et al. 2021) */
    double model_epsilon;   /* > 0: the model's budget at start: set when
                               none is stored, never raised above a
                               stored one (docs/privacy-accounting.md) */
    double model_delta;     /* its delta; 0: not given (the stored delta,
                               or 1e-5 when none is stored) */
    /* transport security and signatures (docs/protocol.md, "Security") */
    int tls;                            /* mTLS on (default) or off */
    char ca[FF_COORD_STR_MAX];          /* the consortium CA certificate */
    char cert[FF_COORD_STR_MAX];        /* the coordinator's certificate */
    char key[FF_COORD_STR_MAX];         /* and its private key */
    char signing_key[FF_COORD_STR_MAX]; /* Ed25519 model signing key;
                                           "" = signing_key next to the
                                           port file */
} ff_coord_config;

/* Fills c with the defaults. */
void ff_coord_config_default(ff_coord_config *c);

/*
 * Parses argv (argv[0] is the program): --config FILE is read first,
 * wherever it appears, then every other flag in order. Sets *help when
 * --help was given (and then checks nothing else). Errors: FF_ERR_CONFIG
 * (unknown option, missing or bad value, unreadable or bad INI file; the
 * message names the option or file:line), FF_ERR_IO.
 */
FF_MUST_USE ff_status ff_coord_config_parse(ff_coord_config *c, int argc,
                                            char **argv, int *help,
                                            ff_error *err);

/* Checks that c is complete and consistent (database, test manifest, at
 * least one site, 1 <= min_sites <= sites; distributed site DP needs
 * secagg on and 3 or more sites; adaptive clipping needs central site DP
 * (under distributed DP the count would reach the coordinator unnoised)
 * and min_sites > FF_COORD_DP_COUNT_STD_DIV z / 2 (else no round could
 * keep noise for the update); tls on needs ca, cert and key; a signing
 * key path, given or derived from the port file, ...). Errors:
 * FF_ERR_CONFIG. */
FF_MUST_USE ff_status ff_coord_config_check(const ff_coord_config *c,
                                            ff_error *err);

/* The signing key's path: cfg->signing_key, or "signing_key" in the
 * port file's folder. Writes at most cap bytes into out. Errors:
 * FF_ERR_CONFIG (neither is set, or the path is too long). */
FF_MUST_USE ff_status ff_coord_config_signing_path(const ff_coord_config *c,
                                                   char *out, size_t cap,
                                                   ff_error *err);

/* Writes the --help text to f. */
void ff_coord_config_usage(FILE *f);

#endif
