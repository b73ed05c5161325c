/* attention.c — coordinate attention (see attention.h). */
#include "layers/attention.h"

#include <stdio.h>

void bk_coord_att_make(bk_ctx *ctx, bk_params *ps, bk_coord_att *a, const char *name, int c,
                       bk_rng *rng) {
    const int mip = 8;
    bk_init he = {BK_INIT_HE, 0.01f, rng};
    char n[BK_NAME_MAX];
    snprintf(a->name, sizeof a->name, "%s", name);
    a->conv1 = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.conv1", name), c, mip, 1, 1, 0, 1, true, he);
    a->bn1 = bk_bn_layer_make(ctx, ps, bk_name(n, "%s.bn1", name), mip);
    a->conv_h = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.conv_h", name), mip, c, 1, 1, 0, 1, true, he);
    a->conv_w = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.conv_w", name), mip, c, 1, 1, 0, 1, true, he);
}

bk_tensor *bk_coord_att_fwd(bk_ctx *ctx, const bk_coord_att *a, bk_tensor *x, bool training) {
    bk_block_begin(ctx, a->name);
    const int64_t H = x->h, W = x->w;
    bk_tensor *pair[2] = {bk_mean_w(ctx, x), bk_transpose_hw(ctx, bk_mean_h(ctx, x))};
    bk_tensor *y = bk_concat(ctx, 2, pair, BK_AXIS_H); /* N,C,H+W,1 */
    y = bk_conv_layer_fwd(ctx, &a->conv1, y, bk_act_none(), NULL);
    y = bk_hardswish(ctx, bk_bn_layer_fwd(ctx, &a->bn1, y, training));
    bk_tensor *yh = bk_slice(ctx, y, BK_AXIS_H, 0, H);
    bk_tensor *yw = bk_transpose_hw(ctx, bk_slice(ctx, y, BK_AXIS_H, H, W));
    bk_tensor *ah = bk_sigmoid(ctx, bk_conv_layer_fwd(ctx, &a->conv_h, yh, bk_act_none(), NULL));
    bk_tensor *aw = bk_sigmoid(ctx, bk_conv_layer_fwd(ctx, &a->conv_w, yw, bk_act_none(), NULL));
    bk_tensor *out = bk_mul(ctx, bk_mul(ctx, x, ah), aw);
    bk_block_end(ctx, a->name, out);
    return out;
}
