/* test_pyramid.c — LPTN's Laplacian pyramid (layers/pyramid.h) against the naive double
 * reference (tests/support/ref.c: reflect pad 2, depthwise 5x5 K = outer([1,4,6,4,1])/256,
 * zero insertion, even subsampling), on odd and even sizes; and the acceptance check: decompose
 * then reconstruct returns the input within 1e-6 (SPEC "within": relative to max|x|), for
 * 1 to 3 levels, on odd sizes and on 2x3x256x384. First and second order by finite
 * differences are in test_gradcheck (pyr_*).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/pyramid.h"
#include "tests/support/harness.h"
#include "tests/support/ref.h"

#define TOL 1e-5
#define TOL_ROUNDTRIP 1e-6

static const char *shp(bk_shape s, char *buf) {
    snprintf(buf, 64, "%lldx%lldx%lldx%lld", (long long)s.n, (long long)s.c, (long long)s.h,
             (long long)s.w);
    return buf;
}

#define WHAT(...) (snprintf(what, sizeof what, __VA_ARGS__), what)

/* t has shape s and is within tol of want (NCHW doubles). */
static bool check_t(const char *what, const bk_tensor *t, bk_shape s, const double *want,
                    double tol) {
    char b1[64], b2[64];
    if (!t || !bk_shape_eq(bk_shape_of(t), s)) {
        EXPECT(0, "%s: shape %s, want %s", what, t ? shp(bk_shape_of(t), b1) : "none",
               shp(s, b2));
        return false;
    }
    float *v = bk_test_nchw(t);
    double *g = ref_from_float(v, ref_numel(s));
    bool ok = EXPECT_CLOSE_D(what, g, want, ref_numel(s), tol);
    free(v);
    free(g);
    return ok;
}

/* x uniform in [-1, 1]: the float data, its double copy and the tensor */
static bk_tensor *input(bk_ctx *ctx, bk_shape s, uint64_t seed, double **xd) {
    bk_tensor *x = bk_test_tensor(ctx, s, -1, 1, seed);
    float *f = bk_test_nchw(x);
    *xd = ref_from_float(f, ref_numel(s));
    free(f);
    return x;
}

/* ------------------------------------------------------------------ forward vs reference */

static void run_forward(bk_shape s, int levels, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    double *x;
    bk_tensor *xt = input(ctx, s, seed, &x);
    const size_t n = ref_numel(s);
    double *y = malloc(n * sizeof *y);

    for (int g = 0; g < 2; g++) {
        const float gain = g ? 4.0f : 1.0f;
        ref_gauss5(x, s, gain, y);
        check_t(WHAT("gauss5(%g) %s", gain, shp(s, sb)), bk_gauss5(ctx, xt, gain), s, y, TOL);
    }
    /* lap_down and lap_up twice: fused (nothing recorded) and op-built (x requires grad) */
    const bk_shape ds = ref_subsample_shape(s);
    double *d = malloc(ref_numel(ds) * sizeof *d);
    ref_lap_down(x, s, d);
    for (int rec = 0; rec < 2; rec++) {
        xt->requires_grad = rec;
        const char *how = rec ? "recorded" : "fused";
        check_t(WHAT("lap_down %s (%s)", shp(s, sb), how), bk_lap_down(ctx, xt), ds, d, TOL);
        /* lap_up of x itself to both sizes it allows (2h and 2h - 1) */
        for (int oddh = 0; oddh < 2; oddh++)
            for (int oddw = 0; oddw < 2; oddw++) {
                const int64_t oh = 2 * s.h - oddh, ow = 2 * s.w - oddw;
                const bk_shape us = {s.n, s.c, oh, ow};
                double *u = malloc(ref_numel(us) * sizeof *u);
                ref_lap_up(x, s, oh, ow, u);
                check_t(WHAT("lap_up %s -> %lldx%lld (%s)", shp(s, sb), (long long)oh, (long long)ow, how),
                        bk_lap_up(ctx, xt, oh, ow), us, u, TOL);
                free(u);
            }
    }
    xt->requires_grad = false;
    EXPECT(ctx->tape_len > 0, "the recorded pass recorded nothing");

    /* decompose: every band; reconstruct from the reference bands */
    double *high[BK_PYRAMID_MAX_LEVELS], *low;
    bk_shape hs[BK_PYRAMID_MAX_LEVELS], ls;
    ref_pyramid_decompose(x, s, levels, high, hs, &low, &ls);
    bk_pyramid p;
    bk_pyramid_decompose(ctx, xt, levels, &p);
    EXPECT(p.levels == levels, "decompose %s: %d levels, want %d", shp(s, sb), p.levels, levels);
    for (int l = 0; l < levels; l++)
        check_t(WHAT("decompose %s L%d: high %d", shp(s, sb), levels, l), p.high[l], hs[l], high[l],
                TOL);
    check_t(WHAT("decompose %s L%d: low", shp(s, sb), levels), p.low, ls, low, TOL);
    check_t(WHAT("reconstruct %s L%d", shp(s, sb), levels), bk_pyramid_reconstruct(ctx, &p), s, x,
            TOL);

    for (int l = 0; l < levels; l++) free(high[l]);
    free(low), free(d), free(y), free(x);
    bk_step_end(ctx);
}

static void pyramid_forward(void) {
    run_forward((bk_shape){1, 3, 9, 11}, 3, 1);   /* 9x11 -> 5x6 -> 3x3 -> 2x2 */
    run_forward((bk_shape){2, 3, 16, 24}, 3, 2);  /* even */
    run_forward((bk_shape){1, 13, 7, 5}, 1, 3);
    run_forward((bk_shape){2, 17, 12, 10}, 2, 4); /* 12x10 -> 6x5 -> 3x3 */
    run_forward((bk_shape){1, 3, 13, 3}, 1, 5);
    run_forward((bk_shape){2, 3, 8, 6}, 2, 6);
}

static void pyramid_forward_large(void) { run_forward((bk_shape){2, 3, 256, 384}, 3, 7); }

/* ------------------------------------------------------------------ the round trip */

static void run_roundtrip(bk_shape s, int levels, uint64_t seed) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    double *x;
    bk_tensor *xt = input(ctx, s, seed, &x);
    bk_pyramid p;
    bk_pyramid_decompose(ctx, xt, levels, &p);
    /* the bands are not trivially x itself: the high band carries detail, the low band is
     * smaller */
    bk_shape cs = s;
    for (int l = 0; l < levels; l++) cs = ref_subsample_shape(cs);
    EXPECT(bk_shape_eq(bk_shape_of(p.low), cs), "roundtrip %s L%d: low band shape", shp(s, sb),
           levels);
    check_t(WHAT("reconstruct(decompose(x)) %s L%d", shp(s, sb), levels),
            bk_pyramid_reconstruct(ctx, &p), s, x, TOL_ROUNDTRIP);
    free(x);
    bk_step_end(ctx);
}

static void pyramid_roundtrip(void) {
    static const bk_shape shapes[] = {
        {1, 3, 9, 11}, {2, 3, 13, 9}, {1, 3, 37, 53}, {2, 13, 16, 24}, {1, 17, 12, 10},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int levels = 1; levels <= 3; levels++)
            run_roundtrip(shapes[i], levels, 10 * i + (uint64_t)levels);
}

static void pyramid_roundtrip_large(void) {
    for (int levels = 1; levels <= 3; levels++)
        run_roundtrip((bk_shape){2, 3, 256, 384}, levels, 100 + (uint64_t)levels);
}

/* The round trip is the identity, so its gradient is too: d<gy, rec(dec(x))>/dx = gy. */
static void pyramid_roundtrip_grad(void) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256], sb[64];
    static const bk_shape shapes[] = {{1, 3, 9, 11}, {2, 3, 64, 96}};
    for (size_t i = 0; i < 2; i++) {
        const bk_shape s = shapes[i];
        double *x, *gy;
        bk_tensor *xt = input(ctx, s, 200 + i, &x);
        bk_tensor *gt = input(ctx, s, 300 + i, &gy);
        xt->requires_grad = true;
        bk_pyramid p;
        bk_pyramid_decompose(ctx, xt, 3, &p);
        bk_tensor *g = NULL;
        bk_grad(ctx, bk_pyramid_reconstruct(ctx, &p), gt, 1, &xt, &g, false);
        check_t(WHAT("gradient of reconstruct(decompose(x)) %s", shp(s, sb)), g, s, gy,
                TOL_ROUNDTRIP);
        free(x), free(gy);
        bk_step_end(ctx);
    }
}

BK_TEST_MAIN(BK_TEST(pyramid_forward), BK_TEST(pyramid_forward_large), BK_TEST(pyramid_roundtrip),
             BK_TEST(pyramid_roundtrip_large), BK_TEST(pyramid_roundtrip_grad))
