/* lpips.c — LPIPS v0.1 (see lpips.h). */
#include "losses/lpips.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void bk_lpips_init(bk_ctx *ctx, bk_lpips_net *lp, bk_net_kind net) {
    memset(lp, 0, sizeof *lp);
    BK_CHECK(net == BK_NET_ALEX || net == BK_NET_VGG16, "LPIPS trunks are alex and vgg");
    bk_backbone_init(ctx, &lp->trunk, net);
    for (int l = 0; l < lp->trunk.n_taps; l++) {
        char name[32];
        snprintf(name, sizeof name, "lin%d.weight", l);
        lp->lin[l] = bk_params_add(ctx, &lp->lin_params, name, 4,
                                   (bk_shape){1, lp->trunk.tap_channels[l], 1, 1}, BK_PARAM);
        lp->lin[l]->requires_grad = false;
    }
}

void bk_lpips_free(bk_ctx *ctx, bk_lpips_net *lp) {
    bk_backbone_free(ctx, &lp->trunk);
    bk_params_free(ctx, &lp->lin_params);
}

bk_status bk_lpips_load(bk_ctx *ctx, bk_lpips_net *lp, const char *path) {
    memset(lp, 0, sizeof *lp);
    if (access(path, R_OK) != 0)
        return bk_fail(BK_ERR_IO,
                       "LPIPS weights %s not found. Make them from the official files with\n"
                       "  scripts/convert_lpips.py --net alex --lin weights/v0.1/alex.pth "
                       "--trunk alexnet-owt-7be5be79.pth --out %s\n"
                       "(see docs/WEIGHTS.md), or set the LPIPS loss weight to 0",
                       path, path);
    bk_h5 f;
    bk_status st = bk_h5_open(&f, path);
    if (st != BK_OK) return st;
    char format[64] = "", net[32] = "";
    if (bk_h5_get_attr_str(&f, "format", format, sizeof format) != BK_OK ||
        strcmp(format, "bokehlab-lpips") != 0 || bk_h5_get_attr_str(&f, "net", net, sizeof net) != BK_OK) {
        bk_h5_close(&f, false);
        return bk_fail(BK_ERR_FORMAT, "%s: not an LPIPS weights file (root attribute format should "
                       "be \"bokehlab-lpips\", see docs/WEIGHTS.md)", path);
    }
    bk_net_kind kind;
    if ((st = bk_net_parse(net, &kind)) != BK_OK || kind == BK_NET_VGG19) {
        bk_h5_close(&f, false);
        return bk_fail(BK_ERR_FORMAT, "%s: LPIPS net \"%s\" is not alex or vgg", path, net);
    }
    bk_lpips_init(ctx, lp, kind);
    bk_params *sets[2] = {&lp->trunk.params, &lp->lin_params};
    st = bk_params_load_sets(sets, 2, &f, "");
    bk_h5_close(&f, false);
    if (st != BK_OK) bk_lpips_free(ctx, lp);
    return st;
}

/* f / (sqrt(sum_c f^2) + 1e-10) */
static bk_tensor *unit_channels(bk_ctx *ctx, bk_tensor *f) {
    bk_tensor *norm = bk_affine(ctx, bk_sqrt(ctx, bk_sum_channels(ctx, bk_square(ctx, f))), 1.0f, 1e-10f);
    return bk_div(ctx, f, norm);
}

bk_tensor *bk_lpips(bk_ctx *ctx, const bk_lpips_net *lp, bk_tensor *a, bk_tensor *b) {
    char sa[64], sb[64];
    BK_CHECK(bk_same_shape(a, b) && a->c == 3, "LPIPS of %s and %s", bk_shape_str(bk_shape_of(a), sa),
             bk_shape_str(bk_shape_of(b), sb));
    static const float shift[3] = {-0.030f, -0.088f, -0.188f}, scale[3] = {0.458f, 0.448f, 0.450f};
    bk_tensor *sh = bk_tensor_new(ctx, (bk_shape){1, 3, 1, 1}), *sc = bk_tensor_new(ctx, (bk_shape){1, 3, 1, 1});
    for (int c = 0; c < 3; c++) sh->data[c] = shift[c], sc->data[c] = scale[c];
    /* both images through the trunk in one batch */
    bk_tensor *pair[2] = {a, b};
    bk_tensor *x = bk_div(ctx, bk_sub(ctx, bk_concat(ctx, 2, pair, BK_AXIS_N), sh), sc);
    bk_tensor *taps[BK_BACKBONE_MAX_TAPS];
    bk_backbone_forward(ctx, &lp->trunk, x, taps);
    const int64_t N = a->n;
    bk_tensor *total = NULL;
    for (int l = 0; l < lp->trunk.n_taps; l++) {
        bk_tensor *f = unit_channels(ctx, taps[l]);
        bk_tensor *d = bk_square(ctx, bk_sub(ctx, bk_slice(ctx, f, BK_AXIS_N, 0, N), bk_slice(ctx, f, BK_AXIS_N, N, N)));
        bk_tensor *m = bk_conv2d(ctx, d, lp->lin[l], NULL, bk_conv_opts_make(1, 0, 1), bk_act_none(), NULL);
        bk_tensor *v = bk_scale(ctx, bk_sum_per_sample(ctx, m), 1.0f / (float)(m->h * m->w));
        total = total ? bk_add(ctx, total, v) : v;
    }
    return total;
}

bk_status bk_lpips_metric(bk_ctx *ctx, const bk_lpips_net *lp, bk_tensor *a, bk_tensor *b,
                          float *per_image) {
    for (int k = 0; k < 2; k++) {
        const bk_tensor *t = k ? b : a;
        int64_t n = bk_numel(t);
        for (int64_t i = 0; i < n; i++)
            if (!(t->data[i] >= -1.0001f && t->data[i] <= 1.0001f))
                return bk_fail(BK_ERR_ARG, "LPIPS metric: input %c has the value %g, outside [-1,1] "
                               "(LPIPS expects x/127.5 - 1 of 8-bit images)", k ? 'b' : 'a', t->data[i]);
    }
    bool prev = bk_set_grad_enabled(ctx, false);
    bk_tensor *d = bk_lpips(ctx, lp, a, b);
    bk_set_grad_enabled(ctx, prev);
    for (int64_t i = 0; i < a->n; i++) per_image[i] = d->data[i];
    return BK_OK;
}
