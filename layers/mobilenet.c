/* mobilenet.c — AMPN's G network (see mobilenet.h). */
#include "layers/mobilenet.h"

#include <math.h>
#include <stdio.h>

static const int settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                   {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
static const int dec_reduce[4] = {224, 96, 64, 32}, dec_skip[4] = {96, 32, 24, 16},
                 dec_out[4] = {192, 96, 64, 32}, dec_in[4] = {320, 192, 96, 64};

static bk_conv_bn conv_bn(bk_ctx *ctx, bk_params *ps, const char *conv_name, const char *bn_name,
                          int cin, int cout, int k, int stride, int groups, bk_init init) {
    bk_conv_bn l;
    l.conv = bk_conv_layer_make(ctx, ps, conv_name, cin, cout, k, stride, k / 2, groups, false, init);
    l.bn = bk_bn_layer_make(ctx, ps, bn_name, cout);
    return l;
}

void bk_gnet_make(bk_ctx *ctx, bk_params *ps, bk_gnet *g, const char *name, int cin, int cout,
                  bk_rng *rng) {
    snprintf(g->name, sizeof g->name, "%s", name);
    bk_init he = {BK_INIT_HE, 0.01f, rng};
    char a[BK_NAME_MAX], b[BK_NAME_MAX];
    g->f0 = conv_bn(ctx, ps, bk_name(a, "%s.features.0.0", name), bk_name(b, "%s.features.0.1", name), cin, 32,
                    3, 2, 1, he);
    int idx = 1, c_in = 32;
    for (int s = 0; s < 7; s++)
        for (int r = 0; r < settings[s][2]; r++, idx++) {
            int t = settings[s][0], c = settings[s][1], stride = r == 0 ? settings[s][3] : 1;
            int hidden = (int)lround((double)c_in * t);
            bk_inverted_residual *ir = &g->ir[idx];
            ir->expand = t != 1;
            ir->skip = stride == 1 && c_in == c;
            int k = 0; /* index of the next Sequential entry inside .conv */
            if (ir->expand) {
                ir->ex = conv_bn(ctx, ps, bk_name(a, "%s.features.%d.conv.0.0", name, idx),
                                 bk_name(b, "%s.features.%d.conv.0.1", name, idx), c_in, hidden, 1, 1, 1, he);
                k = 1;
            }
            ir->dw = conv_bn(ctx, ps, bk_name(a, "%s.features.%d.conv.%d.0", name, idx, k),
                             bk_name(b, "%s.features.%d.conv.%d.1", name, idx, k), hidden, hidden, 3, stride, hidden, he);
            ir->project = conv_bn(ctx, ps, bk_name(a, "%s.features.%d.conv.%d", name, idx, k + 1),
                                  bk_name(b, "%s.features.%d.conv.%d", name, idx, k + 2), hidden, c, 1, 1, 1, he);
            c_in = c;
        }
    for (int j = 0; j < 4; j++)
        g->reduce[j] = conv_bn(ctx, ps, bk_name(a, "%s.reduce.%d.0", name, j), bk_name(b, "%s.reduce.%d.1", name, j),
                               dec_in[j], dec_reduce[j], 1, 1, 1, he);
    for (int j = 0; j < 4; j++) {
        int m = dec_reduce[j] + dec_skip[j];
        g->b_expand[j] = conv_bn(ctx, ps, bk_name(a, "%s.block.%d.conv.0.0", name, j),
                                 bk_name(b, "%s.block.%d.conv.0.1", name, j), m, 3 * m, 1, 1, 1, he);
        g->b_dw[j] = conv_bn(ctx, ps, bk_name(a, "%s.block.%d.conv.1.0", name, j),
                             bk_name(b, "%s.block.%d.conv.1.1", name, j), 3 * m, 3 * m, 5, 1, 3 * m, he);
        g->b_project[j] = conv_bn(ctx, ps, bk_name(a, "%s.block.%d.conv.2", name, j),
                                  bk_name(b, "%s.block.%d.conv.3", name, j), 3 * m, dec_out[j], 1, 1, 1, he);
    }
    g->head0 = conv_bn(ctx, ps, bk_name(a, "%s.head.0.0", name), bk_name(b, "%s.head.0.1", name), 32, 16, 3, 1, 1, he);
    g->head1 = bk_conv_layer_make(ctx, ps, bk_name(a, "%s.head.1", name), 16, cout, 3, 1, 1, 1, true, he);
}

/* Inference (eval mode, nothing recorded): batch norm folded into the conv, ReLU6 fused as its
 * post-op, one pass instead of three. w'[o] = w[o] s[o], b'[o] = beta[o] - mean[o] s[o] with
 * s = gamma / sqrt(var + eps): the same function as conv -> BN(eval) up to rounding. */
static bk_tensor *cbr_folded(bk_ctx *ctx, const bk_conv_bn *l, bk_tensor *x, bool relu6) {
    const bk_tensor *w = l->conv.w;
    const bk_bn_layer *bn = &l->bn;
    bk_tensor *wf = bk_tensor_new(ctx, bk_shape_of(w));
    bk_tensor *bf = bk_tensor_new(ctx, bk_shape_of(bn->beta));
    bf->ndim = bn->beta->ndim;
    const int64_t oc = w->n, per = bk_numel(w) / oc; /* weights are stored O,kH,kW,I/g */
    for (int64_t o = 0; o < oc; o++) {
        float sc = bn->gamma->data[o] / sqrtf(bn->var->data[o] + BK_BN_EPS);
        for (int64_t i = 0; i < per; i++) wf->data[o * per + i] = w->data[o * per + i] * sc;
        bf->data[o] = bn->beta->data[o] - bn->mean->data[o] * sc;
    }
    bk_tensor *y = bk_conv2d(ctx, x, wf, bf, l->conv.o, relu6 ? bk_act_relu6() : bk_act_none(), NULL);
    return y;
}

static bk_tensor *cbr(bk_ctx *ctx, const bk_conv_bn *l, bk_tensor *x, bool training, bool relu6) {
    if (!training && !ctx->grad_enabled && !l->conv.b) return cbr_folded(ctx, l, x, relu6);
    bk_tensor *y = bk_bn_layer_fwd(ctx, &l->bn, bk_conv_layer_fwd(ctx, &l->conv, x, bk_act_none(), NULL), training);
    return relu6 ? bk_relu6(ctx, y) : y;
}

bk_tensor *bk_gnet_fwd(bk_ctx *ctx, const bk_gnet *g, bk_tensor *x, bool training) {
    char n[BK_NAME_MAX];
    bk_block_begin(ctx, bk_name(n, "%s.features", g->name));
    bk_tensor *f = cbr(ctx, &g->f0, x, training, true), *skip[4];
    for (int i = 1; i <= 17; i++) {
        const bk_inverted_residual *ir = &g->ir[i];
        bk_tensor *h = ir->expand ? cbr(ctx, &ir->ex, f, training, true) : f;
        h = cbr(ctx, &ir->dw, h, training, true);
        h = cbr(ctx, &ir->project, h, training, false);
        f = ir->skip ? bk_add(ctx, f, h) : h;
        if (i == 1) skip[3] = f;
        if (i == 3) skip[2] = f;
        if (i == 6) skip[1] = f;
        if (i == 13) skip[0] = f;
    }
    bk_block_end(ctx, n, f);
    bk_block_begin(ctx, bk_name(n, "%s.decoder", g->name));
    for (int j = 0; j < 4; j++) {
        bk_tensor *pair[2] = {bk_up2(ctx, cbr(ctx, &g->reduce[j], f, training, true)), skip[j]};
        f = bk_concat(ctx, 2, pair, BK_AXIS_C);
        f = cbr(ctx, &g->b_expand[j], f, training, true);
        f = cbr(ctx, &g->b_dw[j], f, training, true);
        f = cbr(ctx, &g->b_project[j], f, training, false);
    }
    bk_block_end(ctx, n, f);
    bk_block_begin(ctx, bk_name(n, "%s.head", g->name));
    f = cbr(ctx, &g->head0, bk_up2(ctx, f), training, true);
    f = bk_conv_layer_fwd(ctx, &g->head1, f, bk_act_none(), NULL);
    bk_block_end(ctx, n, f);
    return f;
}
