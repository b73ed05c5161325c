/* shape.c — ops that move values without arithmetic: concat and slice along any axis (and
 * embed, the adjoint of slice), the H<->W transpose, reflect padding, zero insertion and even
 * subsampling.
 *
 * Matches torch: cat / narrow (split is a list of slices), x.transpose(2, 3),
 * F.pad(mode="reflect") (the edge is not repeated: [a b c d] -> [c b | a b c d | c b]), and the
 * LPTN pyramid's zero insertion (x at even rows and columns of a 2H x 2W tensor) and
 * x[:, :, ::2, ::2].
 *
 * Every op here is linear and comes with its adjoint as an op: slice <-> embed (concat's
 * backward is slices), transpose <-> itself, reflect_pad <-> reflect_pad_bwd (which folds the
 * mirrored border back), zero_insert <-> subsample. Gradients of any order follow.
 *
 * On NHWC storage an axis splits a tensor into [outer][extent][inner] blocks: N (1, N, HWC),
 * H (N, H, WC), W (NH, W, C), C (NHW, C, 1); slicing copies runs of extent*inner floats.
 */
#include <string.h>

#include "core/kernels.h"
#include "core/op_backward.h"
#include "core/ops.h"

static void axis_view(bk_shape s, int axis, int64_t *outer, int64_t *extent, int64_t *inner) {
    switch (axis) {
    case BK_AXIS_N: *outer = 1, *extent = s.n, *inner = s.h * s.w * s.c; break;
    case BK_AXIS_H: *outer = s.n, *extent = s.h, *inner = s.w * s.c; break;
    case BK_AXIS_W: *outer = s.n * s.h, *extent = s.w, *inner = s.c; break;
    case BK_AXIS_C: *outer = s.n * s.h * s.w, *extent = s.c, *inner = 1; break;
    default: bk_panic(__FILE__, __LINE__, "axis %d", axis);
    }
}

static int64_t *dim_of(bk_shape *s, int axis) {
    return axis == BK_AXIS_N ? &s->n : axis == BK_AXIS_C ? &s->c : axis == BK_AXIS_H ? &s->h : &s->w;
}

/* Copies `count` blocks of len floats: dst[o*dst_stride ...] = src[o*src_stride ...]. */
static void copy_blocks(float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                        int64_t count, int64_t len) {
#pragma omp parallel for schedule(static) if (count * len > BK_PARALLEL_MIN)
    for (int64_t o = 0; o < count; o++)
        memcpy(dst + o * dst_stride, src + o * src_stride, (size_t)len * sizeof(float));
}

/* ---------------------------------------------------------------- concat / slice / embed */

bk_tensor *bk_concat(bk_ctx *ctx, int n, bk_tensor *const *xs, int axis) {
    BK_CHECK(n >= 1 && n <= BK_MAX_SRC, "concat of %d tensors (1..%d)", n, BK_MAX_SRC);
    bk_shape s = bk_shape_of(xs[0]);
    int64_t total = 0;
    for (int j = 0; j < n; j++) {
        bk_shape t = bk_shape_of(xs[j]);
        int64_t e = *dim_of(&t, axis);
        *dim_of(&t, axis) = *dim_of(&s, axis);
        char a[64], b[64];
        BK_CHECK(bk_shape_eq(t, s), "concat along axis %d: %s does not match %s", axis,
                 bk_shape_str(bk_shape_of(xs[j]), a), bk_shape_str(bk_shape_of(xs[0]), b));
        total += e;
    }
    *dim_of(&s, axis) = total;
    bk_tensor *y = bk_tensor_new(ctx, s);
    int64_t outer, extent, inner, off = 0;
    axis_view(s, axis, &outer, &extent, &inner);
    for (int j = 0; j < n; j++) {
        int64_t o2, e, in2;
        axis_view(bk_shape_of(xs[j]), axis, &o2, &e, &in2);
        copy_blocks(y->data + off * inner, extent * inner, xs[j]->data, e * inner, outer, e * inner);
        off += e;
        y->src[j] = xs[j];
    }
    y->op = BK_OP_CONCAT;
    y->p.slice.axis = axis;
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_slice(bk_ctx *ctx, bk_tensor *x, int axis, int64_t offset, int64_t size) {
    bk_shape s = bk_shape_of(x);
    int64_t full = *dim_of(&s, axis);
    BK_CHECK(offset >= 0 && size >= 1 && offset + size <= full,
             "slice [%lld, %lld) of an axis of %lld", (long long)offset,
             (long long)(offset + size), (long long)full);
    if (offset == 0 && size == full) return x;
    *dim_of(&s, axis) = size;
    bk_tensor *y = bk_tensor_new(ctx, s);
    int64_t outer, extent, inner;
    axis_view(bk_shape_of(x), axis, &outer, &extent, &inner);
    copy_blocks(y->data, size * inner, x->data + offset * inner, extent * inner, outer, size * inner);
    y->op = BK_OP_SLICE;
    y->src[0] = x;
    y->p.slice.axis = axis;
    y->p.slice.offset = offset;
    y->p.slice.size = size;
    y->p.slice.full = full;
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_embed(bk_ctx *ctx, bk_tensor *x, int axis, int64_t offset, int64_t full) {
    bk_shape s = bk_shape_of(x);
    int64_t size = *dim_of(&s, axis);
    BK_CHECK(offset >= 0 && offset + size <= full, "embed %lld values at %lld into %lld",
             (long long)size, (long long)offset, (long long)full);
    if (offset == 0 && size == full) return x;
    *dim_of(&s, axis) = full;
    bk_tensor *y = bk_tensor_zeros(ctx, s);
    int64_t outer, extent, inner;
    axis_view(s, axis, &outer, &extent, &inner);
    copy_blocks(y->data + offset * inner, extent * inner, x->data, size * inner, outer, size * inner);
    y->op = BK_OP_EMBED;
    y->src[0] = x;
    y->p.slice.axis = axis;
    y->p.slice.offset = offset;
    y->p.slice.size = size;
    y->p.slice.full = full;
    bk_record(ctx, y);
    return y;
}

void bk_split(bk_ctx *ctx, bk_tensor *x, int axis, int n, const int64_t *sizes, bk_tensor **out) {
    int64_t off = 0;
    for (int j = 0; j < n; j++) {
        out[j] = bk_slice(ctx, x, axis, off, sizes[j]);
        off += sizes[j];
    }
    bk_shape s = bk_shape_of(x);
    BK_CHECK(off == *dim_of(&s, axis), "split sizes add up to %lld, axis has %lld",
             (long long)off, (long long)*dim_of(&s, axis));
}

/* ---------------------------------------------------------------- transpose H <-> W */

bk_tensor *bk_transpose_hw(bk_ctx *ctx, bk_tensor *x) {
    const int64_t N = x->n, C = x->c, H = x->h, W = x->w;
    bk_tensor *y = bk_tensor_new(ctx, (bk_shape){N, C, W, H});
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for collapse(2) schedule(static) if (N * C * H * W > BK_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++)
        for (int64_t w = 0; w < W; w++)
            for (int64_t h = 0; h < H; h++)
                memcpy(yd + ((n * W + w) * H + h) * C, xd + ((n * H + h) * W + w) * C,
                       (size_t)C * sizeof(float));
    y->op = BK_OP_TRANSPOSE_HW;
    y->src[0] = x;
    bk_record(ctx, y);
    return y;
}

/* ---------------------------------------------------------------- reflect padding */

static inline int64_t reflect(int64_t k, int64_t len) {
    return k < 0 ? -k : k >= len ? 2 * (len - 1) - k : k;
}

bk_tensor *bk_reflect_pad(bk_ctx *ctx, bk_tensor *x, int t, int l, int b, int r) {
    const int64_t N = x->n, C = x->c, H = x->h, W = x->w;
    BK_CHECK(t >= 0 && l >= 0 && b >= 0 && r >= 0 && t < H && b < H && l < W && r < W,
             "reflect padding %d,%d,%d,%d must be smaller than the input %lldx%lld", t, l, b, r,
             (long long)H, (long long)W);
    const int64_t OH = H + t + b, OW = W + l + r;
    bk_tensor *y = bk_tensor_new(ctx, (bk_shape){N, C, OH, OW});
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for collapse(2) schedule(static) if (N * C * OH * OW > BK_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < OH; i++) {
            const float *src = xd + (n * H + reflect(i - t, H)) * W * C;
            float *dst = yd + (n * OH + i) * OW * C;
            for (int64_t j = 0; j < l; j++) memcpy(dst + j * C, src + reflect(j - l, W) * C, (size_t)C * 4);
            memcpy(dst + l * C, src, (size_t)(W * C) * 4);
            for (int64_t j = l + W; j < OW; j++) memcpy(dst + j * C, src + reflect(j - l, W) * C, (size_t)C * 4);
        }
    y->op = BK_OP_REFLECT_PAD;
    y->src[0] = x;
    y->p.pad.t = t, y->p.pad.l = l, y->p.pad.b = b, y->p.pad.r = r;
    bk_record(ctx, y);
    return y;
}

/* Output positions (at most 3) that reflect padding copies input index a to. */
static int reflect_sources(int64_t a, int64_t len, int lo, int hi, int64_t out[3]) {
    int k = 0;
    out[k++] = a + lo;
    if (a >= 1 && a <= lo) out[k++] = lo - a;                           /* mirrored before */
    if (a <= len - 2 && a >= len - 1 - hi) out[k++] = lo + 2 * (len - 1) - a; /* mirrored after */
    return k;
}

bk_tensor *bk_reflect_pad_bwd(bk_ctx *ctx, bk_tensor *gy, int t, int l, int b, int r) {
    const int64_t N = gy->n, C = gy->c, OH = gy->h, OW = gy->w, H = OH - t - b, W = OW - l - r;
    BK_CHECK(H > t && H > b && W > l && W > r, "reflect_pad_bwd: padding too large");
    bk_tensor *gx = bk_tensor_new(ctx, (bk_shape){N, C, H, W});
    const float *g = gy->data;
    float *o = gx->data;
#pragma omp parallel for collapse(2) schedule(static) if (N * C * H * W > BK_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++)
        for (int64_t a = 0; a < H; a++) {
            int64_t rows[3], cols[3];
            int nr = reflect_sources(a, H, t, b, rows);
            float *dst = o + (n * H + a) * W * C;
            for (int64_t j = 0; j < W; j++) {
                int nc = reflect_sources(j, W, l, r, cols);
                for (int64_t c = 0; c < C; c++) {
                    float s = 0.0f;
                    for (int p = 0; p < nr; p++)
                        for (int q = 0; q < nc; q++) s += g[((n * OH + rows[p]) * OW + cols[q]) * C + c];
                    dst[j * C + c] = s;
                }
            }
        }
    gx->op = BK_OP_REFLECT_PAD_BWD;
    gx->src[0] = gy;
    gx->p.pad.t = t, gx->p.pad.l = l, gx->p.pad.b = b, gx->p.pad.r = r;
    bk_record(ctx, gx);
    return gx;
}

/* ---------------------------------------------------------------- zero insertion, subsampling */

bk_tensor *bk_zero_insert(bk_ctx *ctx, bk_tensor *x, int64_t out_h, int64_t out_w) {
    const int64_t N = x->n, C = x->c, H = x->h, W = x->w;
    BK_CHECK((out_h == 2 * H || out_h == 2 * H - 1) && (out_w == 2 * W || out_w == 2 * W - 1),
             "zero insertion of %lldx%lld into %lldx%lld", (long long)H, (long long)W,
             (long long)out_h, (long long)out_w);
    bk_tensor *y = bk_tensor_zeros(ctx, (bk_shape){N, C, out_h, out_w});
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for collapse(2) schedule(static) if (N * C * H * W > BK_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++)
                memcpy(yd + ((n * out_h + 2 * i) * out_w + 2 * j) * C, xd + ((n * H + i) * W + j) * C,
                       (size_t)C * sizeof(float));
    y->op = BK_OP_ZERO_INSERT;
    y->src[0] = x;
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_subsample(bk_ctx *ctx, bk_tensor *x) {
    const int64_t N = x->n, C = x->c, H = x->h, W = x->w, OH = (H + 1) / 2, OW = (W + 1) / 2;
    bk_tensor *y = bk_tensor_new(ctx, (bk_shape){N, C, OH, OW});
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for collapse(2) schedule(static) if (N * C * OH * OW > BK_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++)
                memcpy(yd + ((n * OH + i) * OW + j) * C, xd + ((n * H + 2 * i) * W + 2 * j) * C,
                       (size_t)C * sizeof(float));
    y->op = BK_OP_SUBSAMPLE;
    y->src[0] = x;
    bk_record(ctx, y);
    return y;
}

/* ---------------------------------------------------------------- backward rules */

BK_BACKWARD(bk_concat_backward) {
    int axis = out->p.slice.axis;
    int64_t off = 0;
    for (int j = 0; j < BK_MAX_SRC && out->src[j]; j++) {
        bk_shape s = bk_shape_of(out->src[j]);
        int64_t e = *dim_of(&s, axis);
        if (need[j]) gsrc[j] = bk_slice(ctx, gout, axis, off, e);
        off += e;
    }
}

BK_BACKWARD(bk_slice_backward) {
    if (need[0]) gsrc[0] = bk_embed(ctx, gout, out->p.slice.axis, out->p.slice.offset, out->p.slice.full);
}

BK_BACKWARD(bk_embed_backward) {
    if (need[0]) gsrc[0] = bk_slice(ctx, gout, out->p.slice.axis, out->p.slice.offset, out->p.slice.size);
}

BK_BACKWARD(bk_transpose_hw_backward) {
    if (need[0]) gsrc[0] = bk_transpose_hw(ctx, gout);
}

BK_BACKWARD(bk_reflect_pad_backward) {
    if (need[0])
        gsrc[0] = bk_reflect_pad_bwd(ctx, gout, out->p.pad.t, out->p.pad.l, out->p.pad.b, out->p.pad.r);
}

BK_BACKWARD(bk_reflect_pad_bwd_backward) {
    if (need[0])
        gsrc[0] = bk_reflect_pad(ctx, gout, out->p.pad.t, out->p.pad.l, out->p.pad.b, out->p.pad.r);
}

BK_BACKWARD(bk_zero_insert_backward) {
    if (need[0]) gsrc[0] = bk_subsample(ctx, gout);
}

BK_BACKWARD(bk_subsample_backward) {
    if (need[0]) gsrc[0] = bk_zero_insert(ctx, gout, out->src[0]->h, out->src[0]->w);
}
