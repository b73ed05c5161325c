/* test_gradcheck.c — finite-difference checks of first and second order for every core op.
 *
 * A table of cases; each is a builder (inputs -> output, with our fp32 ops), a forward in double
 * precision from the naive reference kernels (tests/support/ref.c), input shapes, which inputs
 * are differentiated, and how the inputs are drawn. For every case:
 *   a. forward against the reference, within TOL_FWD;
 *   b. first order: L = sum(r * f(x)) with a random r; the gradients from bk_grad (without and
 *      with create_graph) and from bk_backward against central differences of the DOUBLE
 *      reference (step H1), every element of every differentiated input: max|err| within TOL1
 *      of max|differences| of that input, or of FLOOR_REL times the case's largest gradient
 *      when that is larger (a gradient that vanishes identically, e.g. a bias before instance
 *      norm, is only fp32 noise);
 *   c. second order: S = sum_i <v_i, dL/dx_i> built with our ops from the create_graph
 *      gradients, h_k = dS/dx_k by bk_grad; for 3 random directions d_k per input, <d_k, h_k>
 *      against the nested central difference of the reference
 *        D(s) = [L(x+sv+sd) - L(x+sv-sd) - L(x-sv+sd) + L(x-sv-sd)] / (4s^2)
 *      Richardson-extrapolated, (4 D(s/2) - D(s)) / 3, within TOL2 relative to
 *      max(|value|, floor) with floor = |d_k| max(|h_k| / sqrt(numel_k), FLOOR_REL * the case's
 *      largest |h_q| / sqrt(numel_q)), and never tighter than the rounding noise of D (which is
 *      what remains for linear ops, whose second order is identically zero and not recorded).
 * Ops that are first order only by design (hardswish, sigmoid, tanh, batch norm, max pool: they
 * stop if create_graph reaches them) are marked no_cg: no create_graph gradient is taken and
 * there is no second order. Linear ops (data movement, resampling, the Laplacian pyramid) are
 * also run squared ("_sq") so that the second order goes through their adjoints.
 * Ops with a kink (leaky ReLU, abs, the fused conv activation, clamp / relu6 / hardswish at
 * their bounds, the ordering inside a max-pool window) draw inputs away from it, and
 * every reference evaluation of a difference quotient is checked to lie on the same side of
 * every kink as the base point, so a difference can never straddle one unnoticed (a difference
 * that would is retried with smaller steps, and fails if it still does).
 * A last case is the WGAN-GP chain: gp(W) = 10 mean_n (||d sum D(x^)/dx^||_n - 1)^2 through a
 * small critic, its weight gradient from bk_backward against central differences in double
 * whose inner gradient is itself a central difference of the reference critic.
 *
 * Each case prints one line with its worst relative errors: "fwd", "1st", "2nd".
 * BK_GC_SEED=k draws all data from another seed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/pyramid.h"
#include "tests/support/harness.h"
#include "tests/support/ref.h"

#define TOL_FWD 1e-5
/* Tightened to about 3-7x the worst figure seen over 41 data seeds (BK_GC_SEED=0..40): first
 * order 1.6e-5 (critic_chain), second order 2.9e-5, WGAN-GP weight gradient 9.2e-5. */
#define TOL1 5e-5   /* first order, fp32 analytic vs double differences */
#define TOL2 2e-4   /* second order, relative with a floor */
#define TOL_GP 5e-4 /* WGAN-GP weight gradient (differences of differences) */
#define H1 1e-4     /* first-order step */
#define S2 1e-3     /* second-order steps s (along v) and t (along d_k) */
#define NDIR 3
#define FLOOR_REL 1e-2 /* floor of a comparison, relative to the case's largest value */

enum { MAXIN = 5 };

typedef enum gen_kind {
    GEN_UNI = 0, /* uniform [-1, 1] */
    GEN_AWAY,    /* +-[0.2, 1]: inputs of a kink at 0 */
    GEN_POS,     /* [0.5, 2]: sqrt arguments, denominators */
    GEN_KINK,    /* uniform on [lo - 1.5, hi + 1.5], at least 0.05 away from lo and hi */
    GEN_DISTINCT, /* a shuffled ramp on [-1, 1]: no two values closer than 2/numel (max pool) */
} gen_kind;

typedef struct gc_case gc_case;
typedef bk_tensor *(*gc_build_fn)(bk_ctx *ctx, bk_tensor **in, const gc_case *c);
/* Writes the output of the case for inputs `in` (NCHW doubles) into out and returns its shape;
 * with out NULL only returns the shape. */
typedef bk_shape (*gc_ref_fn)(const gc_case *c, double *const *in, double *out);
/* Adjusts freshly drawn inputs (float, NCHW) before use. */
typedef void (*gc_fix_fn)(const gc_case *c, float **in);

struct gc_case {
    const char *name;
    gc_build_fn build;
    gc_ref_fn ref;
    gc_fix_fn fix;
    int nin;
    bk_shape s[MAXIN];
    unsigned diff;        /* bit i: differentiate input i */
    unsigned persist;     /* bit i: input i is a persistent tensor (a parameter) */
    gen_kind gen[MAXIN];
    bool sq;              /* output squared (gives linear ops a second order) */
    bool first_only;      /* no second order (the op's backward is not differentiable) */
    bool no_cg;           /* first-order-only op that stops if create_graph reaches it: no
                           * create_graph gradient at all (implies first_only) */
    /* parameters */
    bk_conv_opts o;
    bk_act act;
    bool bias, residual;  /* conv: inputs x, w, [bias], [residual] */
    int transposed;
    float slope, a, b, eps;
    int op;
    bk_shape to;          /* sum_to / expand target; x shape of bwd_data; w shape of bwd_weights */
    /* issue 3 ops */
    float lo, hi;         /* clamp bounds; kink positions of GEN_KINK inputs */
    int axis;             /* concat, slice, embed, split */
    int64_t off, size;    /* slice / embed: offset, size (slice) or full extent (embed) */
    int nparts;
    int64_t parts[4];     /* split sizes */
    int pad[4];           /* reflect pad t, l, b, r */
    int64_t oh, ow;       /* zero insertion, resample, lap_up targets */
    int mode;             /* resample mode */
    int k, stride;        /* max pool */
    int levels;           /* pyramid */
    bool training;        /* batch norm */
};

/* ------------------------------------------------------------------ kink bookkeeping */

/* The reference forwards report the arguments of their kinks; the evaluation at the base point
 * records which side of its kink each one is on, and every evaluation of a difference quotient
 * must find the same sides (kink_eval_end after each one). */
static struct {
    int mode; /* 0 off, 1 record, 2 compare */
    unsigned char *sig;
    size_t len, cap, pos;
    bool now;    /* the current evaluation differs */
    double min_abs;
} kink;

static void kink_note(const double *z, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char s = z[i] > 0 ? 1 : z[i] < 0 ? 2 : 0;
        if (kink.mode == 1) {
            if (kink.len == kink.cap) {
                kink.cap = kink.cap ? 2 * kink.cap : 1024;
                kink.sig = realloc(kink.sig, kink.cap);
            }
            kink.sig[kink.len++] = s;
            if (fabs(z[i]) < kink.min_abs) kink.min_abs = fabs(z[i]);
        } else if (kink.mode == 2) {
            if (kink.pos >= kink.len || kink.sig[kink.pos] != s) kink.now = true;
            kink.pos++;
        }
    }
}
static void kink_record(void) {
    kink.mode = 1;
    kink.len = 0;
    kink.min_abs = INFINITY;
}
static void kink_compare(void) {
    kink.mode = 2;
    kink.pos = 0;
    kink.now = false;
}
/* Ends one evaluation in compare mode: true if it was on another side of some kink. */
static bool kink_eval_end(void) {
    bool crossed = kink.mode == 2 && (kink.now || kink.pos != kink.len);
    kink.pos = 0;
    kink.now = false;
    return crossed;
}
static void kink_off(void) { kink.mode = 0; }

/* ------------------------------------------------------------------ helpers */

static double *dalloc(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

static double dot(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
static double norm2(const double *a, size_t n) { return sqrt(dot(a, a, n)); }

static double *tensor_d(const bk_tensor *t) {
    float *f = bk_test_nchw(t);
    double *d = ref_from_float(f, (size_t)bk_numel(t));
    free(f);
    return d;
}

static double rel_err(const double *got, const double *want, size_t n) {
    double e = 0.0, m = 0.0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs(got[i] - want[i]));
        m = fmax(m, fabs(want[i]));
    }
    return e / fmax(m, 1e-6);
}

static const char *shp(bk_shape s, char *buf) {
    snprintf(buf, 64, "%lldx%lldx%lldx%lld", (long long)s.n, (long long)s.c, (long long)s.h,
             (long long)s.w);
    return buf;
}

/* A shuffled ramp: n distinct values on [-1, 1], 2/n apart. */
static void fill_distinct(float *f, size_t n, uint64_t seed) {
    float *r = malloc(n * sizeof *r);
    bk_test_fill_uniform(r, n, 0, 1, seed);
    for (size_t i = 0; i < n; i++) f[i] = -1.0f + 2.0f * (float)i / (float)n;
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)(r[i] * (float)(i + 1));
        if (j > i) j = i;
        float t = f[i];
        f[i] = f[j];
        f[j] = t;
    }
    free(r);
}

/* ------------------------------------------------------------------ builders and references */

static bk_tensor *b_conv2d(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_conv2d(ctx, in[0], in[1], c->bias ? in[2] : NULL, c->o, c->act,
                     c->residual ? in[2 + c->bias] : NULL);
}
/* conv + bias + residual before the activation */
static bk_shape r_conv2d_pre(const gc_case *c, double *const *in, double *z) {
    bk_shape ys = ref_conv2d_out_shape(c->s[0], c->s[1], c->o);
    if (!z) return ys;
    ref_conv2d_fwd(in[0], c->s[0], in[1], c->s[1], c->bias ? in[2] : NULL, c->o, z);
    if (c->residual) ref_binary(REF_ADD, z, ys, in[2 + c->bias], ys, z);
    return ys;
}
static bk_shape r_conv2d(const gc_case *c, double *const *in, double *y) {
    bk_shape ys = r_conv2d_pre(c, in, y);
    if (y && c->act.kind == BK_ACT_RELU) {
        kink_note(y, ref_numel(ys));
        ref_leaky_relu(y, ref_numel(ys), c->act.alpha, y);
    }
    return ys;
}
/* Moves the residual so that every pre-activation is at least 0.25 away from the kink. */
static void fix_conv_kink(const gc_case *c, float **in) {
    double *d[MAXIN] = {0};
    for (int i = 0; i < c->nin; i++) d[i] = ref_from_float(in[i], ref_numel(c->s[i]));
    bk_shape ys = r_conv2d_pre(c, d, NULL);
    double *z = dalloc(ref_numel(ys));
    r_conv2d_pre(c, d, z);
    float *res = in[2 + c->bias];
    for (size_t i = 0; i < ref_numel(ys); i++)
        if (fabs(z[i]) < 0.25) res[i] += z[i] >= 0 ? 0.5f : -0.5f;
    free(z);
    for (int i = 0; i < c->nin; i++) free(d[i]);
}

static bk_tensor *b_convt(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_conv_transpose2d(ctx, in[0], in[1], c->bias ? in[2] : NULL, c->o);
}
static bk_shape r_convt(const gc_case *c, double *const *in, double *y) {
    bk_shape ys = ref_conv_transpose2d_out_shape(c->s[0], c->s[1], c->o);
    if (y) ref_conv_transpose2d_fwd(in[0], c->s[0], in[1], c->s[1], c->bias ? in[2] : NULL, c->o, y);
    return ys;
}

/* raw directions: bwd_data(gy, w) with x shape c->to; bwd_weights(x, gy) with w shape c->to */
static bk_tensor *b_bwd_data(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    bk_conv_geom g = bk_conv_geom_make(c->to, c->s[1], c->o, c->transposed);
    return bk_conv_bwd_data(ctx, in[0], in[1], &g);
}
static bk_shape r_bwd_data(const gc_case *c, double *const *in, double *gx) {
    if (gx) {
        if (c->transposed)
            ref_conv_transpose2d_bwd_data(in[0], in[1], c->s[1], c->to, c->o, gx);
        else
            ref_conv2d_bwd_data(in[0], in[1], c->s[1], c->to, c->o, gx);
    }
    return c->to;
}
static bk_tensor *b_bwd_weights(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    bk_conv_geom g = bk_conv_geom_make(c->s[0], c->to, c->o, c->transposed);
    return bk_conv_bwd_weights(ctx, in[0], in[1], &g);
}
static bk_shape r_bwd_weights(const gc_case *c, double *const *in, double *gw) {
    if (gw) {
        if (c->transposed)
            ref_conv_transpose2d_bwd_weights(in[0], c->s[0], in[1], c->to, c->o, gw);
        else
            ref_conv2d_bwd_weights(in[0], c->s[0], in[1], c->to, c->o, gw);
    }
    return c->to;
}

static bk_tensor *b_inorm(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_instance_norm(ctx, in[0], c->eps);
}
static bk_shape r_inorm(const gc_case *c, double *const *in, double *y) {
    if (y) ref_instance_norm(in[0], c->s[0], c->eps, y);
    return c->s[0];
}
/* Each (n,c) plane of input 0 gets its own mean in [-2,2] and scale in [0.3,3]. */
static void fix_instances(const gc_case *c, float **in) {
    const bk_shape s = c->s[0];
    const size_t m = (size_t)(s.h * s.w), k = (size_t)(s.n * s.c);
    float *mean = malloc(k * sizeof *mean), *sc = malloc(k * sizeof *sc);
    bk_test_fill_uniform(mean, k, -2, 2, 77);
    bk_test_fill_uniform(sc, k, 0.3f, 3.0f, 78);
    for (size_t i = 0; i < ref_numel(s); i++) in[0][i] = mean[i / m] + sc[i / m] * in[0][i];
    free(mean);
    free(sc);
}
static bk_tensor *b_inorm_bwd(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    bk_tensor *y = bk_instance_norm(ctx, in[0], c->eps);
    return bk_instance_norm_bwd(ctx, in[0], in[1], y);
}
static bk_shape r_inorm_bwd(const gc_case *c, double *const *in, double *gx) {
    if (gx) ref_instance_norm_bwd(in[0], in[1], c->s[0], c->eps, gx);
    return c->s[0];
}

/* The critic of the WGAN-GP case, as a plain case too: conv k4 s2 p2 (+bias) -> instance
 * norm -> LeakyReLU 0.2 -> conv k4 s1 p2 (+bias). Inputs x, w1, b1, w2, with b2 fixed at 0.1. */
static const bk_conv_opts critic_o1 = {2, 2, 2, 2, 2, 2, 1, 0, 0};
static const bk_conv_opts critic_o2 = {1, 1, 2, 2, 2, 2, 1, 0, 0};
static bk_tensor *b_chain(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    bk_tensor *h = bk_conv2d(ctx, in[0], in[1], in[2], critic_o1, bk_act_none(), NULL);
    h = bk_leaky_relu(ctx, bk_instance_norm(ctx, h, c->eps), 0.2f);
    bk_tensor *b2 = bk_tensor_full(ctx, (bk_shape){1, in[3]->n, 1, 1}, 0.1f);
    return bk_conv2d(ctx, h, in[3], b2, critic_o2, bk_act_none(), NULL);
}
static bk_shape r_chain(const gc_case *c, double *const *in, double *y) {
    bk_shape hs = ref_conv2d_out_shape(c->s[0], c->s[1], critic_o1);
    bk_shape ys = ref_conv2d_out_shape(hs, c->s[3], critic_o2);
    if (!y) return ys;
    double *h = dalloc(ref_numel(hs)), *b2 = dalloc((size_t)c->s[3].n);
    for (int64_t i = 0; i < c->s[3].n; i++) b2[i] = 0.1f;
    ref_conv2d_fwd(in[0], c->s[0], in[1], c->s[1], in[2], critic_o1, h);
    ref_instance_norm(h, hs, c->eps, h);
    kink_note(h, ref_numel(hs));
    ref_leaky_relu(h, ref_numel(hs), 0.2, h);
    ref_conv2d_fwd(h, hs, in[3], c->s[3], b2, critic_o2, y);
    free(h);
    free(b2);
    return ys;
}

static bk_tensor *b_leaky(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_leaky_relu(ctx, in[0], c->slope);
}
static bk_shape r_leaky(const gc_case *c, double *const *in, double *y) {
    if (y) {
        kink_note(in[0], ref_numel(c->s[0]));
        ref_leaky_relu(in[0], ref_numel(c->s[0]), c->slope, y);
    }
    return c->s[0];
}
/* relu_bwd(gy, y): differentiable in gy; y (input 1) fixed */
static bk_tensor *b_relu_bwd(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_relu_bwd(ctx, in[0], in[1], c->slope);
}
static bk_shape r_relu_bwd(const gc_case *c, double *const *in, double *y) {
    if (y) ref_relu_bwd(in[0], in[1], ref_numel(c->s[0]), c->slope, y);
    return c->s[0];
}

enum { U_AFFINE, U_ABS, U_SQUARE, U_SQRT };
static bk_tensor *b_unary(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    switch (c->op) {
    case U_AFFINE: return bk_affine(ctx, in[0], c->a, c->b);
    case U_ABS: return bk_abs(ctx, in[0]);
    case U_SQUARE: return bk_square(ctx, in[0]);
    default: return bk_sqrt(ctx, in[0]);
    }
}
static bk_shape r_unary(const gc_case *c, double *const *in, double *y) {
    const size_t n = ref_numel(c->s[0]);
    if (!y) return c->s[0];
    switch (c->op) {
    case U_AFFINE: ref_affine(in[0], n, c->a, c->b, y); break;
    case U_ABS:
        kink_note(in[0], n);
        ref_abs(in[0], n, y);
        break;
    case U_SQUARE: ref_square(in[0], n, y); break;
    default: ref_sqrt(in[0], n, y); break;
    }
    return c->s[0];
}

static bk_tensor *b_binary(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    switch ((ref_binop)c->op) {
    case REF_ADD: return bk_add(ctx, in[0], in[1]);
    case REF_SUB: return bk_sub(ctx, in[0], in[1]);
    case REF_MUL: return bk_mul(ctx, in[0], in[1]);
    default: return bk_div(ctx, in[0], in[1]);
    }
}
static bk_shape r_binary(const gc_case *c, double *const *in, double *y) {
    if (y) ref_binary((ref_binop)c->op, in[0], c->s[0], in[1], c->s[1], y);
    return ref_broadcast_shape(c->s[0], c->s[1]);
}

static bk_tensor *b_sum_to(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_sum_to(ctx, in[0], c->to);
}
static bk_shape r_sum_to(const gc_case *c, double *const *in, double *y) {
    if (y) ref_sum_dims(in[0], c->s[0], ref_dims_to(c->s[0], c->to), y);
    return c->to;
}
static bk_tensor *b_expand(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_expand(ctx, in[0], c->to);
}
static bk_shape r_expand(const gc_case *c, double *const *in, double *y) {
    if (y) ref_expand(in[0], c->s[0], c->to, y);
    return c->to;
}

enum { R_SUM, R_MEAN, R_SUM_PS, R_MEAN_PS, R_SUM_CH, R_MEAN_CH };
static bk_tensor *b_reduce(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    switch (c->op) {
    case R_SUM: return bk_sum(ctx, in[0]);
    case R_MEAN: return bk_mean(ctx, in[0]);
    case R_SUM_PS: return bk_sum_per_sample(ctx, in[0]);
    case R_MEAN_PS: return bk_mean_per_sample(ctx, in[0]);
    case R_SUM_CH: return bk_sum_channels(ctx, in[0]);
    default: return bk_mean_channels(ctx, in[0]);
    }
}
static bk_shape r_reduce(const gc_case *c, double *const *in, double *y) {
    const bk_shape s = c->s[0];
    unsigned dims = c->op <= R_MEAN      ? (REF_N | REF_C | REF_H | REF_W)
                    : c->op <= R_MEAN_PS ? (REF_C | REF_H | REF_W)
                                         : REF_C;
    bk_shape ys = ref_reduced_shape(s, dims);
    if (!y) return ys;
    ref_sum_dims(in[0], s, dims, y);
    if (c->op == R_MEAN || c->op == R_MEAN_PS || c->op == R_MEAN_CH) {
        double cnt = (double)ref_numel(s) / (double)ref_numel(ys);
        ref_affine(y, ref_numel(ys), 1.0 / cnt, 0.0, y);
    }
    return ys;
}

/* ------------------------------------------------------------------ issue 3: element-wise */

/* c->op is a ref_unop; c->lo, c->hi the clamp bounds, c->a the pow exponent */
static bk_tensor *b_unary3(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    switch ((ref_unop)c->op) {
    case REF_CLAMP: return bk_clamp(ctx, in[0], c->lo, c->hi);
    case REF_RELU6: return bk_relu6(ctx, in[0]);
    case REF_HARDSWISH: return bk_hardswish(ctx, in[0]);
    case REF_SIGMOID: return bk_sigmoid(ctx, in[0]);
    case REF_TANH: return bk_tanh(ctx, in[0]);
    case REF_EXP: return bk_exp(ctx, in[0]);
    case REF_LOG: return bk_log(ctx, in[0]);
    case REF_POW: return bk_pow(ctx, in[0], c->a);
    }
    return NULL;
}
/* the kinks of x at lo and hi (clamp, relu6, hardswish) */
static void note_kinks(const double *x, size_t n, double lo, double hi) {
    double *z = dalloc(n);
    for (int e = 0; e < 2; e++) {
        for (size_t i = 0; i < n; i++) z[i] = x[i] - (e ? hi : lo);
        kink_note(z, n);
    }
    free(z);
}
static bk_shape r_unary3(const gc_case *c, double *const *in, double *y) {
    const size_t n = ref_numel(c->s[0]);
    const ref_unop op = (ref_unop)c->op;
    if (!y) return c->s[0];
    if (op == REF_CLAMP || op == REF_RELU6 || op == REF_HARDSWISH) note_kinks(in[0], n, c->lo, c->hi);
    ref_unary(op, in[0], n, op == REF_CLAMP ? c->lo : c->a, c->hi, y);
    return c->s[0];
}
/* clamp_bwd(gy, x): differentiable in gy, x (input 1) fixed; c->op is `inclusive` */
static bk_tensor *b_clamp_bwd(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_clamp_bwd(ctx, in[0], in[1], c->lo, c->hi, c->op);
}
static bk_shape r_clamp_bwd(const gc_case *c, double *const *in, double *y) {
    if (y) ref_clamp_bwd(in[0], in[1], ref_numel(c->s[0]), c->lo, c->hi, c->op, y);
    return c->s[0];
}

/* ------------------------------------------------------------------ issue 3: data movement */

static bk_tensor *b_concat(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_concat(ctx, c->nin, in, c->axis);
}
static bk_shape r_concat(const gc_case *c, double *const *in, double *y) {
    return ref_concat(c->nin, (const double *const *)in, c->s, c->axis, y);
}
static bk_tensor *b_slice(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_slice(ctx, in[0], c->axis, c->off, c->size);
}
static bk_shape r_slice(const gc_case *c, double *const *in, double *y) {
    bk_shape ys = c->s[0];
    *ref_dim(&ys, c->axis) = c->size;
    if (y) ref_slice(in[0], c->s[0], c->axis, c->off, c->size, y);
    return ys;
}
static bk_tensor *b_embed(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_embed(ctx, in[0], c->axis, c->off, c->size);
}
static bk_shape r_embed(const gc_case *c, double *const *in, double *y) {
    bk_shape ys = c->s[0];
    *ref_dim(&ys, c->axis) = c->size;
    if (y) ref_embed(in[0], c->s[0], c->axis, c->off, c->size, y);
    return ys;
}
/* split, then the parts concatenated in reverse order (a permutation of x) */
static bk_tensor *b_split(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    bk_tensor *parts[4], *rev[4];
    bk_split(ctx, in[0], c->axis, c->nparts, c->parts, parts);
    for (int j = 0; j < c->nparts; j++) rev[j] = parts[c->nparts - 1 - j];
    return bk_concat(ctx, c->nparts, rev, c->axis);
}
static bk_shape r_split(const gc_case *c, double *const *in, double *y) {
    if (!y) return c->s[0];
    double *parts[4];
    bk_shape ps[4];
    int64_t off = 0;
    for (int j = 0; j < c->nparts; j++) {
        const int r = c->nparts - 1 - j;
        ps[r] = c->s[0];
        *ref_dim(&ps[r], c->axis) = c->parts[j];
        parts[r] = dalloc(ref_numel(ps[r]));
        ref_slice(in[0], c->s[0], c->axis, off, c->parts[j], parts[r]);
        off += c->parts[j];
    }
    ref_concat(c->nparts, (const double *const *)parts, ps, c->axis, y);
    for (int j = 0; j < c->nparts; j++) free(parts[j]);
    return c->s[0];
}
static bk_tensor *b_transpose(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    (void)c;
    return bk_transpose_hw(ctx, in[0]);
}
static bk_shape r_transpose(const gc_case *c, double *const *in, double *y) {
    if (y) ref_transpose_hw(in[0], c->s[0], y);
    return (bk_shape){c->s[0].n, c->s[0].c, c->s[0].w, c->s[0].h};
}
static bk_tensor *b_reflect_pad(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_reflect_pad(ctx, in[0], c->pad[0], c->pad[1], c->pad[2], c->pad[3]);
}
static bk_shape r_reflect_pad(const gc_case *c, double *const *in, double *y) {
    const bk_shape xs = c->s[0];
    if (y) ref_reflect_pad(in[0], xs, c->pad[0], c->pad[1], c->pad[2], c->pad[3], y);
    return (bk_shape){xs.n, xs.c, xs.h + c->pad[0] + c->pad[2], xs.w + c->pad[1] + c->pad[3]};
}
/* reflect_pad_bwd(gy), gy of the padded shape */
static bk_tensor *b_reflect_pad_bwd(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_reflect_pad_bwd(ctx, in[0], c->pad[0], c->pad[1], c->pad[2], c->pad[3]);
}
static bk_shape r_reflect_pad_bwd(const gc_case *c, double *const *in, double *y) {
    const bk_shape gs = c->s[0];
    const bk_shape xs = {gs.n, gs.c, gs.h - c->pad[0] - c->pad[2], gs.w - c->pad[1] - c->pad[3]};
    if (y) ref_reflect_pad_bwd(in[0], xs, c->pad[0], c->pad[1], c->pad[2], c->pad[3], y);
    return xs;
}
static bk_tensor *b_zero_insert(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_zero_insert(ctx, in[0], c->oh, c->ow);
}
static bk_shape r_zero_insert(const gc_case *c, double *const *in, double *y) {
    if (y) ref_zero_insert(in[0], c->s[0], c->oh, c->ow, y);
    return (bk_shape){c->s[0].n, c->s[0].c, c->oh, c->ow};
}
static bk_tensor *b_subsample(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    (void)c;
    return bk_subsample(ctx, in[0]);
}
static bk_shape r_subsample(const gc_case *c, double *const *in, double *y) {
    if (y) ref_subsample(in[0], c->s[0], y);
    return ref_subsample_shape(c->s[0]);
}

/* ------------------------------------------------------------------ issue 3: resampling, pooling */

static bk_tensor *b_resample(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_resample(ctx, in[0], c->oh, c->ow, (bk_resample_mode)c->mode);
}
static bk_shape r_resample(const gc_case *c, double *const *in, double *y) {
    if (y) ref_resample(in[0], c->s[0], c->oh, c->ow, c->mode, y);
    return (bk_shape){c->s[0].n, c->s[0].c, c->oh, c->ow};
}
static bk_tensor *b_max_pool(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_max_pool(ctx, in[0], c->k, c->stride);
}
/* The kinks of a max are the orderings inside each window: every pair's difference. */
static bk_shape r_max_pool(const gc_case *c, double *const *in, double *y) {
    const bk_shape xs = c->s[0], ys = ref_max_pool_shape(xs, c->k, c->stride);
    if (!y) return ys;
    const int kk = c->k * c->k;
    double *z = dalloc((size_t)(kk * kk));
    for (int64_t n = 0; n < ys.n; n++)
        for (int64_t ch = 0; ch < ys.c; ch++)
            for (int64_t i = 0; i < ys.h; i++)
                for (int64_t j = 0; j < ys.w; j++) {
                    size_t m = 0;
                    for (int p = 0; p < kk; p++)
                        for (int q = p + 1; q < kk; q++)
                            z[m++] = in[0][ref_idx(xs, n, ch, i * c->stride + p / c->k,
                                                   j * c->stride + p % c->k)] -
                                     in[0][ref_idx(xs, n, ch, i * c->stride + q / c->k,
                                                   j * c->stride + q % c->k)];
                    kink_note(z, m);
                }
    free(z);
    ref_max_pool(in[0], xs, c->k, c->stride, y);
    return ys;
}

/* batch norm: inputs x, gamma, beta, running mean, running var (the last four persistent; the
 * running statistics are read in eval, and only updated in training) */
static bk_tensor *b_batch_norm(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    return bk_batch_norm(ctx, in[0], in[1], in[2], in[3], in[4], c->training, 0.1f, c->eps);
}
static bk_shape r_batch_norm(const gc_case *c, double *const *in, double *y) {
    if (y) ref_batch_norm(in[0], c->s[0], in[1], in[2], in[3], in[4], c->training, 0.1, c->eps, y,
                          NULL, NULL);
    return c->s[0];
}
/* per-channel offsets and scales for x (input 0) */
static void fix_channels(const gc_case *c, float **in) {
    const bk_shape s = c->s[0];
    const size_t hw = (size_t)(s.h * s.w), C = (size_t)s.c;
    float *mean = malloc(C * sizeof *mean), *sc = malloc(C * sizeof *sc);
    bk_test_fill_uniform(mean, C, -2, 2, 79);
    bk_test_fill_uniform(sc, C, 0.3f, 3.0f, 80);
    for (size_t i = 0; i < ref_numel(s); i++) {
        size_t ch = (i / hw) % C;
        in[0][i] = mean[ch] + sc[ch] * in[0][i];
    }
    free(mean);
    free(sc);
}

enum { MHW_H, MHW_W, MHW_CENTER_H, MHW_CENTER_W };
static bk_tensor *b_mean_hw(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    bk_tensor *m = c->op == MHW_H || c->op == MHW_CENTER_H ? bk_mean_h(ctx, in[0]) : bk_mean_w(ctx, in[0]);
    if (c->op <= MHW_W) return m;
    return bk_sub(ctx, in[0], bk_expand(ctx, m, bk_shape_of(in[0])));
}
static bk_shape r_mean_hw(const gc_case *c, double *const *in, double *y) {
    const bk_shape s = c->s[0];
    const bool h = c->op == MHW_H || c->op == MHW_CENTER_H;
    const bk_shape ms = ref_reduced_shape(s, h ? REF_H : REF_W);
    if (!y) return c->op <= MHW_W ? ms : s;
    double *m = dalloc(ref_numel(ms));
    ref_sum_dims(in[0], s, h ? REF_H : REF_W, m);
    ref_affine(m, ref_numel(ms), 1.0 / (double)(h ? s.h : s.w), 0, m);
    if (c->op <= MHW_W) {
        memcpy(y, m, ref_numel(ms) * sizeof *y);
    } else {
        ref_binary(REF_SUB, in[0], s, m, ms, y);
    }
    free(m);
    return c->op <= MHW_W ? ms : s;
}

/* ------------------------------------------------------------------ issue 3: Laplacian pyramid */

enum { PYR_GAUSS, PYR_DOWN, PYR_UP, PYR_DECOMPOSE };
/* decompose: the L+1 bands embedded at the top-left of full-size planes and concatenated along
 * C (L + 1 <= 4), so that one output holds them all */
static bk_tensor *b_pyramid(bk_ctx *ctx, bk_tensor **in, const gc_case *c) {
    switch (c->op) {
    case PYR_GAUSS: return bk_gauss5(ctx, in[0], c->a);
    case PYR_DOWN: return bk_lap_down(ctx, in[0]);
    case PYR_UP: return bk_lap_up(ctx, in[0], c->oh, c->ow);
    default: break;
    }
    bk_pyramid p;
    bk_pyramid_decompose(ctx, in[0], c->levels, &p);
    bk_tensor *bands[4];
    const bk_shape s = c->s[0];
    for (int l = 0; l <= c->levels; l++) {
        bk_tensor *b = l < c->levels ? p.high[l] : p.low;
        bands[l] = bk_embed(ctx, bk_embed(ctx, b, BK_AXIS_H, 0, s.h), BK_AXIS_W, 0, s.w);
    }
    return bk_concat(ctx, c->levels + 1, bands, BK_AXIS_C);
}
static bk_shape r_pyramid(const gc_case *c, double *const *in, double *y) {
    const bk_shape s = c->s[0];
    switch (c->op) {
    case PYR_GAUSS:
        if (y) ref_gauss5(in[0], s, c->a, y);
        return s;
    case PYR_DOWN:
        if (y) ref_lap_down(in[0], s, y);
        return ref_subsample_shape(s);
    case PYR_UP:
        if (y) ref_lap_up(in[0], s, c->oh, c->ow, y);
        return (bk_shape){s.n, s.c, c->oh, c->ow};
    default: break;
    }
    const bk_shape ys = {s.n, s.c * (c->levels + 1), s.h, s.w};
    if (!y) return ys;
    double *high[4], *low, *bands[4];
    bk_shape hs[4], ls, fs[4];
    ref_pyramid_decompose(in[0], s, c->levels, high, hs, &low, &ls);
    for (int l = 0; l <= c->levels; l++) {
        const double *b = l < c->levels ? high[l] : low;
        const bk_shape bs = l < c->levels ? hs[l] : ls;
        const bk_shape es = {s.n, s.c, s.h, bs.w};
        double *e = dalloc(ref_numel(es));
        fs[l] = s;
        bands[l] = dalloc(ref_numel(s));
        ref_embed(b, bs, BK_AXIS_H, 0, s.h, e);
        ref_embed(e, es, BK_AXIS_W, 0, s.w, bands[l]);
        free(e);
    }
    ref_concat(c->levels + 1, (const double *const *)bands, fs, BK_AXIS_C, y);
    for (int l = 0; l <= c->levels; l++) {
        free(bands[l]);
        if (l < c->levels) free(high[l]);
    }
    free(low);
    return ys;
}

/* ------------------------------------------------------------------ the table */

#define SH(n, c, h, w) ((bk_shape){n, c, h, w})
#define OPTS(s, p, g) ((bk_conv_opts){s, s, p, p, p, p, g, 0, 0})

static const gc_case cases[] = {
    /* ---- conv2d */
    {.name = "conv2d_s1_p1_bias", .build = b_conv2d, .ref = r_conv2d, .nin = 3,
     .s = {SH(2, 3, 5, 6), SH(4, 3, 3, 3), SH(1, 4, 1, 1)}, .diff = 0x7, .o = OPTS(1, 1, 1),
     .bias = true},
    {.name = "conv2d_k4_s2_asym_pad", .build = b_conv2d, .ref = r_conv2d, .nin = 3,
     .s = {SH(1, 3, 7, 6), SH(5, 3, 4, 4), SH(1, 5, 1, 1)}, .diff = 0x7,
     .o = {2, 2, 1, 2, 2, 1, 1, 0, 0}, .bias = true},
    {.name = "conv2d_k5_sh2_sw1_asym", .build = b_conv2d, .ref = r_conv2d, .nin = 2,
     .s = {SH(1, 2, 7, 5), SH(3, 2, 5, 5)}, .diff = 0x3, .o = {2, 1, 2, 1, 1, 2, 1, 0, 0}},
    {.name = "conv2d_groups2_persistent_w", .build = b_conv2d, .ref = r_conv2d, .nin = 3,
     .s = {SH(1, 4, 5, 5), SH(6, 2, 3, 3), SH(1, 6, 1, 1)}, .diff = 0x7, .persist = 0x2,
     .o = OPTS(1, 1, 2), .bias = true},
    {.name = "conv2d_groups3_s2", .build = b_conv2d, .ref = r_conv2d, .nin = 2,
     .s = {SH(2, 6, 5, 6), SH(3, 2, 3, 3)}, .diff = 0x3, .o = OPTS(2, 1, 3)},
    {.name = "conv2d_depthwise_s2", .build = b_conv2d, .ref = r_conv2d, .nin = 2,
     .s = {SH(2, 3, 6, 5), SH(3, 1, 3, 3)}, .diff = 0x3, .o = OPTS(2, 1, 3)},
    {.name = "conv2d_k1", .build = b_conv2d, .ref = r_conv2d, .nin = 3,
     .s = {SH(2, 3, 3, 5), SH(4, 3, 1, 1), SH(1, 4, 1, 1)}, .diff = 0x7, .o = OPTS(1, 0, 1),
     .bias = true},
    {.name = "conv2d_fused_leaky_residual", .build = b_conv2d, .ref = r_conv2d,
     .fix = fix_conv_kink, .nin = 4,
     .s = {SH(1, 3, 5, 5), SH(4, 3, 3, 3), SH(1, 4, 1, 1), SH(1, 4, 5, 5)}, .diff = 0xF,
     .o = OPTS(1, 1, 1), .act = {BK_ACT_RELU, 0.2f}, .bias = true, .residual = true},
    {.name = "conv2d_fused_relu_residual_g2_s2", .build = b_conv2d, .ref = r_conv2d,
     .fix = fix_conv_kink, .nin = 3, .s = {SH(2, 4, 5, 5), SH(4, 2, 3, 3), SH(2, 4, 3, 3)},
     .diff = 0x7, .o = OPTS(2, 1, 2), .act = {BK_ACT_RELU, 0.0f}, .residual = true},
    {.name = "conv2d_fused_leaky_residual_persistent_w", .build = b_conv2d, .ref = r_conv2d,
     .fix = fix_conv_kink, .nin = 4, .persist = 0x2,
     .s = {SH(2, 2, 4, 5), SH(3, 2, 4, 4), SH(1, 3, 1, 1), SH(2, 3, 2, 3)}, .diff = 0xF,
     .o = {2, 2, 1, 2, 1, 1, 1, 0, 0}, .act = {BK_ACT_RELU, 0.2f}, .bias = true,
     .residual = true},
    /* ---- conv_transpose2d */
    {.name = "convt_k4_s2_p1_bias", .build = b_convt, .ref = r_convt, .nin = 3,
     .s = {SH(1, 3, 3, 4), SH(3, 2, 4, 4), SH(1, 2, 1, 1)}, .diff = 0x7, .o = OPTS(2, 1, 1),
     .bias = true},
    {.name = "convt_k3_s2_p1_op1_g2", .build = b_convt, .ref = r_convt, .nin = 3,
     .s = {SH(2, 4, 3, 3), SH(4, 2, 3, 3), SH(1, 4, 1, 1)}, .diff = 0x7,
     .o = {2, 2, 1, 1, 1, 1, 2, 1, 1}, .bias = true},
    {.name = "convt_asym_op10_persistent_w", .build = b_convt, .ref = r_convt, .nin = 2,
     .persist = 0x2, .s = {SH(1, 2, 3, 4), SH(2, 3, 3, 3)}, .diff = 0x3,
     .o = {2, 2, 1, 0, 2, 1, 1, 1, 0}},
    {.name = "convt_depthwise_k3_s2_p1_op1", .build = b_convt, .ref = r_convt, .nin = 2,
     .s = {SH(2, 3, 3, 4), SH(3, 1, 3, 3)}, .diff = 0x3, .o = {2, 2, 1, 1, 1, 1, 3, 1, 1}},
    /* ---- the raw directions, as functions of both inputs */
    {.name = "bwd_data_conv_s2_asym_g2", .build = b_bwd_data, .ref = r_bwd_data, .nin = 2,
     .s = {SH(2, 4, 4, 3), SH(4, 1, 3, 3)}, .diff = 0x3, .o = {2, 2, 1, 1, 2, 1, 2, 0, 0},
     .to = SH(2, 2, 6, 5)},
    {.name = "bwd_weights_conv_s2_asym_g2", .build = b_bwd_weights, .ref = r_bwd_weights,
     .nin = 2, .s = {SH(2, 2, 6, 5), SH(2, 4, 4, 3)}, .diff = 0x3,
     .o = {2, 2, 1, 1, 2, 1, 2, 0, 0}, .to = SH(4, 1, 3, 3)},
    {.name = "bwd_data_conv_depthwise", .build = b_bwd_data, .ref = r_bwd_data, .nin = 2,
     .s = {SH(1, 3, 5, 4), SH(3, 1, 3, 3)}, .diff = 0x3, .o = OPTS(1, 1, 3),
     .to = SH(1, 3, 5, 4)},
    {.name = "bwd_data_convt_k4_s2_p1", .build = b_bwd_data, .ref = r_bwd_data, .nin = 2,
     .s = {SH(1, 2, 6, 8), SH(3, 2, 4, 4)}, .diff = 0x3, .o = OPTS(2, 1, 1), .transposed = 1,
     .to = SH(1, 3, 3, 4)},
    {.name = "bwd_weights_convt_k3_s2_p1_op1", .build = b_bwd_weights, .ref = r_bwd_weights,
     .nin = 2, .s = {SH(2, 2, 3, 3), SH(2, 3, 6, 6)}, .diff = 0x3,
     .o = {2, 2, 1, 1, 1, 1, 1, 1, 1}, .transposed = 1, .to = SH(2, 3, 3, 3)},
    /* ---- instance norm */
    {.name = "instance_norm", .build = b_inorm, .ref = r_inorm, .fix = fix_instances, .nin = 1,
     .s = {SH(2, 3, 4, 5)}, .diff = 0x1, .eps = 1e-5f},
    {.name = "instance_norm_3x1", .build = b_inorm, .ref = r_inorm, .fix = fix_instances,
     .nin = 1, .s = {SH(1, 2, 3, 1)}, .diff = 0x1, .eps = 1e-5f},
    {.name = "instance_norm_bwd", .build = b_inorm_bwd, .ref = r_inorm_bwd, .fix = fix_instances,
     .nin = 2, .s = {SH(2, 2, 3, 4), SH(2, 2, 3, 4)}, .diff = 0x3, .eps = 1e-5f,
     .first_only = true},
    {.name = "critic_chain", .build = b_chain, .ref = r_chain, .nin = 4,
     .s = {SH(2, 3, 6, 6), SH(4, 3, 4, 4), SH(1, 4, 1, 1), SH(1, 4, 4, 4)}, .diff = 0xF,
     .eps = 1e-5f},
    /* ---- element-wise */
    {.name = "leaky_relu_0.2", .build = b_leaky, .ref = r_leaky, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_AWAY}, .slope = 0.2f},
    {.name = "leaky_relu_0.2_sq", .build = b_leaky, .ref = r_leaky, .nin = 1,
     .s = {SH(2, 3, 3, 5)}, .diff = 0x1, .gen = {GEN_AWAY}, .slope = 0.2f, .sq = true},
    {.name = "relu_sq", .build = b_leaky, .ref = r_leaky, .nin = 1, .s = {SH(1, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_AWAY}, .slope = 0.0f, .sq = true},
    {.name = "relu_bwd_0.2", .build = b_relu_bwd, .ref = r_relu_bwd, .nin = 2,
     .s = {SH(2, 3, 3, 5), SH(2, 3, 3, 5)}, .diff = 0x1, .gen = {GEN_UNI, GEN_AWAY},
     .slope = 0.2f},
    {.name = "relu_bwd_0_sq", .build = b_relu_bwd, .ref = r_relu_bwd, .nin = 2,
     .s = {SH(2, 3, 3, 5), SH(2, 3, 3, 5)}, .diff = 0x1, .gen = {GEN_UNI, GEN_AWAY},
     .slope = 0.0f, .sq = true},
    {.name = "affine", .build = b_unary, .ref = r_unary, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .op = U_AFFINE, .a = -1.5f, .b = 0.3f},
    {.name = "affine_sq", .build = b_unary, .ref = r_unary, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .op = U_AFFINE, .a = -1.5f, .b = 0.3f, .sq = true},
    {.name = "abs", .build = b_unary, .ref = r_unary, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_AWAY}, .op = U_ABS},
    {.name = "abs_sq", .build = b_unary, .ref = r_unary, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_AWAY}, .op = U_ABS, .sq = true},
    {.name = "square", .build = b_unary, .ref = r_unary, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .op = U_SQUARE},
    {.name = "sqrt", .build = b_unary, .ref = r_unary, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_POS}, .op = U_SQRT},
    /* ---- broadcasting binary ops */
    {.name = "add_full_per_channel", .build = b_binary, .ref = r_binary, .nin = 2,
     .s = {SH(2, 3, 4, 5), SH(1, 3, 1, 1)}, .diff = 0x3, .op = REF_ADD},
    {.name = "add_NHW1_full_sq", .build = b_binary, .ref = r_binary, .nin = 2,
     .s = {SH(2, 1, 4, 5), SH(2, 3, 4, 5)}, .diff = 0x3, .op = REF_ADD, .sq = true},
    {.name = "sub_full_per_sample", .build = b_binary, .ref = r_binary, .nin = 2,
     .s = {SH(2, 3, 4, 5), SH(2, 1, 1, 1)}, .diff = 0x3, .op = REF_SUB},
    {.name = "sub_scalar_full_sq", .build = b_binary, .ref = r_binary, .nin = 2,
     .s = {SH(1, 1, 1, 1), SH(2, 3, 4, 5)}, .diff = 0x3, .op = REF_SUB, .sq = true},
    {.name = "mul_full_full", .build = b_binary, .ref = r_binary, .nin = 2,
     .s = {SH(2, 3, 4, 5), SH(2, 3, 4, 5)}, .diff = 0x3, .op = REF_MUL},
    {.name = "mul_NCH1_per_channel", .build = b_binary, .ref = r_binary, .nin = 2,
     .s = {SH(2, 3, 4, 1), SH(1, 3, 1, 1)}, .diff = 0x3, .op = REF_MUL},
    {.name = "mul_scalar_full", .build = b_binary, .ref = r_binary, .nin = 2,
     .s = {SH(1, 1, 1, 1), SH(2, 3, 4, 5)}, .diff = 0x3, .op = REF_MUL},
    {.name = "mul_N1HW_NC1W", .build = b_binary, .ref = r_binary, .nin = 2,
     .s = {SH(2, 1, 4, 5), SH(2, 3, 1, 5)}, .diff = 0x3, .op = REF_MUL},
    {.name = "div_full_NC1W", .build = b_binary, .ref = r_binary, .nin = 2,
     .s = {SH(2, 3, 4, 5), SH(2, 3, 1, 5)}, .diff = 0x3, .gen = {GEN_UNI, GEN_POS},
     .op = REF_DIV},
    {.name = "div_per_channel_full", .build = b_binary, .ref = r_binary, .nin = 2,
     .s = {SH(1, 3, 1, 1), SH(2, 3, 4, 5)}, .diff = 0x3, .gen = {GEN_UNI, GEN_POS},
     .op = REF_DIV},
    {.name = "div_full_per_sample", .build = b_binary, .ref = r_binary, .nin = 2,
     .s = {SH(2, 3, 4, 5), SH(2, 1, 1, 1)}, .diff = 0x3, .gen = {GEN_UNI, GEN_POS},
     .op = REF_DIV},
    {.name = "div_full_scalar", .build = b_binary, .ref = r_binary, .nin = 2,
     .s = {SH(2, 3, 4, 5), SH(1, 1, 1, 1)}, .diff = 0x3, .gen = {GEN_UNI, GEN_POS},
     .op = REF_DIV},
    /* ---- sum_to / expand */
    {.name = "sum_to_1C11", .build = b_sum_to, .ref = r_sum_to, .nin = 1, .s = {SH(2, 3, 4, 5)},
     .diff = 0x1, .to = SH(1, 3, 1, 1)},
    {.name = "sum_to_N1H1_sq", .build = b_sum_to, .ref = r_sum_to, .nin = 1,
     .s = {SH(2, 3, 4, 5)}, .diff = 0x1, .to = SH(2, 1, 4, 1), .sq = true},
    {.name = "sum_to_1CHW_sq", .build = b_sum_to, .ref = r_sum_to, .nin = 1,
     .s = {SH(2, 3, 4, 5)}, .diff = 0x1, .to = SH(1, 3, 4, 5), .sq = true},
    {.name = "expand_1C11", .build = b_expand, .ref = r_expand, .nin = 1, .s = {SH(1, 3, 1, 1)},
     .diff = 0x1, .to = SH(2, 3, 4, 5)},
    {.name = "expand_N1H1_sq", .build = b_expand, .ref = r_expand, .nin = 1,
     .s = {SH(2, 1, 4, 1)}, .diff = 0x1, .to = SH(2, 3, 4, 5), .sq = true},
    {.name = "expand_111W_sq", .build = b_expand, .ref = r_expand, .nin = 1,
     .s = {SH(1, 1, 1, 5)}, .diff = 0x1, .to = SH(2, 3, 4, 5), .sq = true},
    /* ---- reductions */
    {.name = "sum", .build = b_reduce, .ref = r_reduce, .nin = 1, .s = {SH(2, 3, 4, 5)},
     .diff = 0x1, .op = R_SUM},
    {.name = "sum_sq", .build = b_reduce, .ref = r_reduce, .nin = 1, .s = {SH(2, 3, 4, 5)},
     .diff = 0x1, .op = R_SUM, .sq = true},
    {.name = "mean_sq", .build = b_reduce, .ref = r_reduce, .nin = 1, .s = {SH(2, 3, 4, 5)},
     .diff = 0x1, .op = R_MEAN, .sq = true},
    {.name = "sum_per_sample_sq", .build = b_reduce, .ref = r_reduce, .nin = 1,
     .s = {SH(2, 3, 4, 5)}, .diff = 0x1, .op = R_SUM_PS, .sq = true},
    {.name = "mean_per_sample", .build = b_reduce, .ref = r_reduce, .nin = 1,
     .s = {SH(2, 3, 4, 5)}, .diff = 0x1, .op = R_MEAN_PS},
    {.name = "mean_per_sample_sq", .build = b_reduce, .ref = r_reduce, .nin = 1,
     .s = {SH(2, 3, 4, 5)}, .diff = 0x1, .op = R_MEAN_PS, .sq = true},
    {.name = "sum_channels_sq", .build = b_reduce, .ref = r_reduce, .nin = 1,
     .s = {SH(2, 3, 4, 5)}, .diff = 0x1, .op = R_SUM_CH, .sq = true},
    {.name = "mean_channels", .build = b_reduce, .ref = r_reduce, .nin = 1,
     .s = {SH(2, 3, 4, 5)}, .diff = 0x1, .op = R_MEAN_CH},
    {.name = "mean_channels_sq", .build = b_reduce, .ref = r_reduce, .nin = 1,
     .s = {SH(2, 3, 4, 5)}, .diff = 0x1, .op = R_MEAN_CH, .sq = true},
    /* ---- issue 3: element-wise (GEN_KINK also gives the smooth ones a wider range) */
    {.name = "clamp", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_KINK}, .op = REF_CLAMP, .lo = -0.4f, .hi = 0.6f},
    {.name = "clamp_sq", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_KINK}, .op = REF_CLAMP, .lo = -0.4f, .hi = 0.6f, .sq = true},
    {.name = "clamp_bwd_inclusive_sq", .build = b_clamp_bwd, .ref = r_clamp_bwd, .nin = 2,
     .s = {SH(2, 3, 3, 5), SH(2, 3, 3, 5)}, .diff = 0x1, .gen = {GEN_UNI, GEN_KINK}, .op = 1,
     .lo = -0.4f, .hi = 0.6f, .sq = true},
    {.name = "clamp_bwd_exclusive", .build = b_clamp_bwd, .ref = r_clamp_bwd, .nin = 2,
     .s = {SH(2, 3, 3, 5), SH(2, 3, 3, 5)}, .diff = 0x1, .gen = {GEN_UNI, GEN_KINK}, .op = 0,
     .lo = 0.0f, .hi = 6.0f},
    {.name = "relu6", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_KINK}, .op = REF_RELU6, .lo = 0.0f, .hi = 6.0f},
    {.name = "relu6_sq", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_KINK}, .op = REF_RELU6, .lo = 0.0f, .hi = 6.0f, .sq = true},
    {.name = "hardswish", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_KINK}, .op = REF_HARDSWISH, .lo = -3.0f, .hi = 3.0f, .no_cg = true},
    {.name = "sigmoid", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_KINK}, .op = REF_SIGMOID, .lo = -2.0f, .hi = 2.0f, .no_cg = true},
    {.name = "tanh", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_KINK}, .op = REF_TANH, .lo = -1.0f, .hi = 1.0f, .no_cg = true},
    {.name = "exp_", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_KINK}, .op = REF_EXP, .lo = -0.5f, .hi = 0.5f},
    {.name = "log_", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_POS}, .op = REF_LOG},
    {.name = "pow_2", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_POS}, .op = REF_POW, .a = 2.0f},
    {.name = "pow_3", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_POS}, .op = REF_POW, .a = 3.0f},
    {.name = "pow_1_sq", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_POS}, .op = REF_POW, .a = 1.0f, .sq = true},
    {.name = "pow_0.5", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_POS}, .op = REF_POW, .a = 0.5f},
    {.name = "pow_-1.5", .build = b_unary3, .ref = r_unary3, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .gen = {GEN_POS}, .op = REF_POW, .a = -1.5f},
    /* ---- issue 3: data movement (linear: squared for a second order) */
    {.name = "concat_C_3_sq", .build = b_concat, .ref = r_concat, .nin = 3,
     .s = {SH(2, 2, 3, 4), SH(2, 1, 3, 4), SH(2, 3, 3, 4)}, .diff = 0x7, .axis = BK_AXIS_C,
     .sq = true},
    {.name = "concat_H_2", .build = b_concat, .ref = r_concat, .nin = 2,
     .s = {SH(1, 2, 2, 3), SH(1, 2, 3, 3)}, .diff = 0x3, .axis = BK_AXIS_H},
    {.name = "concat_W_4_sq", .build = b_concat, .ref = r_concat, .nin = 4,
     .s = {SH(1, 2, 3, 1), SH(1, 2, 3, 2), SH(1, 2, 3, 3), SH(1, 2, 3, 1)}, .diff = 0xF,
     .axis = BK_AXIS_W, .sq = true},
    {.name = "slice_C_sq", .build = b_slice, .ref = r_slice, .nin = 1, .s = {SH(2, 5, 3, 4)},
     .diff = 0x1, .axis = BK_AXIS_C, .off = 1, .size = 3, .sq = true},
    {.name = "slice_W", .build = b_slice, .ref = r_slice, .nin = 1, .s = {SH(2, 3, 3, 5)},
     .diff = 0x1, .axis = BK_AXIS_W, .off = 2, .size = 3},
    {.name = "embed_H_sq", .build = b_embed, .ref = r_embed, .nin = 1, .s = {SH(2, 3, 2, 4)},
     .diff = 0x1, .axis = BK_AXIS_H, .off = 2, .size = 5, .sq = true},
    {.name = "embed_C", .build = b_embed, .ref = r_embed, .nin = 1, .s = {SH(2, 2, 3, 4)},
     .diff = 0x1, .axis = BK_AXIS_C, .off = 1, .size = 5},
    {.name = "split_C_3_sq", .build = b_split, .ref = r_split, .nin = 1, .s = {SH(2, 5, 3, 4)},
     .diff = 0x1, .axis = BK_AXIS_C, .nparts = 3, .parts = {1, 3, 1}, .sq = true},
    {.name = "split_W_2", .build = b_split, .ref = r_split, .nin = 1, .s = {SH(1, 3, 3, 5)},
     .diff = 0x1, .axis = BK_AXIS_W, .nparts = 2, .parts = {2, 3}},
    {.name = "transpose_hw_sq", .build = b_transpose, .ref = r_transpose, .nin = 1,
     .s = {SH(2, 3, 3, 5)}, .diff = 0x1, .sq = true},
    {.name = "reflect_pad_asym_sq", .build = b_reflect_pad, .ref = r_reflect_pad, .nin = 1,
     .s = {SH(1, 3, 4, 5)}, .diff = 0x1, .pad = {1, 2, 3, 0}, .sq = true},
    {.name = "reflect_pad_2", .build = b_reflect_pad, .ref = r_reflect_pad, .nin = 1,
     .s = {SH(2, 2, 3, 3)}, .diff = 0x1, .pad = {2, 2, 2, 2}},
    {.name = "reflect_pad_bwd_sq", .build = b_reflect_pad_bwd, .ref = r_reflect_pad_bwd, .nin = 1,
     .s = {SH(1, 3, 7, 8)}, .diff = 0x1, .pad = {2, 1, 2, 3}, .sq = true},
    {.name = "zero_insert_odd_sq", .build = b_zero_insert, .ref = r_zero_insert, .nin = 1,
     .s = {SH(1, 3, 3, 4)}, .diff = 0x1, .oh = 5, .ow = 8, .sq = true},
    {.name = "zero_insert_even", .build = b_zero_insert, .ref = r_zero_insert, .nin = 1,
     .s = {SH(2, 2, 3, 4)}, .diff = 0x1, .oh = 6, .ow = 7},
    {.name = "subsample_sq", .build = b_subsample, .ref = r_subsample, .nin = 1,
     .s = {SH(1, 3, 5, 6)}, .diff = 0x1, .sq = true},
    /* ---- issue 3: resampling, max pooling */
    {.name = "resample_bilinear_x2_sq", .build = b_resample, .ref = r_resample, .nin = 1,
     .s = {SH(1, 3, 3, 4)}, .diff = 0x1, .oh = 6, .ow = 8, .mode = BK_RESAMPLE_BILINEAR,
     .sq = true},
    {.name = "resample_bilinear_x0.5", .build = b_resample, .ref = r_resample, .nin = 1,
     .s = {SH(1, 3, 6, 8)}, .diff = 0x1, .oh = 3, .ow = 4, .mode = BK_RESAMPLE_BILINEAR},
    {.name = "resample_bilinear_any_sq", .build = b_resample, .ref = r_resample, .nin = 1,
     .s = {SH(2, 2, 5, 7)}, .diff = 0x1, .oh = 3, .ow = 11, .mode = BK_RESAMPLE_BILINEAR,
     .sq = true},
    {.name = "resample_aa_down_sq", .build = b_resample, .ref = r_resample, .nin = 1,
     .s = {SH(1, 3, 9, 11)}, .diff = 0x1, .oh = 4, .ow = 5, .mode = BK_RESAMPLE_BILINEAR_AA,
     .sq = true},
    {.name = "resample_aa_mixed_sq", .build = b_resample, .ref = r_resample, .nin = 1,
     .s = {SH(1, 2, 7, 5)}, .diff = 0x1, .oh = 3, .ow = 8, .mode = BK_RESAMPLE_BILINEAR_AA,
     .sq = true},
    {.name = "resample_avg2_odd_sq", .build = b_resample, .ref = r_resample, .nin = 1,
     .s = {SH(1, 3, 5, 7)}, .diff = 0x1, .oh = 2, .ow = 3, .mode = BK_RESAMPLE_AVG2, .sq = true},
    {.name = "max_pool_k3_s2", .build = b_max_pool, .ref = r_max_pool, .nin = 1,
     .s = {SH(2, 3, 7, 9)}, .diff = 0x1, .gen = {GEN_DISTINCT}, .k = 3, .stride = 2,
     .no_cg = true},
    {.name = "max_pool_k2_s2", .build = b_max_pool, .ref = r_max_pool, .nin = 1,
     .s = {SH(1, 3, 7, 5)}, .diff = 0x1, .gen = {GEN_DISTINCT}, .k = 2, .stride = 2,
     .no_cg = true},
    /* ---- issue 3: batch norm (x, gamma, beta differentiated; running mean and var fixed) */
    {.name = "batch_norm_train", .build = b_batch_norm, .ref = r_batch_norm, .fix = fix_channels,
     .nin = 5, .s = {SH(2, 3, 3, 4), SH(1, 3, 1, 1), SH(1, 3, 1, 1), SH(1, 3, 1, 1), SH(1, 3, 1, 1)},
     .diff = 0x7, .persist = 0x1E, .gen = {GEN_UNI, GEN_UNI, GEN_UNI, GEN_UNI, GEN_POS},
     .eps = 1e-5f, .training = true, .no_cg = true},
    {.name = "batch_norm_train_1x1", .build = b_batch_norm, .ref = r_batch_norm, .fix = fix_channels,
     .nin = 5, .s = {SH(5, 2, 1, 1), SH(1, 2, 1, 1), SH(1, 2, 1, 1), SH(1, 2, 1, 1), SH(1, 2, 1, 1)},
     .diff = 0x7, .persist = 0x1E, .gen = {GEN_UNI, GEN_UNI, GEN_UNI, GEN_UNI, GEN_POS},
     .eps = 1e-5f, .training = true, .no_cg = true},
    {.name = "batch_norm_eval", .build = b_batch_norm, .ref = r_batch_norm, .fix = fix_channels,
     .nin = 5, .s = {SH(2, 3, 3, 4), SH(1, 3, 1, 1), SH(1, 3, 1, 1), SH(1, 3, 1, 1), SH(1, 3, 1, 1)},
     .diff = 0x7, .persist = 0x1E, .gen = {GEN_UNI, GEN_UNI, GEN_UNI, GEN_UNI, GEN_POS},
     .eps = 1e-5f, .training = false, .no_cg = true},
    /* ---- issue 3: means over H or W, and broadcasting them back */
    {.name = "mean_h_sq", .build = b_mean_hw, .ref = r_mean_hw, .nin = 1, .s = {SH(2, 3, 4, 5)},
     .diff = 0x1, .op = MHW_H, .sq = true},
    {.name = "mean_w_sq", .build = b_mean_hw, .ref = r_mean_hw, .nin = 1, .s = {SH(2, 3, 4, 5)},
     .diff = 0x1, .op = MHW_W, .sq = true},
    {.name = "mean_h_centered_sq", .build = b_mean_hw, .ref = r_mean_hw, .nin = 1,
     .s = {SH(2, 3, 4, 5)}, .diff = 0x1, .op = MHW_CENTER_H, .sq = true},
    {.name = "mean_w_centered", .build = b_mean_hw, .ref = r_mean_hw, .nin = 1,
     .s = {SH(2, 3, 4, 5)}, .diff = 0x1, .op = MHW_CENTER_W},
    /* ---- issue 3: Laplacian pyramid (linear: squared for a second order) */
    {.name = "pyr_gauss5_sq", .build = b_pyramid, .ref = r_pyramid, .nin = 1, .s = {SH(1, 2, 5, 6)},
     .diff = 0x1, .op = PYR_GAUSS, .a = 1.0f, .sq = true},
    {.name = "pyr_lap_down_sq", .build = b_pyramid, .ref = r_pyramid, .nin = 1,
     .s = {SH(1, 2, 7, 6)}, .diff = 0x1, .op = PYR_DOWN, .sq = true},
    {.name = "pyr_lap_up_sq", .build = b_pyramid, .ref = r_pyramid, .nin = 1, .s = {SH(1, 2, 4, 3)},
     .diff = 0x1, .op = PYR_UP, .oh = 7, .ow = 6, .sq = true},
    {.name = "pyr_decompose_2", .build = b_pyramid, .ref = r_pyramid, .nin = 1,
     .s = {SH(1, 2, 9, 10)}, .diff = 0x1, .op = PYR_DECOMPOSE, .levels = 2},
    {.name = "pyr_decompose_2_sq", .build = b_pyramid, .ref = r_pyramid, .nin = 1,
     .s = {SH(2, 1, 8, 6)}, .diff = 0x1, .op = PYR_DECOMPOSE, .levels = 2, .sq = true},
    {.name = "pyr_decompose_3_sq", .build = b_pyramid, .ref = r_pyramid, .nin = 1,
     .s = {SH(1, 1, 13, 11)}, .diff = 0x1, .op = PYR_DECOMPOSE, .levels = 3, .sq = true},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* ------------------------------------------------------------------ the runner */

typedef struct gc_run {
    const gc_case *c;
    int nin;
    size_t n[MAXIN];
    double *x[MAXIN];   /* base point (exact copies of the float inputs) */
    double *p[MAXIN];   /* scratch: perturbed point */
    bk_shape ys;
    size_t ny;
    double *y;          /* scratch output */
    double *r;          /* output weights of L */
} gc_run;

/* L(p) = sum r * f(p) in double (f squared when the case asks). */
static double eval_L(gc_run *R) {
    R->c->ref(R->c, R->p, R->y);
    double s = 0.0;
    for (size_t j = 0; j < R->ny; j++) s += R->r[j] * (R->c->sq ? R->y[j] * R->y[j] : R->y[j]);
    return s;
}

static void set_point(gc_run *R, double sv, double *const *v, int k, double td, const double *d) {
    for (int i = 0; i < R->nin; i++)
        for (size_t j = 0; j < R->n[i]; j++) {
            double q = R->x[i][j];
            if (v && v[i]) q += sv * v[i][j];
            if (i == k) q += td * d[j];
            R->p[i][j] = q;
        }
}

typedef struct gc_figs {
    double fwd, first, second;
} gc_figs;

static void run_case(const gc_case *c, uint64_t seed, gc_figs *figs) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64], sb2[64];
    gc_run R = {.c = c, .nin = c->nin};
    float *f[MAXIN] = {0};
    bk_tensor *t[MAXIN] = {0}, *xs[MAXIN] = {0};
    int idx[MAXIN], k = 0;
    memset(figs, 0, sizeof *figs);

    /* inputs */
    for (int i = 0; i < c->nin; i++) {
        R.n[i] = ref_numel(c->s[i]);
        f[i] = malloc(R.n[i] * sizeof *f[i]);
        switch (c->gen[i]) {
        case GEN_UNI: bk_test_fill_uniform(f[i], R.n[i], -1, 1, seed + 10 * i); break;
        case GEN_AWAY: bk_test_fill_away_from_zero(f[i], R.n[i], 0.2f, 1, seed + 10 * i); break;
        case GEN_POS: bk_test_fill_uniform(f[i], R.n[i], 0.5f, 2, seed + 10 * i); break;
        case GEN_KINK:
            bk_test_fill_uniform(f[i], R.n[i], c->lo - 1.5f, c->hi + 1.5f, seed + 10 * i);
            for (size_t j = 0; j < R.n[i]; j++)
                for (int e = 0; e < 2; e++) {
                    const float kk = e ? c->hi : c->lo;
                    if (fabsf(f[i][j] - kk) < 0.05f) f[i][j] = kk + (f[i][j] >= kk ? 0.1f : -0.1f);
                }
            break;
        case GEN_DISTINCT: fill_distinct(f[i], R.n[i], seed + 10 * i); break;
        }
    }
    if (c->fix) c->fix(c, f);
    for (int i = 0; i < c->nin; i++) {
        R.x[i] = ref_from_float(f[i], R.n[i]);
        R.p[i] = ref_from_float(f[i], R.n[i]);
        if (c->persist >> i & 1) {
            t[i] = bk_tensor_new_persistent(ctx, "param", 4, c->s[i]);
            bk_tensor_set_nchw(t[i], f[i]);
            bk_tensor_touch(t[i]);
        } else {
            t[i] = bk_tensor_from_nchw(ctx, c->s[i], f[i]);
        }
        if (c->diff >> i & 1) {
            t[i]->requires_grad = true;
            idx[k] = i;
            xs[k++] = t[i];
        }
    }

    /* a. forward */
    R.ys = c->ref(c, R.x, NULL);
    R.ny = ref_numel(R.ys);
    R.y = dalloc(R.ny);
    R.r = dalloc(R.ny);
    double *yref = dalloc(R.ny);
    kink_record();
    c->ref(c, R.p, yref);
    kink_off();
    if (c->sq) ref_square(yref, R.ny, yref);
    bk_tensor *out = c->build(ctx, t, c);
    if (c->sq) out = bk_square(ctx, out);
    bool shape_ok = bk_shape_eq(bk_shape_of(out), R.ys);
    EXPECT(shape_ok, "%s: output shape %s, want %s", c->name, shp(bk_shape_of(out), sb),
           shp(R.ys, sb2));
    if (!shape_ok) goto done;
    double *yd = tensor_d(out);
    snprintf(what, sizeof what, "%s: forward", c->name);
    EXPECT_CLOSE_D(what, yd, yref, R.ny, TOL_FWD);
    figs->fwd = rel_err(yd, yref, R.ny);
    free(yd);

    /* b. first order */
    {
        float *rf = malloc(R.ny * sizeof *rf);
        bk_test_fill_uniform(rf, R.ny, -1, 1, seed + 1000);
        for (size_t j = 0; j < R.ny; j++) R.r[j] = rf[j];
        bk_tensor *rt = bk_tensor_from_nchw(ctx, R.ys, rf);
        free(rf);

        /* the three ways to get the gradient: bk_grad plain, bk_grad with create_graph,
         * bk_backward into ->grad */
        bk_tensor *g0[MAXIN] = {0}, *g1[MAXIN] = {0};
        bk_grad(ctx, out, rt, k, xs, g0, false);
        if (!c->no_cg) {
            bk_tensor *out1 = c->build(ctx, t, c);
            if (c->sq) out1 = bk_square(ctx, out1);
            bk_grad(ctx, out1, rt, k, xs, g1, true);
        }
        bk_tensor *out2 = c->build(ctx, t, c);
        if (c->sq) out2 = bk_square(ctx, out2);
        for (int q = 0; q < k; q++) xs[q]->grad = NULL;
        bk_backward(ctx, bk_sum(ctx, bk_mul(ctx, out2, rt)), false);

        /* central differences of the reference, all inputs first: a gradient that vanishes
         * identically (a bias before instance norm) is compared with a floor of FLOOR_REL times
         * the case's largest gradient instead of its own (zero) size */
        double *fd[MAXIN] = {0}, fmax_all = 0.0;
        bool crossed = false;
        kink_compare();
        for (int q = 0; q < k; q++) {
            const int i = idx[q];
            fd[q] = dalloc(R.n[i]);
            for (size_t j = 0; j < R.n[i]; j++) {
                /* a difference that straddles a kink is retried with a 10x smaller step */
                const double x0 = R.p[i][j];
                for (double hh = H1;; hh /= 10) {
                    R.p[i][j] = x0 + hh;
                    double lp = eval_L(&R);
                    bool cr = kink_eval_end();
                    R.p[i][j] = x0 - hh;
                    double lm = eval_L(&R);
                    cr |= kink_eval_end();
                    fd[q][j] = (lp - lm) / (2 * hh);
                    if (!cr) break;
                    if (hh < H1 * 1e-2) {
                        crossed = true;
                        break;
                    }
                }
                R.p[i][j] = x0;
                fmax_all = fmax(fmax_all, fabs(fd[q][j]));
            }
        }
        EXPECT(!crossed, "%s: a first-order difference crossed a kink even with step %g",
               c->name, H1 * 1e-2);
        kink_off();
        for (int q = 0; q < k; q++) {
            const int i = idx[q];
            bk_tensor *gs[3] = {g0[q], g1[q], xs[q]->grad};
            static const char *how[3] = {"bk_grad", "bk_grad(create_graph)", "bk_backward"};
            for (int m = 0; m < 3; m++) {
                if (m == 1 && c->no_cg) continue;
                snprintf(what, sizeof what, "%s: d/d(input %d) by %s", c->name, i, how[m]);
                if (!gs[m] || !bk_shape_eq(bk_shape_of(gs[m]), c->s[i])) {
                    EXPECT(0, "%s: missing or wrong shape", what);
                    continue;
                }
                double *gd = tensor_d(gs[m]);
                double err = 0.0, ref = 0.0;
                size_t at = 0;
                for (size_t j = 0; j < R.n[i]; j++) {
                    ref = fmax(ref, fabs(fd[q][j]));
                    if (!(fabs(gd[j] - fd[q][j]) <= err)) err = fabs(gd[j] - fd[q][j]), at = j;
                }
                double scale = fmax(fmax(ref, FLOOR_REL * fmax_all), 1e-12);
                figs->first = fmax(figs->first, err / scale);
                EXPECT(err <= TOL1 * scale,
                       "%s: max|err| %.3g at %zu (got %.9g, differences %.9g), relative %.3g to "
                       "%.3g (max|ref| %.3g) > %.1g",
                       what, err, at, gd[at], fd[q][at], err / scale, scale, ref, TOL1);
                free(gd);
            }
        }
        for (int q = 0; q < k; q++) free(fd[q]);

        /* c. second order */
        if (!c->first_only && !c->no_cg) {
            double *v[MAXIN] = {0};
            bk_tensor *S = NULL;
            for (int q = 0; q < k; q++) {
                const int i = idx[q];
                float *vf = malloc(R.n[i] * sizeof *vf);
                bk_test_fill_uniform(vf, R.n[i], -1, 1, seed + 2000 + q);
                v[i] = ref_from_float(vf, R.n[i]);
                bk_tensor *vt = bk_tensor_from_nchw(ctx, c->s[i], vf);
                free(vf);
                bk_tensor *term = bk_sum(ctx, bk_mul(ctx, vt, g1[q]));
                S = S ? bk_add(ctx, S, term) : term;
            }
            /* h_q = dS/dx_q. When the gradients do not depend on the inputs at all (linear and
             * piecewise-linear ops) nothing was recorded and the second order is identically
             * zero; the differences must then agree with zero. */
            double *hd[MAXIN] = {0}, hrms = 0.0;
            bk_tensor *h[MAXIN] = {0};
            const bool recorded = S->requires_grad;
            if (recorded) bk_grad(ctx, S, NULL, k, xs, h, false);
            for (int q = 0; q < k; q++) {
                const int i = idx[q];
                if (recorded && (!h[q] || !bk_shape_eq(bk_shape_of(h[q]), c->s[i]))) {
                    EXPECT(0, "%s: second order w.r.t. input %d missing or wrong shape",
                           c->name, i);
                    hd[q] = dalloc(R.n[i]);
                } else {
                    hd[q] = recorded ? tensor_d(h[q]) : dalloc(R.n[i]);
                }
                hrms = fmax(hrms, norm2(hd[q], R.n[i]) / sqrt((double)R.n[i]));
            }
            double lmag = 0.0; /* scale of the terms of L, for the rounding noise */
            for (size_t j = 0; j < R.ny; j++) lmag += fabs(R.r[j] * yref[j]);
            crossed = false;
            kink_compare();
            for (int q = 0; q < k; q++) {
                const int i = idx[q];
                for (int dir = 0; dir < NDIR; dir++) {
                    float *df = malloc(R.n[i] * sizeof *df);
                    bk_test_fill_away_from_zero(df, R.n[i], 0.5f, 1, seed + 3000 + 10 * q + dir);
                    double *d = ref_from_float(df, R.n[i]);
                    free(df);
                    double got = dot(d, hd[q], R.n[i]);
                    /* steps st (along v and d), Richardson-extrapolated from st and st/2 so
                     * that the O(st^2) error of the differences (large for instance norm on
                     * tiny planes) cancels; 10x smaller steps when a kink is in reach */
                    double want = 0.0, st = S2;
                    for (;; st /= 10) {
                        double dq[2];
                        bool cr = false;
                        const double sg[4][2] = {{1, 1}, {1, -1}, {-1, 1}, {-1, -1}};
                        for (int half = 0; half < 2; half++) {
                            const double u = half ? st / 2 : st;
                            double l[4];
                            for (int e = 0; e < 4; e++) {
                                set_point(&R, sg[e][0] * u, v, i, sg[e][1] * u, d);
                                l[e] = eval_L(&R);
                                cr |= kink_eval_end();
                            }
                            dq[half] = (l[0] - l[1] - l[2] + l[3]) / (4 * u * u);
                        }
                        want = (4 * dq[1] - dq[0]) / 3;
                        if (!cr) break;
                        if (st < S2 * 1e-2) {
                            crossed = true;
                            break;
                        }
                    }
                    set_point(&R, 0, NULL, -1, 0, NULL);
                    const double noise = 100 * 2.2e-16 * fmax(lmag, 1.0) / (st * st);
                    /* typical size of a directional value of h_q: |h_q| |d| / sqrt(n), at
                     * least FLOOR_REL of the case's */
                    double floor = norm2(d, R.n[i]) *
                                   fmax(norm2(hd[q], R.n[i]) / sqrt((double)R.n[i]),
                                        FLOOR_REL * hrms);
                    double scale = fmax(fabs(want), fmax(floor, noise / TOL2));
                    double rel = fabs(got - want) / scale;
                    figs->second = fmax(figs->second, rel);
                    EXPECT(rel <= TOL2,
                           "%s: second order, input %d direction %d: <d,h> %.9g, differences "
                           "%.9g, error %.3g relative to %.3g (> %.1g)",
                           c->name, i, dir, got, want, fabs(got - want), scale, TOL2);
                    free(d);
                }
            }
            EXPECT(!crossed, "%s: a second-order difference crossed a kink even with step %g",
                   c->name, S2 * 1e-2);
            kink_off();
            if (!recorded) printf("    %-44s second order identically zero (not recorded)\n", c->name);
            for (int q = 0; q < k; q++) free(hd[q]);
            for (int i = 0; i < MAXIN; i++) free(v[i]);
        }
    }
    if (kink.len)
        printf("    %-44s kinks: %zu, closest %.3g\n", "", kink.len, kink.min_abs);

done:
    for (int i = 0; i < c->nin; i++) {
        if (c->persist >> i & 1) bk_tensor_free(ctx, t[i]);
        free(f[i]);
        free(R.x[i]);
        free(R.p[i]);
    }
    free(R.y);
    free(R.r);
    free(yref);
    bk_step_end(ctx);
}

/* BK_GC_SEED=k draws every case's data from another seed (robustness sweeps); default 0. */
static uint64_t seed_base(void) {
    const char *e = getenv("BK_GC_SEED");
    return e ? 100003 * strtoull(e, NULL, 10) : 0;
}

/* Runs the cases whose names start with one of the prefixes (NULL-terminated). */
static void run_cases(const char *const *prefixes) {
    for (int ci = 0; ci < NCASES; ci++) {
        bool match = false;
        for (const char *const *p = prefixes; *p; p++)
            if (!strncmp(cases[ci].name, *p, strlen(*p))) match = true;
        if (!match) continue;
        gc_figs fg;
        run_case(&cases[ci], seed_base() + 1000 + 97 * (uint64_t)ci, &fg);
        printf("    %-44s fwd %.2e  1st %.2e  2nd %s%.2e\n", cases[ci].name, fg.fwd, fg.first,
               cases[ci].first_only || cases[ci].no_cg ? "(n/a) " : "", fg.second);
        fflush(stdout);
    }
}

#define RUN(...)                                            \
    do {                                                    \
        static const char *const p_[] = {__VA_ARGS__, NULL}; \
        run_cases(p_);                                      \
    } while (0)

static void gc_conv2d(void) { RUN("conv2d"); }
static void gc_conv_transpose2d(void) { RUN("convt"); }
static void gc_conv_raw(void) { RUN("bwd_data", "bwd_weights"); }
static void gc_instance_norm(void) { RUN("instance_norm", "critic"); }
static void gc_eltwise(void) { RUN("leaky", "relu_", "affine", "abs", "square", "sqrt"); }
static void gc_broadcast(void) { RUN("add_", "sub_", "mul_", "div_"); }
static void gc_reduce(void) { RUN("sum", "expand", "mean"); }
static void gc_eltwise_new(void) {
    RUN("clamp", "relu6", "hardswish", "sigmoid", "tanh", "exp_", "log_", "pow_");
}
static void gc_shape(void) {
    RUN("concat", "slice", "embed", "split", "transpose", "reflect_pad", "zero_insert", "subsample");
}
static void gc_resample_pool(void) { RUN("resample", "max_pool"); }
static void gc_batch_norm(void) { RUN("batch_norm"); }
static void gc_pyramid(void) { RUN("pyr_"); }

/* ------------------------------------------------------------------ WGAN-GP */

/* Critic weights w1 (4,3,4,4), b1 (4), w2 (1,4,4,4), b2 (1); x^ 2x3x8x8. */
typedef struct wgan_ref {
    bk_shape xs, ws[4];
    double *w[4];
    double *xhat;
} wgan_ref;

static bool critic_crossed; /* some evaluation had a LeakyReLU input on the other side */

static double critic_sum(const wgan_ref *W, const double *x) {
    bk_shape hs = ref_conv2d_out_shape(W->xs, W->ws[0], critic_o1);
    bk_shape ys = ref_conv2d_out_shape(hs, W->ws[2], critic_o2);
    double *h = dalloc(ref_numel(hs)), *y = dalloc(ref_numel(ys));
    ref_conv2d_fwd(x, W->xs, W->w[0], W->ws[0], W->w[1], critic_o1, h);
    ref_instance_norm(h, hs, 1e-5, h);
    kink_note(h, ref_numel(hs));
    if (kink_eval_end()) critic_crossed = true; /* compared with the critic at the base point */
    ref_leaky_relu(h, ref_numel(hs), 0.2, h);
    ref_conv2d_fwd(h, hs, W->w[2], W->ws[2], W->w[3], critic_o2, y);
    double s = 0.0;
    for (size_t i = 0; i < ref_numel(ys); i++) s += y[i];
    free(h);
    free(y);
    return s;
}

/* gp = 10 * mean_n (||g_n|| - 1)^2 with g = d sum D / d x^ by central differences (step hx);
 * the inner gradient goes to g when not NULL. */
static double gp_ref(const wgan_ref *W, double hx, double *g_out) {
    const size_t nx = ref_numel(W->xs), per = nx / (size_t)W->xs.n;
    double *x = malloc(nx * sizeof *x), *g = dalloc(nx);
    memcpy(x, W->xhat, nx * sizeof *x);
    for (size_t j = 0; j < nx; j++) {
        const double x0 = x[j];
        x[j] = x0 + hx;
        double p = critic_sum(W, x);
        x[j] = x0 - hx;
        double m = critic_sum(W, x);
        x[j] = x0;
        g[j] = (p - m) / (2 * hx);
    }
    double gp = 0.0;
    for (int64_t n = 0; n < W->xs.n; n++) {
        double s = 0.0;
        for (size_t j = 0; j < per; j++) s += g[n * per + j] * g[n * per + j];
        gp += (sqrt(s) - 1) * (sqrt(s) - 1);
    }
    gp = 10 * gp / (double)W->xs.n;
    if (g_out) memcpy(g_out, g, nx * sizeof *g);
    free(x);
    free(g);
    return gp;
}

static void wgan_gp(void) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256];
    const bk_shape xs = {2, 3, 8, 8};
    const bk_shape ws[4] = {{4, 3, 4, 4}, {1, 4, 1, 1}, {1, 4, 4, 4}, {1, 1, 1, 1}};
    const float lo[4] = {-0.3f, -0.2f, -0.3f, -0.2f}, hi[4] = {0.3f, 0.2f, 0.3f, 0.2f};
    const char *names[4] = {"w1", "b1", "w2", "b2"};
    const double HX = 1e-4, TW = 1e-4;
    const uint64_t seed = 4242 + seed_base();

    wgan_ref W = {.xs = xs};
    bk_tensor *wt[4];
    for (int i = 0; i < 4; i++) {
        W.ws[i] = ws[i];
        size_t n = ref_numel(ws[i]);
        float *f = malloc(n * sizeof *f);
        bk_test_fill_uniform(f, n, lo[i], hi[i], seed + i);
        W.w[i] = ref_from_float(f, n);
        wt[i] = bk_tensor_new_persistent(ctx, names[i], i == 1 || i == 3 ? 1 : 4, ws[i]);
        bk_tensor_set_nchw(wt[i], f);
        bk_tensor_touch(wt[i]);
        wt[i]->requires_grad = true;
        free(f);
    }
    /* x^ = fake + alpha (real - fake) with fixed per-sample alpha */
    const size_t nx = ref_numel(xs);
    float *real = malloc(nx * sizeof *real), *fake = malloc(nx * sizeof *fake);
    bk_test_fill_uniform(real, nx, -1, 1, seed + 10);
    bk_test_fill_uniform(fake, nx, -1, 1, seed + 11);
    const float alpha[2] = {0.3f, 0.8f};
    bk_tensor *rt = bk_tensor_from_nchw(ctx, xs, real), *ft = bk_tensor_from_nchw(ctx, xs, fake);
    bk_tensor *at = bk_tensor_from_nchw(ctx, (bk_shape){2, 1, 1, 1}, alpha);
    bk_tensor *xhat = bk_add(ctx, ft, bk_mul(ctx, at, bk_sub(ctx, rt, ft)));
    xhat->requires_grad = true;
    W.xhat = tensor_d(xhat); /* the reference works on exactly the float x^ */

    /* ours */
    bk_tensor *h = bk_conv2d(ctx, xhat, wt[0], wt[1], critic_o1, bk_act_none(), NULL);
    h = bk_leaky_relu(ctx, bk_instance_norm(ctx, h, 1e-5f), 0.2f);
    bk_tensor *d = bk_conv2d(ctx, h, wt[2], wt[3], critic_o2, bk_act_none(), NULL);
    bk_tensor *g = NULL;
    bk_grad(ctx, bk_sum(ctx, d), NULL, 1, &xhat, &g, true);
    bk_tensor *nrm = bk_sqrt(ctx, bk_sum_per_sample(ctx, bk_square(ctx, g)));
    bk_tensor *gp = bk_scale(ctx, bk_mean(ctx, bk_square(ctx, bk_affine(ctx, nrm, 1, -1))), 10);
    bk_backward(ctx, gp, false);

    /* reference: inner gradient and gp */
    /* every critic evaluation of the differences must have its LeakyReLU inputs on the same
     * sides as the critic at the base point; if not, the steps are retried 3x smaller */
    double *gref = dalloc(nx), hx0 = HX;
    kink_record();
    critic_sum(&W, W.xhat);
    printf("    wgan_gp: %zu LeakyReLU inputs, closest to 0: %.3g\n", kink.len, kink.min_abs);
    kink_compare();
    double gp0;
    for (;; hx0 /= 3) {
        critic_crossed = false;
        gp0 = gp_ref(&W, hx0, gref);
        if (!critic_crossed || hx0 < HX / 10) break;
    }
    EXPECT(!critic_crossed, "wgan_gp: the inner differences cross a kink even with step %g", hx0);
    double *gd = tensor_d(g);
    EXPECT_CLOSE_D("wgan_gp: inner gradient d sum D / d x^", gd, gref, nx, 1e-4);
    double worst_inner = rel_err(gd, gref, nx);
    double gpd = gp->data[0];
    EXPECT_CLOSE_D("wgan_gp: gp", &gpd, &gp0, 1, 1e-4);

    /* weight gradients along 3 random directions per tensor. b1 and b2 do not affect gp at
     * all (instance norm removes b1, b2 does not reach d D / d x^): their gradients are zero
     * (b2 is not even reached by the backward: a NULL ->grad counts as zero), so directional
     * values are compared with a floor of FLOOR_REL times the largest weight gradient. */
    double *gw[4], gscale = 0.0;
    for (int i = 0; i < 4; i++) {
        const size_t n = ref_numel(ws[i]);
        if (wt[i]->grad && !bk_shape_eq(bk_shape_of(wt[i]->grad), ws[i])) {
            EXPECT(0, "wgan_gp: the gradient of %s has the wrong shape", names[i]);
            gw[i] = dalloc(n);
        } else {
            gw[i] = wt[i]->grad ? tensor_d(wt[i]->grad) : dalloc(n);
        }
        gscale = fmax(gscale, norm2(gw[i], n) / sqrt((double)n));
    }
    double worst = 0.0;
    bool crossed = false;
    for (int i = 0; i < 4; i++) {
        const size_t n = ref_numel(ws[i]);
        double *w0 = malloc(n * sizeof *w0);
        memcpy(w0, W.w[i], n * sizeof *w0);
        for (int dir = 0; dir < NDIR; dir++) {
            float *df = malloc(n * sizeof *df);
            bk_test_fill_away_from_zero(df, n, 0.5f, 1, seed + 100 + 10 * i + dir);
            double *dd = ref_from_float(df, n);
            free(df);
            double got = dot(dd, gw[i], n);
            double want = 0.0;
            for (double tw = TW, hx = hx0;; tw /= 3, hx /= 3) {
                critic_crossed = false;
                for (size_t j = 0; j < n; j++) W.w[i][j] = w0[j] + tw * dd[j];
                double p = gp_ref(&W, hx, NULL);
                for (size_t j = 0; j < n; j++) W.w[i][j] = w0[j] - tw * dd[j];
                double m = gp_ref(&W, hx, NULL);
                want = (p - m) / (2 * tw);
                if (!critic_crossed) break;
                if (tw < TW / 10) {
                    crossed = true;
                    break;
                }
            }
            memcpy(W.w[i], w0, n * sizeof *w0);
            double floor = norm2(dd, n) * fmax(norm2(gw[i], n) / sqrt((double)n), FLOOR_REL * gscale);
            double rel = fabs(got - want) / fmax(fabs(want), floor);
            worst = fmax(worst, rel);
            snprintf(what, sizeof what, "wgan_gp: d gp/d %s along direction %d", names[i], dir);
            EXPECT(rel <= TOL_GP, "%s: got %.9g, differences %.9g, relative %.3g (> %.1g)", what,
                   got, want, rel, TOL_GP);
            if (getenv("BK_TEST_VERBOSE"))
                printf("    %s: got %.9g, want %.9g, floor %.3g, relative %.3g\n", what, got,
                       want, floor, rel);
            free(dd);
        }
        free(w0);
        free(gw[i]);
    }
    EXPECT(!crossed, "wgan_gp: a difference crossed a kink of the critic even with steps / 9");
    kink_off();
    printf("    %-44s gp %.2e  inner 1st %.2e  d gp/dW %.2e\n", "wgan_gp",
           fabs(gpd - gp0) / fabs(gp0), worst_inner, worst);

    for (int i = 0; i < 4; i++) {
        bk_tensor_free(ctx, wt[i]);
        free(W.w[i]);
    }
    free(W.xhat);
    free(real), free(fake), free(gref), free(gd);
    bk_step_end(ctx);
}

BK_TEST_MAIN(BK_TEST(gc_conv2d), BK_TEST(gc_conv_transpose2d), BK_TEST(gc_conv_raw),
             BK_TEST(gc_instance_norm), BK_TEST(gc_eltwise), BK_TEST(gc_broadcast),
             BK_TEST(gc_reduce), BK_TEST(gc_eltwise_new), BK_TEST(gc_shape),
             BK_TEST(gc_resample_pool), BK_TEST(gc_batch_norm), BK_TEST(gc_pyramid),
             BK_TEST(wgan_gp))
