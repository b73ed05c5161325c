/* ref.c — naive double-precision reference kernels (see ref.h). Plain loops from the PyTorch
 * definitions; nothing here is shared with core/. */
#include "tests/support/ref.h"

#include <math.h>
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
