/* attention.h — coordinate attention (Hou et al. 2021, houqb/CoordAttention), as AMPN uses it
 * on 3-channel images (SPEC §4): mip = 8.
 *   zh = mean over W (N,C,H,1); zw = mean over H, transposed to (N,C,W,1)
 *   y = hswish(bn1(conv1(cat_H(zh, zw))))               conv1 1x1 C->8 with bias
 *   split y into yh (H rows) and yw (W rows, transposed back to N,8,1,W)
 *   out = x * sigmoid(conv_h(yh)) * sigmoid(conv_w(yw))  1x1 8->C with bias
 * Init: He-normal (fan_in, LeakyReLU 0.01), BN gamma 1 beta 0, biases 0.
 */
#ifndef BK_ATTENTION_H
#define BK_ATTENTION_H

#include "layers/layer.h"

typedef struct bk_coord_att {
    char name[32];
    bk_conv_layer conv1, conv_h, conv_w;
    bk_bn_layer bn1;
} bk_coord_att;

void bk_coord_att_make(bk_ctx *ctx, bk_params *ps, bk_coord_att *a, const char *name, int c,
                       bk_rng *rng);
bk_tensor *bk_coord_att_fwd(bk_ctx *ctx, const bk_coord_att *a, bk_tensor *x, bool training);

#endif
