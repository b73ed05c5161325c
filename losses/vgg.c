/* vgg.c — VGG-19 relu5_4 perceptual loss (see vgg.h). */
#include "losses/vgg.h"

#include "losses/l1.h"

#include <string.h>
#include <unistd.h>

void bk_vgg_loss_init(bk_ctx *ctx, bk_vgg_net *v) { bk_backbone_init(ctx, &v->net, BK_NET_VGG19); }

void bk_vgg_loss_free(bk_ctx *ctx, bk_vgg_net *v) { bk_backbone_free(ctx, &v->net); }

bk_status bk_vgg_loss_load(bk_ctx *ctx, bk_vgg_net *v, const char *path) {
    memset(v, 0, sizeof *v);
    if (access(path, R_OK) != 0)
        return bk_fail(BK_ERR_IO,
                       "VGG-19 weights %s not found. Make them from torchvision's file with\n"
                       "  scripts/convert_vgg19.py --weights vgg19-dcbb9e9d.pth --out %s\n"
                       "(see docs/WEIGHTS.md), or set the VGG loss weight to 0", path, path);
    bk_h5 f;
    bk_status st = bk_h5_open(&f, path);
    if (st != BK_OK) return st;
    char format[64] = "";
    if (bk_h5_get_attr_str(&f, "format", format, sizeof format) != BK_OK || strcmp(format, "bokehlab-vgg19") != 0) {
        bk_h5_close(&f, false);
        return bk_fail(BK_ERR_FORMAT, "%s: not a VGG-19 weights file (root attribute format should be "
                       "\"bokehlab-vgg19\", see docs/WEIGHTS.md)", path);
    }
    bk_vgg_loss_init(ctx, v);
    st = bk_params_load(&v->net.params, &f, "");
    bk_h5_close(&f, false);
    if (st != BK_OK) bk_vgg_loss_free(ctx, v);
    return st;
}

bk_tensor *bk_vgg_loss(bk_ctx *ctx, const bk_vgg_net *v, bk_tensor *a, bk_tensor *b,
                       bool minus_one_to_one) {
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    /* ((x + 1) / 2 - mean) / std  or  (x - mean) / std, as one per-channel affine map */
    bk_tensor *k = bk_tensor_new(ctx, (bk_shape){1, 3, 1, 1}), *o = bk_tensor_new(ctx, (bk_shape){1, 3, 1, 1});
    for (int c = 0; c < 3; c++) {
        float s = minus_one_to_one ? 0.5f : 1.0f, t = minus_one_to_one ? 0.5f : 0.0f;
        k->data[c] = s / std[c];
        o->data[c] = (t - mean[c]) / std[c];
    }
    bk_tensor *pair[2] = {a, b};
    bk_tensor *x = bk_add(ctx, bk_mul(ctx, bk_concat(ctx, 2, pair, BK_AXIS_N), k), o);
    bk_tensor *f;
    bk_backbone_forward(ctx, &v->net, x, &f);
    return bk_l1(ctx, bk_slice(ctx, f, BK_AXIS_N, 0, a->n), bk_slice(ctx, f, BK_AXIS_N, a->n, a->n));
}
