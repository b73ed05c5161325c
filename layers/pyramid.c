/* pyramid.c — LPTN's Laplacian pyramid (see pyramid.h). */
#include "layers/pyramid.h"

bk_tensor *bk_gauss5(bk_ctx *ctx, bk_tensor *x, float gain) {
    static const float k1[5] = {1, 4, 6, 4, 1};
    const int64_t C = x->c;
    /* the fixed kernel, C x 1 x 5 x 5 (one 5x5 filter per channel, groups = C) */
    bk_tensor *k = bk_tensor_new(ctx, (bk_shape){C, 1, 5, 5});
    for (int64_t c = 0; c < C; c++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++) k->data[bk_offset(k, c, 0, i, j)] = gain * k1[i] * k1[j] / 256.0f;
    bk_tensor *padded = bk_reflect_pad(ctx, x, 2, 2, 2, 2);
    return bk_conv2d(ctx, padded, k, NULL, bk_conv_opts_make(1, 0, (int)C), bk_act_none(), NULL);
}

bk_tensor *bk_lap_down(bk_ctx *ctx, bk_tensor *x) {
    return bk_subsample(ctx, bk_gauss5(ctx, x, 1.0f));
}

bk_tensor *bk_lap_up(bk_ctx *ctx, bk_tensor *x, int64_t out_h, int64_t out_w) {
    return bk_gauss5(ctx, bk_zero_insert(ctx, x, out_h, out_w), 4.0f);
}

void bk_pyramid_decompose(bk_ctx *ctx, bk_tensor *x, int levels, bk_pyramid *out) {
    BK_CHECK(levels >= 1 && levels <= BK_PYRAMID_MAX_LEVELS, "pyramid of %d levels", levels);
    out->levels = levels;
    bk_tensor *cur = x;
    for (int l = 0; l < levels; l++) {
        bk_tensor *down = bk_lap_down(ctx, cur);
        out->high[l] = bk_sub(ctx, cur, bk_lap_up(ctx, down, cur->h, cur->w));
        cur = down;
    }
    out->low = cur;
}

bk_tensor *bk_pyramid_reconstruct(bk_ctx *ctx, const bk_pyramid *p) {
    bk_tensor *img = p->low;
    for (int l = p->levels - 1; l >= 0; l--)
        img = bk_add(ctx, bk_lap_up(ctx, img, p->high[l]->h, p->high[l]->w), p->high[l]);
    return img;
}
