/* layer.c — conv, transposed conv and batch norm layers with their initialisations. */
#include "layers/layer.h"

#include <string.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

const char *bk_name(char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, BK_NAME_MAX, fmt, ap);
    va_end(ap);
    BK_CHECK(n > 0 && n < BK_NAME_MAX, "module name too long");
    return buf;
}

/* fan_in = cin/groups * k * k, fan_out = cout/groups * k * k (torch's _calculate_fan_in_and_fan_out
 * on the weight: dims 1 and 0 times the receptive field). */
static void init_weights(bk_tensor *w, bk_init init, double fan_in, double fan_out, double cout_layer,
                         int k) {
    int64_t n = bk_numel(w);
    switch (init.kind) {
    case BK_INIT_NORMAL:
        bk_rng_fill_normal(init.rng, w->data, n, 0.0, init.param);
        break;
    case BK_INIT_HE: {
        double a = init.param;
        bk_rng_fill_normal(init.rng, w->data, n, 0.0, sqrt(2.0 / (1.0 + a * a) / fan_in));
        break;
    }
    case BK_INIT_GLOROT: {
        double lim = sqrt(6.0 / (fan_in + fan_out));
        bk_rng_fill_uniform(init.rng, w->data, n, -lim, lim);
        break;
    }
    case BK_INIT_DMSHN:
        bk_rng_fill_normal(init.rng, w->data, n, 0.0, 0.5 * sqrt(2.0 / ((double)k * k * cout_layer)));
        break;
    }
    bk_tensor_touch(w);
}

bk_conv_layer bk_conv_layer_make(bk_ctx *ctx, bk_params *ps, const char *name, int cin, int cout,
                                 int k, int stride, int pad, int groups, bool bias, bk_init init) {
    char buf[BK_NAME_MAX];
    bk_conv_layer l = {0};
    l.o = bk_conv_opts_make(stride, pad, groups);
    l.w = bk_params_add(ctx, ps, bk_name(buf, "%s.weight", name), 4,
                        (bk_shape){cout, cin / groups, k, k}, BK_PARAM);
    if (bias) l.b = bk_params_add(ctx, ps, bk_name(buf, "%s.bias", name), 1, (bk_shape){1, cout, 1, 1}, BK_PARAM);
    init_weights(l.w, init, (double)cin / groups * k * k, (double)cout / groups * k * k, cout, k);
    return l;
}

bk_conv_layer bk_deconv_layer_make(bk_ctx *ctx, bk_params *ps, const char *name, int cin,
                                   int cout, int k, int stride, int pad, bool bias, bk_init init) {
    char buf[BK_NAME_MAX];
    bk_conv_layer l = {0};
    l.o = bk_conv_opts_make(stride, pad, 1);
    l.transposed = true;
    l.w = bk_params_add(ctx, ps, bk_name(buf, "%s.weight", name), 4, (bk_shape){cin, cout, k, k}, BK_PARAM);
    if (bias) l.b = bk_params_add(ctx, ps, bk_name(buf, "%s.bias", name), 1, (bk_shape){1, cout, 1, 1}, BK_PARAM);
    /* torch sees a ConvTranspose weight (in, out, k, k): fan_in = out*k*k, fan_out = in*k*k */
    init_weights(l.w, init, (double)cout * k * k, (double)cin * k * k, cout, k);
    return l;
}

bk_tensor *bk_conv_layer_fwd(bk_ctx *ctx, const bk_conv_layer *l, bk_tensor *x, bk_act act,
                             bk_tensor *residual) {
    char name[BK_NAME_MAX] = "";
    if (ctx->block_hook && l->w->name) { /* a profile: one block per conv, named by its module */
        snprintf(name, sizeof name, "%s", l->w->name);
        char *dot = strrchr(name, '.');
        if (dot) *dot = '\0';
        bk_block_begin(ctx, name);
    }
    bk_tensor *y;
    if (l->transposed) {
        BK_CHECK(act.kind == BK_ACT_NONE && !residual, "no fused post-ops on transposed convs");
        y = bk_conv_transpose2d(ctx, x, l->w, l->b, l->o);
    } else {
        y = bk_conv2d(ctx, x, l->w, l->b, l->o, act, residual);
    }
    if (name[0]) bk_block_end(ctx, name, y);
    return y;
}

bk_bn_layer bk_bn_layer_make(bk_ctx *ctx, bk_params *ps, const char *name, int c) {
    char buf[BK_NAME_MAX];
    bk_bn_layer l;
    bk_shape s = {1, c, 1, 1};
    l.gamma = bk_params_add(ctx, ps, bk_name(buf, "%s.weight", name), 1, s, BK_PARAM);
    l.beta = bk_params_add(ctx, ps, bk_name(buf, "%s.bias", name), 1, s, BK_PARAM);
    l.mean = bk_params_add(ctx, ps, bk_name(buf, "%s.running_mean", name), 1, s, BK_BUFFER);
    l.var = bk_params_add(ctx, ps, bk_name(buf, "%s.running_var", name), 1, s, BK_BUFFER);
    for (int i = 0; i < c; i++) l.gamma->data[i] = l.var->data[i] = 1.0f;
    return l;
}

bk_tensor *bk_bn_layer_fwd(bk_ctx *ctx, const bk_bn_layer *l, bk_tensor *x, bool training) {
    return bk_batch_norm(ctx, x, l->gamma, l->beta, l->mean, l->var, training, 0.1f, BK_BN_EPS);
}

bk_tensor *bk_conv1x1_pair_infer(bk_ctx *ctx, const bk_conv_layer *l1, float slope, const bk_conv_layer *l2,
                                 const bk_tensor *x) {
    enum { MAX_IN = 64, MAX_MID = 64, LANES = 16 };
    const bk_tensor *w1 = l1->w, *w2 = l2->w;
    const int64_t ci = x->c, cm = w1->n, co = w2->n;
    BK_CHECK(!l1->transposed && !l2->transposed && w1->h == 1 && w1->w == 1 && w2->h == 1 && w2->w == 1 &&
                 w1->c == ci && w2->c == cm && ci <= MAX_IN && cm <= MAX_MID && l1->o.stride_h == 1 && l1->o.stride_w == 1 &&
                 l2->o.stride_h == 1 && l2->o.stride_w == 1 && l1->o.pad_t + l1->o.pad_l + l1->o.pad_b + l1->o.pad_r +
                 l2->o.pad_t + l2->o.pad_l + l2->o.pad_b + l2->o.pad_r == 0,
             "conv1x1 pair: %lld -> %lld -> %lld channels do not make two 1x1 convs", (long long)ci, (long long)cm,
             (long long)co);
    bk_tensor *y = bk_tensor_new(ctx, (bk_shape){x->n, co, x->h, x->w});
    const int64_t px = x->n * x->h * x->w, blocks = (px + LANES - 1) / LANES;
    const float *b1 = l1->b ? l1->b->data : NULL, *b2 = l2->b ? l2->b->data : NULL;
    /* LANES pixels at a time, channel-major inside the block, so every multiply-add below is
     * one vector operation across pixels */
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < blocks; blk++) {
        const int64_t p0 = blk * LANES, np = px - p0 < LANES ? px - p0 : LANES;
        float xin[MAX_IN][LANES], h[MAX_MID][LANES], out[LANES];
        for (int64_t i = 0; i < ci; i++)
            for (int l = 0; l < LANES; l++) xin[i][l] = l < np ? x->data[(p0 + l) * ci + i] : 0.0f;
        for (int64_t m = 0; m < cm; m++) {
            float acc[LANES];
            for (int l = 0; l < LANES; l++) acc[l] = b1 ? b1[m] : 0.0f;
            for (int64_t i = 0; i < ci; i++) {
                const float wv = w1->data[m * ci + i];
                for (int l = 0; l < LANES; l++) acc[l] += wv * xin[i][l];
            }
            for (int l = 0; l < LANES; l++) h[m][l] = acc[l] > 0.0f ? acc[l] : slope * acc[l];
        }
        for (int64_t o = 0; o < co; o++) {
            for (int l = 0; l < LANES; l++) out[l] = b2 ? b2[o] : 0.0f;
            for (int64_t m = 0; m < cm; m++) {
                const float wv = w2->data[o * cm + m];
                for (int l = 0; l < LANES; l++) out[l] += wv * h[m][l];
            }
            for (int l = 0; l < np; l++) y->data[(p0 + l) * co + o] = out[l];
        }
    }
    return y;
}

bk_tensor *bk_conv_layer_fwd_residual_last(bk_ctx *ctx, const bk_conv_layer *l, bk_tensor *x, bk_act act,
                                           bk_tensor *residual) {
    if (ctx->grad_enabled || l->transposed) return bk_conv_layer_fwd(ctx, l, x, act, residual);
    return bk_conv2d_into_residual(ctx, x, l->w, l->b, l->o, act, residual);
}
