/* layer.h — the parameterised layers models are made of: convolution, transposed convolution
 * and batch norm, each owning its named tensors in a model's parameter set, and the
 * initialisations the papers use.
 *
 * A layer is created with the PyTorch name of its module ("encoder_lv1.layer2.0"); its tensors
 * become "<name>.weight", "<name>.bias" (and BN's running_mean / running_var buffers), with
 * PyTorch's shapes, in the order PyTorch lists them.
 */
#ifndef BK_LAYER_H
#define BK_LAYER_H

#include <stdbool.h>

#include "core/ops.h"
#include "core/params.h"
#include "core/rng.h"

typedef enum bk_init_kind {
    BK_INIT_NORMAL,    /* N(0, std^2), std = param */
    BK_INIT_HE,        /* kaiming_normal_(fan_in, leaky_relu a = param): std = sqrt(2/(1+a^2)/fan_in) */
    BK_INIT_GLOROT,    /* glorot uniform: U(+-sqrt(6/(fan_in + fan_out))) */
    BK_INIT_DMSHN,     /* N(0, (0.5 sqrt(2 / (k k C_out)))^2), C_out the layer's output channels */
} bk_init_kind;

typedef struct bk_init {
    bk_init_kind kind;
    float param;
    bk_rng *rng;
} bk_init;

/* A module path builder: bk_name(buf, "%s.layer%d", prefix, i). */
const char *bk_name(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum { BK_NAME_MAX = 160 };

typedef struct bk_conv_layer {
    bk_tensor *w, *b;      /* b may be NULL */
    bk_conv_opts o;
    bool transposed;
} bk_conv_layer;

/* Conv2d(cin, cout, k, stride, pad, groups, bias); weights initialised by `init`, bias 0. */
bk_conv_layer bk_conv_layer_make(bk_ctx *ctx, bk_params *ps, const char *name, int cin, int cout,
                                 int k, int stride, int pad, int groups, bool bias, bk_init init);
/* conv2(act(conv1(x))) for two 1x1 convs (stride 1, no padding, ungrouped) with LeakyReLU
 * `slope` between them, as one pass over the pixels with the hidden values in registers:
 * the inference path (nothing recorded) of small per-pixel MLPs, where oneDNN's 1x1 kernels
 * with 3 or 16 channels spend their time on memory. Not recorded. */
bk_tensor *bk_conv1x1_pair_infer(bk_ctx *ctx, const bk_conv_layer *l1, float slope, const bk_conv_layer *l2,
                                 const bk_tensor *x);
/* A residual block's last conv, act(conv(x) + residual): when nothing is recorded the result
 * is written over `residual` (which the caller must not use afterwards), otherwise as
 * bk_conv_layer_fwd. */
bk_tensor *bk_conv_layer_fwd_residual_last(bk_ctx *ctx, const bk_conv_layer *l, bk_tensor *x, bk_act act,
                                           bk_tensor *residual);
/* ConvTranspose2d(cin, cout, k, stride, pad, bias=bias). */
bk_conv_layer bk_deconv_layer_make(bk_ctx *ctx, bk_params *ps, const char *name, int cin,
                                   int cout, int k, int stride, int pad, bool bias, bk_init init);
/* act(conv(x) + b + residual); transposed layers take no activation or residual. */
bk_tensor *bk_conv_layer_fwd(bk_ctx *ctx, const bk_conv_layer *l, bk_tensor *x, bk_act act,
                             bk_tensor *residual);

typedef struct bk_bn_layer {
    bk_tensor *gamma, *beta, *mean, *var;
} bk_bn_layer;

/* BatchNorm2d(c): gamma 1, beta 0, running mean 0, running var 1. */
bk_bn_layer bk_bn_layer_make(bk_ctx *ctx, bk_params *ps, const char *name, int c);
#define BK_BN_EPS 1e-5f
/* eps BK_BN_EPS, momentum 0.1; training: batch statistics and the running update. */
bk_tensor *bk_bn_layer_fwd(bk_ctx *ctx, const bk_bn_layer *l, bk_tensor *x, bool training);

#endif
