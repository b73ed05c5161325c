/* test_synth.c — the synthetic EBB!-style dataset (data/synth.h): determinism, sizes and
 * aspect ratios, the focus mask, the defocus being outside the mask (what makes the task
 * learnable), and the files bk_synth_write lays out for bk_ebb_scan. */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/ebb.h"
#include "data/image.h"
#include "data/synth.h"
#include "tests/support/harness.h"

/* ---------------------------------------------------------------- helpers */

typedef struct scene {
    bk_image in, tg, mk;
} scene;

static bool render(uint64_t seed, int index, int height, scene *s) {
    memset(s, 0, sizeof *s);
    bk_status st = bk_synth_scene(seed, index, height, &s->in, &s->tg, &s->mk);
    if (st != BK_OK) bk_test_fail(__FILE__, __LINE__, "scene %d: %s", index, bk_last_error());
    return st == BK_OK;
}

static void scene_free(scene *s) {
    bk_image_free(&s->in);
    bk_image_free(&s->tg);
    bk_image_free(&s->mk);
}

static bool same_image(const bk_image *a, const bk_image *b) {
    return a->width == b->width && a->height == b->height && a->channels == b->channels &&
           memcmp(a->pixels, b->pixels, (size_t)a->width * a->height * a->channels) == 0;
}

/* ---------------------------------------------------------------- scenes */

static void scenes_are_deterministic(void) {
    scene a, b, c, d;
    int threads = omp_get_max_threads();
    for (int index = 0; index < 3; index++) {
        omp_set_num_threads(1);
        bool ok = render(42, index, 64, &a);
        omp_set_num_threads(threads > 1 ? threads : 2); /* the same with several threads */
        ok &= render(42, index, 64, &b);
        omp_set_num_threads(threads);
        ok &= render(42, index + 1, 64, &c) && render(43, index, 64, &d);
        if (ok) {
            EXPECT(same_image(&a.in, &b.in) && same_image(&a.tg, &b.tg) && same_image(&a.mk, &b.mk),
                   "scene %d: two renderings with the same seed differ", index);
            EXPECT(a.in.channels == 3 && a.tg.channels == 3 && a.mk.channels == 1, "channels %d %d %d",
                   a.in.channels, a.tg.channels, a.mk.channels);
            EXPECT(a.in.width == a.tg.width && a.in.width == a.mk.width && a.in.height == 64 && a.tg.height == 64 &&
                       a.mk.height == 64,
                   "scene %d: sizes %dx%d, %dx%d, %dx%d", index, a.in.width, a.in.height, a.tg.width, a.tg.height,
                   a.mk.width, a.mk.height);
            EXPECT(!same_image(&a.in, &c.in) && !same_image(&a.tg, &c.tg), "scenes %d and %d are identical", index,
                   index + 1);
            EXPECT(!same_image(&a.in, &d.in), "scene %d is the same with seeds 42 and 43", index);
        }
        scene_free(&a), scene_free(&b), scene_free(&c), scene_free(&d);
    }
    bk_image in = {0}, tg = {0}, mk = {0};
    bk_status st = bk_synth_scene(1, 0, 31, &in, &tg, &mk);
    EXPECT(st != BK_OK && strstr(bk_last_error(), "31"), "height 31 accepted: %s", bk_last_error());
    EXPECT(in.pixels == NULL && tg.pixels == NULL && mk.pixels == NULL, "images allocated for a refused scene");
}

/* Widths follow EBB!'s aspect ratios 1.33..1.6 (rounded to an even width: 1/h of slack). */
static void widths_vary_with_ebb_aspect_ratios(void) {
    const int h = 64;
    double lo = 1e9, hi = 0;
    int odd = 0;
    for (int index = 0; index < 20; index++) {
        scene s;
        if (!render(7, index, h, &s)) continue;
        double aspect = (double)s.in.width / h;
        EXPECT(aspect >= 1.33 - 1.0 / h && aspect <= 1.6 + 1.0 / h, "scene %d: %dx%d, aspect %.3f", index,
               s.in.width, h, aspect);
        odd += s.in.width % 2;
        if (aspect < lo) lo = aspect;
        if (aspect > hi) hi = aspect;
        scene_free(&s);
    }
    EXPECT(odd == 0, "%d odd widths", odd);
    EXPECT(hi - lo > 0.1, "aspect ratios over 20 scenes only span %.3f..%.3f", lo, hi);
}

/* The mask: mostly exactly 0 or 255 (a soft edge of about a pixel), a subject of a real size
 * near the centre. */
static void mask_is_a_binary_subject_near_the_centre(void) {
    for (int index = 0; index < 12; index++) {
        scene s;
        if (!render(5, index, 96, &s)) continue;
        int w = s.mk.width, h = s.mk.height;
        long n = (long)w * h, hard = 0, on = 0;
        double cx = 0, cy = 0;
        long central = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                uint8_t m = s.mk.pixels[(size_t)y * w + x];
                hard += m == 0 || m == 255;
                if (m == 255) {
                    on++;
                    cx += x, cy += y;
                    central += x >= w / 4 && x < 3 * w / 4 && y >= h / 4 && y < 3 * h / 4;
                }
            }
        EXPECT(hard >= n * 9 / 10, "scene %d: only %.1f%% of the mask is 0 or 255", index, 100.0 * hard / n);
        EXPECT(on >= n / 100, "scene %d: the in-focus region is %ld of %ld pixels", index, on, n);
        EXPECT(central >= on / 2, "scene %d: %ld of %ld in-focus pixels in the central half", index, central, on);
        if (on) {
            cx /= on, cy /= on;
            EXPECT(cx > 0.2 * w && cx < 0.8 * w && cy > 0.2 * h && cy < 0.8 * h,
                   "scene %d: in-focus centroid at (%.0f, %.0f) of %dx%d", index, cx, cy, w, h);
        }
        scene_free(&s);
    }
}

/* The defocus happens outside the mask: mean |target - input| over mask == 0 is several times
 * the mean over mask == 255, and the target has less fine detail there than the input. */
static void target_differs_from_input_outside_the_mask(void) {
    double sum_out_all = 0, sum_in_all = 0;
    long n_out_all = 0, n_in_all = 0;
    for (int index = 0; index < 8; index++) {
        scene s;
        if (!render(3, index, 256, &s)) continue;
        int w = s.in.width, h = s.in.height;
        double d_out = 0, d_in = 0, detail_in = 0, detail_tg = 0;
        long n_out = 0, n_in = 0, n_detail = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t p = (size_t)y * w + x;
                double d = 0;
                for (int k = 0; k < 3; k++) d += abs(s.tg.pixels[p * 3 + k] - s.in.pixels[p * 3 + k]);
                d /= 3;
                if (s.mk.pixels[p] == 0) {
                    d_out += d, n_out++;
                    if (x + 1 < w && y + 1 < h && s.mk.pixels[p + 1] == 0 && s.mk.pixels[p + w] == 0) {
                        for (int k = 0; k < 3; k++) {
                            detail_in += abs(s.in.pixels[p * 3 + k] - s.in.pixels[(p + 1) * 3 + k]) +
                                         abs(s.in.pixels[p * 3 + k] - s.in.pixels[(p + w) * 3 + k]);
                            detail_tg += abs(s.tg.pixels[p * 3 + k] - s.tg.pixels[(p + 1) * 3 + k]) +
                                         abs(s.tg.pixels[p * 3 + k] - s.tg.pixels[(p + w) * 3 + k]);
                        }
                        n_detail++;
                    }
                } else if (s.mk.pixels[p] == 255) {
                    d_in += d, n_in++;
                }
            }
        double m_out = n_out ? d_out / n_out : 0, m_in = n_in ? d_in / n_in : 0;
        if (getenv("BK_TEST_VERBOSE"))
            printf("    scene %d (%dx%d): mean |target-input| %.2f outside, %.2f inside the mask; "
                   "detail %.2f -> %.2f\n",
                   index, w, h, m_out, m_in, detail_in / n_detail, detail_tg / n_detail);
        EXPECT(n_out > 0 && n_in > 0, "scene %d: %ld pixels out of focus, %ld in focus", index, n_out, n_in);
        EXPECT(m_out > 3 * m_in && m_out > 2.0, "scene %d: mean |target-input| %.2f outside vs %.2f inside the mask",
               index, m_out, m_in);
        EXPECT(detail_tg < 0.8 * detail_in, "scene %d: the target keeps the input's detail outside the mask (%.2f vs %.2f)",
               index, detail_tg / n_detail, detail_in / n_detail);
        sum_out_all += d_out, n_out_all += n_out, sum_in_all += d_in, n_in_all += n_in;
        scene_free(&s);
    }
    double m_out = sum_out_all / (n_out_all ? n_out_all : 1), m_in = sum_in_all / (n_in_all ? n_in_all : 1);
    EXPECT(m_out > 5 * m_in, "over all scenes: %.2f outside vs %.2f inside the mask", m_out, m_in);
}

/* ---------------------------------------------------------------- files */

static void written_root_is_an_ebb_layout_with_masks(void) {
    char *dir = bk_test_tmpdir();
    char root[512];
    snprintf(root, sizeof root, "%s/datasets/synth", dir); /* the parent is created too */
    EXPECT(bk_synth_write(root, 10, 3, 48, 9, 0) == BK_OK, "write: %s", bk_last_error());
    EXPECT(bk_synth_write(root, 13, 2, 48, 9, 0) == BK_OK, "adding to a root: %s", bk_last_error());
    bk_ebb_index ix;
    EXPECT(bk_ebb_scan(root, &ix) == BK_OK, "scan: %s", bk_last_error());
    EXPECT(ix.count == 5 && ix.n_orphans == 0 && ix.has_mask_dir, "%lld pairs, %lld orphans, mask dir %d",
           (long long)ix.count, (long long)ix.n_orphans, ix.has_mask_dir);
    for (int64_t k = 0; k < ix.count; k++) EXPECT(ix.ids[k] == 10 + k, "id %lld is %d", (long long)k, ix.ids[k]);
    FILE *devnull = fopen("/dev/null", "w");
    EXPECT(bk_ebb_validate(&ix, true, true, 0, devnull) == 0, "the written root does not validate");
    fclose(devnull);

    /* the files hold the scenes: masks exactly (PNG), images closely (JPEG quality 95) */
    for (int64_t k = 0; k < ix.count; k++) {
        scene s;
        if (!render(9, ix.ids[k], 48, &s)) continue;
        char p[BK_PATH_MAX];
        bk_image in, tg, mk;
        bk_image_info info;
        bk_ebb_path(&ix, ix.ids[k], BK_EBB_ORIGINAL, p, sizeof p);
        EXPECT(bk_image_read_info(p, &info) == BK_OK && info.format == BK_IMAGE_JPEG, "%s is not a JPEG", p);
        bk_ebb_path(&ix, ix.ids[k], BK_EBB_MASK, p, sizeof p);
        EXPECT(bk_image_read_info(p, &info) == BK_OK && info.format == BK_IMAGE_PNG && info.channels == 1,
               "%s is not a gray PNG", p);
        bool ok = bk_image_read(bk_ebb_path(&ix, ix.ids[k], BK_EBB_ORIGINAL, p, sizeof p), 3, 0, &in) == BK_OK;
        ok &= bk_image_read(bk_ebb_path(&ix, ix.ids[k], BK_EBB_BOKEH, p, sizeof p), 3, 0, &tg) == BK_OK;
        ok &= bk_image_read(bk_ebb_path(&ix, ix.ids[k], BK_EBB_MASK, p, sizeof p), 1, 0, &mk) == BK_OK;
        EXPECT(ok, "pair %d does not read back: %s", ix.ids[k], bk_last_error());
        if (ok) {
            EXPECT(same_image(&mk, &s.mk), "mask %d differs from the scene's", ix.ids[k]);
            double e_in = 0, e_tg = 0;
            size_t n = (size_t)s.in.width * s.in.height * 3;
            bool sized = in.width == s.in.width && in.height == s.in.height && tg.width == s.tg.width;
            for (size_t i = 0; sized && i < n; i++) {
                e_in += abs(in.pixels[i] - s.in.pixels[i]);
                e_tg += abs(tg.pixels[i] - s.tg.pixels[i]);
            }
            EXPECT(sized && e_in / n < 4 && e_tg / n < 4, "pair %d: mean JPEG error %.2f (input), %.2f (target)",
                   ix.ids[k], e_in / n, e_tg / n);
        }
        bk_image_free(&in), bk_image_free(&tg), bk_image_free(&mk);
        scene_free(&s);
    }
    bk_ebb_index_free(&ix);

    /* a root that cannot be created: the error names it */
    char file[600], bad[700];
    snprintf(file, sizeof file, "%s/plain_file", dir);
    FILE *f = fopen(file, "w");
    fclose(f);
    snprintf(bad, sizeof bad, "%s/root", file);
    EXPECT(bk_synth_write(bad, 0, 1, 48, 1, 0) != BK_OK && strstr(bk_last_error(), bad),
           "writing under a plain file: %s", bk_last_error());
    bk_test_remove_tmpdir(dir);
}

BK_TEST_MAIN(BK_TEST(scenes_are_deterministic), BK_TEST(widths_vary_with_ebb_aspect_ratios),
             BK_TEST(mask_is_a_binary_subject_near_the_centre), BK_TEST(target_differs_from_input_outside_the_mask),
             BK_TEST(written_root_is_an_ebb_layout_with_masks))
