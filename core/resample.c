/* resample.c — bilinear resize (PyTorch align_corners=False), antialiased bilinear downscale,
 * and 2x2 average pooling, as separable linear operators; hand-written with OpenMP.
 *
 * Matches torch.nn.functional.interpolate(mode="bilinear", align_corners=False) for an output
 * size (source scale in/out) or a scale factor f (output floor(in*f), source scale 1/f, which
 * differs from in/out for odd sizes at x0.5; bk_up2/down2/up4 use the factor as the models do),
 * interpolate(..., antialias=True) when shrinking (the PIL-style triangle filter of
 * torch's _upsample_bilinear2d_aa; enlarging an axis uses the plain bilinear taps), and
 * avg_pool2d(kernel 2, stride 2) with floor for odd sizes.
 *
 * Each 1-D operator is a list of taps per output index (input index, weight); its transpose,
 * the backward, is the same kind of list per input index, built once. A resize applies the H
 * operator to whole rows (W*C contiguous floats: vectorised) and then the W operator per pixel
 * (C contiguous floats). oneDNN's resampling backward is 6-30x slower than its forward
 * (onednn-notes §6.2); this gather formulation needs no atomics and costs as much as the
 * forward. The plan (both operators and their transposes) is cached per (mode, sizes).
 *
 * resample and resample_t are each other's adjoint, so gradients of any order follow.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/kernels.h"
#include "core/op_backward.h"
#include "core/ops.h"

/* Taps of a 1-D linear operator from `in` to `out` values, one row per output index. */
typedef struct taps {
    int64_t in, out;
    bool identity;
    int64_t *start; /* out + 1 */
    int64_t *idx;
    float *wt;
} taps;

typedef struct resample_plan {
    taps h, w;   /* forward */
    taps ht, wt; /* transposes */
} resample_plan;

typedef struct resample_key {
    uint32_t tag;
    int32_t mode;
    int64_t ih, iw, oh, ow;
    float scale_h, scale_w; /* source pixels per output pixel; 0: in/out */
    int32_t pad_;
} resample_key;

static void taps_alloc(taps *t, int64_t in, int64_t out, int64_t ntaps) {
    t->in = in;
    t->out = out;
    t->identity = false;
    t->start = calloc((size_t)out + 1, sizeof *t->start);
    t->idx = malloc((size_t)(ntaps ? ntaps : 1) * sizeof *t->idx);
    t->wt = malloc((size_t)(ntaps ? ntaps : 1) * sizeof *t->wt);
    BK_CHECK(t->start && t->idx && t->wt, "out of memory");
}

static void taps_free(taps *t) {
    free(t->start);
    free(t->idx);
    free(t->wt);
}

/* The scale torch uses (area_pixel_compute_scale): 1/factor when a factor was given, else
 * in/out, in float as torch computes it for float tensors. */
static float source_scale(int64_t in, int64_t out, float given) {
    return given > 0.0f ? given : (float)in / (float)out;
}

/* torch's area_pixel_compute_source_index + linear weights, in float as torch computes them. */
static void bilinear_taps(taps *t, int64_t in, int64_t out, float given_scale) {
    taps_alloc(t, in, out, 2 * out);
    const float scale = source_scale(in, out, given_scale);
    int64_t k = 0;
    for (int64_t i = 0; i < out; i++) {
        float src = scale * ((float)i + 0.5f) - 0.5f;
        if (src < 0.0f) src = 0.0f;
        int64_t i0 = (int64_t)src;
        int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
        float l1 = src - (float)i0, l0 = 1.0f - l1;
        t->start[i] = k;
        t->idx[k] = i0, t->wt[k++] = l0;
        t->idx[k] = i1, t->wt[k++] = l1;
    }
    t->start[out] = k;
    t->identity = in == out;
}

/* torch's _compute_indices_min_size_weights_aa for a triangle filter (PIL's bilinear). */
static void antialias_taps(taps *t, int64_t in, int64_t out, float given_scale) {
    const double scale = (double)source_scale(in, out, given_scale);
    const double support = scale; /* interp_size / 2 * scale, interp_size 2, scale >= 1 */
    const int64_t max_taps = (int64_t)ceil(support) * 2 + 2;
    taps_alloc(t, in, out, max_taps * out);
    int64_t k = 0;
    for (int64_t i = 0; i < out; i++) {
        double center = scale * (i + 0.5);
        int64_t xmin = (int64_t)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int64_t xmax = (int64_t)(center + support + 0.5);
        if (xmax > in) xmax = in;
        double total = 0.0;
        t->start[i] = k;
        for (int64_t j = xmin; j < xmax; j++) {
            double x = (j - center + 0.5) / scale;
            double w = 1.0 - fabs(x);
            if (w < 0.0) w = 0.0;
            t->idx[k] = j;
            t->wt[k++] = (float)w;
            total += w;
        }
        for (int64_t q = t->start[i]; q < k; q++) t->wt[q] = (float)(t->wt[q] / total);
    }
    t->start[out] = k;
}

static void avg2_taps(taps *t, int64_t in, int64_t out) {
    taps_alloc(t, in, out, 2 * out);
    for (int64_t i = 0; i < out; i++) {
        t->start[i] = 2 * i;
        t->idx[2 * i] = 2 * i, t->wt[2 * i] = 0.5f;
        t->idx[2 * i + 1] = 2 * i + 1, t->wt[2 * i + 1] = 0.5f;
    }
    t->start[out] = 2 * out;
}

/* The transpose: one row per input index of the forward operator. */
static void transpose_taps(taps *dst, const taps *src) {
    int64_t n = src->start[src->out];
    taps_alloc(dst, src->out, src->in, n);
    dst->identity = src->identity;
    for (int64_t q = 0; q < n; q++) dst->start[src->idx[q] + 1]++;
    for (int64_t j = 0; j < src->in; j++) dst->start[j + 1] += dst->start[j];
    int64_t *fill = malloc((size_t)src->in * sizeof *fill);
    BK_CHECK(fill, "out of memory");
    memcpy(fill, dst->start, (size_t)src->in * sizeof *fill);
    for (int64_t i = 0; i < src->out; i++)
        for (int64_t q = src->start[i]; q < src->start[i + 1]; q++) {
            int64_t p = fill[src->idx[q]]++;
            dst->idx[p] = i;
            dst->wt[p] = src->wt[q];
        }
    free(fill);
}

static void plan_free(void *v) {
    resample_plan *p = v;
    taps_free(&p->h), taps_free(&p->w), taps_free(&p->ht), taps_free(&p->wt);
    free(p);
}

static void axis_taps(taps *t, bk_resample_mode mode, int64_t in, int64_t out, float scale) {
    switch (mode) {
    case BK_RESAMPLE_BILINEAR: bilinear_taps(t, in, out, scale); break;
    case BK_RESAMPLE_BILINEAR_AA:
        if (out < in) antialias_taps(t, in, out, scale);
        else bilinear_taps(t, in, out, scale);
        break;
    case BK_RESAMPLE_AVG2:
        BK_CHECK(out == in / 2 && out >= 1, "avg pool 2x2 of %lld values into %lld",
                 (long long)in, (long long)out);
        avg2_taps(t, in, out);
        break;
    }
}

static const resample_plan *get_plan(bk_ctx *ctx, bk_resample_mode mode, int64_t ih, int64_t iw,
                                     int64_t oh, int64_t ow, float scale_h, float scale_w) {
    resample_key key;
    memset(&key, 0, sizeof key);
    key.tag = 0x52534d50; /* "RSMP" */
    key.mode = mode;
    key.ih = ih, key.iw = iw, key.oh = oh, key.ow = ow;
    key.scale_h = scale_h, key.scale_w = scale_w;
    resample_plan *p = bk_cache_get(ctx->prims, &key, sizeof key);
    if (p) return p;
    p = calloc(1, sizeof *p);
    BK_CHECK(p, "out of memory");
    axis_taps(&p->h, mode, ih, oh, scale_h);
    axis_taps(&p->w, mode, iw, ow, scale_w);
    transpose_taps(&p->ht, &p->h);
    transpose_taps(&p->wt, &p->w);
    bk_cache_put(ctx->prims, &key, sizeof key, p, plan_free);
    return p;
}

/* yd (N, th.out, tw.out, C) = (th ⊗ tw) xd (N, th.in, tw.in, C), H pass then W pass.
 * tmp holds N * th.out * tw.in * C floats (unused when an axis is the identity). */
static void apply_raw(const taps *th, const taps *tw, int64_t N, int64_t C, const float *xd,
                      float *tmp, float *yd) {
    const int64_t IW = tw->in, OH = th->out, OW = tw->out;
    const int64_t row = IW * C;
    if (th->identity) {
        tmp = (float *)xd;
    } else {
        if (tw->identity) tmp = yd;
        const int64_t IH = th->in;
#pragma omp parallel for collapse(2) schedule(static) if (N * OH * row > BK_PARALLEL_MIN)
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < OH; i++) {
                float *restrict o = tmp + (n * OH + i) * row;
                int64_t q0 = th->start[i], q1 = th->start[i + 1];
                if (q0 == q1) { /* a transpose row no output reads from (floor pooling) */
                    memset(o, 0, (size_t)row * sizeof *o);
                    continue;
                }
                const float *restrict s = xd + (n * IH + th->idx[q0]) * row;
                float w = th->wt[q0];
                for (int64_t e = 0; e < row; e++) o[e] = w * s[e];
                for (int64_t q = q0 + 1; q < q1; q++) {
                    s = xd + (n * IH + th->idx[q]) * row;
                    w = th->wt[q];
                    for (int64_t e = 0; e < row; e++) o[e] += w * s[e];
                }
            }
    }
    if (tw->identity) {
        if (th->identity) memcpy(yd, xd, (size_t)(N * OH * row) * sizeof *yd);
        return;
    }
#pragma omp parallel for collapse(2) schedule(static) if (N * OH * OW * C > BK_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < OH; i++) {
            const float *src = tmp + (n * OH + i) * row;
            float *dst = yd + (n * OH + i) * OW * C;
            for (int64_t j = 0; j < OW; j++) {
                float *restrict o = dst + j * C;
                int64_t q0 = tw->start[j], q1 = tw->start[j + 1];
                if (q0 == q1) {
                    memset(o, 0, (size_t)C * sizeof *o);
                    continue;
                }
                const float *restrict s = src + tw->idx[q0] * C;
                float w = tw->wt[q0];
                for (int64_t c = 0; c < C; c++) o[c] = w * s[c];
                for (int64_t q = q0 + 1; q < q1; q++) {
                    s = src + tw->idx[q] * C;
                    w = tw->wt[q];
                    for (int64_t c = 0; c < C; c++) o[c] += w * s[c];
                }
            }
        }
}

static void apply(bk_ctx *ctx, const taps *th, const taps *tw, const bk_tensor *x, bk_tensor *y) {
    float *tmp = NULL;
    if (!th->identity && !tw->identity)
        tmp = bk_arena_alloc(&ctx->step, (size_t)(x->n * th->out * tw->in * x->c) * sizeof(float));
    apply_raw(th, tw, x->n, x->c, x->data, tmp, y->data);
}

void bk_bilinear_up_taps(int64_t in, int factor, int64_t *i0, int64_t *i1, float *w0, float *w1) {
    taps t;
    bilinear_taps(&t, in, in * factor, (float)(1.0 / factor));
    for (int64_t i = 0; i < in * factor; i++) {
        const int64_t k = t.start[i];
        i0[i] = t.idx[k], w0[i] = t.wt[k];
        i1[i] = t.idx[k + 1], w1[i] = t.wt[k + 1];
    }
    taps_free(&t);
}

void bk_resize_image(const float *src, int64_t h, int64_t w, int64_t c, float *dst, int64_t oh,
                     int64_t ow, bk_resample_mode mode) {
    taps th, tw;
    axis_taps(&th, mode, h, oh, 0.0f);
    axis_taps(&tw, mode, w, ow, 0.0f);
    float *tmp = NULL;
    if (!th.identity && !tw.identity) {
        tmp = malloc((size_t)(oh * w * c) * sizeof *tmp);
        BK_CHECK(tmp, "out of memory resizing a %lldx%lld image", (long long)w, (long long)h);
    }
    apply_raw(&th, &tw, 1, c, src, tmp, dst);
    free(tmp);
    taps_free(&th);
    taps_free(&tw);
}

static bk_tensor *resample_with(bk_ctx *ctx, bk_tensor *x, const resample_plan *p);

bk_tensor *bk_resample(bk_ctx *ctx, bk_tensor *x, int64_t out_h, int64_t out_w,
                       bk_resample_mode mode) {
    BK_CHECK(out_h >= 1 && out_w >= 1, "resample to %lldx%lld", (long long)out_h, (long long)out_w);
    return resample_with(ctx, x, get_plan(ctx, mode, x->h, x->w, out_h, out_w, 0.0f, 0.0f));
}

bk_tensor *bk_resample_factor(bk_ctx *ctx, bk_tensor *x, double factor, bk_resample_mode mode) {
    int64_t out_h = (int64_t)floor(x->h * factor), out_w = (int64_t)floor(x->w * factor);
    BK_CHECK(factor > 0 && out_h >= 1 && out_w >= 1, "resample %lldx%lld by %g",
             (long long)x->h, (long long)x->w, factor);
    float scale = (float)(1.0 / factor);
    return resample_with(ctx, x, get_plan(ctx, mode, x->h, x->w, out_h, out_w, scale, scale));
}

/* The adjoint of a resample with plan p: from the output size back to the input size. */
static bk_tensor *resample_t(bk_ctx *ctx, bk_tensor *gy, const resample_plan *p) {
    BK_CHECK(gy->h == p->h.out && gy->w == p->w.out, "resample_t: gradient size");
    bk_tensor *gx = bk_tensor_new(ctx, (bk_shape){gy->n, gy->c, p->h.in, p->w.in});
    apply(ctx, &p->ht, &p->wt, gy, gx);
    gx->op = BK_OP_RESAMPLE_T;
    gx->src[0] = gy;
    gx->p.resample.plan = p;
    bk_record(ctx, gx);
    return gx;
}

static bk_tensor *resample_with(bk_ctx *ctx, bk_tensor *x, const resample_plan *p) {
    bk_tensor *y = bk_tensor_new(ctx, (bk_shape){x->n, x->c, p->h.out, p->w.out});
    apply(ctx, &p->h, &p->w, x, y);
    y->op = BK_OP_RESAMPLE;
    y->src[0] = x;
    y->p.resample.plan = p;
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_avg_pool2(bk_ctx *ctx, bk_tensor *x) {
    return bk_resample(ctx, x, x->h / 2, x->w / 2, BK_RESAMPLE_AVG2);
}

BK_BACKWARD(bk_resample_backward) {
    if (need[0]) gsrc[0] = resample_t(ctx, gout, out->p.resample.plan);
}

BK_BACKWARD(bk_resample_t_backward) {
    if (need[0]) gsrc[0] = resample_with(ctx, gout, out->p.resample.plan);
}
