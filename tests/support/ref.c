/* ref.c — naive double-precision reference kernels (see ref.h). Plain loops from the PyTorch
 * definitions; nothing here is shared with core/. */
#include "tests/support/ref.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void ref_die(const char *msg) {
    fprintf(stdout, "    ref: %s\n", msg);
    fflush(stdout);
    abort();
}

static int groups_of(bk_conv_opts o) { return o.groups > 0 ? o.groups : 1; }

/* ------------------------------------------------------------------ Conv2d */

bk_shape ref_conv2d_out_shape(bk_shape x, bk_shape w, bk_conv_opts o) {
    int64_t hh = x.h + o.pad_t + o.pad_b - w.h, ww = x.w + o.pad_l + o.pad_r - w.w;
    if (hh < 0 || ww < 0 || o.stride_h < 1 || o.stride_w < 1) ref_die("conv2d: bad geometry");
    return (bk_shape){x.n, w.n, hh / o.stride_h + 1, ww / o.stride_w + 1};
}

/* The one loop nest of a convolution, visiting every (output, weight, input) triple that
 * contributes; the three directions differ only in what they do with it. */
#define CONV_LOOP(xs, ws, ys, o, BODY)                                                 \
    do {                                                                               \
        const int64_t G_ = groups_of(o), Cg_ = (xs).c / G_, Og_ = (ws).n / G_;          \
        if ((xs).c % G_ || (ws).n % G_ || (ws).c != Cg_) ref_die("conv2d: bad groups"); \
        for (int64_t n = 0; n < (ys).n; n++)                                           \
            for (int64_t oc = 0; oc < (ys).c; oc++) {                                  \
                const int64_t g_ = oc / Og_;                                           \
                for (int64_t oh = 0; oh < (ys).h; oh++)                                \
                    for (int64_t ow = 0; ow < (ys).w; ow++)                            \
                        for (int64_t ci = 0; ci < Cg_; ci++)                           \
                            for (int64_t kh = 0; kh < (ws).h; kh++) {                  \
                                const int64_t ih = oh * (o).stride_h - (o).pad_t + kh; \
                                if (ih < 0 || ih >= (xs).h) continue;                  \
                                for (int64_t kw = 0; kw < (ws).w; kw++) {              \
                                    const int64_t iw = ow * (o).stride_w - (o).pad_l + kw; \
                                    if (iw < 0 || iw >= (xs).w) continue;              \
                                    const size_t xi = ref_idx(xs, n, g_ * Cg_ + ci, ih, iw); \
                                    const size_t wi = ref_idx(ws, oc, ci, kh, kw);     \
                                    const size_t yi = ref_idx(ys, n, oc, oh, ow);      \
                                    BODY;                                              \
                                }                                                      \
                            }                                                          \
            }                                                                          \
    } while (0)

void ref_conv2d_fwd(const double *x, bk_shape xs, const double *w, bk_shape ws,
                    const double *bias, bk_conv_opts o, double *y) {
    bk_shape ys = ref_conv2d_out_shape(xs, ws, o);
    for (int64_t n = 0; n < ys.n; n++)
        for (int64_t c = 0; c < ys.c; c++)
            for (int64_t i = 0; i < ys.h * ys.w; i++)
                y[ref_idx(ys, n, c, 0, 0) + i] = bias ? bias[c] : 0.0;
    CONV_LOOP(xs, ws, ys, o, y[yi] += w[wi] * x[xi]);
}

void ref_conv2d_bwd_data(const double *gy, const double *w, bk_shape ws, bk_shape xs,
                         bk_conv_opts o, double *gx) {
    bk_shape ys = ref_conv2d_out_shape(xs, ws, o);
    memset(gx, 0, ref_numel(xs) * sizeof *gx);
    CONV_LOOP(xs, ws, ys, o, gx[xi] += w[wi] * gy[yi]);
}

void ref_conv2d_bwd_weights(const double *x, bk_shape xs, const double *gy, bk_shape ws,
                            bk_conv_opts o, double *gw) {
    bk_shape ys = ref_conv2d_out_shape(xs, ws, o);
    memset(gw, 0, ref_numel(ws) * sizeof *gw);
    CONV_LOOP(xs, ws, ys, o, gw[wi] += x[xi] * gy[yi]);
}

void ref_bias_grad(const double *gy, bk_shape s, double *gb) {
    for (int64_t c = 0; c < s.c; c++) {
        double acc = 0.0;
        for (int64_t n = 0; n < s.n; n++)
            for (int64_t i = 0; i < s.h * s.w; i++) acc += gy[ref_idx(s, n, c, 0, 0) + i];
        gb[c] = acc;
    }
}

/* ------------------------------------------------------------------ ConvTranspose2d */

bk_shape ref_conv_transpose2d_out_shape(bk_shape x, bk_shape w, bk_conv_opts o) {
    const int64_t G = groups_of(o);
    int64_t oh = (x.h - 1) * o.stride_h - o.pad_t - o.pad_b + w.h + o.out_pad_h;
    int64_t ow = (x.w - 1) * o.stride_w - o.pad_l - o.pad_r + w.w + o.out_pad_w;
    if (oh < 1 || ow < 1) ref_die("conv_transpose2d: bad geometry");
    return (bk_shape){x.n, w.c * G, oh, ow};
}

/* Every (input pixel, weight, output pixel) triple of the scatter definition. */
#define CONVT_LOOP(xs, ws, ys, o, BODY)                                                \
    do {                                                                               \
        const int64_t G_ = groups_of(o), Ig_ = (xs).c / G_, Og_ = (ws).c;               \
        if ((xs).c % G_ || (ws).n != (xs).c) ref_die("conv_transpose2d: bad groups");   \
        for (int64_t n = 0; n < (xs).n; n++)                                           \
            for (int64_t ic = 0; ic < (xs).c; ic++) {                                  \
                const int64_t g_ = ic / Ig_;                                           \
                for (int64_t ih = 0; ih < (xs).h; ih++)                                \
                    for (int64_t iw = 0; iw < (xs).w; iw++)                            \
                        for (int64_t oc = 0; oc < Og_; oc++)                           \
                            for (int64_t kh = 0; kh < (ws).h; kh++) {                  \
                                const int64_t oh = ih * (o).stride_h - (o).pad_t + kh; \
                                if (oh < 0 || oh >= (ys).h) continue;                  \
                                for (int64_t kw = 0; kw < (ws).w; kw++) {              \
                                    const int64_t ow = iw * (o).stride_w - (o).pad_l + kw; \
                                    if (ow < 0 || ow >= (ys).w) continue;              \
                                    const size_t xi = ref_idx(xs, n, ic, ih, iw);      \
                                    const size_t wi = ref_idx(ws, ic, oc, kh, kw);     \
                                    const size_t yi = ref_idx(ys, n, g_ * Og_ + oc, oh, ow); \
                                    BODY;                                              \
                                }                                                      \
                            }                                                          \
            }                                                                          \
    } while (0)

void ref_conv_transpose2d_fwd(const double *x, bk_shape xs, const double *w, bk_shape ws,
                              const double *bias, bk_conv_opts o, double *y) {
    bk_shape ys = ref_conv_transpose2d_out_shape(xs, ws, o);
    for (int64_t n = 0; n < ys.n; n++)
        for (int64_t c = 0; c < ys.c; c++)
            for (int64_t i = 0; i < ys.h * ys.w; i++)
                y[ref_idx(ys, n, c, 0, 0) + i] = bias ? bias[c] : 0.0;
    CONVT_LOOP(xs, ws, ys, o, y[yi] += x[xi] * w[wi]);
}

void ref_conv_transpose2d_bwd_data(const double *gy, const double *w, bk_shape ws, bk_shape xs,
                                   bk_conv_opts o, double *gx) {
    bk_shape ys = ref_conv_transpose2d_out_shape(xs, ws, o);
    memset(gx, 0, ref_numel(xs) * sizeof *gx);
    CONVT_LOOP(xs, ws, ys, o, gx[xi] += gy[yi] * w[wi]);
}

void ref_conv_transpose2d_bwd_weights(const double *x, bk_shape xs, const double *gy,
                                      bk_shape ws, bk_conv_opts o, double *gw) {
    bk_shape ys = ref_conv_transpose2d_out_shape(xs, ws, o);
    memset(gw, 0, ref_numel(ws) * sizeof *gw);
    CONVT_LOOP(xs, ws, ys, o, gw[wi] += x[xi] * gy[yi]);
}

/* ------------------------------------------------------------------ normalisation */

static void plane_stats(const double *p, int64_t m, double eps, double *mean, double *rstd) {
    double s = 0.0;
    for (int64_t i = 0; i < m; i++) s += p[i];
    double mu = s / (double)m, v = 0.0;
    for (int64_t i = 0; i < m; i++) v += (p[i] - mu) * (p[i] - mu);
    *mean = mu;
    *rstd = 1.0 / sqrt(v / (double)m + eps);
}

void ref_instance_norm(const double *x, bk_shape s, double eps, double *y) {
    const int64_t m = s.h * s.w;
    for (int64_t n = 0; n < s.n; n++)
        for (int64_t c = 0; c < s.c; c++) {
            const size_t o = ref_idx(s, n, c, 0, 0);
            double mu, rs;
            plane_stats(x + o, m, eps, &mu, &rs);
            for (int64_t i = 0; i < m; i++) y[o + i] = (x[o + i] - mu) * rs;
        }
}

void ref_instance_norm_bwd(const double *x, const double *gy, bk_shape s, double eps,
                           double *gx) {
    const int64_t m = s.h * s.w;
    for (int64_t n = 0; n < s.n; n++)
        for (int64_t c = 0; c < s.c; c++) {
            const size_t o = ref_idx(s, n, c, 0, 0);
            double mu, rs, mg = 0.0, mgx = 0.0;
            plane_stats(x + o, m, eps, &mu, &rs);
            for (int64_t i = 0; i < m; i++) {
                mg += gy[o + i];
                mgx += gy[o + i] * (x[o + i] - mu) * rs;
            }
            mg /= (double)m;
            mgx /= (double)m;
            for (int64_t i = 0; i < m; i++)
                gx[o + i] = (gy[o + i] - mg - (x[o + i] - mu) * rs * mgx) * rs;
        }
}

/* ------------------------------------------------------------------ element-wise */

void ref_leaky_relu(const double *x, size_t n, double slope, double *y) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0 ? x[i] : slope * x[i];
}
void ref_relu_bwd(const double *gy, const double *y, size_t n, double slope, double *gx) {
    for (size_t i = 0; i < n; i++) gx[i] = y[i] > 0.0 ? gy[i] : slope * gy[i];
}
void ref_affine(const double *x, size_t n, double a, double b, double *y) {
    for (size_t i = 0; i < n; i++) y[i] = a * x[i] + b;
}
void ref_abs(const double *x, size_t n, double *y) {
    for (size_t i = 0; i < n; i++) y[i] = fabs(x[i]);
}
void ref_sign(const double *x, size_t n, double *y) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0 ? 1.0 : x[i] < 0.0 ? -1.0 : 0.0;
}
void ref_square(const double *x, size_t n, double *y) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] * x[i];
}
void ref_sqrt(const double *x, size_t n, double *y) {
    for (size_t i = 0; i < n; i++) y[i] = sqrt(x[i]);
}

/* ------------------------------------------------------------------ broadcasting */

static int64_t bdim(int64_t a, int64_t b) {
    if (a == b || b == 1) return a;
    if (a == 1) return b;
    ref_die("shapes do not broadcast");
    return 0;
}

bk_shape ref_broadcast_shape(bk_shape a, bk_shape b) {
    return (bk_shape){bdim(a.n, b.n), bdim(a.c, b.c), bdim(a.h, b.h), bdim(a.w, b.w)};
}

/* Index into s of the output position (n,c,h,w), reading size-1 dimensions at 0. */
static size_t bidx(bk_shape s, int64_t n, int64_t c, int64_t h, int64_t w) {
    return ref_idx(s, s.n == 1 ? 0 : n, s.c == 1 ? 0 : c, s.h == 1 ? 0 : h, s.w == 1 ? 0 : w);
}

void ref_binary(ref_binop op, const double *a, bk_shape as, const double *b, bk_shape bs,
                double *y) {
    bk_shape ys = ref_broadcast_shape(as, bs);
    for (int64_t n = 0; n < ys.n; n++)
        for (int64_t c = 0; c < ys.c; c++)
            for (int64_t h = 0; h < ys.h; h++)
                for (int64_t w = 0; w < ys.w; w++) {
                    double u = a[bidx(as, n, c, h, w)], v = b[bidx(bs, n, c, h, w)], r = 0.0;
                    switch (op) {
                    case REF_ADD: r = u + v; break;
                    case REF_SUB: r = u - v; break;
                    case REF_MUL: r = u * v; break;
                    case REF_DIV: r = u / v; break;
                    }
                    y[ref_idx(ys, n, c, h, w)] = r;
                }
}

bk_shape ref_reduced_shape(bk_shape xs, unsigned dims) {
    return (bk_shape){dims & REF_N ? 1 : xs.n, dims & REF_C ? 1 : xs.c, dims & REF_H ? 1 : xs.h,
                      dims & REF_W ? 1 : xs.w};
}

unsigned ref_dims_to(bk_shape from, bk_shape to) {
    return (to.n == 1 && from.n != 1 ? REF_N : 0) | (to.c == 1 && from.c != 1 ? REF_C : 0) |
           (to.h == 1 && from.h != 1 ? REF_H : 0) | (to.w == 1 && from.w != 1 ? REF_W : 0);
}

void ref_sum_dims(const double *x, bk_shape xs, unsigned dims, double *y) {
    bk_shape ys = ref_reduced_shape(xs, dims);
    memset(y, 0, ref_numel(ys) * sizeof *y);
    for (int64_t n = 0; n < xs.n; n++)
        for (int64_t c = 0; c < xs.c; c++)
            for (int64_t h = 0; h < xs.h; h++)
                for (int64_t w = 0; w < xs.w; w++)
                    y[bidx(ys, n, c, h, w)] += x[ref_idx(xs, n, c, h, w)];
}

void ref_expand(const double *x, bk_shape xs, bk_shape ys, double *y) {
    if (!bk_shape_eq(ref_broadcast_shape(xs, ys), ys)) ref_die("expand: bad target shape");
    for (int64_t n = 0; n < ys.n; n++)
        for (int64_t c = 0; c < ys.c; c++)
            for (int64_t h = 0; h < ys.h; h++)
                for (int64_t w = 0; w < ys.w; w++)
                    y[ref_idx(ys, n, c, h, w)] = x[bidx(xs, n, c, h, w)];
}

/* ------------------------------------------------------------------ element-wise, issue 3 */

static double unary1(ref_unop op, double x, double a, double b) {
    switch (op) {
    case REF_CLAMP: return x < a ? a : x > b ? b : x;
    case REF_RELU6: return x < 0.0 ? 0.0 : x > 6.0 ? 6.0 : x;
    case REF_HARDSWISH: return x * (x + 3.0 < 0.0 ? 0.0 : x + 3.0 > 6.0 ? 6.0 : x + 3.0) / 6.0;
    case REF_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case REF_TANH: return tanh(x);
    case REF_EXP: return exp(x);
    case REF_LOG: return log(x);
    case REF_POW: return pow(x, a);
    }
    return NAN;
}

static double unary_deriv(ref_unop op, double x, double a, double b) {
    switch (op) {
    case REF_CLAMP: return x >= a && x <= b ? 1.0 : 0.0;
    case REF_RELU6: return x > 0.0 && x < 6.0 ? 1.0 : 0.0;
    case REF_HARDSWISH: return x < -3.0 ? 0.0 : x <= 3.0 ? x / 3.0 + 0.5 : 1.0;
    case REF_SIGMOID: {
        double s = 1.0 / (1.0 + exp(-x));
        return s * (1.0 - s);
    }
    case REF_TANH: return 1.0 - tanh(x) * tanh(x);
    case REF_EXP: return exp(x);
    case REF_LOG: return 1.0 / x;
    case REF_POW: return a * pow(x, a - 1.0);
    }
    return NAN;
}

void ref_unary(ref_unop op, const double *x, size_t n, double a, double b, double *y) {
    for (size_t i = 0; i < n; i++) y[i] = unary1(op, x[i], a, b);
}

void ref_unary_bwd(ref_unop op, const double *x, const double *gy, size_t n, double a, double b,
                   double *gx) {
    for (size_t i = 0; i < n; i++) gx[i] = gy[i] * unary_deriv(op, x[i], a, b);
}

void ref_clamp_bwd(const double *gy, const double *x, size_t n, double lo, double hi,
                   int inclusive, double *gx) {
    for (size_t i = 0; i < n; i++) {
        bool in = inclusive ? (x[i] >= lo && x[i] <= hi) : (x[i] > lo && x[i] < hi);
        gx[i] = in ? gy[i] : 0.0;
    }
}

/* ------------------------------------------------------------------ data movement */

int64_t *ref_dim(bk_shape *s, int axis) {
    switch (axis) {
    case BK_AXIS_N: return &s->n;
    case BK_AXIS_C: return &s->c;
    case BK_AXIS_H: return &s->h;
    case BK_AXIS_W: return &s->w;
    }
    ref_die("bad axis");
    return NULL;
}

/* Visits every element (n,c,h,w) of shape s: idx[4] holds the indices in N,C,H,W order. */
#define FOR_EACH(s, idx, ...)                                                  \
    do {                                                                    \
        int64_t idx[4];                                                     \
        for (idx[0] = 0; idx[0] < (s).n; idx[0]++)                          \
            for (idx[1] = 0; idx[1] < (s).c; idx[1]++)                      \
                for (idx[2] = 0; idx[2] < (s).h; idx[2]++)                  \
                    for (idx[3] = 0; idx[3] < (s).w; idx[3]++) { __VA_ARGS__; } \
    } while (0)
#define AT(s, idx) ref_idx(s, idx[0], idx[1], idx[2], idx[3])

bk_shape ref_concat(int n, const double *const *xs, const bk_shape *ss, int axis, double *y) {
    bk_shape ys = ss[0];
    int64_t total = 0;
    for (int j = 0; j < n; j++) {
        bk_shape t = ss[j];
        total += *ref_dim(&t, axis);
        *ref_dim(&t, axis) = *ref_dim(&ys, axis);
        if (!bk_shape_eq(t, ys)) ref_die("concat: shapes differ off the axis");
    }
    *ref_dim(&ys, axis) = total;
    if (!y) return ys;
    int64_t off = 0;
    for (int j = 0; j < n; j++) {
        FOR_EACH(ss[j], i, {
            int64_t o[4] = {i[0], i[1], i[2], i[3]};
            o[axis] += off;
            y[AT(ys, o)] = xs[j][AT(ss[j], i)];
        });
        bk_shape t = ss[j];
        off += *ref_dim(&t, axis);
    }
    return ys;
}

void ref_slice(const double *x, bk_shape xs, int axis, int64_t off, int64_t size, double *y) {
    bk_shape ys = xs;
    *ref_dim(&ys, axis) = size;
    if (off < 0 || off + size > *ref_dim(&xs, axis)) ref_die("slice out of range");
    FOR_EACH(ys, i, {
        int64_t o[4] = {i[0], i[1], i[2], i[3]};
        o[axis] += off;
        y[AT(ys, i)] = x[AT(xs, o)];
    });
}

void ref_embed(const double *x, bk_shape xs, int axis, int64_t off, int64_t full, double *y) {
    bk_shape ys = xs;
    *ref_dim(&ys, axis) = full;
    if (off < 0 || off + *ref_dim(&xs, axis) > full) ref_die("embed out of range");
    memset(y, 0, ref_numel(ys) * sizeof *y);
    FOR_EACH(xs, i, {
        int64_t o[4] = {i[0], i[1], i[2], i[3]};
        o[axis] += off;
        y[AT(ys, o)] = x[AT(xs, i)];
    });
}

void ref_transpose_hw(const double *x, bk_shape xs, double *y) {
    bk_shape ys = {xs.n, xs.c, xs.w, xs.h};
    FOR_EACH(xs, i, y[ref_idx(ys, i[0], i[1], i[3], i[2])] = x[AT(xs, i)]);
}

static int64_t refl(int64_t k, int64_t len) {
    if (k < 0) k = -k;
    if (k >= len) k = 2 * (len - 1) - k;
    if (k < 0 || k >= len) ref_die("reflect padding wider than the input");
    return k;
}

void ref_reflect_pad(const double *x, bk_shape xs, int t, int l, int b, int r, double *y) {
    bk_shape ys = {xs.n, xs.c, xs.h + t + b, xs.w + l + r};
    FOR_EACH(ys, i, y[AT(ys, i)] = x[ref_idx(xs, i[0], i[1], refl(i[2] - t, xs.h),
                                             refl(i[3] - l, xs.w))]);
}

void ref_reflect_pad_bwd(const double *gy, bk_shape xs, int t, int l, int b, int r, double *gx) {
    bk_shape ys = {xs.n, xs.c, xs.h + t + b, xs.w + l + r};
    memset(gx, 0, ref_numel(xs) * sizeof *gx);
    FOR_EACH(ys, i, gx[ref_idx(xs, i[0], i[1], refl(i[2] - t, xs.h), refl(i[3] - l, xs.w))] +=
                    gy[AT(ys, i)]);
}

void ref_zero_insert(const double *x, bk_shape xs, int64_t oh, int64_t ow, double *y) {
    bk_shape ys = {xs.n, xs.c, oh, ow};
    if ((oh != 2 * xs.h && oh != 2 * xs.h - 1) || (ow != 2 * xs.w && ow != 2 * xs.w - 1))
        ref_die("zero insertion: bad output size");
    memset(y, 0, ref_numel(ys) * sizeof *y);
    FOR_EACH(xs, i, y[ref_idx(ys, i[0], i[1], 2 * i[2], 2 * i[3])] = x[AT(xs, i)]);
}

bk_shape ref_subsample_shape(bk_shape xs) {
    return (bk_shape){xs.n, xs.c, (xs.h + 1) / 2, (xs.w + 1) / 2};
}

void ref_subsample(const double *x, bk_shape xs, double *y) {
    bk_shape ys = ref_subsample_shape(xs);
    FOR_EACH(ys, i, y[AT(ys, i)] = x[ref_idx(xs, i[0], i[1], 2 * i[2], 2 * i[3])]);
}

/* ------------------------------------------------------------------ resampling */

void ref_resample_matrix(int mode, int64_t in, int64_t out, double *m) {
    memset(m, 0, (size_t)(in * out) * sizeof *m);
    const double scale = (double)in / (double)out;
    if (mode == 2) { /* avg_pool2d(2, 2), floor */
        if (out != in / 2 || out < 1) ref_die("avg pool 2x2: bad output size");
        for (int64_t i = 0; i < out; i++) m[i * in + 2 * i] = m[i * in + 2 * i + 1] = 0.5;
        return;
    }
    if (mode == 1 && out < in) { /* antialias: triangle filter of support `scale` */
        for (int64_t i = 0; i < out; i++) {
            const double center = scale * ((double)i + 0.5);
            int64_t lo = (int64_t)(center - scale + 0.5), hi = (int64_t)(center + scale + 0.5);
            if (lo < 0) lo = 0;
            if (hi > in) hi = in;
            double total = 0.0;
            for (int64_t j = lo; j < hi; j++) {
                double w = 1.0 - fabs(((double)j - center + 0.5) / scale);
                m[i * in + j] = w > 0.0 ? w : 0.0;
                total += m[i * in + j];
            }
            for (int64_t j = lo; j < hi; j++) m[i * in + j] /= total;
        }
        return;
    }
    if (mode != 0 && mode != 1) ref_die("resample: bad mode");
    for (int64_t i = 0; i < out; i++) { /* bilinear, align_corners=False */
        double src = ((double)i + 0.5) * scale - 0.5;
        if (src < 0.0) src = 0.0;
        int64_t i0 = (int64_t)floor(src);
        if (i0 > in - 1) i0 = in - 1;
        int64_t i1 = i0 + 1 < in ? i0 + 1 : in - 1;
        double l1 = src - (double)i0;
        m[i * in + i0] += 1.0 - l1;
        m[i * in + i1] += l1;
    }
}

/* y (N,C,oh,ow) = mh (oh x ih) x mw^T (ow x iw) per plane; with `adjoint` the transpose, from
 * (N,C,oh,ow) to (N,C,ih,iw). */
static void separable(const double *x, bk_shape xs, int64_t oh, int64_t ow, int mode,
                      bool adjoint, double *y) {
    const int64_t ih = xs.h, iw = xs.w;
    double *mh = malloc((size_t)(ih * oh) * sizeof *mh), *mw = malloc((size_t)(iw * ow) * sizeof *mw);
    ref_resample_matrix(mode, ih, oh, mh);
    ref_resample_matrix(mode, iw, ow, mw);
    double *tmp = malloc((size_t)(oh > ih ? oh : ih) * (size_t)(ow > iw ? ow : iw) * sizeof *tmp);
    for (int64_t p = 0; p < xs.n * xs.c; p++) {
        if (!adjoint) {
            const double *a = x + p * ih * iw;
            double *o = y + p * oh * ow;
            for (int64_t i = 0; i < oh; i++) /* tmp (oh x iw) = mh a */
                for (int64_t b = 0; b < iw; b++) {
                    double s = 0.0;
                    for (int64_t k = 0; k < ih; k++) s += mh[i * ih + k] * a[k * iw + b];
                    tmp[i * iw + b] = s;
                }
            for (int64_t i = 0; i < oh; i++) /* o (oh x ow) = tmp mw^T */
                for (int64_t j = 0; j < ow; j++) {
                    double s = 0.0;
                    for (int64_t k = 0; k < iw; k++) s += mw[j * iw + k] * tmp[i * iw + k];
                    o[i * ow + j] = s;
                }
        } else {
            const double *g = x + p * oh * ow;
            double *o = y + p * ih * iw;
            for (int64_t i = 0; i < oh; i++) /* tmp (oh x iw) = g mw */
                for (int64_t b = 0; b < iw; b++) {
                    double s = 0.0;
                    for (int64_t j = 0; j < ow; j++) s += g[i * ow + j] * mw[j * iw + b];
                    tmp[i * iw + b] = s;
                }
            for (int64_t a = 0; a < ih; a++) /* o (ih x iw) = mh^T tmp */
                for (int64_t b = 0; b < iw; b++) {
                    double s = 0.0;
                    for (int64_t i = 0; i < oh; i++) s += mh[i * ih + a] * tmp[i * iw + b];
                    o[a * iw + b] = s;
                }
        }
    }
    free(mh);
    free(mw);
    free(tmp);
}

void ref_resample(const double *x, bk_shape xs, int64_t oh, int64_t ow, int mode, double *y) {
    separable(x, xs, oh, ow, mode, false, y);
}

void ref_resample_bwd(const double *gy, bk_shape xs, int64_t oh, int64_t ow, int mode,
                      double *gx) {
    separable(gy, xs, oh, ow, mode, true, gx);
}

/* ------------------------------------------------------------------ max pooling */

bk_shape ref_max_pool_shape(bk_shape xs, int k, int stride) {
    if (xs.h < k || xs.w < k) ref_die("max pool: window larger than the input");
    return (bk_shape){xs.n, xs.c, (xs.h - k) / stride + 1, (xs.w - k) / stride + 1};
}

/* Index in x of the first maximum of the window of output i. */
static size_t pool_argmax(const double *x, bk_shape xs, const int64_t *i, int k, int stride) {
    size_t best = ref_idx(xs, i[0], i[1], i[2] * stride, i[3] * stride);
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            size_t q = ref_idx(xs, i[0], i[1], i[2] * stride + a, i[3] * stride + b);
            if (x[q] > x[best]) best = q;
        }
    return best;
}

void ref_max_pool(const double *x, bk_shape xs, int k, int stride, double *y) {
    bk_shape ys = ref_max_pool_shape(xs, k, stride);
    FOR_EACH(ys, i, y[AT(ys, i)] = x[pool_argmax(x, xs, i, k, stride)]);
}

void ref_max_pool_bwd(const double *x, bk_shape xs, const double *gy, int k, int stride,
                      double *gx) {
    bk_shape ys = ref_max_pool_shape(xs, k, stride);
    memset(gx, 0, ref_numel(xs) * sizeof *gx);
    FOR_EACH(ys, i, gx[pool_argmax(x, xs, i, k, stride)] += gy[AT(ys, i)]);
}

/* ------------------------------------------------------------------ batch norm */

/* Per channel: the mean and 1/sqrt(var + eps) that normalise, and the batch statistics. */
static void bn_stats(const double *x, bk_shape s, const double *rmean, const double *rvar,
                     int training, double eps, int64_t c, double *mean, double *rstd,
                     double *bmean, double *bvar_unbiased) {
    const int64_t hw = s.h * s.w, m = s.n * hw;
    double sum = 0.0, ss = 0.0;
    for (int64_t n = 0; n < s.n; n++)
        for (int64_t i = 0; i < hw; i++) sum += x[ref_idx(s, n, c, 0, 0) + i];
    const double mu = sum / (double)m;
    for (int64_t n = 0; n < s.n; n++)
        for (int64_t i = 0; i < hw; i++) {
            double d = x[ref_idx(s, n, c, 0, 0) + i] - mu;
            ss += d * d;
        }
    *bmean = mu;
    *bvar_unbiased = m > 1 ? ss / (double)(m - 1) : NAN;
    if (training) {
        *mean = mu;
        *rstd = 1.0 / sqrt(ss / (double)m + eps);
    } else {
        *mean = rmean[c];
        *rstd = 1.0 / sqrt(rvar[c] + eps);
    }
}

void ref_batch_norm(const double *x, bk_shape s, const double *gamma, const double *beta,
                    const double *rmean, const double *rvar, int training, double momentum,
                    double eps, double *y, double *new_rmean, double *new_rvar) {
    const int64_t hw = s.h * s.w;
    for (int64_t c = 0; c < s.c; c++) {
        double mean, rstd, bm, bv;
        bn_stats(x, s, rmean, rvar, training, eps, c, &mean, &rstd, &bm, &bv);
        for (int64_t n = 0; n < s.n; n++)
            for (int64_t i = 0; i < hw; i++) {
                const size_t q = ref_idx(s, n, c, 0, 0) + (size_t)i;
                y[q] = gamma[c] * (x[q] - mean) * rstd + beta[c];
            }
        if (new_rmean) new_rmean[c] = training ? (1 - momentum) * rmean[c] + momentum * bm : rmean[c];
        if (new_rvar) new_rvar[c] = training ? (1 - momentum) * rvar[c] + momentum * bv : rvar[c];
    }
}

void ref_batch_norm_bwd(const double *x, bk_shape s, const double *gamma, const double *rmean,
                        const double *rvar, int training, double eps, const double *gy,
                        double *gx, double *ggamma, double *gbeta) {
    const int64_t hw = s.h * s.w, m = s.n * hw;
    for (int64_t c = 0; c < s.c; c++) {
        double mean, rstd, bm, bv, sg = 0.0, sgx = 0.0;
        bn_stats(x, s, rmean, rvar, training, eps, c, &mean, &rstd, &bm, &bv);
        for (int64_t n = 0; n < s.n; n++)
            for (int64_t i = 0; i < hw; i++) {
                const size_t q = ref_idx(s, n, c, 0, 0) + (size_t)i;
                sg += gy[q];
                sgx += gy[q] * (x[q] - mean) * rstd;
            }
        if (ggamma) ggamma[c] = sgx;
        if (gbeta) gbeta[c] = sg;
        if (!gx) continue;
        for (int64_t n = 0; n < s.n; n++)
            for (int64_t i = 0; i < hw; i++) {
                const size_t q = ref_idx(s, n, c, 0, 0) + (size_t)i;
                const double xh = (x[q] - mean) * rstd;
                gx[q] = training ? gamma[c] * rstd * (gy[q] - sg / (double)m - xh * sgx / (double)m)
                                 : gamma[c] * rstd * gy[q];
            }
    }
}

/* ------------------------------------------------------------------ Laplacian pyramid */

void ref_gauss5(const double *x, bk_shape xs, double gain, double *y) {
    static const double k1[5] = {1, 4, 6, 4, 1};
    FOR_EACH(xs, i, {
        double s = 0.0;
        for (int a = 0; a < 5; a++)
            for (int b = 0; b < 5; b++)
                s += k1[a] * k1[b] / 256.0 *
                     x[ref_idx(xs, i[0], i[1], refl(i[2] + a - 2, xs.h), refl(i[3] + b - 2, xs.w))];
        y[AT(xs, i)] = gain * s;
    });
}

void ref_lap_down(const double *x, bk_shape xs, double *y) {
    double *g = malloc(ref_numel(xs) * sizeof *g);
    ref_gauss5(x, xs, 1.0, g);
    ref_subsample(g, xs, y);
    free(g);
}

void ref_lap_up(const double *x, bk_shape xs, int64_t oh, int64_t ow, double *y) {
    bk_shape zs = {xs.n, xs.c, oh, ow};
    double *z = malloc(ref_numel(zs) * sizeof *z);
    ref_zero_insert(x, xs, oh, ow, z);
    ref_gauss5(z, zs, 4.0, y);
    free(z);
}

void ref_pyramid_decompose(const double *x, bk_shape xs, int levels, double **high, bk_shape *hs,
                           double **low, bk_shape *ls) {
    bk_shape cs = xs;
    double *cur = malloc(ref_numel(cs) * sizeof *cur);
    memcpy(cur, x, ref_numel(cs) * sizeof *cur);
    for (int l = 0; l < levels; l++) {
        bk_shape ds = ref_subsample_shape(cs);
        double *down = malloc(ref_numel(ds) * sizeof *down);
        ref_lap_down(cur, cs, down);
        hs[l] = cs;
        high[l] = malloc(ref_numel(cs) * sizeof *high[l]);
        ref_lap_up(down, ds, cs.h, cs.w, high[l]);
        for (size_t i = 0; i < ref_numel(cs); i++) high[l][i] = cur[i] - high[l][i];
        free(cur);
        cur = down;
        cs = ds;
    }
    *low = cur;
    *ls = cs;
}

/* ------------------------------------------------------------------ conversions */

double *ref_from_float(const float *p, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = p[i];
    return d;
}

float *ref_to_float(const double *p, size_t n) {
    float *f = malloc((n ? n : 1) * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = (float)p[i];
    return f;
}
