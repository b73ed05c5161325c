/* metrics.c — PSNR, SSIM (skimage convention) and LPIPS on 8-bit images (see metrics.h). */
#include "eval/metrics.h"

#include <math.h>
#include <stdlib.h>

double bk_psnr_u8(const uint8_t *a, const uint8_t *b, size_t n) {
    double se = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    if (se == 0.0) return INFINITY;
    return 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

/* Summed-area table of one channel of (x or products), (h+1) x (w+1), in double. */
static void integral(const uint8_t *a, const uint8_t *b, int h, int w, int c, int ch, int kind,
                     double *s) {
    for (int j = 0; j <= w; j++) s[j] = 0.0;
    for (int i = 0; i < h; i++) {
        double row = 0.0;
        s[(size_t)(i + 1) * (w + 1)] = 0.0;
        for (int j = 0; j < w; j++) {
            size_t p = ((size_t)i * w + j) * c + ch;
            double x = a[p], y = b[p];
            double v = kind == 0 ? x : kind == 1 ? y : kind == 2 ? x * x : kind == 3 ? y * y : x * y;
            row += v;
            s[(size_t)(i + 1) * (w + 1) + j + 1] = s[(size_t)i * (w + 1) + j + 1] + row;
        }
    }
}

static inline double box(const double *s, int w, int i0, int j0, int i1, int j1) {
    /* sum over rows i0..i1-1, columns j0..j1-1 */
    size_t W = (size_t)w + 1;
    return s[i1 * W + j1] - s[i0 * W + j1] - s[i1 * W + j0] + s[i0 * W + j0];
}

double bk_ssim_u8(const uint8_t *a, const uint8_t *b, int h, int w, int c) {
    const int win = 7, pad = 3;
    const double np = win * win, cov_norm = np / (np - 1.0);
    const double c1 = (0.01 * 255.0) * (0.01 * 255.0), c2 = (0.03 * 255.0) * (0.03 * 255.0);
    double *s = malloc(5 * (size_t)(h + 1) * (w + 1) * sizeof *s);
    BK_CHECK(s && h >= win && w >= win, "SSIM of a %dx%d image", w, h);
    const size_t plane = (size_t)(h + 1) * (w + 1);
    double total = 0.0;
    for (int ch = 0; ch < c; ch++) {
        for (int k = 0; k < 5; k++) integral(a, b, h, w, c, ch, k, s + k * plane);
        double sum = 0.0;
        for (int i = pad; i < h - pad; i++)
            for (int j = pad; j < w - pad; j++) {
                double m[5];
                for (int k = 0; k < 5; k++)
                    m[k] = box(s + k * plane, w, i - pad, j - pad, i + pad + 1, j + pad + 1) / np;
                double ux = m[0], uy = m[1];
                double vx = cov_norm * (m[2] - ux * ux), vy = cov_norm * (m[3] - uy * uy);
                double vxy = cov_norm * (m[4] - ux * uy);
                sum += ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
            }
        total += sum / ((double)(h - 2 * pad) * (w - 2 * pad));
    }
    free(s);
    return total / c;
}

bk_status bk_lpips_u8(bk_ctx *ctx, const bk_lpips_net *net, const uint8_t *a, const uint8_t *b,
                      int h, int w, float *out) {
    bk_tensor *ta = bk_tensor_new(ctx, (bk_shape){1, 3, h, w}), *tb = bk_tensor_new(ctx, (bk_shape){1, 3, h, w});
    int64_t n = bk_numel(ta);
    for (int64_t i = 0; i < n; i++) { /* HWC bytes are the NHWC storage of a 1x3xHxW tensor */
        ta->data[i] = a[i] / 127.5f - 1.0f;
        tb->data[i] = b[i] / 127.5f - 1.0f;
    }
    return bk_lpips_metric(ctx, net, ta, tb, out);
}
