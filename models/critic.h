/* critic.h — BGGAN's multi-receptive-field critic (SPEC §3): two PatchGAN critics on the image
 * alone, `patch` (n = 3, receptive field 70) and `full` (n = 5, receptive field 286).
 *
 * convs.k, k = 0..n: Conv 4x4, padding 2, bias, stride 2 for k < n and 1 for k = n, channels
 * 3 -> 64 -> 128 -> 256 -> 512 (-> 512 -> 512 for n = 5); InstanceNorm (no affine, eps 1e-5)
 * after every conv but k = 0; LeakyReLU 0.2 after each. final: Conv 4x4 s1 p2 -> 1 channel, no
 * norm, no activation. D_k(x) is the mean of critic k's map. Names and shapes are
 * params/multi_rf_discriminator.tsv (13,919,106 parameters). Init: weights N(0, 0.02^2),
 * biases 0.
 */
#ifndef BK_CRITIC_H
#define BK_CRITIC_H

#include "core/ops.h"
#include "core/params.h"

enum { BK_CRITIC_MAX_LAYERS = 6 };

typedef struct bk_patch_critic {
    int n;                                   /* 3 (patch) or 5 (full) */
    bk_tensor *w[BK_CRITIC_MAX_LAYERS], *b[BK_CRITIC_MAX_LAYERS];
    bk_tensor *final_w, *final_b;
} bk_patch_critic;

typedef struct bk_critic {
    bk_params params;
    bk_patch_critic patch, full;
} bk_critic;

void bk_critic_init(bk_ctx *ctx, bk_critic *c, uint64_t seed);
void bk_critic_free(bk_ctx *ctx, bk_critic *c);
/* The map of one critic on x (N,3,H,W): N,1,h,w. */
bk_tensor *bk_patch_critic_forward(bk_ctx *ctx, const bk_patch_critic *p, bk_tensor *x);

#endif
