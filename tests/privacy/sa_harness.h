/*
 * sa_harness.h - drives a whole secure-aggregation round in one process for
 * the tests: identity keys, sites, the server, random inputs, and a drop
 * plan that says at which stage each site stops answering.
 */
#ifndef SA_HARNESS_H
#define SA_HARNESS_H

#include <stdint.h>

#include "ff_secagg.h"

/* Where a site stops (DROP_NONE: it takes part to the end). */
enum sa_drop {
    DROP_NONE = 0,
    DROP_BEFORE_ADVERT,  /* never advertises keys */
    DROP_BEFORE_SHARES,  /* advertises, never sends shares */
    DROP_BEFORE_MASKED,  /* shares, never sends its masked input */
    DROP_BEFORE_UNMASK,  /* sends its masked input, never answers unmask */
};

typedef struct sa_world {
    ff_secagg_config cfg;
    uint8_t *id_pk;       /* n x 32 */
    uint8_t *id_sk;       /* n x 64 */
    ff_secagg_site **sites;
    ff_secagg_server *srv;
    uint32_t *inputs;     /* n x m, each word <= max_value */
    uint8_t *drop;        /* n entries of enum sa_drop */
    size_t chunk;         /* words per masked chunk (0: whole vector) */
} sa_world;

/* Builds a world for cfg with inputs drawn from seed; asserts on failure. */
void sa_world_init(sa_world *w, const ff_secagg_config *cfg, uint32_t seed);
void sa_world_cleanup(sa_world *w);

/* A config with a fresh graph seed; degree/threshold as given. */
ff_secagg_config sa_config(uint32_t n, uint32_t k, uint32_t t, uint32_t bits,
                           uint64_t m, uint32_t max_value, uint64_t round);

/* The four stages, honouring w->drop. Each returns the first failure. */
ff_privacy_status sa_stage_adverts(sa_world *w, ff_privacy_error *err);
ff_privacy_status sa_stage_shares(sa_world *w, ff_privacy_error *err);
ff_privacy_status sa_stage_masked(sa_world *w, ff_privacy_error *err);
ff_privacy_status sa_stage_unmask(sa_world *w, ff_privacy_error *err);

/*
 * Runs all stages and, on success, compares the unmasked sum with the
 * plain sum of the inputs of the sites in U3, modulo 2^b. Returns the first
 * failure; *mismatches gets the number of differing words.
 */
ff_privacy_status sa_run(sa_world *w, uint64_t *mismatches,
                         ff_privacy_error *err);

/* Deterministic test RNG. */
uint32_t sa_rand(uint32_t *state);

#endif
