/* norm.c — InstanceNorm2d (no affine), its backward, and its double backward; hand-written.
 *
 * Matches torch.nn.functional.instance_norm(x, eps=eps) without weight, bias or running stats:
 * per sample n and channel c, y = (x - mean) * rstd with mean and the biased variance over H,W
 * and rstd = 1/sqrt(var + eps). oneDNN 2.6 has no instance-norm primitive, and its batch-norm
 * trick (a 1 x N*C x H x W view) needs the blocked layout, not NHWC (onednn-notes §2.2), so the
 * three kernels are written here: each is one pass of per-instance sums (in double) and one
 * element-wise pass, parallel over rows (n, h) of W*C contiguous values.
 *
 * With x̂ = y, s = rstd and <.> the mean over H,W of one instance:
 *   backward      gx = s (gy - <gy> - x̂ <gy x̂>)                      (linear and symmetric in gy)
 *   double bwd    for L = <u, gx>:  dL/dgy = instance_norm_bwd(x, u, y)
 *                 dL/dx = -s^2 [ x̂ (<u gy> - <u><gy> - 3 P Q) + Q (u - <u>) + P (gy - <gy>) ]
 *                 with P = <u x̂>, Q = <gy x̂>
 * (the last line is torch's batchnorm_double_backward for one instance without affine). Third
 * order through instance norm is not provided: instance_norm_bwd2 has no backward.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/kernels.h"
#include "core/op_backward.h"
#include "core/ops.h"

/* Statistics kept by the forward node for its backward passes. */
typedef struct in_saved {
    float *rstd; /* N*C */
    float eps;
} in_saved;

enum { MAX_TERMS = 5 };

/* sums[k][n*C + c] = sum over h,w of a_k * b_k (b_k NULL: of a_k), for k < nterms, in double. */
static void instance_sums(bk_ctx *ctx, int64_t N, int64_t C, int64_t H, int64_t W, int nterms,
                          const float *const *a, const float *const *b, double *sums) {
    const int threads = omp_get_max_threads();
    const int64_t per = (int64_t)nterms * N * C;
    /* every buffer is cleared here: a thread that gets no work still has its buffer summed */
    double *part = bk_arena_alloc(&ctx->step, (size_t)threads * per * sizeof(double));
    memset(part, 0, (size_t)threads * per * sizeof(double));
#pragma omp parallel if (N * H * W * C > BK_PARALLEL_MIN)
    {
        double *acc = part + (size_t)omp_get_thread_num() * per;
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < N; n++)
            for (int64_t h = 0; h < H; h++) {
                int64_t base = (n * H + h) * W * C;
                for (int k = 0; k < nterms; k++) {
                    double *s = acc + ((int64_t)k * N + n) * C;
                    const float *pa = a[k] + base, *pb = b[k] ? b[k] + base : NULL;
                    for (int64_t w = 0; w < W; w++, pa += C) {
                        if (pb) {
                            for (int64_t c = 0; c < C; c++) s[c] += (double)pa[c] * pb[c];
                            pb += C;
                        } else {
                            for (int64_t c = 0; c < C; c++) s[c] += pa[c];
                        }
                    }
                }
            }
    }
    for (int64_t i = 0; i < per; i++) {
        double s = 0.0;
        for (int t = 0; t < threads; t++) s += part[(size_t)t * per + i];
        sums[i] = s;
    }
}

static void check_4d(const bk_tensor *t, const bk_tensor *like, const char *what) {
    char a[64], b[64];
    BK_CHECK(bk_same_shape(t, like), "instance norm: %s has shape %s, expected %s", what,
             bk_shape_str(bk_shape_of(t), a), bk_shape_str(bk_shape_of(like), b));
}

bk_tensor *bk_instance_norm(bk_ctx *ctx, bk_tensor *x, float eps) {
    const int64_t N = x->n, C = x->c, H = x->h, W = x->w, M = H * W;
    double *sums = bk_arena_alloc(&ctx->step, 2 * (size_t)N * C * sizeof(double));
    const float *a[2] = {x->data, x->data}, *b[2] = {NULL, x->data};
    instance_sums(ctx, N, C, H, W, 2, a, b, sums);

    in_saved *sv = bk_arena_alloc(&ctx->step, sizeof *sv);
    sv->eps = eps;
    sv->rstd = bk_arena_alloc(&ctx->step, (size_t)N * C * sizeof(float));
    float *mean = bk_arena_alloc(&ctx->step, (size_t)N * C * sizeof(float));
    for (int64_t i = 0; i < N * C; i++) {
        double mu = sums[i] / M, var = sums[N * C + i] / M - mu * mu;
        if (var < 0.0) var = 0.0;
        mean[i] = (float)mu;
        sv->rstd[i] = (float)(1.0 / sqrt(var + eps));
    }

    bk_tensor *y = bk_tensor_new(ctx, bk_shape_of(x));
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for collapse(2) schedule(static) if (N * M * C > BK_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++) {
            const float *mu = mean + n * C, *rs = sv->rstd + n * C;
            int64_t base = (n * H + h) * W * C;
            for (int64_t w = 0; w < W; w++)
                for (int64_t c = 0; c < C; c++) {
                    int64_t i = base + w * C + c;
                    yd[i] = (xd[i] - mu[c]) * rs[c];
                }
        }
    y->op = BK_OP_INSTANCE_NORM;
    y->src[0] = x;
    y->p.norm.eps = eps;
    y->saved = sv;
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_instance_norm_bwd(bk_ctx *ctx, bk_tensor *x, bk_tensor *gy, bk_tensor *y) {
    BK_CHECK(y->op == BK_OP_INSTANCE_NORM && y->saved, "instance_norm_bwd needs the forward output");
    check_4d(gy, y, "gradient");
    check_4d(x, y, "input");
    const in_saved *sv = y->saved;
    const int64_t N = y->n, C = y->c, H = y->h, W = y->w, M = H * W;
    double *sums = bk_arena_alloc(&ctx->step, 2 * (size_t)N * C * sizeof(double));
    const float *a[2] = {gy->data, gy->data}, *b[2] = {NULL, y->data};
    instance_sums(ctx, N, C, H, W, 2, a, b, sums);
    float *mg = bk_arena_alloc(&ctx->step, 2 * (size_t)N * C * sizeof(float));
    for (int64_t i = 0; i < 2 * N * C; i++) mg[i] = (float)(sums[i] / M);

    bk_tensor *gx = bk_tensor_new(ctx, bk_shape_of(y));
    const float *g = gy->data, *xh = y->data;
    float *o = gx->data;
#pragma omp parallel for collapse(2) schedule(static) if (N * M * C > BK_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++) {
            const float *m_g = mg + n * C, *m_gx = mg + N * C + n * C, *rs = sv->rstd + n * C;
            int64_t base = (n * H + h) * W * C;
            for (int64_t w = 0; w < W; w++)
                for (int64_t c = 0; c < C; c++) {
                    int64_t i = base + w * C + c;
                    o[i] = rs[c] * (g[i] - m_g[c] - xh[i] * m_gx[c]);
                }
        }
    gx->op = BK_OP_INSTANCE_NORM_BWD;
    gx->src[0] = x;
    gx->src[1] = gy;
    gx->src[2] = y;
    bk_record(ctx, gx);
    return gx;
}

/* dL/dx for L = <u, instance_norm_bwd(x, gy, y)> (see the header comment). */
static bk_tensor *instance_norm_bwd2(bk_ctx *ctx, bk_tensor *x, bk_tensor *gy, bk_tensor *u,
                                     bk_tensor *y) {
    const in_saved *sv = y->saved;
    const int64_t N = y->n, C = y->c, H = y->h, W = y->w, M = H * W, NC = N * C;
    double *sums = bk_arena_alloc(&ctx->step, 5 * (size_t)NC * sizeof(double));
    const float *a[5] = {u->data, gy->data, u->data, u->data, gy->data};
    const float *b[5] = {NULL, NULL, gy->data, y->data, y->data};
    instance_sums(ctx, N, C, H, W, 5, a, b, sums);
    /* per instance: <u>, <gy>, k1 = <u gy> - <u><gy> - 3PQ, P, Q, s^2 */
    float *coef = bk_arena_alloc(&ctx->step, 6 * (size_t)NC * sizeof(float));
    for (int64_t i = 0; i < NC; i++) {
        double mu_u = sums[i] / M, mu_g = sums[NC + i] / M, m_ug = sums[2 * NC + i] / M;
        double P = sums[3 * NC + i] / M, Q = sums[4 * NC + i] / M;
        double s = sv->rstd[i];
        coef[i] = (float)mu_u;
        coef[NC + i] = (float)mu_g;
        coef[2 * NC + i] = (float)(m_ug - mu_u * mu_g - 3.0 * P * Q);
        coef[3 * NC + i] = (float)P;
        coef[4 * NC + i] = (float)Q;
        coef[5 * NC + i] = (float)(s * s);
    }
    bk_tensor *gx = bk_tensor_new(ctx, bk_shape_of(y));
    const float *ud = u->data, *gd = gy->data, *xh = y->data;
    float *o = gx->data;
#pragma omp parallel for collapse(2) schedule(static) if (N * M * C > BK_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++) {
            const float *mu_u = coef + n * C, *mu_g = coef + NC + n * C,
                        *k1 = coef + 2 * NC + n * C, *P = coef + 3 * NC + n * C,
                        *Q = coef + 4 * NC + n * C, *s2 = coef + 5 * NC + n * C;
            int64_t base = (n * H + h) * W * C;
            for (int64_t w = 0; w < W; w++)
                for (int64_t c = 0; c < C; c++) {
                    int64_t i = base + w * C + c;
                    o[i] = -s2[c] * (xh[i] * k1[c] + Q[c] * (ud[i] - mu_u[c]) +
                                     P[c] * (gd[i] - mu_g[c]));
                }
        }
    gx->op = BK_OP_INSTANCE_NORM_BWD2;
    gx->src[0] = x;
    gx->src[1] = gy;
    gx->src[2] = u;
    gx->src[3] = y;
    bk_record(ctx, gx);
    return gx;
}

/* ---------------------------------------------------------------- backward rules */

BK_BACKWARD(bk_instance_norm_backward) {
    if (need[0]) gsrc[0] = bk_instance_norm_bwd(ctx, out->src[0], gout, out);
}

/* out = instance_norm_bwd(x, gy, y). */
BK_BACKWARD(bk_instance_norm_bwd_backward) {
    bk_tensor *x = out->src[0], *gy = out->src[1], *y = out->src[2];
    if (need[0]) gsrc[0] = instance_norm_bwd2(ctx, x, gy, gout, y);
    if (need[1]) gsrc[1] = bk_instance_norm_bwd(ctx, x, gout, y);
}
