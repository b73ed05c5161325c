/* backbone.h — the frozen ImageNet feature stacks of the perceptual losses: torchvision's
 * AlexNet features (LPIPS alex), VGG16 features (LPIPS vgg) and VGG19 features up to relu5_4
 * (BGGAN's perceptual loss).
 *
 * Parameters are named as torchvision's state dict, "features.<i>.weight" / ".bias", with the
 * torchvision indices; convolutions are followed by ReLU (fused), max pools are 3x3 s2 (AlexNet)
 * or 2x2 s2 (VGG). The weights do not require gradients: gradients flow through the network
 * to its input only. Taps are the ReLU outputs LPIPS uses (alex relu1..relu5; vgg16 relu1_2,
 * relu2_2, relu3_3, relu4_3, relu5_3) or, for vgg19, relu5_4 alone.
 */
#ifndef BK_BACKBONE_H
#define BK_BACKBONE_H

#include "core/ops.h"
#include "core/params.h"

typedef enum bk_net_kind { BK_NET_ALEX = 0, BK_NET_VGG16 = 1, BK_NET_VGG19 = 2 } bk_net_kind;

enum { BK_BACKBONE_MAX_LAYERS = 40, BK_BACKBONE_MAX_TAPS = 5 };

typedef struct bk_backbone_layer {
    int index;          /* torchvision features index of the conv (or pool) */
    int is_pool;
    int cin, cout, k, stride, pad;
    bk_tensor *w, *b;
    int tap;            /* -1, or which tap this layer's (ReLU) output is */
} bk_backbone_layer;

typedef struct bk_backbone {
    bk_net_kind kind;
    bk_params params;
    int n_layers, n_taps;
    int tap_channels[BK_BACKBONE_MAX_TAPS];
    bk_backbone_layer layers[BK_BACKBONE_MAX_LAYERS];
} bk_backbone;

const char *bk_net_name(bk_net_kind kind);
/* Parses "alex", "vgg" / "vgg16" or "vgg19". */
bk_status bk_net_parse(const char *name, bk_net_kind *kind);
void bk_backbone_init(bk_ctx *ctx, bk_backbone *b, bk_net_kind kind);
void bk_backbone_free(bk_ctx *ctx, bk_backbone *b);
/* Runs x (N,3,H,W) through the stack up to the last tap; taps[i] receives tap i. */
void bk_backbone_forward(bk_ctx *ctx, const bk_backbone *b, bk_tensor *x, bk_tensor **taps);

#endif
