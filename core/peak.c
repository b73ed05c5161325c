/* peak.c — FMA throughput probe (see peak.h). Built with the project's -march, so the vectors
 * below become the widest FMAs the CPU has (AVX-512 on Zen 4). */
#include "core/peak.h"

#include <omp.h>

typedef float v16 __attribute__((vector_size(64)));

enum { CHAINS = 12, INNER = 1024 };

/* Runs `reps` x INNER x CHAINS vector FMAs; returns a value so the work is not optimised away. */
static float __attribute__((noinline)) fma_loop(long reps, float seed) {
    v16 acc[CHAINS];
    v16 mul = {0}, add = {0};
    for (int l = 0; l < 16; l++) {
        mul[l] = 0.999999f;
        add[l] = 1e-7f * seed;
    }
    for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < 16; l++) acc[c][l] = seed + c + l;
    for (long r = 0; r < reps; r++)
        for (int i = 0; i < INNER; i++)
            for (int c = 0; c < CHAINS; c++) acc[c] = acc[c] * mul + add;
    float s = 0.0f;
    for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < 16; l++) s += acc[c][l];
    return s;
}

double bk_measure_peak_gflops(int threads) {
    if (threads <= 0) threads = omp_get_max_threads();
    const long reps = 2000; /* about 0.1 s per round at 100 GFLOP/s per core */
    const double flops = 2.0 * 16 * CHAINS * (double)INNER * reps * threads;
    double best = 0.0;
    volatile float sink = 0.0f;
    for (int round = 0; round < 4; round++) {
        double t0 = 0.0, t1 = 0.0;
#pragma omp parallel num_threads(threads)
        {
#pragma omp barrier
#pragma omp single
            t0 = omp_get_wtime();
            float s = fma_loop(reps, (float)omp_get_thread_num());
#pragma omp atomic
            sink += s;
#pragma omp barrier
#pragma omp single
            t1 = omp_get_wtime();
        }
        double g = flops / (t1 - t0) / 1e9;
        if (round > 0 && g > best) best = g; /* round 0 warms the clocks up */
    }
    (void)sink;
    return best;
}
