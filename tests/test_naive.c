/* test_naive.c — the fp32 ops against the naive double-precision reference (tests/support/ref.c)
 * on odd "tail" shapes: channel counts 3, 13, 17 (and per-group 13 -> 17), odd H and W, stride
 * 2, groups and depthwise, asymmetric padding, kernels 1/3/4/5, transposed convs with output
 * padding, broadcasting patterns, every sum_to reduction, and one larger shape that takes the
 * multi-threaded paths. Tolerance 1e-5 (SPEC "within": relative to the largest reference value).
 * The issue-3 ops, forward and autograd backward (and the public backward ops clamp_bwd,
 * reflect_pad_bwd, embed): clamp / relu6 / hardswish with inputs exactly on their kinks (torch's
 * gradient there), sigmoid, tanh, exp, log, pow; concat / slice / split / embed along every
 * axis, transpose_hw, reflect padding up to dim - 1, zero insertion, subsampling (1e-6: data
 * movement is exact); bilinear x2, x4, x0.5, arbitrary and odd sizes, antialiased, 2x2 average,
 * max pooling on tie-free data, batch norm in training and eval with the running statistics,
 * means over H and W broadcast back. The pyramid is in test_pyramid, dropout in test_dropout.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layer.h"
#include "tests/support/harness.h"
#include "tests/support/ref.h"

#define TOL 1e-5

/* ------------------------------------------------------------------ helpers */

/* One input: its float data (what the op sees), the exact double copy (what the reference
 * sees), and the tensor. */
typedef struct arr {
    bk_shape s;
    size_t n;
    float *f;
    double *d;
    bk_tensor *t;
} arr;

static arr arr_take(bk_ctx *ctx, bk_shape s, float *f) {
    arr a = {s, ref_numel(s), f, NULL, NULL};
    a.d = ref_from_float(f, a.n);
    a.t = bk_tensor_from_nchw(ctx, s, f);
    return a;
}

static arr arr_uniform(bk_ctx *ctx, bk_shape s, float lo, float hi, uint64_t seed) {
    float *f = malloc(ref_numel(s) * sizeof *f);
    bk_test_fill_uniform(f, ref_numel(s), lo, hi, seed);
    return arr_take(ctx, s, f);
}

/* Values in +-[lo, hi]: away from a kink at 0, or safe denominators. */
static arr arr_away(bk_ctx *ctx, bk_shape s, float lo, float hi, uint64_t seed) {
    float *f = malloc(ref_numel(s) * sizeof *f);
    bk_test_fill_away_from_zero(f, ref_numel(s), lo, hi, seed);
    return arr_take(ctx, s, f);
}

/* The same data in a persistent tensor (a parameter: conv weights take the weight-cache path). */
static arr arr_persistent(bk_ctx *ctx, bk_shape s, float lo, float hi, uint64_t seed) {
    arr a = arr_uniform(ctx, s, lo, hi, seed);
    a.t = bk_tensor_new_persistent(ctx, "param", 4, s);
    bk_tensor_set_nchw(a.t, a.f);
    bk_tensor_touch(a.t);
    return a;
}

static void arr_free(arr *a) {
    free(a->f);
    free(a->d);
    a->f = NULL;
    a->d = NULL;
}

static double *dalloc(bk_shape s) { return malloc((ref_numel(s) ? ref_numel(s) : 1) * sizeof(double)); }

static const char *shp(bk_shape s, char *buf) {
    snprintf(buf, 64, "%lldx%lldx%lldx%lld", (long long)s.n, (long long)s.c, (long long)s.h,
             (long long)s.w);
    return buf;
}

/* t has shape s and is within tol of want (NCHW doubles). */
static bool check_t(const char *what, const bk_tensor *t, bk_shape s, const double *want,
                    double tol) {
    char b1[64], b2[64];
    if (!t) {
        EXPECT(0, "%s: no tensor", what);
        return false;
    }
    if (!bk_shape_eq(bk_shape_of(t), s)) {
        EXPECT(0, "%s: shape %s, want %s", what, shp(bk_shape_of(t), b1), shp(s, b2));
        return false;
    }
    float *v = bk_test_nchw(t);
    double *g = ref_from_float(v, ref_numel(s));
    bool ok = EXPECT_CLOSE_D(what, g, want, ref_numel(s), tol);
    free(v);
    free(g);
    return ok;
}

#define WHAT(...) (snprintf(what, sizeof what, __VA_ARGS__), what)

/* ------------------------------------------------------------------ convolutions */

typedef struct conv_cfg {
    const char *name;
    bk_shape x;         /* N,C,H,W (input of the op's forward direction) */
    int o, kh, kw;      /* output channels, kernel */
    bk_conv_opts opt;   /* stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, groups, out_pad_h/w */
    bool bias;
    bool residual;      /* conv2d only */
    bk_act act;         /* conv2d only */
    bool persistent;    /* weights as a persistent parameter */
} conv_cfg;

#define OPTS(s, p, g) {s, s, p, p, p, p, g, 0, 0}
#define NOACT {.kind = BK_ACT_NONE}
#define LEAKY(a) {.kind = BK_ACT_RELU, .alpha = a}
#define CLIP(lo, hi) {.kind = BK_ACT_CLIP, .alpha = lo, .beta = hi}

static const conv_cfg conv2d_cfgs[] = {
    {"c3_9x11_k3_s1_p1", {2, 3, 9, 11}, 13, 3, 3, OPTS(1, 1, 1), true, false, NOACT, false},
    {"c6_7x9_k1_relu6", {2, 6, 7, 9}, 24, 1, 1, OPTS(1, 0, 1), true, false, CLIP(0.0f, 6.0f), false},
    {"c16_9x7_k3_clip_residual", {1, 16, 9, 7}, 16, 3, 3, OPTS(1, 1, 1), true, true, CLIP(-0.5f, 0.5f), true},
    {"c13_7x5_k3_s2_asym", {1, 13, 7, 5}, 17, 3, 3, {2, 2, 1, 0, 0, 2, 1, 0, 0}, true, false, NOACT, true},
    {"c17_13x3_k5_s2_p2", {2, 17, 13, 3}, 3, 5, 5, OPTS(2, 2, 1), false, false, NOACT, false},
    {"c3_9x11_k4_s2_p1", {2, 3, 9, 11}, 13, 4, 4, OPTS(2, 1, 1), true, false, NOACT, true},
    {"c17_9x11_k1", {1, 17, 9, 11}, 13, 1, 1, OPTS(1, 0, 1), true, false, NOACT, false},
    {"c13_7x5_k1_s2", {2, 13, 7, 5}, 3, 1, 1, OPTS(2, 0, 1), true, false, NOACT, false},
    {"c13_13x3_k4x3_sh2sw1_asym", {2, 13, 13, 3}, 17, 4, 3, {2, 1, 2, 1, 1, 0, 1, 0, 0}, true, false, NOACT, false},
    {"g2_c26_o34_9x11_k3", {1, 26, 9, 11}, 34, 3, 3, OPTS(1, 1, 2), true, false, NOACT, false},
    {"g3_c39_o51_7x5_k4_s2_asym", {2, 39, 7, 5}, 51, 4, 4, {2, 2, 1, 2, 2, 1, 3, 0, 0}, true, false, NOACT, true},
    {"g3_c6_o9_13x3_k3", {2, 6, 13, 3}, 9, 3, 3, OPTS(1, 1, 3), false, false, NOACT, false},
    {"g2_c26_o34_7x5_k5_s2", {1, 26, 7, 5}, 34, 5, 5, OPTS(2, 2, 2), true, false, NOACT, false},
    {"dw_c13_9x11_k3", {2, 13, 9, 11}, 13, 3, 3, OPTS(1, 1, 13), true, false, NOACT, false},
    {"dw_c17_7x5_k5_s2", {1, 17, 7, 5}, 17, 5, 5, OPTS(2, 2, 17), true, false, NOACT, true},
    {"dw_c3_13x3_k4_s2_asym", {2, 3, 13, 3}, 3, 4, 4, {2, 2, 2, 1, 1, 2, 3, 0, 0}, false, false, NOACT, false},
    {"dwx2_c13_o26_9x11_k3", {1, 13, 9, 11}, 26, 3, 3, OPTS(1, 1, 13), true, false, NOACT, false},
    {"fused_leaky_res_c13_9x11", {2, 13, 9, 11}, 17, 3, 3, OPTS(1, 1, 1), true, true, LEAKY(0.2f), false},
    {"fused_leaky_res_c3_s2_k4", {1, 3, 9, 11}, 13, 4, 4, OPTS(2, 1, 1), true, true, LEAKY(0.2f), true},
    {"fused_relu_res_c17_7x5", {2, 17, 7, 5}, 3, 3, 3, OPTS(1, 1, 1), true, true, LEAKY(0.0f), false},
    {"fused_leaky_c13_g13_13x3", {1, 13, 13, 3}, 13, 3, 3, OPTS(1, 1, 13), true, false, LEAKY(0.2f), false},
    {"fused_leaky_res_g2_c26", {1, 26, 7, 5}, 34, 3, 3, {2, 2, 0, 1, 2, 1, 2, 0, 0}, false, true, LEAKY(0.1f), false},
};

static const conv_cfg convt_cfgs[] = {
    {"t_k4_s2_p1_c13_o17_7x5", {2, 13, 7, 5}, 17, 4, 4, OPTS(2, 1, 1), true, false, NOACT, false},
    {"t_k3_s2_p1_op1_c17_o3_9x11", {1, 17, 9, 11}, 3, 3, 3, {2, 2, 1, 1, 1, 1, 1, 1, 1}, true, false, NOACT, true},
    {"t_k4_s2_p1_c3_o13_13x3", {2, 3, 13, 3}, 13, 4, 4, OPTS(2, 1, 1), false, false, NOACT, false},
    {"t_k3_s1_p1_c13_o3", {2, 13, 9, 11}, 3, 3, 3, OPTS(1, 1, 1), true, false, NOACT, false},
    {"t_g2_k4_s2_p1_c26_o34", {1, 26, 7, 5}, 34, 4, 4, OPTS(2, 1, 2), true, false, NOACT, true},
    {"t_g3_k3_s2_p1_op1_c39_o51", {2, 39, 7, 5}, 51, 3, 3, {2, 2, 1, 1, 1, 1, 3, 1, 1}, true, false, NOACT, false},
    {"t_dw_k4_s2_p1_c13", {2, 13, 9, 11}, 13, 4, 4, OPTS(2, 1, 13), true, false, NOACT, false},
    {"t_dw_k3_s2_p1_op1_c17", {1, 17, 7, 5}, 17, 3, 3, {2, 2, 1, 1, 1, 1, 17, 1, 1}, false, false, NOACT, false},
    {"t_asym_k3_s2_op10_c13_o17", {2, 13, 7, 5}, 17, 3, 3, {2, 2, 1, 0, 2, 1, 1, 1, 0}, true, false, NOACT, false},
    {"t_k5_sh2sw1_c3_o13", {1, 3, 9, 11}, 13, 5, 5, {2, 1, 2, 2, 2, 2, 1, 1, 0}, true, false, NOACT, false},
};

/* x, w, optional bias, optional residual, gy; reference forward / data / weights / bias
 * gradients; our forward (builder and raw), bwd_data, bwd_weights, bwd_weights_bias (grad mode
 * off and recorded), and the autograd gradients of the builder. */
static void run_conv(const conv_cfg *c, bool transposed, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256];
    const int G = c->opt.groups > 0 ? c->opt.groups : 1;
    const bk_shape xs = c->x;
    const bk_shape ws = transposed ? (bk_shape){xs.c, c->o / G, c->kh, c->kw}
                                   : (bk_shape){c->o, xs.c / G, c->kh, c->kw};
    const bk_shape ys = transposed ? ref_conv_transpose2d_out_shape(xs, ws, c->opt)
                                   : ref_conv2d_out_shape(xs, ws, c->opt);
    const bk_shape bs = {1, c->o, 1, 1};
    const bool act = !transposed && c->act.kind == BK_ACT_RELU;
    const bool clip = !transposed && c->act.kind == BK_ACT_CLIP;

    bk_conv_geom geom = bk_conv_geom_make(xs, ws, c->opt, transposed);
    EXPECT(geom.oc == ys.c && geom.oh == ys.h && geom.ow == ys.w,
           "%s: geometry output %lldx%lldx%lld, want %lldx%lldx%lld", c->name,
           (long long)geom.oc, (long long)geom.oh, (long long)geom.ow, (long long)ys.c,
           (long long)ys.h, (long long)ys.w);
    bk_shape gws = bk_conv_weight_shape(&geom);
    EXPECT(bk_shape_eq(gws, ws), "%s: weight shape of the geometry differs", c->name);

    arr x = arr_uniform(ctx, xs, -1, 1, seed + 1);
    arr w = c->persistent ? arr_persistent(ctx, ws, -1, 1, seed + 2)
                          : arr_uniform(ctx, ws, -1, 1, seed + 2);
    arr b = arr_uniform(ctx, bs, -1, 1, seed + 3);
    arr r = arr_uniform(ctx, ys, -1, 1, seed + 4);
    arr gy = arr_uniform(ctx, ys, -1, 1, seed + 5);
    bk_tensor *bt = c->bias ? b.t : NULL, *rt = c->residual ? r.t : NULL;

    /* reference */
    double *z = dalloc(ys), *y = dalloc(ys), *gz = dalloc(ys);
    double *gx = dalloc(xs), *gw = dalloc(ws), *gb = dalloc(bs);
    if (transposed)
        ref_conv_transpose2d_fwd(x.d, xs, w.d, ws, c->bias ? b.d : NULL, c->opt, z);
    else
        ref_conv2d_fwd(x.d, xs, w.d, ws, c->bias ? b.d : NULL, c->opt, z);
    if (c->residual) ref_binary(REF_ADD, z, ys, r.d, ys, z);
    if (act) {
        ref_leaky_relu(z, ref_numel(ys), c->act.alpha, y);
        ref_relu_bwd(gy.d, y, ref_numel(ys), c->act.alpha, gz);
    } else if (clip) { /* gradient strictly inside (lo, hi), as F.relu6 */
        for (size_t i = 0; i < ref_numel(ys); i++) {
            y[i] = z[i] < c->act.alpha ? c->act.alpha : z[i] > c->act.beta ? c->act.beta : z[i];
            gz[i] = z[i] > c->act.alpha && z[i] < c->act.beta ? gy.d[i] : 0.0;
        }
    } else {
        memcpy(y, z, ref_numel(ys) * sizeof *y);
        memcpy(gz, gy.d, ref_numel(ys) * sizeof *gz);
    }

    /* forward */
    bk_tensor *yt = transposed ? bk_conv_transpose2d(ctx, x.t, w.t, bt, c->opt)
                               : bk_conv2d(ctx, x.t, w.t, bt, c->opt, c->act, rt);
    check_t(WHAT("%s: forward", c->name), yt, ys, y, TOL);
    yt = bk_conv_fwd(ctx, x.t, w.t, bt, &geom, transposed ? bk_act_none() : c->act, rt);
    check_t(WHAT("%s: raw forward", c->name), yt, ys, y, TOL);

    /* the raw directions, on gy (not masked: they are plain linear maps) */
    if (transposed) {
        ref_conv_transpose2d_bwd_data(gy.d, w.d, ws, xs, c->opt, gx);
        ref_conv_transpose2d_bwd_weights(x.d, xs, gy.d, ws, c->opt, gw);
    } else {
        ref_conv2d_bwd_data(gy.d, w.d, ws, xs, c->opt, gx);
        ref_conv2d_bwd_weights(x.d, xs, gy.d, ws, c->opt, gw);
    }
    ref_bias_grad(gy.d, ys, gb);
    check_t(WHAT("%s: bwd_data", c->name), bk_conv_bwd_data(ctx, gy.t, w.t, &geom), xs, gx, TOL);
    check_t(WHAT("%s: bwd_weights", c->name), bk_conv_bwd_weights(ctx, x.t, gy.t, &geom), ws, gw,
            TOL);
    for (int mode = 0; mode < 2; mode++) {
        /* mode 0: grad mode off (one fused oneDNN call); 1: grad mode on with sources that
         * require grad (the recorded path) */
        bool prev = bk_set_grad_enabled(ctx, mode == 1);
        x.t->requires_grad = gy.t->requires_grad = mode == 1;
        EXPECT(bk_would_record(ctx, x.t, gy.t) == (mode == 1), "%s: recording state", c->name);
        bk_tensor *tw = NULL, *tb = NULL;
        bk_conv_bwd_weights_bias(ctx, x.t, gy.t, &geom, &tw, &tb);
        check_t(WHAT("%s: bwd_weights_bias[%s] w", c->name, mode ? "rec" : "off"), tw, ws, gw, TOL);
        check_t(WHAT("%s: bwd_weights_bias[%s] b", c->name, mode ? "rec" : "off"), tb, bs, gb, TOL);
        tw = tb = NULL;
        bk_conv_bwd_weights_bias(ctx, x.t, gy.t, &geom, NULL, &tb);
        check_t(WHAT("%s: bwd_weights_bias[%s] b only", c->name, mode ? "rec" : "off"), tb, bs, gb,
                TOL);
        bk_conv_bwd_weights_bias(ctx, x.t, gy.t, &geom, &tw, NULL);
        check_t(WHAT("%s: bwd_weights_bias[%s] w only", c->name, mode ? "rec" : "off"), tw, ws, gw,
                TOL);
        x.t->requires_grad = gy.t->requires_grad = false;
        bk_set_grad_enabled(ctx, prev);
    }

    /* autograd through the builder: gradients of <gy, y> w.r.t. x, w, b, residual */
    if (transposed) {
        ref_conv_transpose2d_bwd_data(gz, w.d, ws, xs, c->opt, gx);
        ref_conv_transpose2d_bwd_weights(x.d, xs, gz, ws, c->opt, gw);
    } else {
        ref_conv2d_bwd_data(gz, w.d, ws, xs, c->opt, gx);
        ref_conv2d_bwd_weights(x.d, xs, gz, ws, c->opt, gw);
    }
    ref_bias_grad(gz, ys, gb);
    bk_tensor *in[4] = {x.t, w.t, bt, rt}, *gr[4] = {0};
    int k = 2;
    if (bt) in[k++] = bt;
    if (rt) in[k++] = rt;
    for (int i = 0; i < k; i++) in[i]->requires_grad = true;
    yt = transposed ? bk_conv_transpose2d(ctx, x.t, w.t, bt, c->opt)
                    : bk_conv2d(ctx, x.t, w.t, bt, c->opt, c->act, rt);
    bk_grad(ctx, yt, gy.t, k, in, gr, false);
    check_t(WHAT("%s: autograd dx", c->name), gr[0], xs, gx, TOL);
    check_t(WHAT("%s: autograd dw", c->name), gr[1], ws, gw, TOL);
    k = 2;
    if (bt) check_t(WHAT("%s: autograd db", c->name), gr[k++], bs, gb, TOL);
    if (rt) check_t(WHAT("%s: autograd dresidual", c->name), gr[k++], ys, gz, TOL);
    for (int i = 0; i < 4; i++)
        if (in[i]) in[i]->requires_grad = false;

    if (c->persistent) bk_tensor_free(ctx, w.t);
    arr_free(&x);
    arr_free(&w);
    arr_free(&b);
    arr_free(&r);
    arr_free(&gy);
    free(z), free(y), free(gz), free(gx), free(gw), free(gb);
    bk_step_end(ctx);
}

static void run_conv_set(const conv_cfg *cfgs, int n, bool transposed, const char *prefix) {
    for (int i = 0; i < n; i++)
        if (!prefix || !strncmp(cfgs[i].name, prefix, strlen(prefix)))
            run_conv(&cfgs[i], transposed, 100 * (uint64_t)i + (transposed ? 7 : 0));
}

#define NCFG(a) ((int)(sizeof a / sizeof a[0]))

static void conv2d_plain(void) { run_conv_set(conv2d_cfgs, NCFG(conv2d_cfgs), false, "c"); }
static void conv2d_groups(void) { run_conv_set(conv2d_cfgs, NCFG(conv2d_cfgs), false, "g"); }
static void conv2d_depthwise(void) { run_conv_set(conv2d_cfgs, NCFG(conv2d_cfgs), false, "dw"); }
static void conv2d_fused(void) { run_conv_set(conv2d_cfgs, NCFG(conv2d_cfgs), false, "fused"); }
static void conv_transpose2d(void) { run_conv_set(convt_cfgs, NCFG(convt_cfgs), true, NULL); }

/* ------------------------------------------------------------------ instance norm */

static void run_instance_norm(bk_shape s, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    const size_t n = ref_numel(s), m = (size_t)(s.h * s.w);
    const float eps = 1e-5f;
    /* instance (n,c) = mean + scale * u, with a different mean in [-2,2] and scale in
     * [0.25,4] (log-uniform) per instance */
    float *f = malloc(n * sizeof *f), *mean = malloc((size_t)(s.n * s.c) * sizeof *mean),
          *lsc = malloc((size_t)(s.n * s.c) * sizeof *lsc);
    bk_test_fill_uniform(f, n, -1, 1, seed);
    bk_test_fill_uniform(mean, (size_t)(s.n * s.c), -2, 2, seed + 1);
    bk_test_fill_uniform(lsc, (size_t)(s.n * s.c), logf(0.25f), logf(4.0f), seed + 2);
    for (size_t i = 0; i < n; i++) f[i] = mean[i / m] + expf(lsc[i / m]) * f[i];
    arr x = arr_take(ctx, s, f);
    arr gy = arr_uniform(ctx, s, -1, 1, seed + 3);
    double *y = dalloc(s), *gx = dalloc(s);
    ref_instance_norm(x.d, s, eps, y);
    ref_instance_norm_bwd(x.d, gy.d, s, eps, gx);

    bk_tensor *yt = bk_instance_norm(ctx, x.t, eps);
    check_t(WHAT("instance_norm %s: forward", shp(s, sb)), yt, s, y, TOL);
    check_t(WHAT("instance_norm %s: bwd", shp(s, sb)),
            bk_instance_norm_bwd(ctx, x.t, gy.t, yt), s, gx, TOL);
    x.t->requires_grad = true;
    yt = bk_instance_norm(ctx, x.t, eps);
    check_t(WHAT("instance_norm %s: forward (recorded)", shp(s, sb)), yt, s, y, TOL);
    bk_tensor *g = NULL;
    bk_grad(ctx, yt, gy.t, 1, &x.t, &g, false);
    check_t(WHAT("instance_norm %s: autograd", shp(s, sb)), g, s, gx, TOL);

    arr_free(&x);
    arr_free(&gy);
    free(mean), free(lsc), free(y), free(gx);
    bk_step_end(ctx);
}

static void instance_norm(void) {
    run_instance_norm((bk_shape){2, 13, 9, 11}, 1);
    run_instance_norm((bk_shape){1, 17, 7, 5}, 2);
    run_instance_norm((bk_shape){2, 3, 13, 3}, 3);
    run_instance_norm((bk_shape){2, 17, 1, 3}, 4);
}

static void instance_norm_large(void) { run_instance_norm((bk_shape){2, 17, 64, 96}, 5); }

/* ------------------------------------------------------------------ element-wise */

static void run_eltwise(bk_shape s, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    const size_t n = ref_numel(s);
    arr x = arr_away(ctx, s, 0.05f, 2.0f, seed);
    arr p = arr_uniform(ctx, s, 0.01f, 3.0f, seed + 1);
    arr gy = arr_uniform(ctx, s, -1, 1, seed + 2);
    double *y = dalloc(s), *g = dalloc(s);
    const float slopes[] = {0.0f, 0.2f, 0.01f};
    for (int i = 0; i < 3; i++) {
        ref_leaky_relu(x.d, n, slopes[i], y);
        bk_tensor *yt = bk_leaky_relu(ctx, x.t, slopes[i]);
        check_t(WHAT("leaky_relu(%g) %s", slopes[i], shp(s, sb)), yt, s, y, TOL);
        ref_relu_bwd(gy.d, y, n, slopes[i], g);
        check_t(WHAT("relu_bwd(%g) %s", slopes[i], shp(s, sb)), bk_relu_bwd(ctx, gy.t, yt, slopes[i]),
                s, g, TOL);
        x.t->requires_grad = true;
        bk_tensor *gt = NULL;
        bk_grad(ctx, bk_leaky_relu(ctx, x.t, slopes[i]), gy.t, 1, &x.t, &gt, false);
        check_t(WHAT("leaky_relu(%g) %s: autograd", slopes[i], shp(s, sb)), gt, s, g, TOL);
        x.t->requires_grad = false;
    }
    ref_leaky_relu(x.d, n, 0.0, y);
    check_t(WHAT("relu %s", shp(s, sb)), bk_relu(ctx, x.t), s, y, TOL);
    ref_affine(x.d, n, -1.5, 0.25, y);
    check_t(WHAT("affine %s", shp(s, sb)), bk_affine(ctx, x.t, -1.5f, 0.25f), s, y, TOL);
    ref_abs(x.d, n, y);
    check_t(WHAT("abs %s", shp(s, sb)), bk_abs(ctx, x.t), s, y, TOL);
    ref_sign(x.d, n, y);
    check_t(WHAT("sign %s", shp(s, sb)), bk_sign(ctx, x.t), s, y, 0.0);
    ref_square(x.d, n, y);
    check_t(WHAT("square %s", shp(s, sb)), bk_square(ctx, x.t), s, y, TOL);
    ref_sqrt(p.d, n, y);
    check_t(WHAT("sqrt %s", shp(s, sb)), bk_sqrt(ctx, p.t), s, y, TOL);
    arr_free(&x);
    arr_free(&p);
    arr_free(&gy);
    free(y), free(g);
    bk_step_end(ctx);
}

static void eltwise(void) {
    run_eltwise((bk_shape){2, 13, 9, 11}, 11);
    run_eltwise((bk_shape){1, 17, 7, 5}, 12);
    run_eltwise((bk_shape){1, 3, 1, 1}, 13);
    run_eltwise((bk_shape){2, 17, 64, 96}, 14);
}

/* ------------------------------------------------------------------ broadcasting */

/* A broadcast pattern: which dimensions of the full shape are 1. */
static bk_shape pat(bk_shape f, unsigned ones) { return ref_reduced_shape(f, ones); }

static bk_tensor *binop(bk_ctx *ctx, ref_binop op, bk_tensor *a, bk_tensor *b) {
    switch (op) {
    case REF_ADD: return bk_add(ctx, a, b);
    case REF_SUB: return bk_sub(ctx, a, b);
    case REF_MUL: return bk_mul(ctx, a, b);
    case REF_DIV: return bk_div(ctx, a, b);
    }
    return NULL;
}

/* a (shape as) op b (shape bs): forward, and the autograd gradients of <gy, a op b> against
 * ga = sum_to(gy * da), gb = sum_to(gy * db) computed naively. */
static void run_binary(ref_binop op, bk_shape as, bk_shape bs, uint64_t seed) {
    static const char *names[] = {"add", "sub", "mul", "div"};
    bk_ctx *ctx = bk_test_ctx();
    char what[256], s1[64], s2[64];
    const bk_shape ys = ref_broadcast_shape(as, bs);
    arr a = arr_uniform(ctx, as, -1, 1, seed);
    arr b = op == REF_DIV ? arr_away(ctx, bs, 0.5f, 2.0f, seed + 1)
                          : arr_uniform(ctx, bs, -1, 1, seed + 1);
    arr gy = arr_uniform(ctx, ys, -1, 1, seed + 2);
    double *y = dalloc(ys), *t1 = dalloc(ys), *t2 = dalloc(ys);
    double *ga = dalloc(as), *gb = dalloc(bs);
    ref_binary(op, a.d, as, b.d, bs, y);
    const char *nm = names[op];
    check_t(WHAT("%s %s (op) %s", nm, shp(as, s1), shp(bs, s2)), binop(ctx, op, a.t, b.t), ys, y,
            TOL);

    /* d(a op b)/da and /db, element-wise on the broadcast shape */
    double one = 1.0, mone = -1.0;
    const bk_shape sc = {1, 1, 1, 1};
    switch (op) {
    case REF_ADD:
        ref_binary(REF_MUL, gy.d, ys, &one, sc, t1);
        ref_binary(REF_MUL, gy.d, ys, &one, sc, t2);
        break;
    case REF_SUB:
        ref_binary(REF_MUL, gy.d, ys, &one, sc, t1);
        ref_binary(REF_MUL, gy.d, ys, &mone, sc, t2);
        break;
    case REF_MUL:
        ref_binary(REF_MUL, gy.d, ys, b.d, bs, t1);
        ref_binary(REF_MUL, gy.d, ys, a.d, as, t2);
        break;
    case REF_DIV: /* d/da = 1/b, d/db = -a/b^2 = -y/b */
        ref_binary(REF_DIV, gy.d, ys, b.d, bs, t1);
        ref_binary(REF_MUL, t1, ys, y, ys, t2);
        ref_binary(REF_MUL, t2, ys, &mone, sc, t2);
        break;
    }
    ref_sum_dims(t1, ys, ref_dims_to(ys, as), ga);
    ref_sum_dims(t2, ys, ref_dims_to(ys, bs), gb);
    a.t->requires_grad = b.t->requires_grad = true;
    bk_tensor *in[2] = {a.t, b.t}, *g[2] = {0};
    bk_grad(ctx, binop(ctx, op, a.t, b.t), gy.t, 2, in, g, false);
    check_t(WHAT("%s %s (op) %s: grad a", nm, shp(as, s1), shp(bs, s2)), g[0], as, ga, TOL);
    check_t(WHAT("%s %s (op) %s: grad b", nm, shp(as, s1), shp(bs, s2)), g[1], bs, gb, TOL);
    arr_free(&a);
    arr_free(&b);
    arr_free(&gy);
    free(y), free(t1), free(t2), free(ga), free(gb);
    bk_step_end(ctx);
}

static void run_broadcast(bk_shape f, uint64_t seed) {
    /* patterns for the broadcast operand (dimensions of size 1) */
    static const unsigned pats[] = {
        REF_N | REF_H | REF_W,         /* 1,C,1,1 per channel */
        REF_C | REF_H | REF_W,         /* N,1,1,1 per sample */
        REF_N | REF_C | REF_H | REF_W, /* scalar */
        REF_C,                         /* N,1,H,W */
        REF_W,                         /* N,C,H,1 */
        REF_H,                         /* N,C,1,W */
        REF_N,                         /* 1,C,H,W */
        REF_N | REF_C,                 /* 1,1,H,W */
        REF_H | REF_W,                 /* N,C,1,1 */
        0,                             /* same shape */
    };
    /* both operands broadcast */
    static const unsigned pairs[][2] = {
        {REF_C, REF_N | REF_H | REF_W},                  /* N,1,H,W op 1,C,1,1 */
        {REF_H | REF_W, REF_N | REF_C},                  /* N,C,1,1 op 1,1,H,W */
        {REF_W, REF_N | REF_C | REF_H},                  /* N,C,H,1 op 1,1,1,W */
        {REF_C | REF_H | REF_W, REF_N},                  /* N,1,1,1 op 1,C,H,W */
        {REF_N | REF_C | REF_H | REF_W, REF_C | REF_H},  /* scalar op N,1,1,W */
    };
    for (int op = 0; op < 4; op++) {
        for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
            run_binary((ref_binop)op, f, pat(f, pats[i]), seed++);
            if (pats[i]) run_binary((ref_binop)op, pat(f, pats[i]), f, seed++);
        }
        for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
            run_binary((ref_binop)op, pat(f, pairs[i][0]), pat(f, pairs[i][1]), seed++);
            run_binary((ref_binop)op, pat(f, pairs[i][1]), pat(f, pairs[i][0]), seed++);
        }
    }
}

static void broadcast_c13(void) { run_broadcast((bk_shape){2, 13, 9, 11}, 1000); }
static void broadcast_c17(void) { run_broadcast((bk_shape){1, 17, 7, 5}, 2000); }
static void broadcast_large(void) { run_broadcast((bk_shape){2, 17, 64, 96}, 3000); }

/* ------------------------------------------------------------------ reductions */

static void run_reduce(bk_shape s, float lo, float hi, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64], tb[64];
    arr x = arr_uniform(ctx, s, lo, hi, seed);
    double *y = dalloc(s), *e = dalloc(s);
    for (unsigned dims = 0; dims < 16; dims++) {
        bk_shape rs = ref_reduced_shape(s, dims);
        ref_sum_dims(x.d, s, dims, y);
        bk_tensor *yt = bk_sum_to(ctx, x.t, rs);
        check_t(WHAT("sum_to %s -> %s", shp(s, sb), shp(rs, tb)), yt, rs, y, TOL);
        /* expand back from the exact reduced values */
        arr r = arr_uniform(ctx, rs, -1, 1, seed + 100 + dims);
        ref_expand(r.d, rs, s, e);
        check_t(WHAT("expand %s -> %s", shp(rs, tb), shp(s, sb)), bk_expand(ctx, r.t, s), s, e, TOL);
        arr_free(&r);
    }
    const double hw = (double)(s.h * s.w), nel = (double)ref_numel(s), sc[] = {1.0 / (double)s.c};
    const double inv_chw[] = {1.0 / (double)(s.c * hw)}, inv_n[] = {1.0 / nel};
    const bk_shape one = {1, 1, 1, 1};
    unsigned all = REF_N | REF_C | REF_H | REF_W, per_sample = REF_C | REF_H | REF_W;
    ref_sum_dims(x.d, s, all, y);
    check_t(WHAT("sum %s", shp(s, sb)), bk_sum(ctx, x.t), one, y, TOL);
    ref_binary(REF_MUL, y, one, inv_n, one, y);
    check_t(WHAT("mean %s", shp(s, sb)), bk_mean(ctx, x.t), one, y, TOL);
    bk_shape ps = ref_reduced_shape(s, per_sample), cs = ref_reduced_shape(s, REF_C);
    ref_sum_dims(x.d, s, per_sample, y);
    check_t(WHAT("sum_per_sample %s", shp(s, sb)), bk_sum_per_sample(ctx, x.t), ps, y, TOL);
    ref_binary(REF_MUL, y, ps, inv_chw, one, y);
    check_t(WHAT("mean_per_sample %s", shp(s, sb)), bk_mean_per_sample(ctx, x.t), ps, y, TOL);
    ref_sum_dims(x.d, s, REF_C, y);
    check_t(WHAT("sum_channels %s", shp(s, sb)), bk_sum_channels(ctx, x.t), cs, y, TOL);
    ref_binary(REF_MUL, y, cs, sc, one, y);
    check_t(WHAT("mean_channels %s", shp(s, sb)), bk_mean_channels(ctx, x.t), cs, y, TOL);
    arr_free(&x);
    free(y), free(e);
    bk_step_end(ctx);
}

static void reduce_c13(void) {
    run_reduce((bk_shape){2, 13, 9, 11}, -1, 1, 1);
    run_reduce((bk_shape){1, 13, 13, 3}, -1, 1, 2);
}
static void reduce_c17(void) {
    run_reduce((bk_shape){2, 17, 7, 5}, -1, 1, 3);
    run_reduce((bk_shape){1, 17, 9, 11}, 0, 1, 4);
}
static void reduce_large(void) {
    run_reduce((bk_shape){2, 17, 64, 96}, -1, 1, 5);
    run_reduce((bk_shape){2, 17, 64, 96}, 0, 1, 6);
}

/* ================================================================== issue 3 ops */

#define TOL_MOVE 1e-6 /* data movement: exact up to the float sums of reflect_pad_bwd */

/* The gradient of <gy, y> w.r.t. x, y built by the caller with x->requires_grad set. */
static void check_grad(bk_ctx *ctx, const char *what, bk_tensor *y, bk_tensor *gy, bk_tensor *x,
                       const double *want, double tol) {
    bk_tensor *g = NULL;
    bk_grad(ctx, y, gy, 1, &x, &g, false);
    check_t(what, g, bk_shape_of(x), want, tol);
}

/* ------------------------------------------------------------------ element-wise */

typedef struct un_cfg {
    const char *name;
    ref_unop op;
    float a, b;         /* clamp bounds / pow exponent */
    float lo, hi;       /* data range */
    float edge[4];      /* exact values injected (kinks: torch's choice of gradient there) */
    int nedge;
} un_cfg;

static const un_cfg un_cfgs[] = {
    {"clamp(-0.4,0.6)", REF_CLAMP, -0.4f, 0.6f, -1.5f, 1.5f, {-0.4f, 0.6f}, 2},
    {"clamp(0.25,0.25)", REF_CLAMP, 0.25f, 0.25f, -1, 1, {0.25f}, 1},
    {"relu6", REF_RELU6, 0, 6, -3, 9, {0.0f, 6.0f}, 2},
    {"hardswish", REF_HARDSWISH, 0, 0, -5, 5, {-3.0f, 3.0f, 0.0f}, 3},
    {"sigmoid", REF_SIGMOID, 0, 0, -6, 6, {0}, 0},
    {"tanh", REF_TANH, 0, 0, -4, 4, {0}, 0},
    {"exp", REF_EXP, 0, 0, -3, 3, {0}, 0},
    {"log", REF_LOG, 0, 0, 0.05f, 5, {0}, 0},
    {"pow(2)", REF_POW, 2, 0, 0.2f, 3, {0}, 0},
    {"pow(1)", REF_POW, 1, 0, 0.2f, 3, {0}, 0},
    {"pow(3)", REF_POW, 3, 0, 0.2f, 3, {0}, 0},
    {"pow(0.5)", REF_POW, 0.5f, 0, 0.2f, 3, {0}, 0},
    {"pow(-1.5)", REF_POW, -1.5f, 0, 0.2f, 3, {0}, 0},
    {"pow(2.2)", REF_POW, 2.2f, 0, 0.2f, 3, {0}, 0},
};

static bk_tensor *un_build(bk_ctx *ctx, const un_cfg *u, bk_tensor *x) {
    switch (u->op) {
    case REF_CLAMP: return bk_clamp(ctx, x, u->a, u->b);
    case REF_RELU6: return bk_relu6(ctx, x);
    case REF_HARDSWISH: return bk_hardswish(ctx, x);
    case REF_SIGMOID: return bk_sigmoid(ctx, x);
    case REF_TANH: return bk_tanh(ctx, x);
    case REF_EXP: return bk_exp(ctx, x);
    case REF_LOG: return bk_log(ctx, x);
    case REF_POW: return bk_pow(ctx, x, u->a);
    }
    return NULL;
}

static void run_unary(bk_shape s, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    const size_t n = ref_numel(s);
    arr gy = arr_uniform(ctx, s, -1, 1, seed + 1);
    double *y = dalloc(s), *g = dalloc(s);
    for (size_t k = 0; k < sizeof un_cfgs / sizeof un_cfgs[0]; k++) {
        const un_cfg *u = &un_cfgs[k];
        float *f = malloc(n * sizeof *f);
        bk_test_fill_uniform(f, n, u->lo, u->hi, seed + 10 * k);
        for (size_t i = 0; u->nedge && i < n; i += 5) f[i] = u->edge[(i / 5) % u->nedge];
        arr x = arr_take(ctx, s, f);
        ref_unary(u->op, x.d, n, u->a, u->b, y);
        check_t(WHAT("%s %s", u->name, shp(s, sb)), un_build(ctx, u, x.t), s, y, TOL);
        ref_unary_bwd(u->op, x.d, gy.d, n, u->a, u->b, g);
        x.t->requires_grad = true;
        bk_tensor *yt = un_build(ctx, u, x.t);
        check_t(WHAT("%s %s (recorded)", u->name, shp(s, sb)), yt, s, y, TOL);
        check_grad(ctx, WHAT("%s %s: autograd", u->name, shp(s, sb)), yt, gy.t, x.t, g, TOL);
        x.t->requires_grad = false;
        if (u->op == REF_CLAMP || u->op == REF_RELU6) { /* the public backward, both kinds */
            for (int inc = 0; inc < 2; inc++) {
                ref_clamp_bwd(gy.d, x.d, n, u->a, u->b, inc, g);
                check_t(WHAT("clamp_bwd(%g,%g,%s) %s", u->a, u->b, inc ? "inclusive" : "exclusive",
                             shp(s, sb)),
                        bk_clamp_bwd(ctx, gy.t, x.t, u->a, u->b, inc), s, g, 0.0);
            }
        }
        arr_free(&x);
    }
    arr_free(&gy);
    free(y), free(g);
    bk_step_end(ctx);
}

static void unary_new(void) {
    run_unary((bk_shape){2, 13, 9, 11}, 21);
    run_unary((bk_shape){1, 17, 7, 5}, 22);
    run_unary((bk_shape){2, 3, 13, 3}, 23);
    run_unary((bk_shape){2, 17, 64, 96}, 24);
}

/* ------------------------------------------------------------------ data movement */

/* concat of n inputs whose extents along axis are ext[0..n-1], the rest from s */
static void run_concat(bk_shape s, int axis, int n, const int64_t *ext, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    static const char *an[] = {"N", "C", "H", "W"};
    arr x[4];
    bk_shape ss[4];
    const double *xd[4];
    bk_tensor *xt[4], *gr[4] = {0};
    for (int j = 0; j < n; j++) {
        ss[j] = s;
        *ref_dim(&ss[j], axis) = ext[j];
        x[j] = arr_uniform(ctx, ss[j], -1, 1, seed + j);
        xd[j] = x[j].d;
        xt[j] = x[j].t;
        xt[j]->requires_grad = true;
    }
    bk_shape ys = ref_concat(n, xd, ss, axis, NULL);
    double *y = dalloc(ys);
    ref_concat(n, xd, ss, axis, y);
    bk_tensor *yt = bk_concat(ctx, n, xt, axis);
    check_t(WHAT("concat %d along %s -> %s", n, an[axis], shp(ys, sb)), yt, ys, y, TOL_MOVE);
    arr gy = arr_uniform(ctx, ys, -1, 1, seed + 9);
    bk_grad(ctx, yt, gy.t, n, xt, gr, false);
    int64_t off = 0;
    for (int j = 0; j < n; j++) {
        double *g = dalloc(ss[j]);
        ref_slice(gy.d, ys, axis, off, ext[j], g);
        check_t(WHAT("concat %d along %s: grad %d", n, an[axis], j), gr[j], ss[j], g, TOL_MOVE);
        off += ext[j];
        free(g);
        arr_free(&x[j]);
    }
    arr_free(&gy);
    free(y);
    bk_step_end(ctx);
}

static void run_slice_embed(bk_shape s, int axis, int64_t off, int64_t size, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    static const char *an[] = {"N", "C", "H", "W"};
    bk_shape ys = s;
    *ref_dim(&ys, axis) = size;
    const int64_t full = *ref_dim(&s, axis);
    arr x = arr_uniform(ctx, s, -1, 1, seed);
    arr gy = arr_uniform(ctx, ys, -1, 1, seed + 1);
    arr e = arr_uniform(ctx, ys, -1, 1, seed + 2);
    arr ge = arr_uniform(ctx, s, -1, 1, seed + 3);
    double *y = dalloc(ys), *gx = dalloc(s), *ey = dalloc(s), *gex = dalloc(ys);
    ref_slice(x.d, s, axis, off, size, y);
    ref_embed(gy.d, ys, axis, off, full, gx);
    x.t->requires_grad = true;
    bk_tensor *yt = bk_slice(ctx, x.t, axis, off, size);
    check_t(WHAT("slice %s along %s [%lld,+%lld)", shp(s, sb), an[axis], (long long)off,
                 (long long)size), yt, ys, y, TOL_MOVE);
    check_grad(ctx, WHAT("slice along %s: autograd", an[axis]), yt, gy.t, x.t, gx, TOL_MOVE);
    /* embed, and its gradient (a slice) */
    ref_embed(e.d, ys, axis, off, full, ey);
    ref_slice(ge.d, s, axis, off, size, gex);
    e.t->requires_grad = true;
    yt = bk_embed(ctx, e.t, axis, off, full);
    check_t(WHAT("embed along %s at %lld into %lld", an[axis], (long long)off, (long long)full), yt,
            s, ey, TOL_MOVE);
    check_grad(ctx, WHAT("embed along %s: autograd", an[axis]), yt, ge.t, e.t, gex, TOL_MOVE);
    arr_free(&x), arr_free(&gy), arr_free(&e), arr_free(&ge);
    free(y), free(gx), free(ey), free(gex);
    bk_step_end(ctx);
}

static void run_split(bk_shape s, int axis, int n, const int64_t *sizes, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256];
    static const char *an[] = {"N", "C", "H", "W"};
    arr x = arr_uniform(ctx, s, -1, 1, seed);
    x.t->requires_grad = true;
    bk_tensor *parts[4] = {0}, *loss = NULL;
    bk_split(ctx, x.t, axis, n, sizes, parts);
    arr gp[4];
    const double *gd[4];
    bk_shape gs[4];
    int64_t off = 0;
    for (int j = 0; j < n; j++) {
        gs[j] = s;
        *ref_dim(&gs[j], axis) = sizes[j];
        double *y = dalloc(gs[j]);
        ref_slice(x.d, s, axis, off, sizes[j], y);
        check_t(WHAT("split along %s: part %d", an[axis], j), parts[j], gs[j], y, TOL_MOVE);
        free(y);
        off += sizes[j];
        gp[j] = arr_uniform(ctx, gs[j], -1, 1, seed + 1 + j);
        gd[j] = gp[j].d;
        bk_tensor *t = bk_sum(ctx, bk_mul(ctx, parts[j], gp[j].t));
        loss = loss ? bk_add(ctx, loss, t) : t;
    }
    /* d sum_j <g_j, part_j> / dx = concat(g_j) */
    double *g = dalloc(s);
    ref_concat(n, gd, gs, axis, g);
    check_grad(ctx, WHAT("split along %s: autograd", an[axis]), loss, NULL, x.t, g, TOL);
    for (int j = 0; j < n; j++) arr_free(&gp[j]);
    arr_free(&x);
    free(g);
    bk_step_end(ctx);
}

static void run_transpose(bk_shape s, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    const bk_shape ys = {s.n, s.c, s.w, s.h};
    arr x = arr_uniform(ctx, s, -1, 1, seed);
    arr gy = arr_uniform(ctx, ys, -1, 1, seed + 1);
    double *y = dalloc(ys), *gx = dalloc(s);
    ref_transpose_hw(x.d, s, y);
    ref_transpose_hw(gy.d, ys, gx);
    x.t->requires_grad = true;
    bk_tensor *yt = bk_transpose_hw(ctx, x.t);
    check_t(WHAT("transpose_hw %s", shp(s, sb)), yt, ys, y, TOL_MOVE);
    check_grad(ctx, WHAT("transpose_hw %s: autograd", shp(s, sb)), yt, gy.t, x.t, gx, TOL_MOVE);
    arr_free(&x), arr_free(&gy);
    free(y), free(gx);
    bk_step_end(ctx);
}

static void run_reflect_pad(bk_shape s, int t, int l, int b, int r, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    const bk_shape ys = {s.n, s.c, s.h + t + b, s.w + l + r};
    arr x = arr_uniform(ctx, s, -1, 1, seed);
    arr gy = arr_uniform(ctx, ys, -1, 1, seed + 1);
    arr u = arr_uniform(ctx, s, -1, 1, seed + 2); /* gradient flowing into reflect_pad_bwd */
    double *y = dalloc(ys), *gx = dalloc(s), *uy = dalloc(ys);
    ref_reflect_pad(x.d, s, t, l, b, r, y);
    ref_reflect_pad_bwd(gy.d, s, t, l, b, r, gx);
    ref_reflect_pad(u.d, s, t, l, b, r, uy);
    x.t->requires_grad = gy.t->requires_grad = true;
    bk_tensor *yt = bk_reflect_pad(ctx, x.t, t, l, b, r);
    check_t(WHAT("reflect_pad %s (t%d l%d b%d r%d)", shp(s, sb), t, l, b, r), yt, ys, y, TOL_MOVE);
    check_grad(ctx, WHAT("reflect_pad %s (t%d l%d b%d r%d): autograd", shp(s, sb), t, l, b, r), yt,
               gy.t, x.t, gx, TOL_MOVE);
    bk_tensor *bt = bk_reflect_pad_bwd(ctx, gy.t, t, l, b, r);
    check_t(WHAT("reflect_pad_bwd %s (t%d l%d b%d r%d)", shp(s, sb), t, l, b, r), bt, s, gx,
            TOL_MOVE);
    check_grad(ctx, WHAT("reflect_pad_bwd %s (t%d l%d b%d r%d): autograd", shp(s, sb), t, l, b, r),
               bt, u.t, gy.t, uy, TOL_MOVE);
    arr_free(&x), arr_free(&gy), arr_free(&u);
    free(y), free(gx), free(uy);
    bk_step_end(ctx);
}

static void run_zero_insert(bk_shape s, int64_t oh, int64_t ow, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    const bk_shape ys = {s.n, s.c, oh, ow};
    arr x = arr_uniform(ctx, s, -1, 1, seed);
    arr gy = arr_uniform(ctx, ys, -1, 1, seed + 1);
    double *y = dalloc(ys), *gx = dalloc(s);
    ref_zero_insert(x.d, s, oh, ow, y);
    ref_subsample(gy.d, ys, gx);
    x.t->requires_grad = true;
    bk_tensor *yt = bk_zero_insert(ctx, x.t, oh, ow);
    check_t(WHAT("zero_insert %s -> %lldx%lld", shp(s, sb), (long long)oh, (long long)ow), yt, ys,
            y, TOL_MOVE);
    check_grad(ctx, WHAT("zero_insert %s: autograd", shp(s, sb)), yt, gy.t, x.t, gx, TOL_MOVE);
    x.t->requires_grad = false;
    /* subsample of the bigger shape, and its gradient (zero insertion back to that shape) */
    const bk_shape ss = ref_subsample_shape(ys);
    double *sy = dalloc(ss), *sg = dalloc(ys);
    arr gs = arr_uniform(ctx, ss, -1, 1, seed + 2);
    ref_subsample(gy.d, ys, sy);
    ref_zero_insert(gs.d, ss, ys.h, ys.w, sg);
    gy.t->requires_grad = true;
    yt = bk_subsample(ctx, gy.t);
    check_t(WHAT("subsample %s", shp(ys, sb)), yt, ss, sy, TOL_MOVE);
    check_grad(ctx, WHAT("subsample %s: autograd", shp(ys, sb)), yt, gs.t, gy.t, sg, TOL_MOVE);
    arr_free(&x), arr_free(&gy), arr_free(&gs);
    free(y), free(gx), free(sy), free(sg);
    bk_step_end(ctx);
}

static void shape_ops(void) {
    const bk_shape s = {2, 13, 9, 11};
    run_concat(s, BK_AXIS_C, 2, (const int64_t[]){13, 3}, 1);
    run_concat(s, BK_AXIS_C, 4, (const int64_t[]){3, 17, 1, 13}, 2);
    run_concat(s, BK_AXIS_C, 1, (const int64_t[]){17}, 3);
    run_concat(s, BK_AXIS_H, 3, (const int64_t[]){9, 1, 4}, 4);
    run_concat(s, BK_AXIS_W, 4, (const int64_t[]){11, 3, 5, 2}, 5);
    run_concat((bk_shape){1, 17, 7, 5}, BK_AXIS_W, 2, (const int64_t[]){5, 5}, 6);
    run_concat((bk_shape){1, 3, 7, 5}, BK_AXIS_N, 2, (const int64_t[]){1, 2}, 7);
    run_slice_embed(s, BK_AXIS_C, 3, 7, 11);
    run_slice_embed(s, BK_AXIS_C, 0, 1, 12);
    run_slice_embed((bk_shape){1, 17, 7, 5}, BK_AXIS_C, 16, 1, 13);
    run_slice_embed(s, BK_AXIS_H, 2, 5, 14);
    run_slice_embed(s, BK_AXIS_W, 10, 1, 15);
    run_slice_embed(s, BK_AXIS_W, 0, 6, 16);
    run_slice_embed((bk_shape){3, 3, 7, 5}, BK_AXIS_N, 1, 2, 17);
    run_split(s, BK_AXIS_C, 3, (const int64_t[]){3, 7, 3}, 21);
    run_split((bk_shape){1, 17, 7, 5}, BK_AXIS_C, 2, (const int64_t[]){13, 4}, 22);
    run_split(s, BK_AXIS_H, 2, (const int64_t[]){4, 5}, 23);
    run_split(s, BK_AXIS_W, 4, (const int64_t[]){1, 3, 5, 2}, 24);
    run_transpose(s, 31);
    run_transpose((bk_shape){1, 17, 7, 5}, 32);
    run_transpose((bk_shape){2, 3, 13, 1}, 33);
    run_reflect_pad(s, 2, 2, 2, 2, 41);
    run_reflect_pad(s, 1, 3, 0, 2, 42);
    run_reflect_pad((bk_shape){1, 17, 7, 5}, 6, 4, 6, 4, 43); /* pads of dim - 1 */
    run_reflect_pad((bk_shape){2, 3, 13, 3}, 0, 1, 5, 0, 44);
    run_reflect_pad((bk_shape){1, 13, 3, 3}, 2, 2, 2, 2, 45);
    run_zero_insert(s, 18, 22, 51);
    run_zero_insert(s, 17, 21, 52);
    run_zero_insert((bk_shape){1, 17, 7, 5}, 14, 9, 53);
    run_zero_insert((bk_shape){2, 3, 13, 3}, 25, 6, 54);
    run_zero_insert((bk_shape){1, 3, 1, 1}, 1, 2, 55);
}

static void shape_ops_large(void) {
    const bk_shape s = {2, 17, 64, 96};
    run_concat(s, BK_AXIS_C, 3, (const int64_t[]){17, 3, 13}, 61);
    run_concat(s, BK_AXIS_W, 2, (const int64_t[]){96, 33}, 62);
    run_slice_embed(s, BK_AXIS_C, 3, 13, 63);
    run_slice_embed(s, BK_AXIS_H, 7, 50, 64);
    run_transpose(s, 65);
    run_reflect_pad(s, 2, 2, 2, 2, 66);
    run_reflect_pad(s, 3, 1, 2, 5, 67);
    run_zero_insert(s, 127, 192, 68);
}

/* ------------------------------------------------------------------ resampling */

static void run_resample(bk_shape s, int64_t oh, int64_t ow, int mode, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    static const char *mn[] = {"bilinear", "bilinear_aa", "avg2"};
    const bk_shape ys = {s.n, s.c, oh, ow};
    arr x = arr_uniform(ctx, s, -1, 1, seed);
    arr gy = arr_uniform(ctx, ys, -1, 1, seed + 1);
    double *y = dalloc(ys), *gx = dalloc(s);
    ref_resample(x.d, s, oh, ow, mode, y);
    ref_resample_bwd(gy.d, s, oh, ow, mode, gx);
    bk_tensor *yt = bk_resample(ctx, x.t, oh, ow, (bk_resample_mode)mode);
    check_t(WHAT("resample %s %s -> %lldx%lld", mn[mode], shp(s, sb), (long long)oh, (long long)ow),
            yt, ys, y, TOL);
    x.t->requires_grad = true;
    yt = bk_resample(ctx, x.t, oh, ow, (bk_resample_mode)mode);
    check_grad(ctx, WHAT("resample %s %s -> %lldx%lld: autograd", mn[mode], shp(s, sb),
                         (long long)oh, (long long)ow),
               yt, gy.t, x.t, gx, TOL);
    x.t->requires_grad = false;
    /* the inline wrappers */
    if (mode == BK_RESAMPLE_BILINEAR && oh == 2 * s.h && ow == 2 * s.w)
        check_t(WHAT("up2 %s", shp(s, sb)), bk_up2(ctx, x.t), ys, y, TOL);
    if (mode == BK_RESAMPLE_BILINEAR && oh == 4 * s.h && ow == 4 * s.w)
        check_t(WHAT("up4 %s", shp(s, sb)), bk_up4(ctx, x.t), ys, y, TOL);
    if (mode == BK_RESAMPLE_BILINEAR && oh == s.h / 2 && ow == s.w / 2) {
        /* interpolate(scale_factor=0.5) samples with scale 2: the mean of each 2x2 block, also
         * for odd sizes (where the size form, scale in/out, differs) */
        double *avg = dalloc(ys);
        ref_resample(x.d, s, oh, ow, BK_RESAMPLE_AVG2, avg);
        check_t(WHAT("down2 %s", shp(s, sb)), bk_down2(ctx, x.t), ys, avg, TOL);
        free(avg);
    }
    if (mode == BK_RESAMPLE_AVG2)
        check_t(WHAT("avg_pool2 %s", shp(s, sb)), bk_avg_pool2(ctx, x.t), ys, y, TOL);
    arr_free(&x), arr_free(&gy);
    free(y), free(gx);
    bk_step_end(ctx);
}

static void resample(void) {
    const int B = BK_RESAMPLE_BILINEAR, AA = BK_RESAMPLE_BILINEAR_AA, AV = BK_RESAMPLE_AVG2;
    const bk_shape s = {2, 13, 9, 11};
    run_resample(s, 18, 22, B, 1);                       /* x2 */
    run_resample((bk_shape){1, 17, 7, 5}, 28, 20, B, 2); /* x4 */
    run_resample((bk_shape){2, 3, 18, 22}, 9, 11, B, 3); /* x0.5 */
    run_resample(s, 4, 5, B, 4);                         /* down2 of odd sizes */
    run_resample(s, 7, 13, B, 5);                        /* arbitrary */
    run_resample((bk_shape){2, 3, 13, 3}, 5, 8, B, 6);
    run_resample(s, 9, 11, B, 7);                        /* identity */
    run_resample((bk_shape){1, 17, 1, 5}, 3, 2, B, 8);   /* from a single row */
    run_resample((bk_shape){2, 3, 18, 22}, 9, 11, AA, 11);
    run_resample(s, 4, 5, AA, 12);                       /* scales 2.25, 2.2 */
    run_resample((bk_shape){1, 17, 13, 11}, 3, 3, AA, 13);
    run_resample(s, 4, 20, AA, 14);                      /* shrink H, enlarge W */
    run_resample(s, 9, 5, AA, 15);                       /* W only */
    run_resample((bk_shape){2, 3, 13, 3}, 6, 1, AA, 16); /* to one column */
    run_resample(s, 7, 10, AA, 17);                      /* scales < 2 */
    run_resample(s, 4, 5, AV, 21);
    run_resample((bk_shape){2, 3, 18, 22}, 9, 11, AV, 22);
    run_resample((bk_shape){1, 17, 7, 5}, 3, 2, AV, 23);
}

static void resample_large(void) {
    const bk_shape s = {2, 17, 64, 96};
    run_resample(s, 128, 192, BK_RESAMPLE_BILINEAR, 31);
    run_resample(s, 32, 48, BK_RESAMPLE_BILINEAR, 32);
    run_resample(s, 32, 48, BK_RESAMPLE_BILINEAR_AA, 33);
    run_resample(s, 32, 48, BK_RESAMPLE_AVG2, 34);
    run_resample(s, 37, 50, BK_RESAMPLE_BILINEAR_AA, 35);
    run_resample(s, 256, 384, BK_RESAMPLE_BILINEAR, 36);
}

/* ------------------------------------------------------------------ max pooling */

/* Distinct values (no ties in any window): a shuffled ramp in [-1, 1]. */
static arr arr_distinct(bk_ctx *ctx, bk_shape s, uint64_t seed) {
    const size_t n = ref_numel(s);
    float *f = malloc(n * sizeof *f), *r = malloc(n * sizeof *r);
    bk_test_fill_uniform(r, n, 0, 1, seed);
    for (size_t i = 0; i < n; i++) f[i] = -1.0f + 2.0f * (float)i / (float)n;
    for (size_t i = n; i-- > 1;) { /* Fisher-Yates */
        size_t j = (size_t)(r[i] * (float)(i + 1));
        if (j > i) j = i;
        float t = f[i];
        f[i] = f[j];
        f[j] = t;
    }
    free(r);
    return arr_take(ctx, s, f);
}

static void run_max_pool(bk_shape s, int k, int stride, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    const bk_shape ys = ref_max_pool_shape(s, k, stride);
    arr x = arr_distinct(ctx, s, seed);
    arr gy = arr_uniform(ctx, ys, -1, 1, seed + 1);
    double *y = dalloc(ys), *gx = dalloc(s);
    ref_max_pool(x.d, s, k, stride, y);
    ref_max_pool_bwd(x.d, s, gy.d, k, stride, gx);
    check_t(WHAT("max_pool k%d s%d %s", k, stride, shp(s, sb)), bk_max_pool(ctx, x.t, k, stride),
            ys, y, TOL_MOVE);
    x.t->requires_grad = true;
    bk_tensor *yt = bk_max_pool(ctx, x.t, k, stride);
    check_t(WHAT("max_pool k%d s%d %s (training)", k, stride, shp(s, sb)), yt, ys, y, TOL_MOVE);
    check_grad(ctx, WHAT("max_pool k%d s%d %s: autograd", k, stride, shp(s, sb)), yt, gy.t, x.t,
               gx, TOL_MOVE);
    arr_free(&x), arr_free(&gy);
    free(y), free(gx);
    bk_step_end(ctx);
}

static void max_pool(void) {
    run_max_pool((bk_shape){2, 13, 9, 11}, 3, 2, 1);
    run_max_pool((bk_shape){1, 17, 7, 5}, 3, 2, 2);
    run_max_pool((bk_shape){2, 3, 13, 3}, 3, 2, 3);
    run_max_pool((bk_shape){2, 13, 9, 11}, 2, 2, 4);
    run_max_pool((bk_shape){1, 17, 7, 5}, 2, 2, 5);
    run_max_pool((bk_shape){2, 3, 13, 3}, 2, 2, 6);
    run_max_pool((bk_shape){2, 17, 64, 96}, 3, 2, 7);
    run_max_pool((bk_shape){2, 17, 64, 96}, 2, 2, 8);
}

/* ------------------------------------------------------------------ batch norm */

/* A persistent 1,C,1,1 tensor with the given values. */
static bk_tensor *channel_param(bk_ctx *ctx, const char *name, int64_t C, const float *v) {
    bk_tensor *t = bk_tensor_new_persistent(ctx, name, 1, (bk_shape){1, C, 1, 1});
    bk_tensor_set_nchw(t, v);
    bk_tensor_touch(t);
    return t;
}

static void run_batch_norm(bk_shape s, bool training, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    const int64_t C = s.c;
    const size_t n = ref_numel(s), hw = (size_t)(s.h * s.w);
    const float momentum = 0.1f, eps = 1e-5f;
    const char *mode = training ? "train" : "eval";
    /* per-channel offsets and scales so the statistics matter */
    float *f = malloc(n * sizeof *f), *cm = malloc((size_t)C * sizeof *cm), *cs = malloc((size_t)C * sizeof *cs);
    bk_test_fill_uniform(f, n, -1, 1, seed);
    bk_test_fill_uniform(cm, (size_t)C, -2, 2, seed + 1);
    bk_test_fill_uniform(cs, (size_t)C, 0.3f, 3, seed + 2);
    for (size_t i = 0; i < n; i++) {
        size_t c = (i / hw) % (size_t)C;
        f[i] = cm[c] + cs[c] * f[i];
    }
    arr x = arr_take(ctx, s, f);
    const bk_shape cs1 = {1, C, 1, 1};
    arr gam = arr_uniform(ctx, cs1, 0.5f, 2, seed + 3), bet = arr_uniform(ctx, cs1, -1, 1, seed + 4);
    /* running variances log-uniform in [1e-3, 3]: small ones make eps matter in eval */
    arr rm = arr_uniform(ctx, cs1, -1, 1, seed + 5), rv = arr_uniform(ctx, cs1, -6.9f, 1.1f, seed + 6);
    for (int64_t c = 0; c < C; c++) rv.d[c] = rv.f[c] = expf(rv.f[c]);
    arr gy = arr_uniform(ctx, s, -1, 1, seed + 7);
    bk_tensor *gt = channel_param(ctx, "gamma", C, gam.f), *bt = channel_param(ctx, "beta", C, bet.f);
    bk_tensor *rmt = channel_param(ctx, "running_mean", C, rm.f);
    bk_tensor *rvt = channel_param(ctx, "running_var", C, rv.f);

    double *y = dalloc(s), *gx = dalloc(s), *nrm = dalloc(cs1), *nrv = dalloc(cs1);
    double *gg = dalloc(cs1), *gb = dalloc(cs1);
    ref_batch_norm(x.d, s, gam.d, bet.d, rm.d, rv.d, training, momentum, eps, y, nrm, nrv);
    ref_batch_norm_bwd(x.d, s, gam.d, rm.d, rv.d, training, eps, gy.d, gx, gg, gb);

    x.t->requires_grad = gt->requires_grad = bt->requires_grad = true;
    bk_tensor *yt = bk_batch_norm(ctx, x.t, gt, bt, rmt, rvt, training, momentum, eps);
    check_t(WHAT("batch_norm[%s] %s", mode, shp(s, sb)), yt, s, y, TOL);
    check_t(WHAT("batch_norm[%s] %s: running mean", mode, shp(s, sb)), rmt, cs1, nrm, TOL);
    check_t(WHAT("batch_norm[%s] %s: running var", mode, shp(s, sb)), rvt, cs1, nrv, TOL);
    bk_tensor *in[3] = {x.t, gt, bt}, *g[3] = {0};
    bk_grad(ctx, yt, gy.t, 3, in, g, false);
    check_t(WHAT("batch_norm[%s] %s: grad x", mode, shp(s, sb)), g[0], s, gx, TOL);
    check_t(WHAT("batch_norm[%s] %s: grad gamma", mode, shp(s, sb)), g[1], cs1, gg, TOL);
    check_t(WHAT("batch_norm[%s] %s: grad beta", mode, shp(s, sb)), g[2], cs1, gb, TOL);
    /* a second training call updates again, from the updated statistics */
    if (training) {
        double *y2 = dalloc(s), *nrm2 = dalloc(cs1), *nrv2 = dalloc(cs1);
        ref_batch_norm(x.d, s, gam.d, bet.d, nrm, nrv, true, momentum, eps, y2, nrm2, nrv2);
        bk_batch_norm(ctx, x.t, gt, bt, rmt, rvt, true, momentum, eps);
        check_t(WHAT("batch_norm[train] %s: running mean after 2 calls", shp(s, sb)), rmt, cs1,
                nrm2, TOL);
        check_t(WHAT("batch_norm[train] %s: running var after 2 calls", shp(s, sb)), rvt, cs1,
                nrv2, TOL);
        free(y2), free(nrm2), free(nrv2);
    }
    bk_tensor_free(ctx, gt), bk_tensor_free(ctx, bt), bk_tensor_free(ctx, rmt), bk_tensor_free(ctx, rvt);
    arr_free(&x), arr_free(&gam), arr_free(&bet), arr_free(&rm), arr_free(&rv), arr_free(&gy);
    free(cm), free(cs), free(y), free(gx), free(nrm), free(nrv), free(gg), free(gb);
    bk_step_end(ctx);
}

static void batch_norm(void) {
    for (int training = 1; training >= 0; training--) {
        run_batch_norm((bk_shape){2, 13, 9, 11}, training, 1);
        run_batch_norm((bk_shape){1, 17, 7, 5}, training, 2);
        run_batch_norm((bk_shape){2, 3, 13, 3}, training, 3);
        run_batch_norm((bk_shape){3, 17, 1, 1}, training, 4);
        run_batch_norm((bk_shape){2, 17, 64, 96}, training, 5);
    }
}

/* ------------------------------------------------------------------ mean over H or W */

static void run_mean_hw(bk_shape s, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    arr x = arr_uniform(ctx, s, -1, 1, seed);
    for (int axis = BK_AXIS_H; axis <= BK_AXIS_W; axis++) {
        const char *nm = axis == BK_AXIS_H ? "mean_h" : "mean_w";
        const unsigned dims = axis == BK_AXIS_H ? REF_H : REF_W;
        const bk_shape ms = ref_reduced_shape(s, dims);
        const double inv = 1.0 / (double)(axis == BK_AXIS_H ? s.h : s.w);
        arr gm = arr_uniform(ctx, ms, -1, 1, seed + 1 + axis);
        arr gy = arr_uniform(ctx, s, -1, 1, seed + 5 + axis);
        double *m = dalloc(ms), *e = dalloc(s), *g = dalloc(s), *t = dalloc(ms);
        ref_sum_dims(x.d, s, dims, m);
        ref_affine(m, ref_numel(ms), inv, 0, m);
        ref_expand(m, ms, s, e);
        x.t->requires_grad = true;
        bk_tensor *mt = axis == BK_AXIS_H ? bk_mean_h(ctx, x.t) : bk_mean_w(ctx, x.t);
        check_t(WHAT("%s %s", nm, shp(s, sb)), mt, ms, m, TOL);
        ref_expand(gm.d, ms, s, g);
        ref_affine(g, ref_numel(s), inv, 0, g);
        check_grad(ctx, WHAT("%s %s: autograd", nm, shp(s, sb)), mt, gm.t, x.t, g, TOL);
        /* broadcast back: x - expand(mean); gradient gy - expand(mean of gy) */
        mt = axis == BK_AXIS_H ? bk_mean_h(ctx, x.t) : bk_mean_w(ctx, x.t);
        bk_tensor *ct = bk_sub(ctx, x.t, bk_expand(ctx, mt, s));
        ref_binary(REF_SUB, x.d, s, e, s, e);
        check_t(WHAT("x - expand(%s) %s", nm, shp(s, sb)), ct, s, e, TOL);
        ref_sum_dims(gy.d, s, dims, t);
        ref_affine(t, ref_numel(ms), inv, 0, t);
        ref_expand(t, ms, s, g);
        ref_binary(REF_SUB, gy.d, s, g, s, g);
        check_grad(ctx, WHAT("x - expand(%s) %s: autograd", nm, shp(s, sb)), ct, gy.t, x.t, g, TOL);
        x.t->requires_grad = false;
        arr_free(&gm), arr_free(&gy);
        free(m), free(e), free(g), free(t);
    }
    arr_free(&x);
    bk_step_end(ctx);
}

static void mean_hw(void) {
    run_mean_hw((bk_shape){2, 13, 9, 11}, 1);
    run_mean_hw((bk_shape){1, 17, 7, 5}, 2);
    run_mean_hw((bk_shape){2, 3, 13, 1}, 3);
    run_mean_hw((bk_shape){2, 17, 64, 96}, 4);
}

/* At inference a 3x3 conv to at most 3 channels runs as a 1x1 conv to its 9 taps and a
 * shift-and-add: against oneDNN's kernel (the recorded path), borders and odd sizes included. */
static void conv2d_narrow_inference(void) {
    bk_ctx *ctx = bk_test_ctx();
    const struct {
        int ci, oc;
        bool bias;
        bk_shape x;
    } cs[3] = {{40, 3, true, {1, 40, 37, 53}}, {16, 1, false, {2, 16, 20, 16}}, {5, 2, true, {1, 5, 7, 9}}};
    for (int k = 0; k < 3; k++) {
        bk_tensor *x = bk_test_tensor(ctx, cs[k].x, -1, 1, 70 + k);
        bk_tensor *w = bk_test_tensor(ctx, (bk_shape){cs[k].oc, cs[k].ci, 3, 3}, -0.2f, 0.2f, 80 + k);
        bk_tensor *b = cs[k].bias ? bk_test_tensor(ctx, (bk_shape){1, cs[k].oc, 1, 1}, -1, 1, 90 + k) : NULL;
        bool prev = bk_set_grad_enabled(ctx, false);
        bk_tensor *got = bk_conv2d(ctx, x, w, b, bk_conv_opts_make(1, 1, 1), bk_act_none(), NULL);
        bk_set_grad_enabled(ctx, true);
        x->requires_grad = true; /* recorded: oneDNN's kernel */
        bk_tensor *want = bk_conv2d(ctx, x, w, b, bk_conv_opts_make(1, 1, 1), bk_act_none(), NULL);
        bk_set_grad_enabled(ctx, prev);
        char what[64];
        snprintf(what, sizeof what, "3x3 conv %d -> %d at inference", cs[k].ci, cs[k].oc);
        EXPECT(bk_same_shape(got, want), "%s: shape", what);
        if (bk_same_shape(got, want)) EXPECT_CLOSE(what, got->data, want->data, (size_t)bk_numel(want), 1e-5);
        bk_step_end(ctx);
    }
}

/* The one-pass inference blend (AMPN's reconstruction) against the same computation through
 * the ops one by one: 1x1 conv pairs of several widths, upsampling by 1 and 2, with and without
 * a mask upsampled by 4, widths that are not a multiple of the 16-pixel block, two images. */
static void detail_blend_fused(void) {
    bk_ctx *ctx = bk_test_ctx();
    const struct {
        int c, mid, sf, mf;
        bool bias2;
        bk_shape out;
    } cs[4] = {{3, 16, 1, 0, true, {2, 3, 12, 20}},
               {3, 16, 2, 4, true, {2, 3, 16, 36}},
               {5, 24, 2, 0, false, {1, 5, 10, 6}},
               {1, 64, 1, 2, true, {3, 1, 6, 18}}};
    for (int k = 0; k < 4; k++) {
        const int C = cs[k].c, sf = cs[k].sf, mf = cs[k].mf;
        const bk_shape o = cs[k].out;
        bk_params ps = {0};
        bk_rng rng;
        bk_rng_seed(&rng, 11 + k);
        bk_init he = {BK_INIT_HE, 0.01f, &rng};
        bk_conv_layer l1 = bk_conv_layer_make(ctx, &ps, "a", C, cs[k].mid, 1, 1, 0, 1, true, he);
        bk_conv_layer l2 = bk_conv_layer_make(ctx, &ps, "b", cs[k].mid, C, 1, 1, 0, 1, cs[k].bias2, he);
        bk_test_fill_uniform(l1.b->data, (size_t)cs[k].mid, -0.5f, 0.5f, 5 + k);
        if (l2.b) bk_test_fill_uniform(l2.b->data, (size_t)C, -0.5f, 0.5f, 7 + k);
        bk_tensor *base = bk_test_tensor(ctx, o, -1, 1, 20 + k), *high = bk_test_tensor(ctx, o, -1, 1, 30 + k);
        bk_tensor *src = bk_test_tensor(ctx, (bk_shape){o.n, C, o.h / sf, o.w / sf}, -1, 1, 40 + k);
        bk_tensor *mask = mf ? bk_test_tensor(ctx, (bk_shape){o.n, 1, o.h / mf, o.w / mf}, 0, 1, 50 + k) : NULL;
        bk_tensor *image = mf ? bk_test_tensor(ctx, o, 0, 1, 60 + k) : NULL;
        bool prev = bk_set_grad_enabled(ctx, false);
        bk_tensor *up = sf == 1 ? src : bk_resample_factor(ctx, src, sf, BK_RESAMPLE_BILINEAR);
        bk_tensor *f = bk_conv_layer_fwd(ctx, &l2, bk_conv_layer_fwd(ctx, &l1, up, bk_act_leaky_relu(0.01f), NULL),
                                         bk_act_none(), NULL);
        bk_tensor *want = bk_add(ctx, base, bk_mul(ctx, high, f));
        if (mask) {
            bk_tensor *m = bk_resample_factor(ctx, mask, mf, BK_RESAMPLE_BILINEAR);
            want = bk_add(ctx, want, bk_mul(ctx, m, bk_sub(ctx, image, want)));
        }
        bk_tensor *got = bk_detail_blend_infer(ctx, &l1, 0.01f, &l2, base, high, src, sf, mask, mf ? mf : 1, image);
        bk_set_grad_enabled(ctx, prev);
        char what[96];
        snprintf(what, sizeof what, "blend %d->%d->%d, up %d, mask up %d", C, cs[k].mid, C, sf, mf);
        EXPECT(bk_same_shape(got, want), "%s: shape", what);
        if (bk_same_shape(got, want)) EXPECT_CLOSE(what, got->data, want->data, (size_t)bk_numel(want), 1e-5);
        bk_params_free(ctx, &ps);
        bk_step_end(ctx);
    }
}

BK_TEST_MAIN(BK_TEST(conv2d_plain), BK_TEST(conv2d_narrow_inference), BK_TEST(detail_blend_fused), BK_TEST(conv2d_groups), BK_TEST(conv2d_depthwise),
             BK_TEST(conv2d_fused), BK_TEST(conv_transpose2d), BK_TEST(instance_norm),
             BK_TEST(instance_norm_large), BK_TEST(eltwise), BK_TEST(broadcast_c13),
             BK_TEST(broadcast_c17), BK_TEST(broadcast_large), BK_TEST(reduce_c13),
             BK_TEST(reduce_c17), BK_TEST(reduce_large), BK_TEST(unary_new), BK_TEST(shape_ops),
             BK_TEST(shape_ops_large), BK_TEST(resample), BK_TEST(resample_large),
             BK_TEST(max_pool), BK_TEST(batch_norm), BK_TEST(mean_hw))
