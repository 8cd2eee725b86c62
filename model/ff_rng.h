/*
 * ff_rng.h - the small deterministic generator the model uses for
 * initialisation, shuffling and modality dropout (xoshiro256**, seeded
 * through splitmix64). Not for anything secret: use libsodium there.
 *
 * The state is caller storage; one generator per thread.
 */
#ifndef FF_RNG_H
#define FF_RNG_H

#include <stdint.h>

typedef struct ff_rng {
    uint64_t s[4];
} ff_rng;

/* Seeds r from seed; every seed (0 included) gives a valid state. */
void ff_rng_init(ff_rng *r, uint64_t seed);

/* Next 64 random bits. */
uint64_t ff_rng_next(ff_rng *r);

/* Uniform double in [0, 1). */
double ff_rng_uniform(ff_rng *r);

/* Uniform integer in [0, n); n > 0. Unbiased (rejection). */
uint64_t ff_rng_below(ff_rng *r, uint64_t n);

/* Standard normal draw (Box-Muller). */
double ff_rng_normal(ff_rng *r);

#endif
