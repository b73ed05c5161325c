/* metrics.h — the evaluation metrics of the tables, on 8-bit RGB images, as DMSHN's evaluation
 * computes them (SPEC §5, reference-notes §7):
 *   PSNR   10 log10(255^2 / MSE), MSE over all pixels and all three channels; +inf if equal
 *          (skimage compare_psnr on uint8)
 *   SSIM   skimage 0.16 compare_ssim(multichannel=True) on uint8: per channel a uniform 7x7
 *          window, data range 255, K1 0.01, K2 0.03, sample covariance (x 49/48), the map
 *          averaged over the pixels at least 3 from the border, then the mean of the channels
 *   LPIPS  v0.1 alex on x / 127.5 - 1 (losses/lpips.h)
 * Computed in double precision.
 */
#ifndef BK_METRICS_H
#define BK_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "losses/lpips.h"

/* a, b: n interleaved 8-bit values. */
double bk_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n);
/* a, b: h x w x c interleaved (h, w >= 7). */
double bk_ssim_u8(const uint8_t *a, const uint8_t *b, int h, int w, int c);
/* LPIPS of two h x w RGB images. */
bk_status bk_lpips_u8(bk_ctx *ctx, const bk_lpips_net *net, const uint8_t *a, const uint8_t *b,
                      int h, int w, float *out);

#endif
