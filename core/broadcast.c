/* broadcast.c — add/sub/mul/div with broadcasting, sum to a shape, and broadcast back.
 *
 * Broadcasting follows torch for 4-D tensors: each dimension of a and b is equal or 1, the
 * result takes the larger. Hand-written with OpenMP because oneDNN 2.6's binary primitive runs
 * the H-only, W-only and per-sample broadcasts with reference code (onednn-notes §6.3) and has no
 * backward; the reductions are hand-written for the same reason (§6.4).
 *
 * Kernels work row by row on NHWC: a row is one (n, h), holding W*C contiguous values. An
 * operand is either a full row (contiguous), a single value per row, or something in between
 * (per-channel vector, per-pixel value) handled by a w/c loop. Sums accumulate in double.
 *
 * Backward: the adjoint of broadcasting is bk_sum_to and the adjoint of bk_sum_to is bk_expand,
 * so every gradient here is built from ops and differentiates again.
 */
#include <omp.h>
#include <string.h>

#include "core/kernels.h"
#include "core/op_backward.h"
#include "core/ops.h"

typedef enum binop { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_COPY } binop;

/* Element strides of an operand broadcast to shape o (0 along broadcast dimensions). */
typedef struct strides {
    int64_t n, h, w, c;
} strides;

static strides bcast_strides(const bk_tensor *t) {
    strides s;
    s.c = t->c == 1 ? 0 : 1;
    s.w = t->w == 1 ? 0 : t->c;
    s.h = t->h == 1 ? 0 : t->w * t->c;
    s.n = t->n == 1 ? 0 : t->h * t->w * t->c;
    return s;
}

static void check_bcast(const bk_tensor *t, bk_shape o, const char *what) {
    char a[64], b[64];
    BK_CHECK((t->n == o.n || t->n == 1) && (t->c == o.c || t->c == 1) &&
                 (t->h == o.h || t->h == 1) && (t->w == o.w || t->w == 1),
             "%s: shape %s does not broadcast to %s", what, bk_shape_str(bk_shape_of(t), a),
             bk_shape_str(o, b));
}

static inline float apply(binop op, float x, float y) {
    switch (op) {
    case OP_ADD: return x + y;
    case OP_SUB: return x - y;
    case OP_MUL: return x * y;
    case OP_DIV: return x / y;
    case OP_COPY: return x;
    }
    return 0.0f;
}

/* One row of W*C outputs. sa/sb: per-w and per-c strides of the operands within the row. */
static inline void row_kernel(binop op, float *restrict o, const float *restrict a,
                              const float *restrict b, int64_t W, int64_t C, strides sa,
                              strides sb) {
    bool a_full = sa.c == 1 && sa.w == C, a_one = sa.c == 0 && sa.w == 0;
    bool b_full = !b || (sb.c == 1 && sb.w == C), b_one = !b || (sb.c == 0 && sb.w == 0);
    int64_t n = W * C;
    if ((a_full || a_one) && (b_full || b_one)) {
        int64_t ia = a_full ? 1 : 0, ib = b_full && b ? 1 : 0;
        if (!b) {
            if (ia)
                for (int64_t i = 0; i < n; i++) o[i] = a[i];
            else
                for (int64_t i = 0; i < n; i++) o[i] = a[0];
            return;
        }
#define FLAT(EXPR)                                                                      \
    if (ia && ib) for (int64_t i = 0; i < n; i++) o[i] = EXPR(a[i], b[i]);              \
    else if (ia)  for (int64_t i = 0; i < n; i++) o[i] = EXPR(a[i], b[0]);              \
    else if (ib)  for (int64_t i = 0; i < n; i++) o[i] = EXPR(a[0], b[i]);              \
    else          for (int64_t i = 0; i < n; i++) o[i] = EXPR(a[0], b[0]);
#define ADD_(x, y) ((x) + (y))
#define SUB_(x, y) ((x) - (y))
#define MUL_(x, y) ((x) * (y))
#define DIV_(x, y) ((x) / (y))
        switch (op) {
        case OP_ADD: FLAT(ADD_) break;
        case OP_SUB: FLAT(SUB_) break;
        case OP_MUL: FLAT(MUL_) break;
        case OP_DIV: FLAT(DIV_) break;
        case OP_COPY: break;
        }
#undef FLAT
        return;
    }
    static const float zero = 0.0f;
    for (int64_t w = 0; w < W; w++) {
        const float *pa = a + w * sa.w, *pb = b ? b + w * sb.w : &zero;
        float *po = o + w * C;
        int64_t ca = sa.c, cb = b ? sb.c : 0;
        for (int64_t c = 0; c < C; c++) po[c] = apply(op, pa[c * ca], pb[c * cb]);
    }
}

/* out = a (op) b, both broadcast to out's shape; b may be NULL for OP_COPY. */
static void binary_kernel(binop op, bk_tensor *out, const bk_tensor *a, const bk_tensor *b) {
    strides sa = bcast_strides(a), sb = b ? bcast_strides(b) : (strides){0, 0, 0, 0};
    const int64_t N = out->n, H = out->h, W = out->w, C = out->c;
    const float *ad = a->data, *bd = b ? b->data : NULL;
    float *od = out->data;
#pragma omp parallel for collapse(2) schedule(static) if (N * H * W * C > BK_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++)
            row_kernel(op, od + (n * H + h) * W * C, ad + n * sa.n + h * sa.h,
                       bd ? bd + n * sb.n + h * sb.h : NULL, W, C, sa, sb);
}

static bk_tensor *binary(bk_ctx *ctx, bk_op op_id, binop op, bk_tensor *a, bk_tensor *b,
                         const char *name) {
    bk_shape o = {a->n > b->n ? a->n : b->n, a->c > b->c ? a->c : b->c,
                  a->h > b->h ? a->h : b->h, a->w > b->w ? a->w : b->w};
    check_bcast(a, o, name);
    check_bcast(b, o, name);
    bk_tensor *y = bk_tensor_new(ctx, o);
    y->ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    binary_kernel(op, y, a, b);
    y->op = op_id;
    y->src[0] = a;
    y->src[1] = b;
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_add(bk_ctx *ctx, bk_tensor *a, bk_tensor *b) {
    return binary(ctx, BK_OP_ADD, OP_ADD, a, b, "add");
}
bk_tensor *bk_sub(bk_ctx *ctx, bk_tensor *a, bk_tensor *b) {
    return binary(ctx, BK_OP_SUB, OP_SUB, a, b, "sub");
}
bk_tensor *bk_mul(bk_ctx *ctx, bk_tensor *a, bk_tensor *b) {
    return binary(ctx, BK_OP_MUL, OP_MUL, a, b, "mul");
}
bk_tensor *bk_div(bk_ctx *ctx, bk_tensor *a, bk_tensor *b) {
    return binary(ctx, BK_OP_DIV, OP_DIV, a, b, "div");
}

bk_tensor *bk_expand(bk_ctx *ctx, bk_tensor *x, bk_shape s) {
    check_bcast(x, s, "expand");
    if (bk_shape_eq(bk_shape_of(x), s)) return x;
    bk_tensor *y = bk_tensor_new(ctx, s);
    binary_kernel(OP_COPY, y, x, NULL);
    y->op = BK_OP_EXPAND;
    y->src[0] = x;
    bk_record(ctx, y);
    return y;
}

/* ---------------------------------------------------------------- reductions */

/* acc (one output row, OW x OC doubles) += one input row of W x C values, summed over w and/or
 * c where the output keeps only one. */
static inline void add_row(double *restrict acc, const float *restrict row, int64_t W, int64_t C,
                           int64_t OC, bool keep_w, bool keep_c) {
    for (int64_t w = 0; w < W; w++) {
        double *a = acc + (keep_w ? w : 0) * OC;
        const float *p = row + w * C;
        if (keep_c) {
            for (int64_t c = 0; c < C; c++) a[c] += p[c];
        } else {
            double s = 0.0;
            for (int64_t c = 0; c < C; c++) s += p[c];
            a[0] += s;
        }
    }
}

/* out (shape o, every dim equal to x's or 1) = sum of x over the dims where o is 1. */
static void sum_kernel(bk_ctx *ctx, bk_tensor *out, const bk_tensor *x) {
    const int64_t N = x->n, H = x->h, W = x->w, C = x->c;
    const bool keep_n = out->n == N, keep_h = out->h == H, keep_w = out->w == W,
               keep_c = out->c == C;
    const int64_t OC = out->c, OW = out->w, OH = out->h;
    const float *xd = x->data;
    float *od = out->data;
    const int threads = omp_get_max_threads();
    const int64_t out_rows = out->n * out->h;

    if (out_rows >= 4 * threads || N * H * W * C <= BK_PARALLEL_MIN) {
        /* Many output rows: each output row sums its own inputs. */
        const int64_t rn_end = keep_n ? 1 : N, rh_end = keep_h ? 1 : H;
        double *acc_all = bk_arena_alloc(&ctx->step, (size_t)threads * OW * OC * sizeof(double));
#pragma omp parallel for collapse(2) schedule(static) if (N * H * W * C > BK_PARALLEL_MIN)
        for (int64_t on = 0; on < out->n; on++)
            for (int64_t oh = 0; oh < OH; oh++) {
                double *acc = acc_all + (size_t)omp_get_thread_num() * OW * OC;
                memset(acc, 0, (size_t)OW * OC * sizeof *acc);
                for (int64_t rn = 0; rn < rn_end; rn++)
                    for (int64_t rh = 0; rh < rh_end; rh++) {
                        int64_t n = keep_n ? on : rn, h = keep_h ? oh : rh;
                        add_row(acc, xd + (n * H + h) * W * C, W, C, OC, keep_w, keep_c);
                    }
                float *o = od + (on * OH + oh) * OW * OC;
                for (int64_t i = 0; i < OW * OC; i++) o[i] = (float)acc[i];
            }
        return;
    }

    /* Few output rows (per-channel, per-sample, scalar, ...): every thread sums a share of the
     * input rows into its own buffer of the whole output, then the buffers are added in a
     * fixed order. */
    const int64_t on_elems = bk_numel(out);
    double *part = bk_arena_alloc(&ctx->step, (size_t)threads * on_elems * sizeof(double));
    memset(part, 0, (size_t)threads * on_elems * sizeof(double));
#pragma omp parallel
    {
        double *acc = part + (size_t)omp_get_thread_num() * on_elems;
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < N; n++)
            for (int64_t h = 0; h < H; h++) {
                double *orow = acc + ((keep_n ? n : 0) * OH + (keep_h ? h : 0)) * OW * OC;
                add_row(orow, xd + (n * H + h) * W * C, W, C, OC, keep_w, keep_c);
            }
    }
    for (int64_t i = 0; i < on_elems; i++) {
        double s = 0.0;
        for (int t = 0; t < threads; t++) s += part[(size_t)t * on_elems + i];
        od[i] = (float)s;
    }
}

bk_tensor *bk_sum_to(bk_ctx *ctx, bk_tensor *x, bk_shape s) {
    char a[64], b[64];
    BK_CHECK((s.n == x->n || s.n == 1) && (s.c == x->c || s.c == 1) &&
                 (s.h == x->h || s.h == 1) && (s.w == x->w || s.w == 1),
             "sum_to: cannot reduce %s to %s", bk_shape_str(bk_shape_of(x), a),
             bk_shape_str(s, b));
    if (bk_shape_eq(bk_shape_of(x), s)) return x;
    bk_tensor *y = bk_tensor_new(ctx, s);
    sum_kernel(ctx, y, x);
    y->op = BK_OP_SUM_TO;
    y->src[0] = x;
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_sum(bk_ctx *ctx, bk_tensor *x) {
    bk_tensor *y = bk_sum_to(ctx, x, (bk_shape){1, 1, 1, 1});
    if (y != x) y->ndim = 0;
    return y;
}

bk_tensor *bk_mean(bk_ctx *ctx, bk_tensor *x) {
    bk_tensor *y = bk_scale(ctx, bk_sum(ctx, x), 1.0f / (float)bk_numel(x));
    y->ndim = 0;
    return y;
}

bk_tensor *bk_sum_per_sample(bk_ctx *ctx, bk_tensor *x) {
    return bk_sum_to(ctx, x, (bk_shape){x->n, 1, 1, 1});
}

bk_tensor *bk_mean_per_sample(bk_ctx *ctx, bk_tensor *x) {
    return bk_scale(ctx, bk_sum_per_sample(ctx, x), 1.0f / (float)(x->c * x->h * x->w));
}

bk_tensor *bk_sum_channels(bk_ctx *ctx, bk_tensor *x) {
    return bk_sum_to(ctx, x, (bk_shape){x->n, 1, x->h, x->w});
}

bk_tensor *bk_mean_channels(bk_ctx *ctx, bk_tensor *x) {
    return bk_scale(ctx, bk_sum_channels(ctx, x), 1.0f / (float)x->c);
}

/* ---------------------------------------------------------------- backward rules */

static bk_shape src_shape(const bk_tensor *out, int j) { return bk_shape_of(out->src[j]); }

BK_BACKWARD(bk_add_backward) {
    if (need[0]) gsrc[0] = bk_sum_to(ctx, gout, src_shape(out, 0));
    if (need[1]) gsrc[1] = bk_sum_to(ctx, gout, src_shape(out, 1));
}

BK_BACKWARD(bk_sub_backward) {
    if (need[0]) gsrc[0] = bk_sum_to(ctx, gout, src_shape(out, 0));
    if (need[1]) gsrc[1] = bk_scale(ctx, bk_sum_to(ctx, gout, src_shape(out, 1)), -1.0f);
}

BK_BACKWARD(bk_mul_backward) {
    bk_tensor *a = out->src[0], *b = out->src[1];
    if (need[0]) gsrc[0] = bk_sum_to(ctx, bk_mul(ctx, gout, b), bk_shape_of(a));
    if (need[1]) gsrc[1] = bk_sum_to(ctx, bk_mul(ctx, gout, a), bk_shape_of(b));
}

/* y = a / b:  ga = g / b;  gb = -g * a / b^2 = -(g / b) * y. */
BK_BACKWARD(bk_div_backward) {
    bk_tensor *a = out->src[0], *b = out->src[1];
    bk_tensor *g_over_b = bk_div(ctx, gout, b);
    if (need[0]) gsrc[0] = bk_sum_to(ctx, g_over_b, bk_shape_of(a));
    if (need[1])
        gsrc[1] = bk_scale(ctx, bk_sum_to(ctx, bk_mul(ctx, g_over_b, out), bk_shape_of(b)), -1.0f);
}

BK_BACKWARD(bk_sum_to_backward) {
    if (need[0]) gsrc[0] = bk_expand(ctx, gout, src_shape(out, 0));
}

BK_BACKWARD(bk_expand_backward) {
    if (need[0]) gsrc[0] = bk_sum_to(ctx, gout, src_shape(out, 0));
}
