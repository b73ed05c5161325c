/* test_metrics.c — the evaluation metrics (eval/metrics.h) against their references on committed
 * 8-bit image pairs (tests/fixtures/metrics.h5, written by scripts/gen_loss_fixtures.py):
 *   PSNR   skimage.metrics.peak_signal_noise_ratio(gt, pred, data_range=255)
 *   SSIM   skimage.metrics.structural_similarity(gt, pred, channel_axis=2, data_range=255,
 *          win_size=7)  (uniform window, sample covariance: skimage 0.16's compare_ssim defaults)
 *   LPIPS  v0.1 alex with the formula weights (tests/support/formula_weights.h), PyTorch float64
 * each within 1e-4 (SPEC §5: |got - want| <= 1e-4 max(|want|, 1e-6)); an identical pair has
 * PSNR +inf and LPIPS 0. The pairs: Gaussian noise, box blur, a shift, JPEG-like 8x8 DCT
 * quantisation, an identical pair and a saturated brightening, at 31x47, 64x48 and 100x71.
 */
#include "eval/metrics.h"
#include "tests/support/fixture.h"
#include "tests/support/formula_weights.h"
#include "tests/support/harness.h"

#include <hdf5.h>
#include <hdf5_hl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4
#define FIXTURE "metrics.h5"

static bool verbose(void) {
    const char *v = getenv("BK_TEST_VERBOSE");
    return v && *v && *v != '0';
}

typedef struct pair {
    char *name, *what;
    int h, w, c;
    uint8_t *a, *b;
    double psnr, ssim, lpips;
} pair;

/* An 8-bit H,W,3 dataset (the fixture reader takes float datasets only). */
static uint8_t *read_u8(const bk_fixture *f, const char *path, int *h, int *w, int *c) {
    hid_t id = (hid_t)f->file;
    int rank = 0;
    hsize_t d[3] = {0, 0, 0};
    H5T_class_t cls;
    size_t size = 0;
    if (H5LTget_dataset_ndims(id, path, &rank) < 0 || rank != 3 ||
        H5LTget_dataset_info(id, path, d, &cls, &size) < 0 || cls != H5T_INTEGER || size != 1) {
        printf("    fixture %s: %s is not an 8-bit H,W,C image (regenerate with "
               "scripts/gen_loss_fixtures.py tests/fixtures)\n",
               FIXTURE, path);
        exit(1);
    }
    *h = (int)d[0], *w = (int)d[1], *c = (int)d[2];
    uint8_t *v = malloc(d[0] * d[1] * d[2]);
    if (!v || H5LTread_dataset(id, path, H5T_NATIVE_UCHAR, v) < 0) {
        printf("    fixture %s: cannot read %s\n", FIXTURE, path);
        exit(1);
    }
    return v;
}

static int read_pairs(const bk_fixture *f, pair **out) {
    int n = bk_fixture_count(f);
    pair *p = calloc((size_t)n, sizeof *p);
    for (int i = 0; i < n; i++) {
        char path[128];
        p[i].name = bk_fixture_name(f, i);
        p[i].what = bk_fixture_attr_string(f, p[i].name, "what");
        int h2, w2, c2;
        snprintf(path, sizeof path, "%s/a", p[i].name);
        p[i].a = read_u8(f, path, &p[i].h, &p[i].w, &p[i].c);
        snprintf(path, sizeof path, "%s/b", p[i].name);
        p[i].b = read_u8(f, path, &h2, &w2, &c2);
        EXPECT(h2 == p[i].h && w2 == p[i].w && c2 == p[i].c && p[i].c == 3,
               "%s: images of different shapes", p[i].name);
        p[i].psnr = bk_fixture_attr_double(f, p[i].name, "psnr");
        p[i].ssim = bk_fixture_attr_double(f, p[i].name, "ssim");
        p[i].lpips = bk_fixture_attr_double(f, p[i].name, "lpips");
    }
    *out = p;
    return n;
}

static void free_pairs(pair *p, int n) {
    for (int i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].what);
        free(p[i].a);
        free(p[i].b);
    }
    free(p);
}

static void check_value(const pair *p, const char *metric, double got, double want) {
    char label[256];
    snprintf(label, sizeof label, "%s (%s) %s", p->name, p->what, metric);
    if (isinf(want)) {
        EXPECT(isinf(got) && got > 0, "%s: %.9g, want +inf", label, got);
        if (verbose()) printf("    %s: %g (want +inf)\n", label, got);
        return;
    }
    EXPECT_CLOSE_D(label, &got, &want, 1, TOL);
}

static void metrics_fixture_file(void) {
    bk_fixture *f = bk_fixture_open(FIXTURE);
    char *fmt = bk_fixture_attr_string(f, ".", "format");
    EXPECT(strcmp(fmt, "bokehlab-metric-fixtures-1") == 0, "format '%s'", fmt);
    EXPECT(bk_fixture_has_attr(f, ".", "skimage_version") && bk_fixture_has_attr(f, ".", "command"),
           "no provenance attributes");
    pair *p;
    int n = read_pairs(f, &p);
    EXPECT(n >= 6, "%d pairs", n);
    int identical = 0;
    for (int i = 0; i < n; i++) identical += isinf(p[i].psnr);
    EXPECT(identical == 1, "%d identical pairs, want 1", identical);
    if (verbose()) {
        char *sk = bk_fixture_attr_string(f, ".", "skimage_version");
        printf("    %d pairs, skimage %s\n", n, sk);
        free(sk);
    }
    free_pairs(p, n);
    free(fmt);
    bk_fixture_close(f);
}

static void psnr_matches_skimage(void) {
    bk_fixture *f = bk_fixture_open(FIXTURE);
    pair *p;
    int n = read_pairs(f, &p);
    for (int i = 0; i < n; i++)
        check_value(&p[i], "PSNR", bk_psnr_u8(p[i].a, p[i].b, (size_t)p[i].h * p[i].w * p[i].c),
                    p[i].psnr);
    free_pairs(p, n);
    bk_fixture_close(f);
}

static void ssim_matches_skimage(void) {
    bk_fixture *f = bk_fixture_open(FIXTURE);
    pair *p;
    int n = read_pairs(f, &p);
    for (int i = 0; i < n; i++) {
        check_value(&p[i], "SSIM", bk_ssim_u8(p[i].a, p[i].b, p[i].h, p[i].w, p[i].c), p[i].ssim);
        /* symmetric: the argument order of skimage (gt, pred) does not matter */
        check_value(&p[i], "SSIM (swapped)", bk_ssim_u8(p[i].b, p[i].a, p[i].h, p[i].w, p[i].c),
                    p[i].ssim);
    }
    free_pairs(p, n);
    bk_fixture_close(f);
}

static void lpips_u8_matches_torch(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_lpips_net lp;
    bk_lpips_init(ctx, &lp, BK_NET_ALEX);
    bk_fw_fill_params(&lp.trunk.params, "alex");
    bk_fw_fill_params(&lp.lin_params, "alex");
    bk_fixture *f = bk_fixture_open(FIXTURE);
    pair *p;
    int n = read_pairs(f, &p);
    for (int i = 0; i < n; i++) {
        float d = NAN;
        bk_status st = bk_lpips_u8(ctx, &lp, p[i].a, p[i].b, p[i].h, p[i].w, &d);
        EXPECT(st == BK_OK, "%s: bk_lpips_u8: %s", p[i].name, bk_last_error());
        check_value(&p[i], "LPIPS", d, p[i].lpips);
        bk_step_end(ctx);
    }
    free_pairs(p, n);
    bk_fixture_close(f);
    bk_lpips_free(ctx, &lp);
}

BK_TEST_MAIN(BK_TEST(metrics_fixture_file), BK_TEST(psnr_matches_skimage),
             BK_TEST(ssim_matches_skimage), BK_TEST(lpips_u8_matches_torch))
