/* ssim.c — SSIM and MS-SSIM (standard and DMSHN-compatible), built from core ops (see
 * ssim.h). The five local statistics (means of x, y, x^2, y^2, xy) come from one stacked
 * depthwise convolution per direction of the separable Gaussian window. */
#include "losses/ssim.h"

#include <math.h>
#include <stdio.h>

static const float msssim_weights[5] = {0.0448f, 0.2856f, 0.3001f, 0.2363f, 0.1333f};

/* A normalised 1-D Gaussian of `size` taps, sigma 1.5, centred on size/2, as a depthwise
 * kernel for `channels` channels, vertical (size x 1) or horizontal (1 x size). */
static bk_tensor *gaussian_kernel(bk_ctx *ctx, int size, int64_t channels, bool vertical) {
    double g[64], total = 0;
    BK_CHECK(size >= 1 && size <= 64, "window %d", size);
    for (int i = 0; i < size; i++) {
        double d = i - size / 2;
        g[i] = exp(-d * d / (2.0 * 1.5 * 1.5));
        total += g[i];
    }
    bk_tensor *k = bk_tensor_new(ctx, vertical ? (bk_shape){channels, 1, size, 1} : (bk_shape){channels, 1, 1, size});
    for (int64_t c = 0; c < channels; c++)
        for (int i = 0; i < size; i++)
            k->data[bk_offset(k, c, 0, vertical ? i : 0, vertical ? 0 : i)] = (float)(g[i] / total);
    return k;
}

typedef struct stats {
    bk_tensor *mu_x, *mu_y, *xx, *yy, *xy; /* windowed means of x, y, x^2, y^2, xy */
} stats;

/* Windowed means (valid) of x, y and their products, by one stacked separable depthwise conv. */
static stats local_stats(bk_ctx *ctx, bk_tensor *x, bk_tensor *y, int win) {
    bk_tensor *four[4] = {x, y, bk_mul(ctx, x, x), bk_mul(ctx, y, y)};
    bk_tensor *two[2] = {bk_concat(ctx, 4, four, BK_AXIS_C), bk_mul(ctx, x, y)};
    bk_tensor *stack = bk_concat(ctx, 2, two, BK_AXIS_C);
    int64_t C = stack->c;
    bk_conv_opts o = bk_conv_opts_make(1, 0, (int)C);
    bk_tensor *v = bk_conv2d(ctx, stack, gaussian_kernel(ctx, win, C, true), NULL, o, bk_act_none(), NULL);
    bk_tensor *f = bk_conv2d(ctx, v, gaussian_kernel(ctx, win, C, false), NULL, o, bk_act_none(), NULL);
    bk_tensor *part[5];
    int64_t sizes[5] = {x->c, x->c, x->c, x->c, x->c};
    bk_split(ctx, f, BK_AXIS_C, 5, sizes, part);
    return (stats){part[0], part[1], part[2], part[3], part[4]};
}

/* The SSIM and CS maps for constants C1, C2. */
static void ssim_maps(bk_ctx *ctx, bk_tensor *x, bk_tensor *y, int win, float c1, float c2,
                      bk_tensor **ssim_map, bk_tensor **cs_map) {
    stats s = local_stats(ctx, x, y, win);
    bk_tensor *mx2 = bk_mul(ctx, s.mu_x, s.mu_x), *my2 = bk_mul(ctx, s.mu_y, s.mu_y);
    bk_tensor *mxy = bk_mul(ctx, s.mu_x, s.mu_y);
    bk_tensor *sxx = bk_sub(ctx, s.xx, mx2), *syy = bk_sub(ctx, s.yy, my2), *sxy = bk_sub(ctx, s.xy, mxy);
    bk_tensor *v1 = bk_affine(ctx, sxy, 2.0f, c2);                          /* 2 sxy + C2 */
    bk_tensor *v2 = bk_affine(ctx, bk_add(ctx, sxx, syy), 1.0f, c2);         /* sxx + syy + C2 */
    bk_tensor *num = bk_mul(ctx, bk_affine(ctx, mxy, 2.0f, c1), v1);
    bk_tensor *den = bk_mul(ctx, bk_affine(ctx, bk_add(ctx, mx2, my2), 1.0f, c1), v2);
    *ssim_map = bk_div(ctx, num, den);
    if (cs_map) *cs_map = bk_div(ctx, v1, v2);
}

static void check_pair(const bk_tensor *a, const bk_tensor *b, const char *what) {
    char sa[64], sb[64];
    BK_CHECK(bk_same_shape(a, b), "%s of %s and %s", what, bk_shape_str(bk_shape_of(a), sa),
             bk_shape_str(bk_shape_of(b), sb));
}

bk_tensor *bk_ssim(bk_ctx *ctx, bk_tensor *a, bk_tensor *b, float data_range) {
    check_pair(a, b, "SSIM");
    BK_CHECK(a->h >= 11 && a->w >= 11, "SSIM needs images of at least 11x11");
    float c1 = (0.01f * data_range) * (0.01f * data_range), c2 = (0.03f * data_range) * (0.03f * data_range);
    bk_tensor *map;
    ssim_maps(ctx, a, b, 11, c1, c2, &map, NULL);
    return bk_mean(ctx, map);
}

/* Mean over H, W: per image and channel (N,C,1,1). */
static bk_tensor *spatial_mean(bk_ctx *ctx, bk_tensor *m) {
    return bk_scale(ctx, bk_sum_to(ctx, m, (bk_shape){m->n, m->c, 1, 1}), 1.0f / (float)(m->h * m->w));
}

static bk_tensor *ms_ssim_standard(bk_ctx *ctx, bk_tensor *x, bk_tensor *y, float range) {
    float c1 = (0.01f * range) * (0.01f * range), c2 = (0.03f * range) * (0.03f * range);
    bk_tensor *prod = NULL;
    for (int l = 0; l < 5; l++) {
        bk_tensor *ssim_map, *cs_map;
        ssim_maps(ctx, x, y, 11, c1, c2, &ssim_map, l < 4 ? &cs_map : NULL);
        bk_tensor *v = spatial_mean(ctx, l < 4 ? cs_map : ssim_map);
        bk_tensor *term = bk_pow(ctx, bk_relu(ctx, v), msssim_weights[l]);
        prod = prod ? bk_mul(ctx, prod, term) : term;
        if (l < 4) {
            x = bk_avg_pool2(ctx, x);
            y = bk_avg_pool2(ctx, y);
        }
    }
    return bk_mean(ctx, prod);
}

static float data_range_guess(const bk_tensor *x) {
    int64_t n = bk_numel(x);
    float mx = x->data[0], mn = x->data[0];
    for (int64_t i = 1; i < n; i++) {
        mx = x->data[i] > mx ? x->data[i] : mx;
        mn = x->data[i] < mn ? x->data[i] : mn;
    }
    return (mx > 128.0f ? 255.0f : 1.0f) - (mn < -0.5f ? -1.0f : 0.0f);
}

static bk_tensor *ms_ssim_dmshn(bk_ctx *ctx, bk_tensor *x, bk_tensor *y) {
    bk_tensor *cs_prod = NULL, *ssim_last = NULL;
    for (int l = 0; l < 5; l++) {
        float range = data_range_guess(x);
        float c1 = (0.01f * range) * (0.01f * range), c2 = (0.03f * range) * (0.03f * range);
        int64_t side = x->h < x->w ? x->h : x->w;
        int win = side < 11 ? (int)side : 11;
        bk_tensor *ssim_map, *cs_map;
        ssim_maps(ctx, x, y, win, c1, c2, &ssim_map, &cs_map);
        if (l < 4) {
            bk_tensor *term = bk_pow(ctx, bk_mean(ctx, cs_map), msssim_weights[l]);
            cs_prod = cs_prod ? bk_mul(ctx, cs_prod, term) : term;
            x = bk_avg_pool2(ctx, x);
            y = bk_avg_pool2(ctx, y);
        } else {
            ssim_last = bk_pow(ctx, bk_mean(ctx, ssim_map), 4.0f * msssim_weights[4]);
        }
    }
    return bk_mul(ctx, cs_prod, ssim_last);
}

bk_status bk_ms_ssim(bk_ctx *ctx, bk_tensor *a, bk_tensor *b, float data_range,
                     bk_msssim_mode mode, bk_tensor **out) {
    check_pair(a, b, "MS-SSIM");
    *out = NULL;
    int64_t side = a->h < a->w ? a->h : a->w;
    int64_t min_side = mode == BK_MSSSIM_STANDARD ? BK_MSSSIM_MIN_SIDE : 16;
    if (side < min_side)
        return bk_fail(BK_ERR_SHAPE, "MS-SSIM%s needs images of at least %lldx%lld (5 levels), "
                       "got %lldx%lld", mode == BK_MSSSIM_STANDARD ? "" : " (dmshn_compat)",
                       (long long)min_side, (long long)min_side, (long long)a->h, (long long)a->w);
    *out = mode == BK_MSSSIM_STANDARD ? ms_ssim_standard(ctx, a, b, data_range) : ms_ssim_dmshn(ctx, a, b);
    return BK_OK;
}
