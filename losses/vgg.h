/* vgg.h — BGGAN's perceptual loss: mean |F(a) - F(b)| with F the VGG-19 ImageNet features at
 * relu5_4 (torchvision vgg19().features[:36]) of images normalised as torchvision expects,
 * ((x in [0,1]) - mean) / std, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225); images
 * in [-1,1] are mapped to [0,1] first (SPEC §5, reference-notes §3.3).
 *
 * Weights: one HDF5 file (docs/WEIGHTS.md), root attributes format = "bokehlab-vgg19",
 * net = "vgg19", datasets /params/features.<i>.weight|bias for the 16 convolutions;
 * scripts/convert_vgg19.py writes it from torchvision's vgg19 weights.
 */
#ifndef BK_VGG_H
#define BK_VGG_H

#include "losses/backbone.h"

typedef struct bk_vgg_net {
    bk_backbone net;
} bk_vgg_net;

bk_status bk_vgg_loss_load(bk_ctx *ctx, bk_vgg_net *v, const char *path);
void bk_vgg_loss_init(bk_ctx *ctx, bk_vgg_net *v);
void bk_vgg_loss_free(bk_ctx *ctx, bk_vgg_net *v);
/* a, b: N,3,H,W in [0,1] (minus_one_to_one false) or [-1,1] (true); a scalar. */
bk_tensor *bk_vgg_loss(bk_ctx *ctx, const bk_vgg_net *v, bk_tensor *a, bk_tensor *b,
                       bool minus_one_to_one);

#endif
