/* mobilenet.h — AMPN's G(cin, cout) (SPEC §4): torchvision MobileNetV2 features[:18] as the
 * encoder (exact module structure and names, so ImageNet weights import directly), an
 * FBNet-style decoder and a head.
 *
 * features.0: conv3x3 s2 cin->32 (no bias), BN, ReLU6. features.1..17: inverted residuals
 * with (t, c, n, s) = (1,16,1,1), (6,24,2,2), (6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2),
 * (6,320,1,1): [1x1 expand, BN, ReLU6 when t != 1], depthwise 3x3 stride s, BN, ReLU6, 1x1
 * project, BN; identity skip iff stride 1 and c_in = c_out. Skips: outputs of features.1 (S2),
 * .3 (S4), .6 (S8), .13 (S16).
 * Decoder j = 0..3, (in, reduce, skip, out) = (320,224,S16,192), (192,96,S8,96), (96,64,S4,64),
 * (64,32,S2,32): x = up2(reduce.j(x)); x = block.j(cat(x, skip)); reduce.j = 1x1 conv, BN,
 * ReLU6; block.j.conv = [1x1 m->3m, BN, ReLU6], [depthwise 5x5 p2, BN, ReLU6], 1x1 3m->out, BN
 * (m = reduce + skip; no skip connection, no activation after the last BN).
 * Head: x = up2(x); head.0 = conv3x3 32->16 p1 (no bias), BN, ReLU6; head.1 = conv3x3
 * 16->cout p1 with bias. Output at the input's size.
 * Init: He-normal (fan_in, LeakyReLU 0.01) for every conv, BN gamma 1 beta 0, biases 0.
 */
#ifndef BK_MOBILENET_H
#define BK_MOBILENET_H

#include "layers/layer.h"

typedef struct bk_conv_bn {
    bk_conv_layer conv;
    bk_bn_layer bn;
} bk_conv_bn;

typedef struct bk_inverted_residual {
    int expand, skip;
    bk_conv_bn ex, dw;
    bk_conv_bn project;
} bk_inverted_residual;

typedef struct bk_gnet {
    char name[32];
    bk_conv_bn f0;
    bk_inverted_residual ir[18]; /* 1..17 */
    bk_conv_bn reduce[4], b_expand[4], b_dw[4], b_project[4];
    bk_conv_bn head0;
    bk_conv_layer head1;
} bk_gnet;

void bk_gnet_make(bk_ctx *ctx, bk_params *ps, bk_gnet *g, const char *name, int cin, int cout,
                  bk_rng *rng);
/* x: N,cin,H,W with H, W multiples of 32; returns N,cout,H,W. */
bk_tensor *bk_gnet_fwd(bk_ctx *ctx, const bk_gnet *g, bk_tensor *x, bool training);

#endif
