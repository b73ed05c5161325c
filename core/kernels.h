/* kernels.h — small plain kernels shared by ops and the autograd engine (OpenMP, no recording). */
#ifndef BK_KERNELS_H
#define BK_KERNELS_H

#include <stdint.h>

/* dst[i] += src[i] */
void bk_kernel_add_inplace(float *dst, const float *src, int64_t n);
/* dst[i] = src[i] */
void bk_kernel_copy(float *dst, const float *src, int64_t n);

/* Work below this many elements runs on one thread: waking the pool costs more. */
#define BK_PARALLEL_MIN 32768

#endif
