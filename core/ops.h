/* ops.h — the differentiable ops: builders that check shapes, compute eagerly and record.
 *
 * Every builder returns a new step tensor (sources are never modified), computes it at once,
 * and records it on the tape when grad mode is on and a differentiable source requires grad
 * (autograd.h). Wrong shapes are programming errors and stop with file:line.
 * Shapes below are logical N,C,H,W; storage is NHWC (tensor.h). Each op's backward (and, being
 * built from these same ops, its second order) is in the file that implements it:
 *   conv.c       convolution family (oneDNN)
 *   norm.c       instance norm (hand-written: no oneDNN primitive in 2.6, and NHWC)
 *   eltwise.c    activations and unary maths
 *   broadcast.c  binary ops with broadcasting, reductions to a shape, broadcast back
 */
#ifndef BK_OPS_H
#define BK_OPS_H

#include "core/autograd.h"
#include "core/ctx.h"
#include "core/tensor.h"

/* ---------------------------------------------------------------- convolutions (conv.c) */

/* Options as in PyTorch's Conv2d / ConvTranspose2d. groups 0 means 1. Padding is given per side
 * (top, left, bottom, right) so TF-"same" asymmetric padding is exact. out_pad_* is
 * ConvTranspose2d's output_padding. */
typedef struct bk_conv_opts {
    int stride_h, stride_w;
    int pad_t, pad_l, pad_b, pad_r;
    int groups;
    int out_pad_h, out_pad_w;
} bk_conv_opts;

static inline bk_conv_opts bk_conv_opts_make(int stride, int pad, int groups) {
    return (bk_conv_opts){stride, stride, pad, pad, pad, pad, groups, 0, 0};
}
static inline bk_act bk_act_none(void) { return (bk_act){BK_ACT_NONE, 0.0f}; }
static inline bk_act bk_act_relu(void) { return (bk_act){BK_ACT_RELU, 0.0f}; }
static inline bk_act bk_act_leaky_relu(float slope) { return (bk_act){BK_ACT_RELU, slope}; }

/* y = act(conv(x, w) + b + residual)           x (N,C,H,W), w (O,C/g,kH,kW), b (1,O,1,1) or NULL,
 * residual (N,O,OH,OW) or NULL. Bias, activation and residual sum are fused into the oneDNN
 * kernel; backward uses the output to form the activation mask. */
bk_tensor *bk_conv2d(bk_ctx *ctx, bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv_opts o,
                     bk_act act, bk_tensor *residual);
/* y = conv_transpose(x, w) + b                  x (N,I,H,W), w (I,O/g,kH,kW), b (1,O,1,1) or NULL.
 * No fused activation: oneDNN 2.6 applies deconvolution post-ops with reference code. */
bk_tensor *bk_conv_transpose2d(bk_ctx *ctx, bk_tensor *x, bk_tensor *w, bk_tensor *b,
                               bk_conv_opts o);

/* The geometry of a conv (transposed = 0) or transposed conv (1) on x with weights w. */
bk_conv_geom bk_conv_geom_make(bk_shape x, bk_shape w, bk_conv_opts o, int transposed);

/* The three directions of one convolution geometry. They are closed under differentiation:
 * the backward of each is made of the others, so gradients of any order are convolutions.
 *   fwd:         y  (N,oc,oh,ow) from x (N,ic,ih,iw), w, optional b, act, residual
 *   bwd_data:    gx (N,ic,ih,iw) from gy (N,oc,oh,ow) and w
 *   bwd_weights: gw (shape of w) from x and gy                                       */
bk_tensor *bk_conv_fwd(bk_ctx *ctx, bk_tensor *x, bk_tensor *w, bk_tensor *b,
                       const bk_conv_geom *g, bk_act act, bk_tensor *residual);
bk_tensor *bk_conv_bwd_data(bk_ctx *ctx, bk_tensor *gy, bk_tensor *w, const bk_conv_geom *g);
bk_tensor *bk_conv_bwd_weights(bk_ctx *ctx, bk_tensor *x, bk_tensor *gy, const bk_conv_geom *g);
/* gw and gb together; one oneDNN call when nothing is recorded. Either output may be NULL. */
void bk_conv_bwd_weights_bias(bk_ctx *ctx, bk_tensor *x, bk_tensor *gy, const bk_conv_geom *g,
                              bk_tensor **gw, bk_tensor **gb);
/* Shape of the weights of a geometry (O,I/g,kH,kW, or I,O/g,kH,kW when transposed). */
bk_shape bk_conv_weight_shape(const bk_conv_geom *g);

/* ---------------------------------------------------------------- normalisation (norm.c) */

/* InstanceNorm2d without affine: per sample and channel, (x - mean) / sqrt(var + eps) over H,W
 * with the biased variance. */
bk_tensor *bk_instance_norm(bk_ctx *ctx, bk_tensor *x, float eps);
/* Its backward: gx from x, gy and the forward output y (which carries the saved statistics). */
bk_tensor *bk_instance_norm_bwd(bk_ctx *ctx, bk_tensor *x, bk_tensor *gy, bk_tensor *y);

/* ---------------------------------------------------------------- element-wise (eltwise.c) */

/* y = x > 0 ? x : slope * x (slope 0: ReLU). */
bk_tensor *bk_leaky_relu(bk_ctx *ctx, bk_tensor *x, float slope);
static inline bk_tensor *bk_relu(bk_ctx *ctx, bk_tensor *x) { return bk_leaky_relu(ctx, x, 0.0f); }
/* gx = gy * (y > 0 ? 1 : slope), with y the activation's output. */
bk_tensor *bk_relu_bwd(bk_ctx *ctx, bk_tensor *gy, bk_tensor *y, float slope);
/* y = a * x + b with scalar constants a, b. */
bk_tensor *bk_affine(bk_ctx *ctx, bk_tensor *x, float a, float b);
static inline bk_tensor *bk_scale(bk_ctx *ctx, bk_tensor *x, float a) {
    return bk_affine(ctx, x, a, 0.0f);
}
bk_tensor *bk_abs(bk_ctx *ctx, bk_tensor *x);
/* -1, 0 or 1; not differentiable (constant). */
bk_tensor *bk_sign(bk_ctx *ctx, bk_tensor *x);
bk_tensor *bk_square(bk_ctx *ctx, bk_tensor *x);
bk_tensor *bk_sqrt(bk_ctx *ctx, bk_tensor *x);

/* ---------------------------------------------------------------- broadcasting (broadcast.c) */

/* a (op) b with broadcasting: each dimension of a and b is equal or 1, the result takes the
 * larger (per channel 1,C,1,1, per sample N,1,1,1, scalar 1,1,1,1, N,1,H,W, N,C,H,1, ...). */
bk_tensor *bk_add(bk_ctx *ctx, bk_tensor *a, bk_tensor *b);
bk_tensor *bk_sub(bk_ctx *ctx, bk_tensor *a, bk_tensor *b);
bk_tensor *bk_mul(bk_ctx *ctx, bk_tensor *a, bk_tensor *b);
bk_tensor *bk_div(bk_ctx *ctx, bk_tensor *a, bk_tensor *b);

/* Sum of x over every dimension where `s` is 1 (s's other dimensions equal x's). */
bk_tensor *bk_sum_to(bk_ctx *ctx, bk_tensor *x, bk_shape s);
/* x repeated along its size-1 dimensions to shape s. The adjoint of bk_sum_to. */
bk_tensor *bk_expand(bk_ctx *ctx, bk_tensor *x, bk_shape s);

bk_tensor *bk_sum(bk_ctx *ctx, bk_tensor *x);             /* scalar */
bk_tensor *bk_mean(bk_ctx *ctx, bk_tensor *x);            /* scalar */
bk_tensor *bk_sum_per_sample(bk_ctx *ctx, bk_tensor *x);  /* N,1,1,1 */
bk_tensor *bk_mean_per_sample(bk_ctx *ctx, bk_tensor *x); /* N,1,1,1 */
bk_tensor *bk_sum_channels(bk_ctx *ctx, bk_tensor *x);    /* N,1,H,W */
bk_tensor *bk_mean_channels(bk_ctx *ctx, bk_tensor *x);   /* N,1,H,W */

#endif
