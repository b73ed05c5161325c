/* ops.h — the differentiable ops: builders that check shapes, compute eagerly and record.
 *
 * Every builder returns a new step tensor (sources are never modified), computes it at once,
 * and records it on the tape when grad mode is on and a differentiable source requires grad
 * (autograd.h). Wrong shapes are programming errors and stop with file:line.
 * Shapes below are logical N,C,H,W; storage is NHWC (tensor.h). Each op's backward (and, being
 * built from these same ops, its second order) is in the file that implements it:
 *   conv.c       convolution family (oneDNN)
 *   norm.c       instance norm and batch norm (hand-written: NHWC, no usable primitive)
 *   eltwise.c    activations, unary maths, dropout
 *   broadcast.c  binary ops with broadcasting, reductions to a shape, broadcast back
 *   shape.c      concat, slice, split, H<->W transpose, reflect pad, zero insertion, subsampling
 *   resample.c   bilinear resize, antialiased downscale, 2x2 average pooling
 *   pool.c       max pooling (oneDNN)
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
static inline bk_act bk_act_none(void) { return (bk_act){BK_ACT_NONE, 0.0f, 0.0f}; }
static inline bk_act bk_act_relu(void) { return (bk_act){BK_ACT_RELU, 0.0f, 0.0f}; }
static inline bk_act bk_act_leaky_relu(float slope) { return (bk_act){BK_ACT_RELU, slope, 0.0f}; }
static inline bk_act bk_act_relu6(void) { return (bk_act){BK_ACT_CLIP, 0.0f, 6.0f}; }

/* y = act(conv(x, w) + b + residual)           x (N,C,H,W), w (O,C/g,kH,kW), b (1,O,1,1) or NULL,
 * residual (N,O,OH,OW) or NULL. Bias, activation and residual sum are fused into the oneDNN
 * kernel; backward uses the output to form the activation mask. */
bk_tensor *bk_conv2d(bk_ctx *ctx, bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv_opts o,
                     bk_act act, bk_tensor *residual);
/* The same with the result written over `residual` (returned): no copy of the residual into a
 * new output. For inference only (nothing recorded), when the caller no longer needs
 * `residual`'s values. */
bk_tensor *bk_conv2d_into_residual(bk_ctx *ctx, bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv_opts o,
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

/* BatchNorm2d with affine gamma, beta (1,C,1,1) and running statistics (1,C,1,1, persistent,
 * updated in place when training). training: batch statistics; otherwise running ones.
 * First order only. */
bk_tensor *bk_batch_norm(bk_ctx *ctx, bk_tensor *x, bk_tensor *gamma, bk_tensor *beta,
                         bk_tensor *running_mean, bk_tensor *running_var, bool training,
                         float momentum, float eps);

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
/* torch.clamp(x, lo, hi): gradient 1 on [lo, hi]. */
bk_tensor *bk_clamp(bk_ctx *ctx, bk_tensor *x, float lo, float hi);
/* F.relu6 = hardtanh(0, 6): gradient 1 on (0, 6). */
bk_tensor *bk_relu6(bk_ctx *ctx, bk_tensor *x);
/* gx = gy on the clamp's pass-through range of x (inclusive or not), else 0. */
bk_tensor *bk_clamp_bwd(bk_ctx *ctx, bk_tensor *gy, bk_tensor *x, float lo, float hi,
                        int inclusive);
/* F.hardswish: x * relu6(x + 3) / 6. First order only. */
bk_tensor *bk_hardswish(bk_ctx *ctx, bk_tensor *x);
/* First order only. */
bk_tensor *bk_sigmoid(bk_ctx *ctx, bk_tensor *x);
bk_tensor *bk_tanh(bk_ctx *ctx, bk_tensor *x);
bk_tensor *bk_exp(bk_ctx *ctx, bk_tensor *x);
bk_tensor *bk_log(bk_ctx *ctx, bk_tensor *x);
/* x^p for a constant p (gradient p x^(p-1), as torch.pow). */
bk_tensor *bk_pow(bk_ctx *ctx, bk_tensor *x, float p);
/* F.dropout(x, p, training=True): each element zeroed with probability p, the rest scaled by
 * 1/(1-p). The mask depends only on (seed, element index). p = 0 returns x. */
bk_tensor *bk_dropout(bk_ctx *ctx, bk_tensor *x, float p, uint64_t seed);

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

/* ---------------------------------------------------------------- shapes (shape.c) */

/* torch.cat of n (1..4) tensors along `axis` (BK_AXIS_C, BK_AXIS_H, ...). */
bk_tensor *bk_concat(bk_ctx *ctx, int n, bk_tensor *const *xs, int axis);
/* x.narrow(axis, offset, size). */
bk_tensor *bk_slice(bk_ctx *ctx, bk_tensor *x, int axis, int64_t offset, int64_t size);
/* The adjoint of slice: x placed at `offset` along `axis` in zeros of extent `full`. */
bk_tensor *bk_embed(bk_ctx *ctx, bk_tensor *x, int axis, int64_t offset, int64_t full);
/* torch.split(x, sizes, axis) into out[0..n-1]. */
void bk_split(bk_ctx *ctx, bk_tensor *x, int axis, int n, const int64_t *sizes, bk_tensor **out);
/* x.transpose(2, 3): N,C,H,W -> N,C,W,H. */
bk_tensor *bk_transpose_hw(bk_ctx *ctx, bk_tensor *x);
/* F.pad(x, (l, r, t, b), mode="reflect"); each pad smaller than its dimension. */
bk_tensor *bk_reflect_pad(bk_ctx *ctx, bk_tensor *x, int t, int l, int b, int r);
/* Its adjoint: the gradient of the padded tensor folded back onto the input. */
bk_tensor *bk_reflect_pad_bwd(bk_ctx *ctx, bk_tensor *gy, int t, int l, int b, int r);
/* out_h x out_w zeros (out = 2*in or 2*in - 1) with x at the even rows and columns. */
bk_tensor *bk_zero_insert(bk_ctx *ctx, bk_tensor *x, int64_t out_h, int64_t out_w);
/* x[:, :, ::2, ::2] (ceil(H/2) x ceil(W/2)). */
bk_tensor *bk_subsample(bk_ctx *ctx, bk_tensor *x);

/* ---------------------------------------------------------------- resampling (resample.c, pool.c) */

typedef enum bk_resample_mode {
    BK_RESAMPLE_BILINEAR = 0,    /* interpolate(mode="bilinear", align_corners=False) */
    BK_RESAMPLE_BILINEAR_AA = 1, /* the same with antialias=True along shrinking axes */
    BK_RESAMPLE_AVG2 = 2,        /* avg_pool2d(2, 2); out = floor(in / 2) */
} bk_resample_mode;

/* interpolate(x, size=(out_h, out_w), ...): source scale in/out. */
bk_tensor *bk_resample(bk_ctx *ctx, bk_tensor *x, int64_t out_h, int64_t out_w,
                       bk_resample_mode mode);
/* interpolate(x, scale_factor=factor, ...): output floor(in * factor), source scale 1/factor
 * (torch's rule; for odd sizes at x0.5 it differs from the in/out of the size form). */
bk_tensor *bk_resample_factor(bk_ctx *ctx, bk_tensor *x, double factor, bk_resample_mode mode);
static inline bk_tensor *bk_up2(bk_ctx *ctx, bk_tensor *x) {
    return bk_resample_factor(ctx, x, 2.0, BK_RESAMPLE_BILINEAR);
}
static inline bk_tensor *bk_up4(bk_ctx *ctx, bk_tensor *x) {
    return bk_resample_factor(ctx, x, 4.0, BK_RESAMPLE_BILINEAR);
}
/* The taps of bk_resample_factor(x, factor, BILINEAR) along one axis of `in` pixels, for a
 * kernel that fuses the upsampling into its own loop: output index i (of in * factor) is
 * w0[i] * x[i0[i]] + w1[i] * x[i1[i]]. Arrays of in * factor entries. */
void bk_bilinear_up_taps(int64_t in, int factor, int64_t *i0, int64_t *i1, float *w0, float *w1);
/* Bilinear x0.5: the mean of each 2x2 block (odd sizes: floor, as avg_pool2d). */
static inline bk_tensor *bk_down2(bk_ctx *ctx, bk_tensor *x) {
    return bk_resample_factor(ctx, x, 0.5, BK_RESAMPLE_BILINEAR);
}
bk_tensor *bk_avg_pool2(bk_ctx *ctx, bk_tensor *x);
/* The same resampling on a plain interleaved float image (h x w x c -> oh x ow x c), without a
 * context or the tape: for data loading, on any thread. */
void bk_resize_image(const float *src, int64_t h, int64_t w, int64_t c, float *dst, int64_t oh,
                     int64_t ow, bk_resample_mode mode);
/* MaxPool2d(k, stride), no padding, floor. First order only. */
bk_tensor *bk_max_pool(bk_ctx *ctx, bk_tensor *x, int k, int stride);

/* Mean over W (N,C,H,1) and over H (N,C,1,W); broadcast back with bk_expand. */
static inline bk_tensor *bk_mean_w(bk_ctx *ctx, bk_tensor *x) {
    return bk_scale(ctx, bk_sum_to(ctx, x, (bk_shape){x->n, x->c, x->h, 1}), 1.0f / (float)x->w);
}
static inline bk_tensor *bk_mean_h(bk_ctx *ctx, bk_tensor *x) {
    return bk_scale(ctx, bk_sum_to(ctx, x, (bk_shape){x->n, x->c, 1, x->w}), 1.0f / (float)x->h);
}

#endif
