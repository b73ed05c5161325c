/* test_dropout.c — bk_dropout(x, p, seed) = F.dropout(x, p, training=True) with a mask that
 * depends only on (seed, element index):
 *   - the fraction of zeros is p within 5 binomial standard deviations (>= 1e5 elements), and
 *     neighbouring elements (next channel, next pixel) are not correlated;
 *   - kept values are exactly x * (1/(1-p)) in float (torch: x * mask.div_(1 - p));
 *   - same seed: the same mask, also for other x values; another seed: another mask;
 *   - the mask does not depend on the number of OpenMP threads (1 and 2);
 *   - p = 0 returns x;
 *   - the gradient of <gy, dropout(x)> is mask * gy exactly, and the second order through
 *     dropout(x)^2 is 2 gy mask^2 v (a product with a constant mask).
 * x is drawn away from 0 so that the mask can be read from the output.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/harness.h"
#include "tests/support/ref.h"

static const bk_shape S = {2, 17, 64, 96}; /* 208896 elements */

static bk_tensor *input(bk_ctx *ctx, bk_shape s, uint64_t seed) {
    const size_t n = (size_t)bk_shape_numel(s);
    float *f = malloc(n * sizeof *f);
    bk_test_fill_away_from_zero(f, n, 0.1f, 2.0f, seed);
    bk_tensor *t = bk_tensor_from_nchw(ctx, s, f);
    free(f);
    return t;
}

/* kept[i] = y[i] != 0 (storage order) */
static unsigned char *mask_of(const bk_tensor *y) {
    const size_t n = (size_t)bk_numel(y);
    unsigned char *m = malloc(n);
    for (size_t i = 0; i < n; i++) m[i] = y->data[i] != 0.0f;
    return m;
}

static size_t count_diff(const unsigned char *a, const unsigned char *b, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += a[i] != b[i];
    return d;
}

/* |k/n - q| within 5 binomial standard deviations */
static void expect_rate(const char *what, size_t k, size_t n, double q) {
    const double f = (double)k / (double)n, bound = 5 * sqrt(q * (1 - q) / (double)n);
    EXPECT(fabs(f - q) <= bound, "%s: fraction %.5f, expected %.5f +- %.5f", what, f, q, bound);
    if (getenv("BK_TEST_VERBOSE"))
        printf("    %s: fraction %.5f, expected %.5f +- %.5f (5 sigma)\n", what, f, q, bound);
}

static void dropout_rate_and_values(void) {
    bk_ctx *ctx = bk_test_ctx();
    char what[256];
    const float ps[] = {0.1f, 0.5f, 0.8f};
    bk_tensor *x = input(ctx, S, 1);
    const size_t n = (size_t)bk_numel(x);
    for (int k = 0; k < 3; k++) {
        const float p = ps[k], keep = 1.0f / (1.0f - p);
        bk_tensor *y = bk_dropout(ctx, x, p, 1234);
        EXPECT(bk_same_shape(x, y), "dropout(%g): shape", p);
        size_t zeros = 0, bad = 0, first_bad = 0;
        for (size_t i = 0; i < n; i++) {
            if (y->data[i] == 0.0f) {
                zeros++;
            } else if (y->data[i] != x->data[i] * keep) {
                if (!bad++) first_bad = i;
            }
        }
        snprintf(what, sizeof what, "dropout(%g): zeros", p);
        expect_rate(what, zeros, n, p);
        EXPECT(!bad, "dropout(%g): %zu kept values differ from x/(1-p), first at %zu: %.9g vs %.9g",
               p, bad, first_bad, y->data[first_bad], x->data[first_bad] * keep);
        /* neighbours: the next channel (offset 1) and the next pixel (offset C) agree as often
         * as independent draws do, p^2 + (1-p)^2 */
        unsigned char *m = mask_of(y);
        const double agree = (double)p * p + (1.0 - p) * (1.0 - p);
        for (int d = 0; d < 2; d++) {
            const size_t off = d ? (size_t)S.c : 1;
            size_t same = 0;
            for (size_t i = 0; i + off < n; i++) same += m[i] == m[i + off];
            snprintf(what, sizeof what, "dropout(%g): agreement with the element %zu further", p,
                     off);
            expect_rate(what, same, n - off, agree);
        }
        free(m);
    }
    bk_step_end(ctx);
}

static void dropout_seeds(void) {
    bk_ctx *ctx = bk_test_ctx();
    const float p = 0.3f;
    bk_tensor *x = input(ctx, S, 2), *x2 = input(ctx, S, 3);
    const size_t n = (size_t)bk_numel(x);
    unsigned char *a = mask_of(bk_dropout(ctx, x, p, 77));
    unsigned char *b = mask_of(bk_dropout(ctx, x, p, 77));
    unsigned char *c = mask_of(bk_dropout(ctx, x2, p, 77));
    unsigned char *d = mask_of(bk_dropout(ctx, x, p, 78));
    unsigned char *e = mask_of(bk_dropout(ctx, x, p, 77ull << 32));
    EXPECT(count_diff(a, b, n) == 0, "same seed, same x: %zu mask elements differ",
           count_diff(a, b, n));
    EXPECT(count_diff(a, c, n) == 0, "same seed, other x: %zu mask elements differ",
           count_diff(a, c, n));
    /* independent masks differ at a fraction 2p(1-p) */
    expect_rate("seed 77 vs 78: mask elements that differ", count_diff(a, d, n), n,
                2.0 * p * (1 - p));
    expect_rate("seed 77 vs 77<<32: mask elements that differ", count_diff(a, e, n), n,
                2.0 * p * (1 - p));
    free(a), free(b), free(c), free(d), free(e);
    bk_step_end(ctx);
}

static void dropout_threads(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *x = input(ctx, S, 4);
    const size_t n = (size_t)bk_numel(x);
    const int prev = omp_get_max_threads();
    omp_set_num_threads(1);
    bk_tensor *y1 = bk_dropout(ctx, x, 0.4f, 99);
    omp_set_num_threads(2);
    EXPECT(omp_get_max_threads() == 2, "cannot run with 2 threads");
    bk_tensor *y2 = bk_dropout(ctx, x, 0.4f, 99);
    omp_set_num_threads(prev);
    EXPECT(memcmp(y1->data, y2->data, n * sizeof(float)) == 0,
           "dropout with 1 and 2 threads differs");
    bk_step_end(ctx);
}

static void dropout_p0(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *x = input(ctx, (bk_shape){2, 13, 9, 11}, 5);
    bk_tensor *y = bk_dropout(ctx, x, 0.0f, 5);
    EXPECT(bk_same_shape(x, y) && memcmp(x->data, y->data, (size_t)bk_numel(x) * sizeof(float)) == 0,
           "dropout(0) changes x");
    /* and its gradient is gy */
    x->requires_grad = true;
    bk_tensor *gy = bk_test_tensor(ctx, bk_shape_of(x), -1, 1, 6), *g = NULL;
    bk_grad(ctx, bk_dropout(ctx, x, 0.0f, 5), gy, 1, &x, &g, false);
    EXPECT(g && bk_same_shape(g, x) && memcmp(g->data, gy->data, (size_t)bk_numel(x) * sizeof(float)) == 0,
           "the gradient of dropout(0) is not gy");
    bk_step_end(ctx);
}

static void dropout_grad(void) {
    bk_ctx *ctx = bk_test_ctx();
    const bk_shape s = {2, 13, 9, 11};
    const size_t n = (size_t)bk_shape_numel(s);
    const float p = 0.35f, keep = 1.0f / (1.0f - p);
    bk_tensor *x = input(ctx, s, 7);
    bk_tensor *gy = bk_test_tensor(ctx, s, -1, 1, 8), *v = bk_test_tensor(ctx, s, -1, 1, 9);
    x->requires_grad = true;
    bk_tensor *y = bk_dropout(ctx, x, p, 4321);
    float *mk = malloc(n * sizeof *mk), *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++) mk[i] = y->data[i] != 0.0f ? keep : 0.0f;

    /* first order: mask * gy, exactly */
    bk_tensor *g = NULL;
    bk_grad(ctx, y, gy, 1, &x, &g, false);
    for (size_t i = 0; i < n; i++) want[i] = gy->data[i] * mk[i];
    EXPECT(g && bk_same_shape(g, x), "dropout gradient: shape");
    if (g) EXPECT_CLOSE("dropout gradient = mask * gy", g->data, want, n, 0.0);

    /* second order: L = <gy, y^2>, g = 2 gy m^2 x, d<v, g>/dx = 2 gy m^2 v */
    y = bk_dropout(ctx, x, p, 4321);
    bk_tensor *g1 = NULL, *h = NULL;
    bk_grad(ctx, bk_square(ctx, y), gy, 1, &x, &g1, true);
    bk_grad(ctx, bk_sum(ctx, bk_mul(ctx, v, g1)), NULL, 1, &x, &h, false);
    for (size_t i = 0; i < n; i++) want[i] = 2.0f * gy->data[i] * mk[i] * mk[i] * x->data[i];
    EXPECT(g1 && bk_same_shape(g1, x), "dropout: create_graph gradient shape");
    if (g1) EXPECT_CLOSE("d<gy, dropout(x)^2>/dx = 2 gy m^2 x", g1->data, want, n, 1e-6);
    for (size_t i = 0; i < n; i++) want[i] = 2.0f * gy->data[i] * mk[i] * mk[i] * v->data[i];
    EXPECT(h && bk_same_shape(h, x), "dropout: second order shape");
    if (h) EXPECT_CLOSE("second order: 2 gy m^2 v", h->data, want, n, 1e-6);
    free(mk), free(want);
    bk_step_end(ctx);
}

BK_TEST_MAIN(BK_TEST(dropout_rate_and_values), BK_TEST(dropout_seeds), BK_TEST(dropout_threads),
             BK_TEST(dropout_p0), BK_TEST(dropout_grad))
