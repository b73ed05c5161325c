/* lpips.h — LPIPS v0.1 (Zhang et al. 2018; richzhang/PerceptualSimilarity lpips.py), as a
 * differentiable loss and as the evaluation metric, with the alex and vgg trunks.
 *
 *   x' = (x - shift) / scale   shift (-0.030, -0.088, -0.188), scale (0.458, 0.448, 0.450)
 *   f_l = tap l of the trunk on x'                       (backbone.h: 5 ReLU outputs)
 *   f̂_l = f_l / (sqrt(sum_c f_l^2) + 1e-10)              unit length over channels
 *   d = sum_l mean_hw lin_l((f̂0_l - f̂1_l)^2)            lin_l: 1x1 conv C_l -> 1, no bias
 * Inputs are RGB in [-1,1]. The loss takes network outputs as they are (not clamped); the
 * metric (bk_lpips_metric) checks the range.
 *
 * Weights: one HDF5 file (docs/WEIGHTS.md), root attributes format = "bokehlab-lpips",
 * net = "alex" | "vgg"; datasets /params/features.<i>.weight|bias (torchvision names and
 * shapes of AlexNet / VGG16 features) and /params/lin<l>.weight (1, C_l, 1, 1).
 * scripts/convert_lpips.py writes it from the official lin-layer file and torchvision weights.
 */
#ifndef BK_LPIPS_H
#define BK_LPIPS_H

#include "losses/backbone.h"

typedef struct bk_lpips_net {
    bk_backbone trunk;
    bk_params lin_params;
    bk_tensor *lin[BK_BACKBONE_MAX_TAPS];
} bk_lpips_net;

/* Loads an LPIPS weights file; a missing file gets a message saying how to make one. */
bk_status bk_lpips_load(bk_ctx *ctx, bk_lpips_net *lp, const char *path);
/* Allocates the network of `net` with zero weights (for loading by the caller or tests). */
void bk_lpips_init(bk_ctx *ctx, bk_lpips_net *lp, bk_net_kind net);
void bk_lpips_free(bk_ctx *ctx, bk_lpips_net *lp);
/* Per-image distances (N,1,1,1) between a and b (N,3,H,W in [-1,1]). */
bk_tensor *bk_lpips(bk_ctx *ctx, const bk_lpips_net *lp, bk_tensor *a, bk_tensor *b);
/* The metric: refuses inputs outside [-1,1] (by more than 1e-4); no tape. */
bk_status bk_lpips_metric(bk_ctx *ctx, const bk_lpips_net *lp, bk_tensor *a, bk_tensor *b,
                          float *per_image);

#endif
