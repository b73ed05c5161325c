/* rng.h — a small seeded random generator for initialisation and sampling (xoshiro256**,
 * seeded through splitmix64). Deterministic for a seed on every machine; not torch's stream:
 * parity tests load weights rather than regenerate them. */
#ifndef BK_RNG_H
#define BK_RNG_H

#include <stdint.h>

typedef struct bk_rng {
    uint64_t s[4];
} bk_rng;

void bk_rng_seed(bk_rng *r, uint64_t seed);
uint64_t bk_rng_u64(bk_rng *r);
/* Uniform in [0, 1). */
double bk_rng_uniform(bk_rng *r);
/* Standard normal (Box-Muller). */
double bk_rng_normal(bk_rng *r);
/* Fills n floats: N(mean, std^2) or U(lo, hi). */
void bk_rng_fill_normal(bk_rng *r, float *p, int64_t n, double mean, double std);
void bk_rng_fill_uniform(bk_rng *r, float *p, int64_t n, double lo, double hi);

#endif
