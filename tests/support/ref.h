/* ref.h — naive reference kernels in double precision, for tests.
 *
 * Every array is a dense PyTorch NCHW array: element (n,c,h,w) of an array of shape s is at
 * ((n*s.c + c)*s.h + h)*s.w + w. Shapes are bk_shape {n,c,h,w}; a bias is a plain array of its
 * C values. The kernels are plain loops written from the PyTorch definitions (Conv2d,
 * ConvTranspose2d, instance_norm, LeakyReLU, broadcasting), independently of core/, and favour
 * being obviously right over being fast. Outputs are overwritten (never accumulated into) and
 * must not alias inputs, except that the element-wise kernels and ref_binary may write over an
 * input of the output's shape.
 *
 * Convolution options are taken from bk_conv_opts (stride, per-side padding top/left/bottom/
 * right, groups, output padding) with the PyTorch meaning; groups 0 means 1. Dilation is 1.
 */
#ifndef BK_TEST_REF_H
#define BK_TEST_REF_H

#include <stddef.h>

#include "core/bokehlab.h"

static inline size_t ref_numel(bk_shape s) { return (size_t)(s.n * s.c * s.h * s.w); }
static inline size_t ref_idx(bk_shape s, int64_t n, int64_t c, int64_t h, int64_t w) {
    return (size_t)(((n * s.c + c) * s.h + h) * s.w + w);
}

/* ------------------------------------------------------------------ Conv2d
 * x (N,C,H,W), w (O,C/groups,kH,kW), bias (O) or NULL, y (N,O,OH,OW) with
 *   OH = (H + pad_t + pad_b - kH) / stride_h + 1,  OW = (W + pad_l + pad_r - kW) / stride_w + 1
 *   y[n,o,oh,ow] = bias[o] + sum_{ci,kh,kw} w[o,ci,kh,kw] * x[n, g*C/groups + ci,
 *                                                        oh*sh - pad_t + kh, ow*sw - pad_l + kw]
 * with g = o / (O/groups) and x read as 0 outside the image. */
bk_shape ref_conv2d_out_shape(bk_shape x, bk_shape w, bk_conv_opts o);
void ref_conv2d_fwd(const double *x, bk_shape xs, const double *w, bk_shape ws,
                    const double *bias, bk_conv_opts o, double *y);
/* gx (shape xs) = d<gy, conv2d(x, w)>/dx for gy of shape ref_conv2d_out_shape(xs, ws, o). */
void ref_conv2d_bwd_data(const double *gy, const double *w, bk_shape ws, bk_shape xs,
                         bk_conv_opts o, double *gx);
/* gw (shape ws) = d<gy, conv2d(x, w)>/dw. */
void ref_conv2d_bwd_weights(const double *x, bk_shape xs, const double *gy, bk_shape ws,
                            bk_conv_opts o, double *gw);
/* gb (C values) = sum of gy (N,C,H,W) over N, H, W: the bias gradient of any conv. */
void ref_bias_grad(const double *gy, bk_shape gys, double *gb);

/* ------------------------------------------------------------------ ConvTranspose2d
 * x (N,I,H,W), w (I,O/groups,kH,kW), bias (O) or NULL, y (N,O,OH,OW) with
 *   OH = (H - 1)*stride_h - pad_t - pad_b + kH + out_pad_h   (likewise OW)
 * defined by scattering every input pixel (the PyTorch / "gradient of conv" definition):
 *   y[n, g*O/groups + oc, ih*sh - pad_t + kh, iw*sw - pad_l + kw] += x[n,i,ih,iw] * w[i,oc,kh,kw]
 * for g = i / (I/groups), dropping positions outside 0..OH-1, 0..OW-1. */
bk_shape ref_conv_transpose2d_out_shape(bk_shape x, bk_shape w, bk_conv_opts o);
void ref_conv_transpose2d_fwd(const double *x, bk_shape xs, const double *w, bk_shape ws,
                              const double *bias, bk_conv_opts o, double *y);
/* gx (shape xs) = d<gy, conv_transpose2d(x, w)>/dx, gy of the output shape. */
void ref_conv_transpose2d_bwd_data(const double *gy, const double *w, bk_shape ws, bk_shape xs,
                                   bk_conv_opts o, double *gx);
/* gw (shape ws) = d<gy, conv_transpose2d(x, w)>/dw. */
void ref_conv_transpose2d_bwd_weights(const double *x, bk_shape xs, const double *gy,
                                      bk_shape ws, bk_conv_opts o, double *gw);

/* ------------------------------------------------------------------ normalisation
 * F.instance_norm without affine: per (n,c), y = (x - mean) / sqrt(var + eps) over H,W with the
 * biased variance (divide by H*W). x, y of shape s. */
void ref_instance_norm(const double *x, bk_shape s, double eps, double *y);
/* Its gradient: gx = d<gy, instance_norm(x)>/dx, written out per (n,c) as
 *   gx = (gy - mean(gy) - xhat * mean(gy * xhat)) / sqrt(var + eps),  xhat = instance_norm(x). */
void ref_instance_norm_bwd(const double *x, const double *gy, bk_shape s, double eps,
                           double *gx);

/* ------------------------------------------------------------------ element-wise (n values) */
/* y = x > 0 ? x : slope * x */
void ref_leaky_relu(const double *x, size_t n, double slope, double *y);
/* gx = gy * (y > 0 ? 1 : slope) */
void ref_relu_bwd(const double *gy, const double *y, size_t n, double slope, double *gx);
void ref_affine(const double *x, size_t n, double a, double b, double *y); /* a*x + b */
void ref_abs(const double *x, size_t n, double *y);
void ref_sign(const double *x, size_t n, double *y); /* -1, 0, 1 */
void ref_square(const double *x, size_t n, double *y);
void ref_sqrt(const double *x, size_t n, double *y);

/* ------------------------------------------------------------------ broadcasting */
typedef enum ref_binop { REF_ADD, REF_SUB, REF_MUL, REF_DIV } ref_binop;
/* Result shape of broadcasting a and b: per dimension equal or one of them 1 -> the larger.
 * Stops the test (abort) when the shapes do not broadcast. */
bk_shape ref_broadcast_shape(bk_shape a, bk_shape b);
/* y = a (op) b, y of shape ref_broadcast_shape(as, bs); a size-1 dimension is read at index 0. */
void ref_binary(ref_binop op, const double *a, bk_shape as, const double *b, bk_shape bs,
                double *y);
/* Sum of x (shape xs) over the dimensions set in `dims` (bit 0: N, 1: C, 2: H, 3: W); the result
 * has those dimensions of size 1 and the others as in xs. */
enum { REF_N = 1, REF_C = 2, REF_H = 4, REF_W = 8 };
bk_shape ref_reduced_shape(bk_shape xs, unsigned dims);
void ref_sum_dims(const double *x, bk_shape xs, unsigned dims, double *y);
/* The dimensions where `to` is 1 and `from` is not. */
unsigned ref_dims_to(bk_shape from, bk_shape to);
/* y (shape ys) = x (shape xs) repeated along the dimensions where xs is 1. */
void ref_expand(const double *x, bk_shape xs, bk_shape ys, double *y);

/* ------------------------------------------------------------------ element-wise, issue 3
 * One scalar function per kind, y = f(x), and its gradient gx = gy * f'(x) with PyTorch's
 * convention at the kinks:
 *   REF_CLAMP      torch.clamp(x, a, b)            f' = 1 on [a, b] (inclusive)
 *   REF_RELU6      F.relu6 = hardtanh(x, 0, 6)     f' = 1 on (0, 6) (exclusive)
 *   REF_HARDSWISH  x * min(max(x + 3, 0), 6) / 6   f' = 0 below -3, x/3 + 1/2 on [-3, 3], 1 above
 *   REF_SIGMOID    1 / (1 + e^-x)                  f' = f (1 - f)
 *   REF_TANH       tanh x                          f' = 1 - f^2
 *   REF_EXP        e^x                             f' = e^x
 *   REF_LOG        ln x                            f' = 1 / x
 *   REF_POW        x^a (a constant)                f' = a x^(a-1)
 * a, b are only read by REF_CLAMP (bounds) and REF_POW (a: the exponent). */
typedef enum ref_unop {
    REF_CLAMP, REF_RELU6, REF_HARDSWISH, REF_SIGMOID, REF_TANH, REF_EXP, REF_LOG, REF_POW
} ref_unop;
void ref_unary(ref_unop op, const double *x, size_t n, double a, double b, double *y);
void ref_unary_bwd(ref_unop op, const double *x, const double *gy, size_t n, double a, double b,
                   double *gx);
/* gx = gy where lo <= x <= hi (inclusive) or lo < x < hi (not), else 0. */
void ref_clamp_bwd(const double *gy, const double *x, size_t n, double lo, double hi,
                   int inclusive, double *gx);

/* ------------------------------------------------------------------ data movement
 * Axes as bk_axis (BK_AXIS_N, _C, _H, _W). */
int64_t *ref_dim(bk_shape *s, int axis);
/* torch.cat(xs[0..n-1], axis); returns the result shape (y may be NULL to only get it). */
bk_shape ref_concat(int n, const double *const *xs, const bk_shape *ss, int axis, double *y);
/* x.narrow(axis, off, size) */
void ref_slice(const double *x, bk_shape xs, int axis, int64_t off, int64_t size, double *y);
/* zeros of extent `full` along axis with x at off (the adjoint of slice) */
void ref_embed(const double *x, bk_shape xs, int axis, int64_t off, int64_t full, double *y);
/* x.transpose(2, 3): y of shape N,C,W,H */
void ref_transpose_hw(const double *x, bk_shape xs, double *y);
/* F.pad(x, (l, r, t, b), mode="reflect"): y[i, j] = x[refl(i - t), refl(j - l)] with
 * refl(k) = -k below 0 and 2(len-1) - k past the end (the edge is not repeated). */
void ref_reflect_pad(const double *x, bk_shape xs, int t, int l, int b, int r, double *y);
/* Its adjoint, by scattering: gx (shape xs) = sum of gy over every padded position that reads
 * each input position. */
void ref_reflect_pad_bwd(const double *gy, bk_shape xs, int t, int l, int b, int r, double *gx);
/* y (N,C,oh,ow) zeros with y[2i, 2j] = x[i, j] */
void ref_zero_insert(const double *x, bk_shape xs, int64_t oh, int64_t ow, double *y);
/* x[:, :, ::2, ::2], shape N,C,ceil(H/2),ceil(W/2) */
bk_shape ref_subsample_shape(bk_shape xs);
void ref_subsample(const double *x, bk_shape xs, double *y);

/* ------------------------------------------------------------------ resampling
 * mode as bk_resample_mode: 0 F.interpolate(bilinear, align_corners=False) with scale in/out,
 * 1 the same with antialias=True (PIL triangle filter of support in/out on each shrinking axis,
 * plain bilinear on the others), 2 avg_pool2d(2, 2) (out = floor(in / 2)).
 * ref_resample_matrix writes the dense out x in matrix of one axis (row i: the weights of
 * output i); the 2-D operator is the product of the two axes' (separable). */
void ref_resample_matrix(int mode, int64_t in, int64_t out, double *m);
void ref_resample(const double *x, bk_shape xs, int64_t oh, int64_t ow, int mode, double *y);
/* The adjoint: gx (shape xs) from gy (N,C,oh,ow), by the transposed matrices. */
void ref_resample_bwd(const double *gy, bk_shape xs, int64_t oh, int64_t ow, int mode,
                      double *gx);

/* ------------------------------------------------------------------ max pooling
 * MaxPool2d(k, stride), no padding, floor: y (N,C,(H-k)/s+1,(W-k)/s+1). The gradient goes to
 * the first maximum of each window in row-major order (test data has no ties). */
bk_shape ref_max_pool_shape(bk_shape xs, int k, int stride);
void ref_max_pool(const double *x, bk_shape xs, int k, int stride, double *y);
void ref_max_pool_bwd(const double *x, bk_shape xs, const double *gy, int k, int stride,
                      double *gx);

/* ------------------------------------------------------------------ batch norm
 * BatchNorm2d: per channel c, statistics over N,H,W (M values):
 *   training: mean, biased variance of the batch normalise; running stats become
 *             (1 - momentum) r + momentum * (batch mean, UNBIASED batch variance);
 *   eval:     running mean and variance normalise; running stats unchanged.
 *   y = gamma * (x - mean) / sqrt(var + eps) + beta.
 * gamma, beta, rmean, rvar: C values. new_rmean / new_rvar may be NULL. */
void ref_batch_norm(const double *x, bk_shape s, const double *gamma, const double *beta,
                    const double *rmean, const double *rvar, int training, double momentum,
                    double eps, double *y, double *new_rmean, double *new_rvar);
/* Gradients of <gy, y> w.r.t. x, gamma, beta (any may be NULL):
 *   xhat = (x - mean) rstd, ggamma = sum gy xhat, gbeta = sum gy,
 *   training gx = gamma rstd (gy - gbeta/M - xhat ggamma/M), eval gx = gamma rstd gy. */
void ref_batch_norm_bwd(const double *x, bk_shape s, const double *gamma, const double *rmean,
                        const double *rvar, int training, double eps, const double *gy,
                        double *gx, double *ggamma, double *gbeta);

/* ------------------------------------------------------------------ Laplacian pyramid (LPTN)
 * gauss5(x, g)[h, w] = g * sum_{i,j<5} K[i][j] x[refl(h + i - 2), refl(w + j - 2)],
 *   K = outer([1,4,6,4,1], [1,4,6,4,1]) / 256, per channel (reflect pad 2 + depthwise 5x5).
 * lap_down(x) = subsample(gauss5(x, 1)); lap_up(x, oh, ow) = gauss5(zero_insert(x, oh, ow), 4).
 * decompose: h_l = cur - lap_up(lap_down(cur), size of cur), cur = lap_down(cur); low = last cur.
 * reconstruct: img = low; img = lap_up(img, size of h_l) + h_l for l = L-1 .. 0. */
void ref_gauss5(const double *x, bk_shape xs, double gain, double *y);
void ref_lap_down(const double *x, bk_shape xs, double *y); /* shape ref_subsample_shape(xs) */
void ref_lap_up(const double *x, bk_shape xs, int64_t oh, int64_t ow, double *y);
/* high[l] (malloc'd, shape hs[l]) for l < levels, low (malloc'd, shape *ls). */
void ref_pyramid_decompose(const double *x, bk_shape xs, int levels, double **high, bk_shape *hs,
                           double **low, bk_shape *ls);

/* ------------------------------------------------------------------ conversions */
double *ref_from_float(const float *p, size_t n); /* malloc'd double copy */
float *ref_to_float(const double *p, size_t n);   /* malloc'd float copy */

#endif
