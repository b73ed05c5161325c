/* kernels.c — see kernels.h. */
#include "core/kernels.h"

#include <string.h>

void bk_kernel_add_inplace(float *restrict dst, const float *restrict src, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > BK_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

void bk_kernel_copy(float *restrict dst, const float *restrict src, int64_t n) {
    if (n <= BK_PARALLEL_MIN) {
        memcpy(dst, src, (size_t)n * sizeof *dst);
        return;
    }
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}
