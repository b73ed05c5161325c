/* pool.c — max pooling (torch.nn.MaxPool2d(k, stride), no padding, floor) on oneDNN.
 *
 * AlexNet's 3x3 stride 2 and VGG's 2x2 stride 2 (LPIPS trunks, the VGG perceptual loss).
 * oneDNN's NHWC max pooling is jit in both directions; the training forward writes a workspace
 * (the argmax per output, kept with the node in the step arena) that the backward scatters
 * through. Average pooling 2x2 is a separable operator in resample.c instead.
 * First order only: the backward op has no backward (no critic or penalty path pools).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dnnl_prim.h"
#include "core/op_backward.h"
#include "core/ops.h"

typedef struct pool_key {
    uint32_t tag;
    int32_t k, stride;
    int32_t pad_;
    int64_t n, c, h, w;
} pool_key;

typedef struct pool_plan {
    bool made_infer, made_train, made_bwd;
    bk_prim infer, train, bwd;
    dnnl_memory_desc_t x_md, y_md;
    size_t ws_bytes;
} pool_plan;

static void plan_free(void *v) {
    pool_plan *p = v;
    if (p->made_infer) bk_prim_destroy(&p->infer);
    if (p->made_train) bk_prim_destroy(&p->train);
    if (p->made_bwd) bk_prim_destroy(&p->bwd);
    free(p);
}

static void init_desc(const pool_plan *p, int k, int stride, bool backward, dnnl_prop_kind_t prop,
                      dnnl_pooling_v2_desc_t *d) {
    dnnl_dims_t kd = {k, k}, sd = {stride, stride}, dil = {0, 0}, pad = {0, 0};
    if (backward)
        BK_DNNL(dnnl_pooling_v2_backward_desc_init(d, dnnl_pooling_max, &p->x_md, &p->y_md, sd, kd,
                                                   dil, pad, pad));
    else
        BK_DNNL(dnnl_pooling_v2_forward_desc_init(d, prop, dnnl_pooling_max, &p->x_md, &p->y_md, sd,
                                                  kd, dil, pad, pad));
}

static void make(bk_ctx *ctx, bk_prim *prim, const dnnl_pooling_v2_desc_t *d,
                 const_dnnl_primitive_desc_t hint, const char *what) {
    if (!bk_prim_create(ctx, prim, d, NULL, hint, what))
        bk_panic(__FILE__, __LINE__, "oneDNN has no implementation for %s", what);
}

static pool_plan *get_plan(bk_ctx *ctx, const bk_tensor *x, int k, int stride, bk_shape ys) {
    pool_key key;
    memset(&key, 0, sizeof key);
    key.tag = 0x4d504f4c; /* "MPOL" */
    key.k = k, key.stride = stride;
    key.n = x->n, key.c = x->c, key.h = x->h, key.w = x->w;
    pool_plan *p = bk_cache_get(ctx->prims, &key, sizeof key);
    if (p) return p;
    p = calloc(1, sizeof *p);
    BK_CHECK(p, "out of memory");
    bk_md_nhwc(&p->x_md, bk_shape_of(x));
    bk_md_nhwc(&p->y_md, ys);
    bk_cache_put(ctx->prims, &key, sizeof key, p, plan_free);
    return p;
}

bk_tensor *bk_max_pool(bk_ctx *ctx, bk_tensor *x, int k, int stride) {
    BK_CHECK(k >= 1 && stride >= 1 && x->h >= k && x->w >= k, "max pool %dx%d on %lldx%lld", k, k,
             (long long)x->h, (long long)x->w);
    bk_shape ys = {x->n, x->c, (x->h - k) / stride + 1, (x->w - k) / stride + 1};
    pool_plan *p = get_plan(ctx, x, k, stride, ys);
    bool train = bk_would_record(ctx, x, NULL);
    char what[128];
    snprintf(what, sizeof what, "max pool %dx%d s%d on %lldx%lldx%lldx%lld", k, k, stride,
             (long long)x->n, (long long)x->c, (long long)x->h, (long long)x->w);
    bk_tensor *y = bk_tensor_new(ctx, ys);
    dnnl_pooling_v2_desc_t d;
    if (!train) {
        if (!p->made_infer) {
            init_desc(p, k, stride, false, dnnl_forward_inference, &d);
            make(ctx, &p->infer, &d, NULL, what);
            bk_prim_arg(ctx, &p->infer, DNNL_ARG_SRC);
            bk_prim_arg(ctx, &p->infer, DNNL_ARG_DST);
            p->made_infer = true;
        }
        const void *data[2] = {x->data, y->data};
        bk_prim_run(ctx, &p->infer, data);
    } else {
        if (!p->made_train) {
            init_desc(p, k, stride, false, dnnl_forward_training, &d);
            make(ctx, &p->train, &d, NULL, what);
            bk_prim_arg(ctx, &p->train, DNNL_ARG_SRC);
            bk_prim_arg(ctx, &p->train, DNNL_ARG_DST);
            p->ws_bytes = dnnl_memory_desc_get_size(bk_prim_arg(ctx, &p->train, DNNL_ARG_WORKSPACE));
            p->made_train = true;
        }
        void *ws = bk_arena_alloc(&ctx->step, p->ws_bytes);
        const void *data[3] = {x->data, y->data, ws};
        bk_prim_run(ctx, &p->train, data);
        y->saved = ws;
    }
    y->op = BK_OP_MAX_POOL;
    y->src[0] = x;
    y->p.pool.k = k;
    y->p.pool.stride = stride;
    y->p.pool.plan = p;
    bk_record(ctx, y);
    return y;
}

static bk_tensor *max_pool_bwd(bk_ctx *ctx, bk_tensor *gy, bk_tensor *y) {
    pool_plan *p = (pool_plan *)y->p.pool.plan;
    BK_CHECK(y->saved, "max pool backward without the training forward's workspace");
    if (!p->made_bwd) {
        dnnl_pooling_v2_desc_t d;
        init_desc(p, y->p.pool.k, y->p.pool.stride, true, dnnl_backward_data, &d);
        make(ctx, &p->bwd, &d, p->train.pd, "max pool backward");
        bk_prim_arg(ctx, &p->bwd, DNNL_ARG_DIFF_DST);
        bk_prim_arg(ctx, &p->bwd, DNNL_ARG_WORKSPACE);
        bk_prim_arg(ctx, &p->bwd, DNNL_ARG_DIFF_SRC);
        p->made_bwd = true;
    }
    bk_tensor *gx = bk_tensor_new(ctx, bk_shape_of(y->src[0]));
    const void *data[3] = {gy->data, y->saved, gx->data};
    bk_prim_run(ctx, &p->bwd, data);
    gx->op = BK_OP_MAX_POOL_BWD;
    gx->src[0] = gy;
    bk_record(ctx, gx);
    return gx;
}

BK_BACKWARD(bk_max_pool_backward) {
    if (need[0]) gsrc[0] = max_pool_bwd(ctx, gout, out);
}
