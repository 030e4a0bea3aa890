/* xoshiro256** seeded through splitmix64: fast, small state, and good enough
 * for simulation and sampling.  Each consumer owns its generator so results do
 * not depend on thread scheduling. */
#include "core.h"

#include <math.h>

uint64_t dp_hash_u64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void dp_rng_seed(DpRng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        r->s[i] = dp_hash_u64(x);
    }
}

void dp_rng_seed_stream(DpRng *r, uint64_t seed, uint64_t stream) {
    dp_rng_seed(r, dp_hash_u64(seed) ^ dp_hash_u64(stream * 0xd1342543de82ef95ULL + 1));
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dp_rng_u64(DpRng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double dp_rng_uniform(DpRng *r) { return (double)(dp_rng_u64(r) >> 11) * 0x1.0p-53; }

float dp_rng_uniformf(DpRng *r) { return (float)(dp_rng_u64(r) >> 40) * 0x1.0p-24f; }

uint64_t dp_rng_below(DpRng *r, uint64_t n) {
    DP_ASSERT(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = dp_rng_u64(r);
    while (x >= limit);
    return x % n;
}

double dp_rng_normal(DpRng *r) {
    /* Box-Muller; the second value is discarded to keep the state simple. */
    double u1 = dp_rng_uniform(r), u2 = dp_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double dp_rng_exponential(DpRng *r, double rate) {
    return -log(1.0 - dp_rng_uniform(r)) / rate;
}

uint64_t dp_rng_poisson(DpRng *r, double mean) {
    if (mean <= 0) return 0;
    if (mean > 60) {
        double x = mean + sqrt(mean) * dp_rng_normal(r) + 0.5;
        return x < 0 ? 0 : (uint64_t)x;
    }
    double l = exp(-mean), p = 1.0;
    uint64_t k = 0;
    do {
        k++;
        p *= dp_rng_uniform(r);
    } while (p > l);
    return k - 1;
}

void dp_rng_shuffle_int(DpRng *r, int *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)dp_rng_below(r, i);
        int t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}
