/* peak.h — this machine's FP32 peak, measured with an FMA loop.
 *
 * Every thread runs independent chains of 16-lane fused multiply-adds (as many chains as it
 * takes to cover the FMA latency on two pipes) for a fixed time; the best of a few rounds is the
 * peak. Benchmarks report utilisation (MFU) against this figure, not against a datasheet.
 */
#ifndef BK_PEAK_H
#define BK_PEAK_H

/* GFLOP/s with `threads` OpenMP threads (0: omp_get_max_threads()). */
double bk_measure_peak_gflops(int threads);

#endif
