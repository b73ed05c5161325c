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
