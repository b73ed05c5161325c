/* op.h — the op table: every op bokehlab can record on the tape, in one list.
 *
 * Adding an op is routine: one line in BK_OPS below (enum name, printed name, backward
 * function, which sources are differentiable), a builder in ops.h that checks shapes, computes
 * the result and calls bk_record(), and a backward function written with the builders of ops.h
 * so that, with create_graph, the gradient is itself recorded and can be differentiated again.
 * Inline parameters live in bk_op_params; state saved for backward hangs off bk_tensor.saved.
 */
#ifndef BK_OP_H
#define BK_OP_H

#include <stdint.h>

/* X(enum suffix, name, backward function, mask of differentiable sources: bit j = src[j]).
 * A source outside the mask still feeds the op, but its gradient is zero almost everywhere
 * (a ReLU mask, a sign) or is already part of another source's gradient (the saved output of
 * instance norm). A NULL backward means the op cannot be differentiated; asking for it stops
 * with a message naming the op. */
#define BK_OPS(X)                                                                         \
    X(NONE, "leaf", NULL, 0x0)                                                            \
    X(CONV, "conv", bk_conv_backward, 0xF)              /* x, w, bias, residual */        \
    X(CONV_BWD_DATA, "conv_bwd_data", bk_conv_bwd_data_backward, 0x3) /* gy, w */         \
    X(CONV_BWD_WEIGHTS, "conv_bwd_weights", bk_conv_bwd_weights_backward, 0x3) /* x, gy */\
    X(INSTANCE_NORM, "instance_norm", bk_instance_norm_backward, 0x1)                     \
    X(INSTANCE_NORM_BWD, "instance_norm_bwd", bk_instance_norm_bwd_backward, 0x3) /* x, gy, y */ \
    X(INSTANCE_NORM_BWD2, "instance_norm_bwd2", NULL, 0xF) /* x, gy, u, y */                                \
    X(LEAKY_RELU, "leaky_relu", bk_leaky_relu_backward, 0x1)                              \
    X(RELU_BWD, "relu_bwd", bk_relu_bwd_backward, 0x1)  /* gy, y */                       \
    X(ADD, "add", bk_add_backward, 0x3)                                                   \
    X(SUB, "sub", bk_sub_backward, 0x3)                                                   \
    X(MUL, "mul", bk_mul_backward, 0x3)                                                   \
    X(DIV, "div", bk_div_backward, 0x3)                                                   \
    X(AFFINE, "affine", bk_affine_backward, 0x1)                                          \
    X(ABS, "abs", bk_abs_backward, 0x1)                                                   \
    X(SIGN, "sign", NULL, 0x0)                                                \
    X(SQUARE, "square", bk_square_backward, 0x1)                                          \
    X(SQRT, "sqrt", bk_sqrt_backward, 0x1)                                                \
    X(SUM_TO, "sum_to", bk_sum_to_backward, 0x1)                                          \
    X(EXPAND, "expand", bk_expand_backward, 0x1)                                          \
    X(CLAMP, "clamp", bk_clamp_backward, 0x1)                                             \
    X(CLAMP_BWD, "clamp_bwd", bk_clamp_bwd_backward, 0x1)  /* gy, x */                    \
    X(HARDSWISH, "hardswish", bk_hardswish_backward, 0x1)                                 \
    X(HARDSWISH_BWD, "hardswish_bwd", NULL, 0x3)           /* gy, x */                    \
    X(SIGMOID, "sigmoid", bk_sigmoid_backward, 0x1)                                       \
    X(SIGMOID_BWD, "sigmoid_bwd", NULL, 0x3)               /* gy, y */                    \
    X(TANH, "tanh", bk_tanh_backward, 0x1)                                                \
    X(TANH_BWD, "tanh_bwd", NULL, 0x3)                     /* gy, y */                    \
    X(EXP, "exp", bk_exp_backward, 0x1)                                                   \
    X(LOG, "log", bk_log_backward, 0x1)                                                   \
    X(POW, "pow", bk_pow_backward, 0x1)                                                   \
    X(CONCAT, "concat", bk_concat_backward, 0xF)                                          \
    X(SLICE, "slice", bk_slice_backward, 0x1)                                             \
    X(EMBED, "embed", bk_embed_backward, 0x1)                                             \
    X(TRANSPOSE_HW, "transpose_hw", bk_transpose_hw_backward, 0x1)                        \
    X(REFLECT_PAD, "reflect_pad", bk_reflect_pad_backward, 0x1)                           \
    X(REFLECT_PAD_BWD, "reflect_pad_bwd", bk_reflect_pad_bwd_backward, 0x1)               \
    X(ZERO_INSERT, "zero_insert", bk_zero_insert_backward, 0x1)                           \
    X(SUBSAMPLE, "subsample", bk_subsample_backward, 0x1)                                 \
    X(RESAMPLE, "resample", bk_resample_backward, 0x1)                                    \
    X(RESAMPLE_T, "resample_t", bk_resample_t_backward, 0x1)                              \
    X(MAX_POOL, "max_pool", bk_max_pool_backward, 0x1)                                    \
    X(MAX_POOL_BWD, "max_pool_bwd", NULL, 0x1)             /* gy */                       \
    X(BATCH_NORM, "batch_norm", bk_batch_norm_backward, 0x7) /* x, gamma, beta */

#define BK_OP_ENUM_(e, name, bw, mask) BK_OP_##e,
typedef enum bk_op { BK_OPS(BK_OP_ENUM_) BK_OP_COUNT } bk_op;
#undef BK_OP_ENUM_

/* Geometry of a convolution or transposed convolution, in PyTorch terms. "in" is the input of
 * the op in its forward direction (for a transposed conv, the small tensor). */
typedef struct bk_conv_geom {
    int64_t n, ic, ih, iw;          /* input */
    int64_t oc, oh, ow;             /* output */
    int32_t kh, kw, sh, sw;         /* kernel, stride */
    int32_t pt, pl, pb, pr;         /* padding top, left, bottom, right */
    int32_t groups;
    int32_t transposed;             /* 1: ConvTranspose2d, weights I,O/g,kH,kW */
} bk_conv_geom;

typedef enum bk_act_kind { BK_ACT_NONE = 0, BK_ACT_RELU = 1, BK_ACT_CLIP = 2 } bk_act_kind;

/* Activation fused after a conv: RELU with alpha = slope below zero (0: ReLU, 0.2: LeakyReLU);
 * CLIP to [alpha, beta] (ReLU6: 0, 6), with gradient 1 strictly inside. */
typedef struct bk_act {
    int32_t kind;
    float alpha, beta;
} bk_act;

typedef union bk_op_params {
    struct {
        bk_conv_geom g;
        bk_act act;
    } conv;
    struct {
        float alpha;
    } relu;
    struct {
        float a, b; /* y = a*x + b */
    } affine;
    struct {
        float eps;
    } norm;
    struct {
        float lo, hi;
        int32_t inclusive; /* gradient at the bounds: 1 as torch.clamp, 0 as hardtanh/relu6 */
    } clamp;
    struct {
        float p;
    } pow;
    struct {
        int32_t axis;             /* BK_AXIS_* */
        int64_t offset, size;     /* slice along the axis */
        int64_t full;             /* extent of the axis in the larger tensor */
    } slice;
    struct {
        int32_t t, l, b, r;
    } pad;
    struct {
        const void *plan;         /* resampling taps (resample.c), owned by ctx->prims */
    } resample;
    struct {
        int32_t k, stride;
        const void *plan;         /* oneDNN pooling plan (pool.c), owned by ctx->prims */
    } pool;
    struct {
        float eps;
        int32_t training;         /* batch statistics (1) or running statistics (0) */
    } bn;
} bk_op_params;

/* Axes of a logical N,C,H,W shape. */
typedef enum bk_axis { BK_AXIS_N = 0, BK_AXIS_C = 1, BK_AXIS_H = 2, BK_AXIS_W = 3 } bk_axis;

typedef struct bk_tensor bk_tensor;
typedef struct bk_ctx bk_ctx;

/* A backward function receives the node `out`, the gradient `gout` flowing into it, and for
 * each source j with need[j] set it stores the gradient with respect to src[j] (exactly the
 * shape of src[j]) into gsrc[j]. It must build its results with the ops of ops.h. */
typedef void (*bk_backward_fn)(bk_ctx *ctx, bk_tensor *out, bk_tensor *gout, bk_tensor **gsrc,
                               const int *need);

typedef struct bk_op_info {
    const char *name;
    bk_backward_fn backward;
    uint32_t diff_mask;
} bk_op_info;

extern const bk_op_info bk_op_table[BK_OP_COUNT];

#endif
