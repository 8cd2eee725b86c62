#include "ff_rng.h"

#include <math.h>

static uint64_t
splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void
ff_rng_init(ff_rng *r, uint64_t seed)
{
    uint64_t x = seed;

    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t
ff_rng_next(ff_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double
ff_rng_uniform(ff_rng *r)
{
    /* The top 53 bits make an exactly representable double in [0, 1). */
    return (double)(ff_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t
ff_rng_below(ff_rng *r, uint64_t n)
{
    /* Reject the short last block so every residue is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;

    do {
        x = ff_rng_next(r);
    } while (x >= limit);
    return x % n;
}

double
ff_rng_normal(ff_rng *r)
{
    double u1 = 1.0 - ff_rng_uniform(r); /* in (0, 1]: log is finite */
    double u2 = ff_rng_uniform(r);

    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}
