/* test_naive.c — the fp32 ops against the naive double-precision reference (tests/support/ref.c)
 * on odd "tail" shapes: channel counts 3, 13, 17 (and per-group 13 -> 17), odd H and W, stride
 * 2, groups and depthwise, asymmetric padding, kernels 1/3/4/5, transposed convs with output
 * padding, broadcasting patterns, every sum_to reduction, and one larger shape that takes the
 * multi-threaded paths. Tolerance 1e-5 (SPEC "within": relative to the largest reference value).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#define NOACT {BK_ACT_NONE, 0.0f}
#define LEAKY(a) {BK_ACT_RELU, a}

static const conv_cfg conv2d_cfgs[] = {
    {"c3_9x11_k3_s1_p1", {2, 3, 9, 11}, 13, 3, 3, OPTS(1, 1, 1), true, false, NOACT, false},
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

BK_TEST_MAIN(BK_TEST(conv2d_plain), BK_TEST(conv2d_groups), BK_TEST(conv2d_depthwise),
             BK_TEST(conv2d_fused), BK_TEST(conv_transpose2d), BK_TEST(instance_norm),
             BK_TEST(instance_norm_large), BK_TEST(eltwise), BK_TEST(broadcast_c13),
             BK_TEST(broadcast_c17), BK_TEST(broadcast_large), BK_TEST(reduce_c13),
             BK_TEST(reduce_c17), BK_TEST(reduce_large))
