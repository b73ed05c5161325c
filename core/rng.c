/* rng.c — xoshiro256** (Blackman and Vigna), seeded with splitmix64. */
#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void bk_rng_seed(bk_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t bk_rng_u64(bk_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double bk_rng_uniform(bk_rng *r) { return (bk_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double bk_rng_normal(bk_rng *r) {
    double u1 = bk_rng_uniform(r), u2 = bk_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void bk_rng_fill_normal(bk_rng *r, float *p, int64_t n, double mean, double std) {
    for (int64_t i = 0; i < n; i++) p[i] = (float)(mean + std * bk_rng_normal(r));
}

void bk_rng_fill_uniform(bk_rng *r, float *p, int64_t n, double lo, double hi) {
    for (int64_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * bk_rng_uniform(r));
}
