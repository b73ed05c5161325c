/* conv.c — Conv2d and ConvTranspose2d on oneDNN, in all three directions.
 *
 * Matches torch.nn.functional.conv2d / conv_transpose2d (stride, per-side padding, groups,
 * output_padding; no dilation). Activations are NHWC and handed to oneDNN as they are; weights
 * are kept in bokehlab's layout and reordered per direction into the kernel's blocked layout
 * through the weight cache (once per optimizer step for parameters). Bias, ReLU/LeakyReLU and a
 * residual sum are fused into the forward kernel as post-ops (the residual is first copied into
 * the output, then accumulated by a "sum" post-op); transposed convs take no post-ops because
 * oneDNN 2.6 applies them with reference code there.
 *
 * One plan per geometry holds every primitive of that geometry, created on first use:
 * forward variants (bias, activation, residual), backward data, backward weights with and
 * without bias, for each algorithm it uses.
 *
 * Algorithms. Direct convolution works on the NHWC tensors as they are. Winograd F(4x4, 3x3)
 * (oneDNN's jit_wino_4x3, about 2.4x faster on large 3x3 layers) exists in oneDNN 2.6 only for
 * 3x3, stride 1, padding <= 1, ungrouped convs with channel counts that are multiples of 16,
 * on the blocked nChw16c layout: the Winograd path reorders its activation operands into that
 * layout and its result back, inside the op, so the rest of bokehlab still sees NHWC. Which of
 * the two runs is decided per geometry and direction (forward, backward data, backward weights)
 * by conv_choice.c: by timing both, reorders included, on the first real call, unless a choice
 * was loaded from a checkpoint or the policy (BOKEHLAB_CONV_ALGO) forces one.
 *
 * Differentiation: fwd, bwd_data and bwd_weights of one geometry are closed under
 * differentiation (each one's backward is made of the other two), so any order of gradient is
 * again a convolution of the same geometry.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dnnl_prim.h"
#include "core/kernels.h"
#include "core/op_backward.h"
#include "core/ops.h"
#include "core/weight_cache.h"
#include "core/conv_choice.h"

enum { MAX_FWD_VARIANTS = 8 };
enum { ALGO_DIRECT = BK_CONV_DIRECT, ALGO_WINO = BK_CONV_WINOGRAD, N_ALGOS = 2 };

typedef struct conv_key {
    uint32_t tag; /* "CONV": keeps conv plans apart from other plans in ctx->prims */
    uint32_t pad_;
    bk_conv_geom g;
} conv_key;

typedef struct fwd_variant {
    bool made;
    bool bias, sum;
    bk_act act;
    bool act_apart;                 /* the kernel cannot fuse act: applied after it */
    bk_prim prim;
    const dnnl_memory_desc_t *w_md; /* weights layout this primitive wants */
} fwd_variant;

/* Every primitive of one geometry for one algorithm. */
typedef struct conv_kernels {
    fwd_variant fwd[MAX_FWD_VARIANTS];
    bool bwd_data_made;
    bk_prim bwd_data;
    const dnnl_memory_desc_t *bwd_data_w_md;
    bool bwd_w_made[2];              /* [0] without, [1] with diff_bias */
    bk_prim bwd_w[2];
    const dnnl_memory_desc_t *bwd_w_md[2];
} conv_kernels;

typedef struct conv_plan {
    bk_conv_geom g;
    dnnl_memory_desc_t x_md, y_md;   /* NHWC activations */
    /* Winograd: the conv runs on channels padded to multiples of 16 (icp, ocp), in nChw16c.
     * xb/yb describe the activations' real channels in that layout (padding kept zero by the
     * reorders), xbp/ybp the same bytes with the padded channel count, as the kernel sees them. */
    int64_t icp, ocp;
    dnnl_memory_desc_t xb_md, yb_md, xbp_md, ybp_md;
    dnnl_memory_desc_t wp_any_md, bp_md; /* padded weights (layout left to oneDNN) and bias */
    dnnl_memory_desc_t w_user_md;    /* bokehlab's weight storage, described by strides */
    dnnl_memory_desc_t w_any_md;     /* same dims, layout left to oneDNN */
    dnnl_memory_desc_t b_md;
    conv_kernels k[N_ALGOS];
    bool wino_possible;              /* the geometry fits oneDNN's Winograd kernel */
    int8_t algo[BK_CONV_DIRS];       /* chosen algorithm per direction, -1: not yet */
} conv_plan;

typedef union op_desc {
    dnnl_convolution_desc_t conv;
    dnnl_deconvolution_desc_t deconv;
} op_desc;

/* ---------------------------------------------------------------- geometry */

bk_shape bk_conv_weight_shape(const bk_conv_geom *g) {
    if (g->transposed) return (bk_shape){g->ic, g->oc / g->groups, g->kh, g->kw};
    return (bk_shape){g->oc, g->ic / g->groups, g->kh, g->kw};
}

bk_conv_geom bk_conv_geom_make(bk_shape x, bk_shape w, bk_conv_opts o, int transposed) {
    bk_conv_geom g;
    memset(&g, 0, sizeof g); /* the geometry is a cache key: no stray bytes */
    int groups = o.groups > 0 ? o.groups : 1;
    BK_CHECK(o.stride_h >= 1 && o.stride_w >= 1, "conv stride %dx%d", o.stride_h, o.stride_w);
    BK_CHECK(o.pad_t >= 0 && o.pad_l >= 0 && o.pad_b >= 0 && o.pad_r >= 0, "negative padding");
    g.n = x.n;
    g.ic = x.c;
    g.ih = x.h;
    g.iw = x.w;
    g.kh = (int32_t)w.h;
    g.kw = (int32_t)w.w;
    g.sh = o.stride_h;
    g.sw = o.stride_w;
    g.pt = o.pad_t;
    g.pl = o.pad_l;
    g.pb = o.pad_b;
    g.pr = o.pad_r;
    g.groups = groups;
    g.transposed = transposed;
    if (!transposed) {
        BK_CHECK(w.c * groups == x.c && w.n % groups == 0,
                 "conv2d: weights %lldx%lldx%lldx%lld do not fit %lld input channels in %d groups",
                 (long long)w.n, (long long)w.c, (long long)w.h, (long long)w.w, (long long)x.c,
                 groups);
        BK_CHECK(o.out_pad_h == 0 && o.out_pad_w == 0, "output_padding on a forward conv");
        int64_t sh = x.h + g.pt + g.pb - g.kh, sw = x.w + g.pl + g.pr - g.kw;
        BK_CHECK(sh >= 0 && sw >= 0, "conv2d: kernel %dx%d larger than padded input %lldx%lld",
                 g.kh, g.kw, (long long)(x.h + g.pt + g.pb), (long long)(x.w + g.pl + g.pr));
        g.oc = w.n;
        g.oh = sh / g.sh + 1;
        g.ow = sw / g.sw + 1;
    } else {
        BK_CHECK(w.n == x.c && x.c % groups == 0,
                 "conv_transpose2d: weights %lldx%lldx%lldx%lld for %lld input channels in %d groups",
                 (long long)w.n, (long long)w.c, (long long)w.h, (long long)w.w, (long long)x.c,
                 groups);
        BK_CHECK(o.out_pad_h >= 0 && o.out_pad_w >= 0 && o.out_pad_h < g.sh && o.out_pad_w < g.sw,
                 "output_padding must be smaller than the stride");
        g.oc = w.c * groups;
        g.oh = (x.h - 1) * g.sh - g.pt - g.pb + g.kh + o.out_pad_h;
        g.ow = (x.w - 1) * g.sw - g.pl - g.pr + g.kw + o.out_pad_w;
        /* oneDNN derives the output size from padding_r: output_padding is padding taken back */
        g.pb -= o.out_pad_h;
        g.pr -= o.out_pad_w;
        BK_CHECK(g.oh > 0 && g.ow > 0, "conv_transpose2d: empty output");
    }
    return g;
}

/* Multiply-accumulates of one direction of a direct convolution (all directions cost the same). */
static double conv_macs(const bk_conv_geom *g) {
    /* per output (or, transposed, per input) pixel: kh*kw*cin/groups MACs for each channel */
    double px = g->transposed ? (double)g->ih * g->iw : (double)g->oh * g->ow;
    double per = g->transposed ? (double)g->oc / g->groups : (double)g->ic / g->groups;
    double ch = g->transposed ? (double)g->ic : (double)g->oc;
    return (double)g->n * px * ch * per * g->kh * g->kw;
}

static bk_shape in_shape(const bk_conv_geom *g) { return (bk_shape){g->n, g->ic, g->ih, g->iw}; }
static bk_shape out_shape(const bk_conv_geom *g) { return (bk_shape){g->n, g->oc, g->oh, g->ow}; }

/* ---------------------------------------------------------------- plans */

/* Describes bokehlab's storage of the weights (PyTorch shape, NHWC order) in oneDNN's dims:
 * conv {O,I,kh,kw} or {G,O/G,I/G,kh,kw}; deconv the same dims, stored as I,kh,kw,O/G. */
static void weight_mds(const bk_conv_geom *g, dnnl_memory_desc_t *user, dnnl_memory_desc_t *any) {
    int64_t G = g->groups, ocg = g->oc / G, icg = g->ic / G, kh = g->kh, kw = g->kw;
    dnnl_dims_t dims, strides;
    int nd;
    if (G == 1) {
        nd = 4;
        int64_t d[4] = {g->oc, g->ic, kh, kw};
        int64_t s_conv[4] = {kh * kw * icg, 1, kw * icg, icg};
        int64_t s_deconv[4] = {1, kh * kw * ocg, kw * ocg, ocg};
        memcpy(dims, d, sizeof d);
        memcpy(strides, g->transposed ? s_deconv : s_conv, sizeof d);
    } else {
        nd = 5;
        int64_t d[5] = {G, ocg, icg, kh, kw};
        int64_t s_conv[5] = {ocg * kh * kw * icg, kh * kw * icg, 1, kw * icg, icg};
        int64_t s_deconv[5] = {icg * kh * kw * ocg, 1, kh * kw * ocg, kw * ocg, ocg};
        memcpy(dims, d, sizeof d);
        memcpy(strides, g->transposed ? s_deconv : s_conv, sizeof d);
    }
    BK_DNNL(dnnl_memory_desc_init_by_strides(user, nd, dims, dnnl_f32, strides));
    BK_DNNL(dnnl_memory_desc_init_by_tag(any, nd, dims, dnnl_f32, dnnl_format_tag_any));
}

static void plan_free(void *v) {
    conv_plan *pl = v;
    for (int a = 0; a < N_ALGOS; a++) {
        conv_kernels *k = &pl->k[a];
        for (int i = 0; i < MAX_FWD_VARIANTS; i++)
            if (k->fwd[i].made) bk_prim_destroy(&k->fwd[i].prim);
        if (k->bwd_data_made) bk_prim_destroy(&k->bwd_data);
        for (int i = 0; i < 2; i++)
            if (k->bwd_w_made[i]) bk_prim_destroy(&k->bwd_w[i]);
    }
    free(pl);
}

static conv_plan *get_plan(bk_ctx *ctx, const bk_conv_geom *g) {
    conv_key key;
    memset(&key, 0, sizeof key);
    key.tag = 0x434f4e56; /* "CONV" */
    key.g = *g;
    conv_plan *pl = bk_cache_get(ctx->prims, &key, sizeof key);
    if (pl) return pl;
    pl = calloc(1, sizeof *pl);
    BK_CHECK(pl, "out of memory");
    pl->g = *g;
    bk_md_nhwc(&pl->x_md, in_shape(g));
    bk_md_nhwc(&pl->y_md, out_shape(g));
    pl->wino_possible = bk_conv_winograd_fits(g);
    if (pl->wino_possible) {
        pl->icp = (g->ic + 15) / 16 * 16;
        pl->ocp = (g->oc + 15) / 16 * 16;
        dnnl_dims_t xd = {g->n, g->ic, g->ih, g->iw}, yd = {g->n, g->oc, g->oh, g->ow};
        dnnl_dims_t xpd = {g->n, pl->icp, g->ih, g->iw}, ypd = {g->n, pl->ocp, g->oh, g->ow};
        BK_DNNL(dnnl_memory_desc_init_by_tag(&pl->xb_md, 4, xd, dnnl_f32, dnnl_nChw16c));
        BK_DNNL(dnnl_memory_desc_init_by_tag(&pl->yb_md, 4, yd, dnnl_f32, dnnl_nChw16c));
        BK_DNNL(dnnl_memory_desc_init_by_tag(&pl->xbp_md, 4, xpd, dnnl_f32, dnnl_nChw16c));
        BK_DNNL(dnnl_memory_desc_init_by_tag(&pl->ybp_md, 4, ypd, dnnl_f32, dnnl_nChw16c));
        dnnl_dims_t wd = {pl->ocp, pl->icp, g->kh, g->kw}, bd = {pl->ocp};
        BK_DNNL(dnnl_memory_desc_init_by_tag(&pl->wp_any_md, 4, wd, dnnl_f32, dnnl_format_tag_any));
        BK_DNNL(dnnl_memory_desc_init_by_tag(&pl->bp_md, 1, bd, dnnl_f32, dnnl_x));
    }
    for (int d = 0; d < BK_CONV_DIRS; d++) pl->algo[d] = BK_CONV_UNDECIDED;
    weight_mds(g, &pl->w_user_md, &pl->w_any_md);
    dnnl_dims_t bd = {g->oc};
    BK_DNNL(dnnl_memory_desc_init_by_tag(&pl->b_md, 1, bd, dnnl_f32, dnnl_x));
    bk_cache_put(ctx->prims, &key, sizeof key, pl, plan_free);
    return pl;
}

static const char *describe(const bk_conv_geom *g, const char *dir, char *buf, size_t len) {
    snprintf(buf, len, "%s %s %lldx%lldx%lldx%lld -> %lld k%dx%d s%dx%d p%d,%d,%d,%d g%d",
             g->transposed ? "conv_transpose2d" : "conv2d", dir, (long long)g->n,
             (long long)g->ic, (long long)g->ih, (long long)g->iw, (long long)g->oc, g->kh,
             g->kw, g->sh, g->sw, g->pt, g->pl, g->pb, g->pr, g->groups);
    return buf;
}

/* Fills `d` for direction BK_CONV_FWD, BK_CONV_BWD_DATA or BK_CONV_BWD_WEIGHTS. */
static void init_desc(const conv_plan *pl, int algo, int dir, bool bias, op_desc *d) {
    const bk_conv_geom *g = &pl->g;
    dnnl_dims_t strides = {g->sh, g->sw}, pad_l = {g->pt, g->pl}, pad_r = {g->pb, g->pr};
    const dnnl_memory_desc_t *b = bias ? &pl->b_md : NULL;
    if (!g->transposed) {
        bool wino = algo == ALGO_WINO;
        dnnl_alg_kind_t alg = wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
        const dnnl_memory_desc_t *x = wino ? &pl->xbp_md : &pl->x_md;
        const dnnl_memory_desc_t *y = wino ? &pl->ybp_md : &pl->y_md;
        const dnnl_memory_desc_t *w = wino ? &pl->wp_any_md : &pl->w_any_md;
        if (wino && bias) b = &pl->bp_md;
        if (dir == BK_CONV_FWD)
            BK_DNNL(dnnl_convolution_forward_desc_init(&d->conv, dnnl_forward_training, alg, x, w,
                                                       b, y, strides, pad_l, pad_r));
        else if (dir == BK_CONV_BWD_DATA)
            BK_DNNL(dnnl_convolution_backward_data_desc_init(&d->conv, alg, x, w, y, strides,
                                                             pad_l, pad_r));
        else
            BK_DNNL(dnnl_convolution_backward_weights_desc_init(&d->conv, alg, x, w, b, y,
                                                                strides, pad_l, pad_r));
    } else {
        BK_CHECK(algo == ALGO_DIRECT, "Winograd for a transposed convolution");
        dnnl_alg_kind_t alg = dnnl_deconvolution_direct;
        if (dir == BK_CONV_FWD)
            BK_DNNL(dnnl_deconvolution_forward_desc_init(&d->deconv, dnnl_forward_training, alg,
                                                         &pl->x_md, &pl->w_any_md, b, &pl->y_md,
                                                         strides, pad_l, pad_r));
        else if (dir == BK_CONV_BWD_DATA)
            BK_DNNL(dnnl_deconvolution_backward_data_desc_init(&d->deconv, alg, &pl->x_md,
                                                               &pl->w_any_md, &pl->y_md, strides,
                                                               pad_l, pad_r));
        else
            BK_DNNL(dnnl_deconvolution_backward_weights_desc_init(&d->deconv, alg, &pl->x_md,
                                                                  &pl->w_any_md, b, &pl->y_md,
                                                                  strides, pad_l, pad_r));
    }
}

static void make_or_die(bk_ctx *ctx, bk_prim *p, const op_desc *d, const_dnnl_post_ops_t po,
                        const_dnnl_primitive_desc_t hint, const char *what) {
    if (!bk_prim_create(ctx, p, d, po, hint, what))
        bk_panic(__FILE__, __LINE__, "oneDNN has no implementation for %s", what);
}

static const char *const ALGO_NAME[N_ALGOS] = {"", " winograd"};

/* Post-ops of y = act(conv + b + r): "sum" (the residual, copied into y first), then act.
 * NULL if there are none. */
static dnnl_post_ops_t post_ops(bool sum, bk_act act) {
    if (!sum && act.kind == BK_ACT_NONE) return NULL;
    dnnl_post_ops_t po;
    BK_DNNL(dnnl_post_ops_create(&po));
    if (sum) BK_DNNL(dnnl_post_ops_append_sum(po, 1.0f));
    if (act.kind == BK_ACT_RELU)
        BK_DNNL(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, act.alpha, 0.0f));
    if (act.kind == BK_ACT_CLIP)
        BK_DNNL(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, act.alpha, act.beta));
    return po;
}

static fwd_variant *get_fwd(bk_ctx *ctx, conv_plan *pl, int algo, bool bias, bk_act act, bool sum) {
    conv_kernels *k = &pl->k[algo];
    for (int i = 0; i < MAX_FWD_VARIANTS; i++) {
        fwd_variant *v = &k->fwd[i];
        if (v->made && v->bias == bias && v->sum == sum && v->act.kind == act.kind &&
            v->act.alpha == act.alpha && v->act.beta == act.beta)
            return v;
    }
    fwd_variant *v = NULL;
    for (int i = 0; i < MAX_FWD_VARIANTS && !v; i++)
        if (!k->fwd[i].made) v = &k->fwd[i];
    BK_CHECK(v, "more than %d forward variants of one convolution", MAX_FWD_VARIANTS);
    BK_CHECK(!pl->g.transposed || (act.kind == BK_ACT_NONE && !sum),
             "post-ops on a transposed convolution");
    char what[160], dir[32];
    snprintf(dir, sizeof dir, "forward%s", ALGO_NAME[algo]);
    describe(&pl->g, dir, what, sizeof what);
    op_desc d;
    init_desc(pl, algo, BK_CONV_FWD, bias, &d);
    dnnl_post_ops_t po = post_ops(sum, act);
    bool made = bk_prim_create(ctx, &v->prim, &d, po, NULL, what);
    if (po) dnnl_post_ops_destroy(po);
    v->act_apart = false;
    if (!made && act.kind != BK_ACT_NONE) {
        /* jit_wino_4x3 fuses only a plain ReLU: LeakyReLU and clipping run after it */
        po = post_ops(sum, bk_act_none());
        made = bk_prim_create(ctx, &v->prim, &d, po, NULL, what);
        if (po) dnnl_post_ops_destroy(po);
        v->act_apart = true;
    }
    if (!made) bk_panic(__FILE__, __LINE__, "oneDNN has no implementation for %s", what);
    bk_prim_arg(ctx, &v->prim, DNNL_ARG_SRC);
    v->w_md = bk_prim_arg(ctx, &v->prim, DNNL_ARG_WEIGHTS);
    if (bias) bk_prim_arg(ctx, &v->prim, DNNL_ARG_BIAS);
    bk_prim_arg(ctx, &v->prim, DNNL_ARG_DST);
    v->made = true;
    v->bias = bias;
    v->sum = sum;
    v->act = act;
    return v;
}

static conv_kernels *get_bwd_data(bk_ctx *ctx, conv_plan *pl, int algo) {
    conv_kernels *k = &pl->k[algo];
    if (k->bwd_data_made) return k;
    fwd_variant *hint = get_fwd(ctx, pl, algo, false, bk_act_none(), false);
    char what[160], dir[40];
    snprintf(dir, sizeof dir, "backward data%s", ALGO_NAME[algo]);
    describe(&pl->g, dir, what, sizeof what);
    op_desc d;
    init_desc(pl, algo, BK_CONV_BWD_DATA, false, &d);
    make_or_die(ctx, &k->bwd_data, &d, NULL, hint->prim.pd, what);
    bk_prim_arg(ctx, &k->bwd_data, DNNL_ARG_DIFF_DST);
    k->bwd_data_w_md = bk_prim_arg(ctx, &k->bwd_data, DNNL_ARG_WEIGHTS);
    bk_prim_arg(ctx, &k->bwd_data, DNNL_ARG_DIFF_SRC);
    k->bwd_data_made = true;
    return k;
}

static conv_kernels *get_bwd_weights(bk_ctx *ctx, conv_plan *pl, int algo, bool bias) {
    conv_kernels *k = &pl->k[algo];
    if (k->bwd_w_made[bias]) return k;
    fwd_variant *hint = get_fwd(ctx, pl, algo, bias, bk_act_none(), false);
    char what[160], dir[48];
    snprintf(dir, sizeof dir, "%s%s", bias ? "backward weights+bias" : "backward weights", ALGO_NAME[algo]);
    describe(&pl->g, dir, what, sizeof what);
    op_desc d;
    init_desc(pl, algo, BK_CONV_BWD_WEIGHTS, bias, &d);
    bk_prim *p = &k->bwd_w[bias];
    make_or_die(ctx, p, &d, NULL, hint->prim.pd, what);
    bk_prim_arg(ctx, p, DNNL_ARG_SRC);
    bk_prim_arg(ctx, p, DNNL_ARG_DIFF_DST);
    k->bwd_w_md[bias] = bk_prim_arg(ctx, p, DNNL_ARG_DIFF_WEIGHTS);
    if (bias) bk_prim_arg(ctx, p, DNNL_ARG_DIFF_BIAS);
    k->bwd_w_made[bias] = true;
    return k;
}

/* ---------------------------------------------------------------- execution per algorithm */

/* An activation in the blocked layout for the Winograd kernels: a step buffer, filled from the
 * NHWC `src` when it is given. */
static float *blocked(bk_ctx *ctx, const dnnl_memory_desc_t *nhwc, const dnnl_memory_desc_t *blk,
                     const float *src) {
    float *b = bk_arena_alloc(&ctx->step, dnnl_memory_desc_get_size(blk));
    if (src) bk_reorder(ctx, nhwc, src, blk, b);
    return b;
}

/* The bias padded with zeros to the Winograd kernel's channel count (a step buffer). */
static const float *padded_bias(bk_ctx *ctx, const conv_plan *pl, const bk_tensor *b) {
    if (pl->ocp == pl->g.oc) return b->data;
    float *p = bk_arena_alloc(&ctx->step, (size_t)pl->ocp * sizeof *p);
    memcpy(p, b->data, (size_t)pl->g.oc * sizeof *p);
    memset(p + pl->g.oc, 0, (size_t)(pl->ocp - pl->g.oc) * sizeof *p);
    return p;
}

static void act_inplace(float *y, int64_t n, bk_act act) {
    if (act.kind == BK_ACT_RELU) {
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : act.alpha * y[i];
    } else if (act.kind == BK_ACT_CLIP) {
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = y[i] < act.alpha ? act.alpha : y[i] > act.beta ? act.beta : y[i];
    }
}

/* y = act(conv(x, w) + b + r) with algorithm `algo`; y is fully written. */
static void exec_fwd(bk_ctx *ctx, conv_plan *pl, int algo, bk_tensor *x, bk_tensor *w, bk_tensor *b,
                     bk_act act, bk_tensor *residual, bk_tensor *y) {
    fwd_variant *v = get_fwd(ctx, pl, algo, b != NULL, act, residual != NULL);
    const float *wd = bk_weights_as(ctx, w, &pl->w_user_md, v->w_md);
    bool wino = algo == ALGO_WINO;
    bk_arena_pos mark = bk_arena_mark(&ctx->step);
    const float *xd = wino ? blocked(ctx, &pl->x_md, &pl->xb_md, x->data) : x->data;
    float *yd = wino ? blocked(ctx, &pl->y_md, &pl->yb_md, residual ? residual->data : NULL) : y->data;
    if (residual && !wino && y->data != residual->data) bk_kernel_copy(y->data, residual->data, bk_numel(y));
    const void *data[4];
    int n = 0;
    data[n++] = xd;
    data[n++] = wd;
    if (b) data[n++] = wino ? padded_bias(ctx, pl, b) : b->data;
    data[n++] = yd;
    bk_prim_run(ctx, &v->prim, data);
    if (wino) bk_reorder(ctx, &pl->yb_md, yd, &pl->y_md, y->data);
    if (v->act_apart) act_inplace(y->data, bk_numel(y), act);
    bk_arena_release(&ctx->step, mark);
    ctx->stats.conv_macs += conv_macs(&pl->g);
    ctx->stats.winograd_runs += wino;
}

static void exec_bwd_data(bk_ctx *ctx, conv_plan *pl, int algo, bk_tensor *gy, bk_tensor *w, bk_tensor *gx) {
    conv_kernels *k = get_bwd_data(ctx, pl, algo);
    const float *wd = bk_weights_as(ctx, w, &pl->w_user_md, k->bwd_data_w_md);
    bool wino = algo == ALGO_WINO;
    bk_arena_pos mark = bk_arena_mark(&ctx->step);
    const float *gyd = wino ? blocked(ctx, &pl->y_md, &pl->yb_md, gy->data) : gy->data;
    float *gxd = wino ? blocked(ctx, &pl->x_md, &pl->xb_md, NULL) : gx->data;
    const void *data[3] = {gyd, wd, gxd};
    bk_prim_run(ctx, &k->bwd_data, data);
    if (wino) bk_reorder(ctx, &pl->xb_md, gxd, &pl->x_md, gx->data);
    bk_arena_release(&ctx->step, mark);
    ctx->stats.conv_macs += conv_macs(&pl->g);
    ctx->stats.winograd_runs += wino;
}

/* gw (bokehlab layout) and optionally gb from x and gy. */
static void exec_bwd_weights(bk_ctx *ctx, conv_plan *pl, int algo, bk_tensor *x, bk_tensor *gy,
                             bk_tensor *gw, bk_tensor *gb) {
    bool bias = gb != NULL;
    conv_kernels *k = get_bwd_weights(ctx, pl, algo, bias);
    const dnnl_memory_desc_t *md = k->bwd_w_md[bias];
    bool wino = algo == ALGO_WINO;
    bk_arena_pos mark = bk_arena_mark(&ctx->step);
    const float *xd = wino ? blocked(ctx, &pl->x_md, &pl->xb_md, x->data) : x->data;
    const float *gyd = wino ? blocked(ctx, &pl->y_md, &pl->yb_md, gy->data) : gy->data;
    bool user = dnnl_memory_desc_equal(md, &pl->w_user_md);
    float *dw = user ? gw->data : bk_arena_alloc(&ctx->step, dnnl_memory_desc_get_size(md));
    bool pad_b = bias && wino && pl->ocp != pl->g.oc;
    float *db = pad_b ? bk_arena_alloc(&ctx->step, (size_t)pl->ocp * sizeof *db) : bias ? gb->data : NULL;
    const void *data[4] = {xd, gyd, dw, db};
    bk_prim_run(ctx, &k->bwd_w[bias], data);
    if (!user) bk_reorder_resized(ctx, md, dw, &pl->w_user_md, gw->data);
    if (pad_b) memcpy(gb->data, db, (size_t)pl->g.oc * sizeof *db);
    bk_arena_release(&ctx->step, mark);
    ctx->stats.conv_macs += conv_macs(&pl->g);
    ctx->stats.winograd_runs += wino;
}

/* ---------------------------------------------------------------- algorithm choice */

/* The direction's algorithm; on the first call of an undecided direction both are timed on the
 * real operands (run_call executes one) and the faster is kept. The last run is always the chosen
 * algorithm's, so the result does not depend on the order of the trials. */
typedef struct conv_call {
    bk_ctx *ctx;
    conv_plan *pl;
    bk_tensor *a, *b, *c, *d, *out, *out2;
    bk_act act;
} conv_call;

static void run_call(const conv_call *c, int dir, int algo) {
    if (dir == BK_CONV_FWD) exec_fwd(c->ctx, c->pl, algo, c->a, c->b, c->c, c->act, c->d, c->out);
    else if (dir == BK_CONV_BWD_DATA) exec_bwd_data(c->ctx, c->pl, algo, c->a, c->b, c->out);
    else exec_bwd_weights(c->ctx, c->pl, algo, c->a, c->b, c->out, c->out2);
}

static void run_chosen(const conv_call *c, int dir) {
    conv_plan *pl = c->pl;
    if (pl->algo[dir] == BK_CONV_UNDECIDED) {
        int algo = bk_conv_choice_get(c->ctx, &pl->g, conv_macs(&pl->g), dir);
        if (algo == BK_CONV_UNDECIDED) {
            double t[N_ALGOS], macs0 = c->ctx->stats.conv_macs;
            for (int a = 0; a < N_ALGOS; a++) {
                t[a] = 1e30;
                for (int rep = 0; rep < 3; rep++) { /* the first run also creates the primitive */
                    double t0 = omp_get_wtime();
                    run_call(c, dir, a);
                    double dt = omp_get_wtime() - t0;
                    if (rep > 0 && dt < t[a]) t[a] = dt;
                }
            }
            c->ctx->stats.conv_macs = macs0; /* trials are not work done */
            algo = t[ALGO_WINO] < t[ALGO_DIRECT] ? ALGO_WINO : ALGO_DIRECT;
            bk_conv_choice_put(c->ctx, &pl->g, dir, algo, t);
        }
        pl->algo[dir] = (int8_t)algo;
    }
    run_call(c, dir, pl->algo[dir]);
}

/* ---------------------------------------------------------------- ops */

static void check_shape(const bk_tensor *t, bk_shape want, const char *what,
                        const bk_conv_geom *g) {
    char a[64], b[64], d[160];
    BK_CHECK(bk_shape_eq(bk_shape_of(t), want), "%s: %s has shape %s, expected %s",
             describe(g, "", d, sizeof d), what, bk_shape_str(bk_shape_of(t), a),
             bk_shape_str(want, b));
}

bk_tensor *bk_conv_fwd(bk_ctx *ctx, bk_tensor *x, bk_tensor *w, bk_tensor *b,
                       const bk_conv_geom *g, bk_act act, bk_tensor *residual) {
    check_shape(x, in_shape(g), "input", g);
    check_shape(w, bk_conv_weight_shape(g), "weights", g);
    if (b) check_shape(b, (bk_shape){1, g->oc, 1, 1}, "bias", g);
    if (residual) check_shape(residual, out_shape(g), "residual", g);
    conv_plan *pl = get_plan(ctx, g);
    bk_tensor *y = bk_tensor_new(ctx, out_shape(g));
    conv_call c = {ctx, pl, x, w, b, residual, y, NULL, act};
    run_chosen(&c, BK_CONV_FWD);

    y->op = BK_OP_CONV;
    y->src[0] = x;
    y->src[1] = w;
    y->src[2] = b;
    y->src[3] = residual;
    y->p.conv.g = *g;
    y->p.conv.act = act;
    bk_record(ctx, y);
    return y;
}

bk_tensor *bk_conv2d_into_residual(bk_ctx *ctx, bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv_opts o,
                                   bk_act act, bk_tensor *residual) {
    BK_CHECK(!bk_would_record(ctx, x, w) && !bk_would_record(ctx, b, residual),
             "a convolution that would be recorded cannot overwrite its residual");
    bk_conv_geom g = bk_conv_geom_make(bk_shape_of(x), bk_shape_of(w), o, 0);
    conv_plan *pl = get_plan(ctx, &g);
    /* timing runs the kernel several times, which the in-place sum cannot repeat */
    if (pl->algo[BK_CONV_FWD] == BK_CONV_UNDECIDED &&
        bk_conv_choice_get(ctx, &g, conv_macs(&g), BK_CONV_FWD) == BK_CONV_UNDECIDED)
        return bk_conv_fwd(ctx, x, w, b, &g, act, residual);
    check_shape(x, in_shape(&g), "input", &g);
    check_shape(w, bk_conv_weight_shape(&g), "weights", &g);
    if (b) check_shape(b, (bk_shape){1, g.oc, 1, 1}, "bias", &g);
    check_shape(residual, out_shape(&g), "residual", &g);
    conv_call c = {ctx, pl, x, w, b, residual, residual, NULL, act};
    run_chosen(&c, BK_CONV_FWD);
    return residual;
}

bk_tensor *bk_conv_bwd_data(bk_ctx *ctx, bk_tensor *gy, bk_tensor *w, const bk_conv_geom *g) {
    check_shape(gy, out_shape(g), "output gradient", g);
    check_shape(w, bk_conv_weight_shape(g), "weights", g);
    conv_plan *pl = get_plan(ctx, g);
    bk_tensor *gx = bk_tensor_new(ctx, in_shape(g));
    conv_call c = {ctx, pl, gy, w, NULL, NULL, gx, NULL, bk_act_none()};
    run_chosen(&c, BK_CONV_BWD_DATA);

    gx->op = BK_OP_CONV_BWD_DATA;
    gx->src[0] = gy;
    gx->src[1] = w;
    gx->p.conv.g = *g;
    bk_record(ctx, gx);
    return gx;
}

/* Runs backward weights into gw (bokehlab layout) and optionally gb. */
static void run_bwd_weights(bk_ctx *ctx, bk_tensor *x, bk_tensor *gy, const bk_conv_geom *g,
                            bk_tensor *gw, bk_tensor *gb) {
    check_shape(x, in_shape(g), "input", g);
    check_shape(gy, out_shape(g), "output gradient", g);
    conv_plan *pl = get_plan(ctx, g);
    conv_call c = {ctx, pl, x, gy, NULL, NULL, gw, gb, bk_act_none()};
    run_chosen(&c, BK_CONV_BWD_WEIGHTS);
}

bk_tensor *bk_conv_bwd_weights(bk_ctx *ctx, bk_tensor *x, bk_tensor *gy, const bk_conv_geom *g) {
    bk_tensor *gw = bk_tensor_new(ctx, bk_conv_weight_shape(g));
    run_bwd_weights(ctx, x, gy, g, gw, NULL);
    gw->op = BK_OP_CONV_BWD_WEIGHTS;
    gw->src[0] = x;
    gw->src[1] = gy;
    gw->p.conv.g = *g;
    bk_record(ctx, gw);
    return gw;
}

void bk_conv_bwd_weights_bias(bk_ctx *ctx, bk_tensor *x, bk_tensor *gy, const bk_conv_geom *g,
                              bk_tensor **gw, bk_tensor **gb) {
    if (bk_would_record(ctx, x, gy) || !gw || !gb) {
        /* recorded: two nodes, so each can be differentiated on its own */
        if (gw) *gw = bk_conv_bwd_weights(ctx, x, gy, g);
        if (gb) *gb = bk_sum_to(ctx, gy, (bk_shape){1, g->oc, 1, 1});
        return;
    }
    *gw = bk_tensor_new(ctx, bk_conv_weight_shape(g));
    *gb = bk_tensor_new(ctx, (bk_shape){1, g->oc, 1, 1});
    (*gb)->ndim = 1;
    run_bwd_weights(ctx, x, gy, g, *gw, *gb);
}

/* At inference, a 3x3 stride-1 pad-1 ungrouped conv to at most 3 channels (an image output):
 * oneDNN's kernels pad the output channels to 16 and so run at a fifth of their speed (AMPN's
 * refine.tail, 40 -> 3 at 512x768: 25 ms for 0.85 GFLOP). Instead one 1x1 conv computes every
 * tap's contribution (9 * oc channels: ci -> 27 wastes 5 of 32), and a shift-and-add sums the
 * taps. Exactly the same sums, in another order. */
static bool narrow_fits(const bk_conv_geom *g, bk_act act, const bk_tensor *residual) {
    return !g->transposed && g->groups == 1 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->pt == 1 &&
           g->pl == 1 && g->pb == 1 && g->pr == 1 && g->oc <= 3 && act.kind == BK_ACT_NONE && !residual;
}

static bk_tensor *conv_narrow(bk_ctx *ctx, bk_tensor *x, bk_tensor *w, bk_tensor *b, const bk_conv_geom *g) {
    const int64_t oc = g->oc, ci = g->ic, J = 9 * oc, N = g->n, H = g->oh, W = g->ow;
    check_shape(w, bk_conv_weight_shape(g), "weights", g);
    if (b) check_shape(b, (bk_shape){1, oc, 1, 1}, "bias", g);
    /* weights (oc, ci, 3, 3) stored o, ky, kx, c: tap t = 3 ky + kx of output o is channel t*oc + o */
    bk_tensor *wt = bk_tensor_new(ctx, (bk_shape){J, ci, 1, 1});
    for (int64_t o = 0; o < oc; o++)
        for (int64_t t = 0; t < 9; t++)
            memcpy(wt->data + (t * oc + o) * ci, w->data + (o * 9 + t) * ci, (size_t)ci * sizeof(float));
    bk_tensor *taps = bk_conv2d(ctx, x, wt, NULL, bk_conv_opts_make(1, 0, 1), bk_act_none(), NULL);
    bk_tensor *y = bk_tensor_new(ctx, (bk_shape){N, oc, H, W});
    const float *tp = taps->data;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t r = 0; r < H; r++)
            for (int64_t c = 0; c < W; c++) {
                float acc[3] = {0.0f, 0.0f, 0.0f};
                for (int ky = 0; ky < 3; ky++) {
                    const int64_t rr = r + ky - 1;
                    if (rr < 0 || rr >= H) continue;
                    for (int kx = 0; kx < 3; kx++) {
                        const int64_t cc = c + kx - 1;
                        if (cc < 0 || cc >= W) continue;
                        const float *v = tp + ((n * H + rr) * W + cc) * J + (ky * 3 + kx) * oc;
                        for (int64_t o = 0; o < oc; o++) acc[o] += v[o];
                    }
                }
                float *out = y->data + ((n * H + r) * W + c) * oc;
                for (int64_t o = 0; o < oc; o++) out[o] = acc[o] + (b ? b->data[o] : 0.0f);
            }
    return y;
}

bk_tensor *bk_conv2d(bk_ctx *ctx, bk_tensor *x, bk_tensor *w, bk_tensor *b, bk_conv_opts o,
                     bk_act act, bk_tensor *residual) {
    bk_conv_geom g = bk_conv_geom_make(bk_shape_of(x), bk_shape_of(w), o, 0);
    if (narrow_fits(&g, act, residual) && !bk_would_record(ctx, x, w) && !bk_would_record(ctx, b, NULL)) {
        check_shape(x, in_shape(&g), "input", &g);
        return conv_narrow(ctx, x, w, b, &g);
    }
    return bk_conv_fwd(ctx, x, w, b, &g, act, residual);
}

bk_tensor *bk_conv_transpose2d(bk_ctx *ctx, bk_tensor *x, bk_tensor *w, bk_tensor *b,
                               bk_conv_opts o) {
    bk_conv_geom g = bk_conv_geom_make(bk_shape_of(x), bk_shape_of(w), o, 1);
    return bk_conv_fwd(ctx, x, w, b, &g, bk_act_none(), NULL);
}

/* ---------------------------------------------------------------- backward rules */

/* y = act(conv(x, w) + b + r):  gz = act'(gy) from y;  gx = bwd_data(gz, w);
 * gw = bwd_weights(x, gz);  gb = sum over N,H,W of gz;  gr = gz. */
BK_BACKWARD(bk_conv_backward) {
    const bk_conv_geom *g = &out->p.conv.g;
    bk_act act = out->p.conv.act;
    bk_tensor *gz = act.kind == BK_ACT_RELU   ? bk_relu_bwd(ctx, gout, out, act.alpha)
                    : act.kind == BK_ACT_CLIP ? bk_clamp_bwd(ctx, gout, out, act.alpha, act.beta, 0)
                                              : gout;
    if (need[0]) gsrc[0] = bk_conv_bwd_data(ctx, gz, out->src[1], g);
    if (need[1] || need[2])
        bk_conv_bwd_weights_bias(ctx, out->src[0], gz, g, need[1] ? &gsrc[1] : NULL,
                                 need[2] ? &gsrc[2] : NULL);
    if (need[3]) gsrc[3] = gz;
}

/* gx = bwd_data(gy, w) is bilinear in (gy, w):  d<u,gx>/dgy = fwd(u, w),
 * d<u,gx>/dw = bwd_weights(u, gy). */
BK_BACKWARD(bk_conv_bwd_data_backward) {
    const bk_conv_geom *g = &out->p.conv.g;
    if (need[0]) gsrc[0] = bk_conv_fwd(ctx, gout, out->src[1], NULL, g, bk_act_none(), NULL);
    if (need[1]) gsrc[1] = bk_conv_bwd_weights(ctx, gout, out->src[0], g);
}

/* gw = bwd_weights(x, gy) is bilinear in (x, gy):  d<u,gw>/dx = bwd_data(gy, u),
 * d<u,gw>/dgy = fwd(x, u). */
BK_BACKWARD(bk_conv_bwd_weights_backward) {
    const bk_conv_geom *g = &out->p.conv.g;
    if (need[0]) gsrc[0] = bk_conv_bwd_data(ctx, out->src[1], gout, g);
    if (need[1]) gsrc[1] = bk_conv_fwd(ctx, out->src[0], gout, NULL, g, bk_act_none(), NULL);
}
