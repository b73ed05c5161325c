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
/* Inference only (not recorded), one pass over the output (N, C, H, W):
 *   y = base + high * ft(up(src)),   then with a mask:   y = y + up_m(mask) * (image - y)
 * where ft = l2(LeakyReLU_slope(l1(.))) is a pair of 1x1 convs (stride 1, no padding,
 * ungrouped; at most 64 channels) computed with the hidden values in registers, up is bilinear
 * upsampling by src_factor (1: none) and up_m by mask_factor, both as bk_resample_factor; mask
 * has one channel; image has the output's shape. The sums and products of the recorded ops
 * one by one (bk_up2, the convs, bk_mul, bk_add, bk_sub), in one pass instead of up to eight
 * over full-resolution tensors, where oneDNN's 1x1 kernels with 3 or 16 channels and the
 * elementwise ops spend their time on memory: AMPN's reconstruction. */
bk_tensor *bk_detail_blend_infer(bk_ctx *ctx, const bk_conv_layer *l1, float slope, const bk_conv_layer *l2,
                                 const bk_tensor *base, const bk_tensor *high, const bk_tensor *src, int src_factor,
                                 const bk_tensor *mask, int mask_factor, const bk_tensor *image);
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
