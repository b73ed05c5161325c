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

/* ------------------------------------------------------------------ conversions */
double *ref_from_float(const float *p, size_t n); /* malloc'd double copy */
float *ref_to_float(const double *p, size_t n);   /* malloc'd float copy */

#endif
