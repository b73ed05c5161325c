/* ssim.h — SSIM and MS-SSIM as differentiable losses (SPEC §5, reference-notes §5.2-5.3).
 *
 * bk_ssim: separable Gaussian window 11, sigma 1.5, valid filtering, C1 = (0.01 L)^2,
 * C2 = (0.03 L)^2 with L the data range (1 for [0,1] images, 2 for [-1,1]), the SSIM map
 * averaged over N,C,H,W (VainF pytorch_msssim.ssim with data_range = L; tf.image.ssim).
 * The loss is 1 - SSIM.
 *
 * bk_ms_ssim, standard: 5 levels with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2
 * average pooling between levels (floor for odd sizes), per image and channel
 * prod_{l<4} relu(cs_l)^w_l * relu(ssim_4)^w_4, then the mean; where cs_l or ssim_4 <= 0 the
 * term is 0 with zero gradient (no NaN). Inputs with a side below 176 (11 * 2^4) are refused.
 * dmshn_compat reproduces the pytorch-msssim version DMSHN trained with: window min(11, H, W)
 * per level, SSIM and CS as means over everything (scalars), the data range guessed from the
 * first image at every level (max > 128 -> 255 else 1; min < -0.5 -> -1 else 0), and the
 * product prod_{l<4} cs_l^w_l * ssim_4^(4 w_4) (its known quirk; NaN where a cs_l < 0, as
 * there). Sides below 16 are refused.
 */
#ifndef BK_SSIM_H
#define BK_SSIM_H

#include "core/ops.h"

typedef enum bk_msssim_mode { BK_MSSSIM_STANDARD = 0, BK_MSSSIM_DMSHN_COMPAT = 1 } bk_msssim_mode;

#define BK_MSSSIM_MIN_SIDE 176

/* Mean SSIM of a and b (same shape, N,C,H,W with H, W >= 11): a scalar tensor. */
bk_tensor *bk_ssim(bk_ctx *ctx, bk_tensor *a, bk_tensor *b, float data_range);
/* MS-SSIM (a scalar tensor in *out); refuses sizes below the mode's minimum side. */
bk_status bk_ms_ssim(bk_ctx *ctx, bk_tensor *a, bk_tensor *b, float data_range,
                     bk_msssim_mode mode, bk_tensor **out);

#endif
