/* formula_weights.c — formula weights and integer test images (see formula_weights.h). The
 * Python twin is in scripts/gen_loss_fixtures.py; keep the two in step (test_losses checks them
 * against the fixture's /formula probes and every case's image checksums). */
#include "tests/support/formula_weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t bk_fw_fnv1a64(const char *key) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t bk_fw_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void bk_fw_values(const char *key, float scale, float *out, int64_t n) {
    const uint64_t h = bk_fw_fnv1a64(key);
    for (int64_t i = 0; i < n; i++) {
        float u = (float)(bk_fw_mix(h + (uint64_t)i) >> 40) * (1.0f / 16777216.0f);
        out[i] = scale * (2.0f * u - 1.0f);
    }
}

void bk_fw_values_affine(const char *key, float scale, float offset, float *out, int64_t n) {
    if (offset != 0.0f) {
        int e;
        BK_CHECK(frexpf(scale, &e) == 0.5f, "%s: an offset needs a power-of-two scale, not %.9g", key,
                 scale);
    }
    bk_fw_values(key, scale, out, n);
    for (int64_t i = 0; i < n; i++) out[i] = offset + out[i];
}

void bk_fw_sketch(const char *key, const float *g, int64_t n, int nk, double *out) {
    BK_CHECK(nk >= 1 && nk <= 64, "a sketch of %d projections", nk);
    const uint64_t h = bk_fw_fnv1a64(key);
    /* out[k] = 2 sum_{bit k set} g_i - sum_i g_i */
    double set[64] = {0}, total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const uint64_t z = bk_fw_mix(h + (uint64_t)i);
        const double v = g[i];
        total += v;
        for (int k = 0; k < nk; k++) set[k] += (double)((z >> k) & 1u) * v;
    }
    for (int k = 0; k < nk; k++) out[k] = 2.0 * set[k] - total;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

float bk_fw_scale(const char *net, const char *name, const bk_tensor *t) {
    if (ends_with(name, ".bias")) return 0.1f;
    if (strcmp(net, "critic") == 0)
        return strstr(name, ".final.") ? 0.0035f : (float)(0.02 * sqrt(3.0));
    if (strncmp(name, "lin", 3) == 0) return 1.0f;
    /* backbone conv weight O,I,kh,kw: He-uniform sqrt(6 / fan_in), in double then rounded */
    return (float)sqrt(6.0 / (double)(t->c * t->h * t->w));
}

void bk_fw_fill_tensor(bk_tensor *t, const char *net, const char *name) {
    char key[256];
    snprintf(key, sizeof key, "%s/%s", net, name);
    int64_t n = bk_numel(t);
    float *v = malloc((size_t)n * sizeof *v);
    BK_CHECK(v, "out of memory");
    bk_fw_values(key, bk_fw_scale(net, name, t), v, n);
    bk_tensor_set_nchw(t, v);
    bk_tensor_touch(t);
    free(v);
}

void bk_fw_fill_params(bk_params *ps, const char *net) {
    for (int i = 0; i < ps->n; i++) bk_fw_fill_tensor(ps->v[i].t, net, ps->v[i].name);
}

/* ---------------------------------------------------------------- images */

bool bk_fw_kind_parse(const char *s, bk_fw_kind *kind) {
    static const char *names[] = {"random", "smooth", "anti", "const"};
    for (int k = 0; k < 4; k++)
        if (strcmp(s, names[k]) == 0) {
            *kind = (bk_fw_kind)k;
            return true;
        }
    return false;
}

/* noise(K, bits)_i = mix(fnv1a64(K) + i) >> (64 - bits) */
static void noise(const char *pair, const char *which, int bits, int64_t *out, int64_t n) {
    char key[256];
    snprintf(key, sizeof key, "%s/%s", pair, which);
    const uint64_t h = bk_fw_fnv1a64(key);
    for (int64_t i = 0; i < n; i++) out[i] = (int64_t)(bk_fw_mix(h + (uint64_t)i) >> (64 - bits));
}

static int64_t clip(int64_t v) {
    return v < 0 ? 0 : v > 4095 ? 4095 : v;
}
static int64_t clampi(int64_t v, int64_t hi) {
    return v < 0 ? 0 : v > hi ? hi : v;
}

/* coarse = ramp + bump (non-negative integer arithmetic only, floor divisions) */
static int64_t coarse(bk_shape s, int64_t n, int64_t c, int64_t h, int64_t w) {
    const int64_t H = s.h, W = s.w, cc = c % 3;
    int64_t ramp = ((h * (2 + cc) + w * (4 + n)) * 2048) / (H * (2 + cc) + W * (4 + n));
    int64_t cy = (H * (1 + cc)) / 4, cx = (W * (3 - cc)) / 4;
    int64_t side = H < W ? H : W;
    int64_t r2 = (side / 3) * (side / 3) + 1;
    int64_t d2 = (h - cy) * (h - cy) + (w - cx) * (w - cx);
    int64_t bump = (1024 * (r2 - (d2 < r2 ? d2 : r2))) / r2;
    return ramp + bump;
}

/* (binomial 3x3 blur of x shifted by (2, 3), clamped at the borders) at n, c, h, w */
static int64_t shift_blur(const int64_t *x, bk_shape s, int64_t n, int64_t c, int64_t h,
                          int64_t w) {
    static const int k[3] = {1, 2, 1};
    int64_t acc = 0;
    for (int i = -1; i <= 1; i++)
        for (int j = -1; j <= 1; j++) {
            int64_t hh = clampi(clampi(h + i, s.h - 1) - 2, s.h - 1);
            int64_t ww = clampi(clampi(w + j, s.w - 1) - 3, s.w - 1);
            acc += k[i + 1] * k[j + 1] * x[((n * s.c + c) * s.h + hh) * s.w + ww];
        }
    return (acc + 8) / 16;
}

void bk_fw_image_pair(const char *key, bk_fw_kind kind, bk_shape s, int32_t *a, int32_t *b) {
    const int64_t total = bk_shape_numel(s);
    int64_t *na = malloc((size_t)total * sizeof *na), *nb = malloc((size_t)total * sizeof *nb);
    int64_t *ai = malloc((size_t)total * sizeof *ai);
    BK_CHECK(na && nb && ai, "out of memory");
    switch (kind) {
    case BK_FW_RANDOM:
        noise(key, "a", 12, na, total);
        noise(key, "b", 11, nb, total);
        for (int64_t i = 0; i < total; i++) {
            a[i] = (int32_t)na[i];
            b[i] = (int32_t)clip(na[i] + nb[i] - 1024);
        }
        break;
    case BK_FW_SMOOTH:
    case BK_FW_ANTI:
        noise(key, "a", kind == BK_FW_SMOOTH ? 8 : 10, na, total);
        noise(key, "b", 6, nb, total);
        for (int64_t n = 0, i = 0; n < s.n; n++)
            for (int64_t c = 0; c < s.c; c++)
                for (int64_t h = 0; h < s.h; h++)
                    for (int64_t w = 0; w < s.w; w++, i++) {
                        int64_t fine = kind == BK_FW_SMOOTH ? na[i] - 128 : na[i] - 512;
                        ai[i] = clip(coarse(s, n, c, h, w) + fine + 512);
                    }
        for (int64_t n = 0, i = 0; n < s.n; n++)
            for (int64_t c = 0; c < s.c; c++)
                for (int64_t h = 0; h < s.h; h++)
                    for (int64_t w = 0; w < s.w; w++, i++) {
                        a[i] = (int32_t)ai[i];
                        if (kind == BK_FW_ANTI && c == 0)
                            b[i] = (int32_t)clip(3072 - coarse(s, n, c, h, w) + na[i] - 512 + 512);
                        else
                            b[i] = (int32_t)clip(shift_blur(ai, s, n, c, h, w) + nb[i] - 32);
                    }
        break;
    case BK_FW_CONST:
        for (int64_t i = 0; i < total; i++) a[i] = 1229, b[i] = 2458;
        break;
    }
    free(na);
    free(nb);
    free(ai);
}

bk_tensor *bk_fw_image_tensor(bk_ctx *ctx, bk_shape s, const int32_t *v, int range) {
    BK_CHECK(range == 1 || range == 2, "image range %d", range);
    int64_t n = bk_shape_numel(s);
    float *x = malloc((size_t)n * sizeof *x);
    BK_CHECK(x, "out of memory");
    for (int64_t i = 0; i < n; i++)
        x[i] = range == 1 ? (float)v[i] / 4096.0f : (float)v[i] / 2048.0f - 1.0f;
    bk_tensor *t = bk_tensor_from_nchw(ctx, s, x);
    free(x);
    return t;
}

double bk_fw_image_sum(const int32_t *v, int64_t n) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += v[i];
    return sum;
}
