/* layer.c — conv, transposed conv and batch norm layers with their initialisations. */
#include "layers/layer.h"

#include <stdlib.h>
#include <string.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

const char *bk_name(char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, BK_NAME_MAX, fmt, ap);
    va_end(ap);
    BK_CHECK(n > 0 && n < BK_NAME_MAX, "module name too long");
    return buf;
}

/* fan_in = cin/groups * k * k, fan_out = cout/groups * k * k (torch's _calculate_fan_in_and_fan_out
 * on the weight: dims 1 and 0 times the receptive field). */
static void init_weights(bk_tensor *w, bk_init init, double fan_in, double fan_out, double cout_layer,
                         int k) {
    int64_t n = bk_numel(w);
    switch (init.kind) {
    case BK_INIT_NORMAL:
        bk_rng_fill_normal(init.rng, w->data, n, 0.0, init.param);
        break;
    case BK_INIT_HE: {
        double a = init.param;
        bk_rng_fill_normal(init.rng, w->data, n, 0.0, sqrt(2.0 / (1.0 + a * a) / fan_in));
        break;
    }
    case BK_INIT_GLOROT: {
        double lim = sqrt(6.0 / (fan_in + fan_out));
        bk_rng_fill_uniform(init.rng, w->data, n, -lim, lim);
        break;
    }
    case BK_INIT_DMSHN:
        bk_rng_fill_normal(init.rng, w->data, n, 0.0, 0.5 * sqrt(2.0 / ((double)k * k * cout_layer)));
        break;
    }
    bk_tensor_touch(w);
}

bk_conv_layer bk_conv_layer_make(bk_ctx *ctx, bk_params *ps, const char *name, int cin, int cout,
                                 int k, int stride, int pad, int groups, bool bias, bk_init init) {
    char buf[BK_NAME_MAX];
    bk_conv_layer l = {0};
    l.o = bk_conv_opts_make(stride, pad, groups);
    l.w = bk_params_add(ctx, ps, bk_name(buf, "%s.weight", name), 4,
                        (bk_shape){cout, cin / groups, k, k}, BK_PARAM);
    if (bias) l.b = bk_params_add(ctx, ps, bk_name(buf, "%s.bias", name), 1, (bk_shape){1, cout, 1, 1}, BK_PARAM);
    init_weights(l.w, init, (double)cin / groups * k * k, (double)cout / groups * k * k, cout, k);
    return l;
}

bk_conv_layer bk_deconv_layer_make(bk_ctx *ctx, bk_params *ps, const char *name, int cin,
                                   int cout, int k, int stride, int pad, bool bias, bk_init init) {
    char buf[BK_NAME_MAX];
    bk_conv_layer l = {0};
    l.o = bk_conv_opts_make(stride, pad, 1);
    l.transposed = true;
    l.w = bk_params_add(ctx, ps, bk_name(buf, "%s.weight", name), 4, (bk_shape){cin, cout, k, k}, BK_PARAM);
    if (bias) l.b = bk_params_add(ctx, ps, bk_name(buf, "%s.bias", name), 1, (bk_shape){1, cout, 1, 1}, BK_PARAM);
    /* torch sees a ConvTranspose weight (in, out, k, k): fan_in = out*k*k, fan_out = in*k*k */
    init_weights(l.w, init, (double)cout * k * k, (double)cin * k * k, cout, k);
    return l;
}

bk_tensor *bk_conv_layer_fwd(bk_ctx *ctx, const bk_conv_layer *l, bk_tensor *x, bk_act act,
                             bk_tensor *residual) {
    char name[BK_NAME_MAX] = "";
    if (ctx->block_hook && l->w->name) { /* a profile: one block per conv, named by its module */
        snprintf(name, sizeof name, "%s", l->w->name);
        char *dot = strrchr(name, '.');
        if (dot) *dot = '\0';
        bk_block_begin(ctx, name);
    }
    bk_tensor *y;
    if (l->transposed) {
        BK_CHECK(act.kind == BK_ACT_NONE && !residual, "no fused post-ops on transposed convs");
        y = bk_conv_transpose2d(ctx, x, l->w, l->b, l->o);
    } else {
        y = bk_conv2d(ctx, x, l->w, l->b, l->o, act, residual);
    }
    if (name[0]) bk_block_end(ctx, name, y);
    return y;
}

bk_bn_layer bk_bn_layer_make(bk_ctx *ctx, bk_params *ps, const char *name, int c) {
    char buf[BK_NAME_MAX];
    bk_bn_layer l;
    bk_shape s = {1, c, 1, 1};
    l.gamma = bk_params_add(ctx, ps, bk_name(buf, "%s.weight", name), 1, s, BK_PARAM);
    l.beta = bk_params_add(ctx, ps, bk_name(buf, "%s.bias", name), 1, s, BK_PARAM);
    l.mean = bk_params_add(ctx, ps, bk_name(buf, "%s.running_mean", name), 1, s, BK_BUFFER);
    l.var = bk_params_add(ctx, ps, bk_name(buf, "%s.running_var", name), 1, s, BK_BUFFER);
    for (int i = 0; i < c; i++) l.gamma->data[i] = l.var->data[i] = 1.0f;
    return l;
}

bk_tensor *bk_bn_layer_fwd(bk_ctx *ctx, const bk_bn_layer *l, bk_tensor *x, bool training) {
    return bk_batch_norm(ctx, x, l->gamma, l->beta, l->mean, l->var, training, 0.1f, BK_BN_EPS);
}

enum { PAIR_MAX_IN = 64, PAIR_MAX_MID = 64, LANES = 16 };
/* LANES pixels of one channel: every operation on it is one vector operation (GCC's vector
 * extension, so that it stays one whatever the compiler decides about unrolling). */
typedef float lanes_f __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t lanes_i __attribute__((vector_size(LANES * sizeof(int32_t))));

/* Checks that l1, l2 are two 1x1 convs (stride 1, no padding, ungrouped) ci -> cm -> ci_out. */
static void check_pair(const bk_conv_layer *l1, const bk_conv_layer *l2, int64_t ci) {
    const bk_tensor *w1 = l1->w, *w2 = l2->w;
    const int64_t cm = w1->n;
    BK_CHECK(!l1->transposed && !l2->transposed && w1->h == 1 && w1->w == 1 && w2->h == 1 && w2->w == 1 &&
                 w1->c == ci && w2->c == cm && ci <= PAIR_MAX_IN && cm <= PAIR_MAX_MID && w2->n <= PAIR_MAX_IN &&
                 l1->o.stride_h == 1 && l1->o.stride_w == 1 && l2->o.stride_h == 1 && l2->o.stride_w == 1 &&
                 l1->o.pad_t + l1->o.pad_l + l1->o.pad_b + l1->o.pad_r + l2->o.pad_t + l2->o.pad_l + l2->o.pad_b +
                         l2->o.pad_r == 0,
             "conv1x1 pair: %lld -> %lld -> %lld channels do not make two 1x1 convs", (long long)ci, (long long)cm,
             (long long)w2->n);
}

/* out[o] = l2(LeakyReLU_slope(l1(in))) for LANES pixels held channel by channel. */
static void pair_lanes(const bk_conv_layer *l1, float slope, const bk_conv_layer *l2, const lanes_f *in,
                       lanes_f *out) {
    const int64_t ci = l1->w->c, cm = l1->w->n, co = l2->w->n;
    const float *restrict w1 = l1->w->data, *restrict w2 = l2->w->data;
    const float *b1 = l1->b ? l1->b->data : NULL, *b2 = l2->b ? l2->b->data : NULL;
    lanes_f h[PAIR_MAX_MID];
    for (int64_t m = 0; m < cm; m++) {
        lanes_f acc = (lanes_f){0} + (b1 ? b1[m] : 0.0f);
        for (int64_t i = 0; i < ci; i++) acc += w1[m * ci + i] * in[i];
        const lanes_i pos = acc > 0.0f;
        h[m] = (lanes_f)((pos & (lanes_i)acc) | (~pos & (lanes_i)(slope * acc)));
    }
    for (int64_t o = 0; o < co; o++) {
        lanes_f acc = (lanes_f){0} + (b2 ? b2[o] : 0.0f);
        for (int64_t m = 0; m < cm; m++) acc += w2[o * cm + m] * h[m];
        out[o] = acc;
    }
}

/* The taps of bilinear upsampling by `factor` along an axis of `in` pixels. */
typedef struct up_taps {
    int64_t *i0, *i1;
    float *w0, *w1;
} up_taps;

static up_taps up_taps_make(int64_t in, int factor) {
    const size_t n = (size_t)(in * factor);
    up_taps t = {malloc(n * sizeof *t.i0), malloc(n * sizeof *t.i1), malloc(n * sizeof *t.w0),
                 malloc(n * sizeof *t.w1)};
    BK_CHECK(t.i0 && t.i1 && t.w0 && t.w1, "out of memory");
    bk_bilinear_up_taps(in, factor, t.i0, t.i1, t.w0, t.w1);
    return t;
}

static void up_taps_free(up_taps *t) {
    free(t->i0);
    free(t->i1);
    free(t->w0);
    free(t->w1);
}

/* dst[e] = the row `r` of the (rows x len) plane src, upsampled along the rows by taps t. */
static void up_row(const up_taps *t, int64_t r, const float *src, int64_t len, float *restrict dst) {
    const float *restrict s0 = src + t->i0[r] * len, *restrict s1 = src + t->i1[r] * len;
    const float w0 = t->w0[r], w1 = t->w1[r];
    for (int64_t e = 0; e < len; e++) {
        dst[e] = w0 * s0[e];
        dst[e] += w1 * s1[e];
    }
}

static bool same_shape(const bk_tensor *a, const bk_tensor *b) {
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w;
}

bk_tensor *bk_detail_blend_infer(bk_ctx *ctx, const bk_conv_layer *l1, float slope, const bk_conv_layer *l2,
                                 const bk_tensor *base, const bk_tensor *high, const bk_tensor *src, int src_factor,
                                 const bk_tensor *mask, int mask_factor, const bk_tensor *image) {
    const int64_t N = base->n, C = base->c, H = base->h, W = base->w;
    check_pair(l1, l2, C);
    BK_CHECK(l2->w->n == C && same_shape(base, high) && src->n == N && src->c == C && src->h * src_factor == H &&
                 src->w * src_factor == W && src_factor >= 1,
             "detail blend: base %lldx%lld, src %lldx%lld by %d", (long long)H, (long long)W, (long long)src->h,
             (long long)src->w, src_factor);
    BK_CHECK(!mask || (image && same_shape(base, image) && mask->n == N && mask->c == 1 &&
                       mask->h * mask_factor == H && mask->w * mask_factor == W && mask_factor >= 1),
             "detail blend: mask and image do not match the output %lldx%lld", (long long)H, (long long)W);
    bk_tensor *y = bk_tensor_new(ctx, (bk_shape){N, C, H, W});
    up_taps sh = up_taps_make(src->h, src_factor), sw = up_taps_make(src->w, src_factor), mh = {0}, mw = {0};
    if (mask) mh = up_taps_make(mask->h, mask_factor), mw = up_taps_make(mask->w, mask_factor);
    const int64_t src_row = src->w * C, mask_row = mask ? mask->w : 0;
#pragma omp parallel
    {
        float *srow = malloc((size_t)src_row * sizeof *srow), *mrow = malloc((size_t)(mask_row + 1) * sizeof *mrow);
        BK_CHECK(srow && mrow, "out of memory");
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < N; n++)
            for (int64_t r = 0; r < H; r++) {
                up_row(&sh, r, src->data + n * src->h * src_row, src_row, srow);
                if (mask) up_row(&mh, r, mask->data + n * mask->h * mask_row, mask_row, mrow);
                const int64_t row0 = (n * H + r) * W;
                for (int64_t x0 = 0; x0 < W; x0 += LANES) {
                    const int64_t np = W - x0 < LANES ? W - x0 : LANES;
                    float in[PAIR_MAX_IN][LANES] __attribute__((aligned(64)));
                    for (int l = 0; l < LANES; l++) {
                        const int64_t x = x0 + (l < np ? l : 0);
                        const float *a = srow + sw.i0[x] * C, *b = srow + sw.i1[x] * C;
                        for (int64_t c = 0; c < C; c++) {
                            float v = sw.w0[x] * a[c];
                            v += sw.w1[x] * b[c];
                            in[c][l] = v;
                        }
                    }
                    lanes_f vin[PAIR_MAX_IN], f[PAIR_MAX_IN];
                    memcpy(vin, in, (size_t)C * sizeof *vin);
                    pair_lanes(l1, slope, l2, vin, f);
                    /* back to the pixels' interleaved order, then contiguous vector loops */
                    float fi[PAIR_MAX_IN * LANES], mi[PAIR_MAX_IN * LANES];
                    for (int64_t c = 0; c < C; c++)
                        for (int l = 0; l < np; l++) fi[l * C + c] = f[c][l];
                    const int64_t at = (row0 + x0) * C, len = np * C;
                    const float *restrict bs = base->data + at, *restrict hi = high->data + at;
                    float *restrict out = y->data + at;
                    if (!mask) {
                        for (int64_t e = 0; e < len; e++) out[e] = bs[e] + hi[e] * fi[e];
                        continue;
                    }
                    for (int l = 0; l < np; l++) {
                        const int64_t x = x0 + l;
                        float m = mw.w0[x] * mrow[mw.i0[x]];
                        m += mw.w1[x] * mrow[mw.i1[x]];
                        for (int64_t c = 0; c < C; c++) mi[l * C + c] = m;
                    }
                    const float *restrict im = image->data + at;
                    for (int64_t e = 0; e < len; e++) {
                        const float v = bs[e] + hi[e] * fi[e];
                        out[e] = v + mi[e] * (im[e] - v);
                    }
                }
            }
        free(srow);
        free(mrow);
    }
    up_taps_free(&sh);
    up_taps_free(&sw);
    if (mask) {
        up_taps_free(&mh);
        up_taps_free(&mw);
    }
    return y;
}

bk_tensor *bk_conv_layer_fwd_residual_last(bk_ctx *ctx, const bk_conv_layer *l, bk_tensor *x, bk_act act,
                                           bk_tensor *residual) {
    if (ctx->grad_enabled || l->transposed) return bk_conv_layer_fwd(ctx, l, x, act, residual);
    return bk_conv2d_into_residual(ctx, x, l->w, l->b, l->o, act, residual);
}
