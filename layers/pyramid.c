/* pyramid.c — LPTN's Laplacian pyramid (see pyramid.h). */
#include "layers/pyramid.h"

#include <omp.h>

#include "core/autograd.h"

bk_tensor *bk_gauss5(bk_ctx *ctx, bk_tensor *x, float gain) {
    static const float k1[5] = {1, 4, 6, 4, 1};
    const int64_t C = x->c;
    /* the fixed kernel, C x 1 x 5 x 5 (one 5x5 filter per channel, groups = C) */
    bk_tensor *k = bk_tensor_new(ctx, (bk_shape){C, 1, 5, 5});
    for (int64_t c = 0; c < C; c++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++) k->data[bk_offset(k, c, 0, i, j)] = gain * k1[i] * k1[j] / 256.0f;
    bk_tensor *padded = bk_reflect_pad(ctx, x, 2, 2, 2, 2);
    return bk_conv2d(ctx, padded, k, NULL, bk_conv_opts_make(1, 0, (int)C), bk_act_none(), NULL);
}

/* ---------------------------------------------------------------- fused kernels
 * When nothing is recorded (the input image's pyramid, inference) lap_down and lap_up run as
 * one separable pass each instead of pad -> 5x5 depthwise conv -> subsample (which blurs every
 * pixel to keep a quarter) or zero insertion -> pad -> conv (which multiplies zeros): the
 * same sums, taps [1 4 6 4 1]/16 along H then W. */

static const float TAP[5] = {1.0f / 16, 4.0f / 16, 6.0f / 16, 4.0f / 16, 1.0f / 16};

/* PyTorch's reflect padding of index a into [0, n): -1 -> 1, n -> n - 2 (n >= 3). */
static inline int64_t reflect(int64_t a, int64_t n) { return a < 0 ? -a : a >= n ? 2 * (n - 1) - a : a; }

bk_tensor *bk_lap_down_fused(bk_ctx *ctx, const bk_tensor *x) {
    const int64_t N = x->n, C = x->c, H = x->h, W = x->w, OH = (H + 1) / 2, OW = (W + 1) / 2;
    BK_CHECK(H >= 3 && W >= 3, "lap_down of %lldx%lld: reflect padding needs 3 rows and columns", (long long)H,
             (long long)W);
    bk_tensor *y = bk_tensor_new(ctx, (bk_shape){N, C, OH, OW});
    float *rows = bk_arena_alloc(&ctx->step, (size_t)ctx->threads * (size_t)(W * C) * sizeof *rows);
#pragma omp parallel
    {
        float *v = rows + (size_t)omp_get_thread_num() % (size_t)ctx->threads * (size_t)(W * C);
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < N; n++)
            for (int64_t oh = 0; oh < OH; oh++) {
                const float *src[5];
                for (int i = 0; i < 5; i++) src[i] = x->data + ((n * H + reflect(2 * oh + i - 2, H)) * W) * C;
                for (int64_t k = 0; k < W * C; k++)
                    v[k] = TAP[0] * src[0][k] + TAP[1] * src[1][k] + TAP[2] * src[2][k] + TAP[3] * src[3][k] +
                           TAP[4] * src[4][k];
                float *out = y->data + ((n * OH + oh) * OW) * C;
                for (int64_t ow = 0; ow < OW; ow++)
                    for (int64_t c = 0; c < C; c++) {
                        float acc = 0.0f;
                        for (int j = 0; j < 5; j++) acc += TAP[j] * v[reflect(2 * ow + j - 2, W) * C + c];
                        out[ow * C + c] = acc;
                    }
            }
    }
    return y;
}

bk_tensor *bk_lap_up_fused(bk_ctx *ctx, const bk_tensor *x, int64_t out_h, int64_t out_w) {
    const int64_t N = x->n, C = x->c, H = x->h, W = x->w;
    BK_CHECK((out_h == 2 * H || out_h == 2 * H - 1) && (out_w == 2 * W || out_w == 2 * W - 1) && out_h >= 3 &&
                 out_w >= 3,
             "lap_up of %lldx%lld to %lldx%lld", (long long)H, (long long)W, (long long)out_h, (long long)out_w);
    bk_tensor *y = bk_tensor_new(ctx, (bk_shape){N, C, out_h, out_w});
    float *rows = bk_arena_alloc(&ctx->step, (size_t)ctx->threads * (size_t)(W * C) * sizeof *rows);
#pragma omp parallel
    {
        float *v = rows + (size_t)omp_get_thread_num() % (size_t)ctx->threads * (size_t)(W * C);
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < out_h; p++) {
                /* along H: only the even rows of the zero-inserted image hold values (x's rows) */
                for (int64_t k = 0; k < W * C; k++) v[k] = 0.0f;
                for (int i = 0; i < 5; i++) {
                    int64_t r = reflect(p + i - 2, out_h);
                    if (r & 1) continue;
                    const float *src = x->data + ((n * H + r / 2) * W) * C;
                    for (int64_t k = 0; k < W * C; k++) v[k] += TAP[i] * src[k];
                }
                float *out = y->data + ((n * out_h + p) * out_w) * C;
                for (int64_t q = 0; q < out_w; q++)
                    for (int64_t c = 0; c < C; c++) {
                        float acc = 0.0f;
                        for (int j = 0; j < 5; j++) {
                            int64_t s = reflect(q + j - 2, out_w);
                            if (!(s & 1)) acc += TAP[j] * v[(s / 2) * C + c];
                        }
                        out[q * C + c] = 4.0f * acc;
                    }
            }
    }
    return y;
}

bk_tensor *bk_lap_down(bk_ctx *ctx, bk_tensor *x) {
    if (!bk_would_record(ctx, x, NULL)) return bk_lap_down_fused(ctx, x);
    return bk_subsample(ctx, bk_gauss5(ctx, x, 1.0f));
}

bk_tensor *bk_lap_up(bk_ctx *ctx, bk_tensor *x, int64_t out_h, int64_t out_w) {
    if (!bk_would_record(ctx, x, NULL)) return bk_lap_up_fused(ctx, x, out_h, out_w);
    return bk_gauss5(ctx, bk_zero_insert(ctx, x, out_h, out_w), 4.0f);
}

void bk_pyramid_decompose(bk_ctx *ctx, bk_tensor *x, int levels, bk_pyramid *out) {
    BK_CHECK(levels >= 1 && levels <= BK_PYRAMID_MAX_LEVELS, "pyramid of %d levels", levels);
    out->levels = levels;
    bk_tensor *cur = x;
    for (int l = 0; l < levels; l++) {
        bk_tensor *down = bk_lap_down(ctx, cur);
        out->high[l] = bk_sub(ctx, cur, bk_lap_up(ctx, down, cur->h, cur->w));
        cur = down;
    }
    out->low = cur;
}

bk_tensor *bk_pyramid_reconstruct(bk_ctx *ctx, const bk_pyramid *p) {
    bk_tensor *img = p->low;
    for (int l = p->levels - 1; l >= 0; l--)
        img = bk_add(ctx, bk_lap_up(ctx, img, p->high[l]->h, p->high[l]->w), p->high[l]);
    return img;
}
