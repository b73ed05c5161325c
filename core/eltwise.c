/* eltwise.c — element-wise activations and unary maths, hand-written with OpenMP.
 *
 * Matches torch: leaky_relu / relu (gradient at 0 is the slope, as LeakyReLU; 0 for ReLU),
 * abs (gradient sign(x), 0 at 0), square, sqrt (gradient 0.5/y; infinite at 0 as in torch),
 * and y = a*x + b with constants. These are single memory passes, as fast by hand as through
 * oneDNN's eltwise primitive, and need no descriptors. Inside convolutions the activation is
 * fused into the oneDNN kernel instead (conv.c).
 *
 * Second order: every backward is built from ops (relu_bwd, mul, div, affine), so gradients
 * of gradients follow; relu_bwd and sign have zero derivative with respect to the mask input.
 */
#include <math.h>

#include "core/kernels.h"
#include "core/op_backward.h"
#include "core/ops.h"

/* A new tensor shaped like x, made by `op` from sources a (and b). */
static bk_tensor *node(bk_ctx *ctx, bk_op op, bk_tensor *a, bk_tensor *b) {
    bk_tensor *y = bk_tensor_new(ctx, bk_shape_of(a));
    y->ndim = a->ndim;
    y->op = op;
    y->src[0] = a;
    y->src[1] = b;
    return y;
}

#define ELTWISE(n, body)                                                          \
    do {                                                                          \
        _Pragma("omp parallel for simd schedule(static) if (n > BK_PARALLEL_MIN)") \
        for (int64_t i = 0; i < n; i++) { body; }                                 \
    } while (0)

bk_tensor *bk_leaky_relu(bk_ctx *ctx, bk_tensor *x, float slope) {
    bk_tensor *y = node(ctx, BK_OP_LEAKY_RELU, x, NULL);
    y->p.relu.alpha = slope;
    const float *restrict in = x->data;
    float *restrict out = y->data;
    int64_t n = bk_numel(x);
    ELTWISE(n, out[i] = in[i] > 0.0f ? in[i] : slope * in[i]);
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_relu_bwd(bk_ctx *ctx, bk_tensor *gy, bk_tensor *y, float slope) {
    BK_CHECK(bk_same_shape(gy, y), "relu_bwd: gradient and output differ in shape");
    bk_tensor *gx = node(ctx, BK_OP_RELU_BWD, gy, y);
    gx->p.relu.alpha = slope;
    const float *restrict g = gy->data, *restrict m = y->data;
    float *restrict out = gx->data;
    int64_t n = bk_numel(gy);
    ELTWISE(n, out[i] = m[i] > 0.0f ? g[i] : slope * g[i]);
    bk_record(ctx, gx);
    return gx;
}

bk_tensor *bk_affine(bk_ctx *ctx, bk_tensor *x, float a, float b) {
    bk_tensor *y = node(ctx, BK_OP_AFFINE, x, NULL);
    y->p.affine.a = a;
    y->p.affine.b = b;
    const float *restrict in = x->data;
    float *restrict out = y->data;
    int64_t n = bk_numel(x);
    ELTWISE(n, out[i] = a * in[i] + b);
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_abs(bk_ctx *ctx, bk_tensor *x) {
    bk_tensor *y = node(ctx, BK_OP_ABS, x, NULL);
    const float *restrict in = x->data;
    float *restrict out = y->data;
    int64_t n = bk_numel(x);
    ELTWISE(n, out[i] = fabsf(in[i]));
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_sign(bk_ctx *ctx, bk_tensor *x) {
    bk_tensor *y = node(ctx, BK_OP_SIGN, x, NULL);
    const float *restrict in = x->data;
    float *restrict out = y->data;
    int64_t n = bk_numel(x);
    ELTWISE(n, out[i] = (float)(in[i] > 0.0f) - (float)(in[i] < 0.0f));
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_square(bk_ctx *ctx, bk_tensor *x) {
    bk_tensor *y = node(ctx, BK_OP_SQUARE, x, NULL);
    const float *restrict in = x->data;
    float *restrict out = y->data;
    int64_t n = bk_numel(x);
    ELTWISE(n, out[i] = in[i] * in[i]);
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_sqrt(bk_ctx *ctx, bk_tensor *x) {
    bk_tensor *y = node(ctx, BK_OP_SQRT, x, NULL);
    const float *restrict in = x->data;
    float *restrict out = y->data;
    int64_t n = bk_numel(x);
    ELTWISE(n, out[i] = sqrtf(in[i]));
    bk_record(ctx, y);
    return y;
}

/* ---------------------------------------------------------------- backward rules */

BK_BACKWARD(bk_leaky_relu_backward) {
    if (need[0]) gsrc[0] = bk_relu_bwd(ctx, gout, out, out->p.relu.alpha);
}

/* Linear in gy with a fixed mask: d<u, gx>/dgy = relu_bwd(u, y). */
BK_BACKWARD(bk_relu_bwd_backward) {
    if (need[0]) gsrc[0] = bk_relu_bwd(ctx, gout, out->src[1], out->p.relu.alpha);
}

BK_BACKWARD(bk_affine_backward) {
    if (need[0]) gsrc[0] = bk_affine(ctx, gout, out->p.affine.a, 0.0f);
}

BK_BACKWARD(bk_abs_backward) {
    if (need[0]) gsrc[0] = bk_mul(ctx, gout, bk_sign(ctx, out->src[0]));
}

BK_BACKWARD(bk_square_backward) {
    if (need[0]) gsrc[0] = bk_mul(ctx, gout, bk_affine(ctx, out->src[0], 2.0f, 0.0f));
}

/* d sqrt(x) = 0.5 / sqrt(x): written with the output so the second order follows from div. */
BK_BACKWARD(bk_sqrt_backward) {
    if (need[0]) gsrc[0] = bk_div(ctx, bk_affine(ctx, gout, 0.5f, 0.0f), out);
}
