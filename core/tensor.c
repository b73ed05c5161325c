/* tensor.c — creation of step and persistent tensors, and the NCHW <-> NHWC boundary. */
#include "core/tensor.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/weight_cache.h"

const char *bk_shape_str(bk_shape s, char *buf) {
    snprintf(buf, 64, "%lldx%lldx%lldx%lld", (long long)s.n, (long long)s.c, (long long)s.h,
             (long long)s.w);
    return buf;
}

static void check_shape(bk_shape s) {
    BK_CHECK(s.n > 0 && s.c > 0 && s.h > 0 && s.w > 0, "tensor shape %lldx%lldx%lldx%lld",
             (long long)s.n, (long long)s.c, (long long)s.h, (long long)s.w);
}

static void init_header(bk_tensor *t, bk_shape s) {
    memset(t, 0, sizeof *t);
    t->n = s.n;
    t->c = s.c;
    t->h = s.h;
    t->w = s.w;
    t->ndim = 4;
    t->op = BK_OP_NONE;
}

bk_tensor *bk_tensor_new(bk_ctx *ctx, bk_shape s) {
    check_shape(s);
    bk_tensor *t = bk_arena_alloc(&ctx->step, sizeof *t);
    init_header(t, s);
    t->life = BK_STEP;
    t->data = bk_arena_alloc(&ctx->step, (size_t)bk_shape_numel(s) * sizeof(float));
    return t;
}

bk_tensor *bk_tensor_full(bk_ctx *ctx, bk_shape s, float value) {
    bk_tensor *t = bk_tensor_new(ctx, s);
    int64_t n = bk_numel(t);
    float *d = t->data;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) d[i] = value;
    return t;
}

bk_tensor *bk_tensor_zeros(bk_ctx *ctx, bk_shape s) { return bk_tensor_full(ctx, s, 0.0f); }

bk_tensor *bk_scalar(bk_ctx *ctx, float value) {
    bk_tensor *t = bk_tensor_full(ctx, (bk_shape){1, 1, 1, 1}, value);
    t->ndim = 0;
    return t;
}

bk_tensor *bk_tensor_new_persistent(bk_ctx *ctx, const char *name, int ndim, bk_shape s) {
    check_shape(s);
    BK_CHECK(ndim >= 0 && ndim <= 4, "ndim %d", ndim);
    bk_tensor *t = calloc(1, sizeof *t);
    BK_CHECK(t, "out of memory");
    init_header(t, s);
    t->ndim = ndim;
    t->life = BK_PERSISTENT;
    size_t bytes = (size_t)bk_shape_numel(s) * sizeof(float);
    t->data = bk_persistent_alloc(ctx, bytes);
    memset(t->data, 0, bytes);
    if (name) {
        t->name = strdup(name);
        BK_CHECK(t->name, "out of memory");
    }
    return t;
}

void bk_tensor_free(bk_ctx *ctx, bk_tensor *t) {
    if (!t) return;
    BK_CHECK(t->life == BK_PERSISTENT, "bk_tensor_free on a step tensor");
    if (t->grad && t->grad->life == BK_PERSISTENT) bk_tensor_free(ctx, t->grad);
    bk_weight_cache_free(ctx, t->wcache);
    bk_persistent_release(ctx, t->data, (size_t)bk_numel(t) * sizeof(float));
    free((void *)t->name);
    free(t);
}

bk_tensor *bk_detach(bk_ctx *ctx, bk_tensor *t) {
    bk_tensor *d = bk_arena_alloc(&ctx->step, sizeof *d);
    init_header(d, bk_shape_of(t));
    d->ndim = t->ndim;
    d->life = BK_STEP;
    d->data = t->data;
    return d;
}

void bk_tensor_set_nchw(bk_tensor *t, const float *nchw) {
    const int64_t N = t->n, C = t->c, H = t->h, W = t->w;
    float *d = t->data;
#pragma omp parallel for collapse(2) schedule(static) if (N * C * H * W > 65536)
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                for (int64_t c = 0; c < C; c++)
                    d[((n * H + h) * W + w) * C + c] = nchw[((n * C + c) * H + h) * W + w];
}

bk_tensor *bk_tensor_from_nchw(bk_ctx *ctx, bk_shape s, const float *nchw) {
    bk_tensor *t = bk_tensor_new(ctx, s);
    bk_tensor_set_nchw(t, nchw);
    return t;
}

void bk_tensor_to_nchw(const bk_tensor *t, float *nchw) {
    const int64_t N = t->n, C = t->c, H = t->h, W = t->w;
    const float *d = t->data;
#pragma omp parallel for collapse(2) schedule(static) if (N * C * H * W > 65536)
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    nchw[((n * C + c) * H + h) * W + w] = d[((n * H + h) * W + w) * C + c];
}
