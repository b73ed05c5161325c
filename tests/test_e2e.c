/* test_e2e.c — the user's path end to end, through the programs themselves: synth -> train
 * (20 steps) -> eval (model and identity) -> eval --table -> render with a user mask and a
 * blur strength -> plot. The table's numbers must equal a direct computation of the metrics on
 * the saved predictions and the ground-truth files. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/image.h"
#include "data/synth.h"
#include "eval/metrics.h"
#include "eval/table.h"
#include "tests/support/harness.h"

static char bins[PATH_MAX + 16];

static void find_bins(void) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    snprintf(bins, sizeof bins, "%s/../bin", self); /* build/tests/../bin */
}

/* Runs a shell command line; returns its exit status (output to the log). */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(stdout);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void end_to_end(void) {
    find_bins();
    char dir[] = "/tmp/bk_e2e_XXXXXX";
    EXPECT(mkdtemp(dir), "mkdtemp");
    char root[256], cfg[256];
    snprintf(root, sizeof root, "%s/data", dir);
    EXPECT(bk_synth_write(root, 0, 14, 128, 5, 0) == BK_OK, "synth: %s", bk_last_error());

    snprintf(cfg, sizeof cfg, "%s/e2e.ini", dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f,
            "[run]\nname = e2e\nout_dir = %s/runs\n[data]\nroot = %s\nsplit = tail:4\nresize_h = 128\nresize_w = 128\n"
            "workers = 2\n[model]\nname = ampn\n[train]\nsteps = 20\nbatch = 2\nlr = 2e-4\nlog_every = 10\n"
            "val_every = 20\nval_max_images = 4\nckpt_every = 10\nsamples = 1\n[loss]\nl1 = 10\nssim = 1\n",
            dir, root);
    fclose(f);
    char run[300], out[400];
    snprintf(run, sizeof run, "%s/runs/e2e", dir);
    EXPECT(sh("%s/train --config %s --no-progress > %s/train.log 2>&1", bins, cfg, dir) == 0, "train failed (see %s/train.log)", dir);
    EXPECT(sh("%s/eval --checkpoint %s/ckpt/best.h5 --size 128x128 --save-pred --out %s/eval > %s/eval.log 2>&1", bins, run,
              run, dir) == 0, "eval failed");
    EXPECT(sh("%s/eval --identity --config %s --out %s/identity > /dev/null 2>&1", bins, cfg, run) == 0, "eval --identity failed");
    EXPECT(sh("%s/eval --table %s/identity %s/eval --out %s/table > /dev/null 2>&1", bins, run, run, run) == 0,
           "eval --table failed");

    /* the table equals the metrics computed directly on the files */
    bk_table_row row, id;
    snprintf(out, sizeof out, "%s/eval/table.json", run);
    EXPECT(bk_table_read_row(out, &row) == BK_OK, "%s", bk_last_error());
    snprintf(out, sizeof out, "%s/identity/table.json", run);
    EXPECT(bk_table_read_row(out, &id) == BK_OK, "%s", bk_last_error());
    EXPECT(row.images == 4 && id.images == 4, "images %lld and %lld, expected 4", (long long)row.images, (long long)id.images);
    double psnr = 0, ssim = 0, ipsnr = 0, issim = 0;
    for (int i = 10; i < 14; i++) {
        bk_image pred, gt, in;
        snprintf(out, sizeof out, "%s/eval/predictions/%d.png", run, i);
        EXPECT(bk_image_read(out, 3, 0, &pred) == BK_OK, "%s", bk_last_error());
        snprintf(out, sizeof out, "%s/Training/bokeh/%d.jpg", root, i);
        EXPECT(bk_image_read(out, 3, 0, &gt) == BK_OK, "%s", bk_last_error());
        snprintf(out, sizeof out, "%s/Training/original/%d.jpg", root, i);
        EXPECT(bk_image_read(out, 3, 0, &in) == BK_OK, "%s", bk_last_error());
        size_t n = (size_t)gt.width * gt.height * 3;
        EXPECT(pred.width == gt.width && pred.height == gt.height, "prediction %d not at the original size", i);
        psnr += bk_psnr_u8(pred.pixels, gt.pixels, n) / 4;
        ssim += bk_ssim_u8(pred.pixels, gt.pixels, gt.height, gt.width, 3) / 4;
        ipsnr += bk_psnr_u8(in.pixels, gt.pixels, n) / 4;
        issim += bk_ssim_u8(in.pixels, gt.pixels, gt.height, gt.width, 3) / 4;
        bk_image_free(&pred), bk_image_free(&gt), bk_image_free(&in);
    }
    EXPECT(fabs(row.psnr - psnr) < 1e-9 * psnr && fabs(row.ssim - ssim) < 1e-9, "table %.12g %.12g, direct %.12g %.12g",
           row.psnr, row.ssim, psnr, ssim);
    EXPECT(fabs(id.psnr - ipsnr) < 1e-9 * ipsnr && fabs(id.ssim - issim) < 1e-9, "identity table %.12g %.12g, direct %.12g %.12g",
           id.psnr, id.ssim, ipsnr, issim);
    EXPECT(row.params == 5421501, "parameters %lld", (long long)row.params);
    snprintf(out, sizeof out, "%s/table/table.md", run);
    EXPECT(access(out, R_OK) == 0, "merged table missing");

    /* rendering with a user mask and a weaker blur, and the mask saved */
    char img[300], mask[300];
    snprintf(img, sizeof img, "%s/Training/original/12.jpg", root);
    snprintf(mask, sizeof mask, "%s/mask/12.png", root);
    EXPECT(sh("%s/render --checkpoint %s/ckpt/best.h5 --input %s --output %s/full.png --mask %s --save-mask %s/used.png "
              "--size 128x128 > /dev/null", bins, run, img, dir, mask, dir) == 0, "render with a mask failed");
    EXPECT(sh("%s/render --checkpoint %s/ckpt/best.h5 --input %s --output %s/none.png --strength 0 --size 128x128 > /dev/null",
              bins, run, img, dir) == 0, "render with strength failed");
    EXPECT(sh("%s/render --checkpoint %s/ckpt/best.h5 --input %s --output %s/pred.png --size 128x128 > /dev/null", bins, run,
              img, dir) == 0, "render failed");
    bk_image a, b, c, in, um, used;
    snprintf(out, sizeof out, "%s/full.png", dir);
    EXPECT(bk_image_read(out, 3, 0, &a) == BK_OK, "%s", bk_last_error());
    snprintf(out, sizeof out, "%s/none.png", dir);
    EXPECT(bk_image_read(out, 3, 0, &b) == BK_OK, "%s", bk_last_error());
    snprintf(out, sizeof out, "%s/pred.png", dir);
    EXPECT(bk_image_read(out, 3, 0, &c) == BK_OK, "%s", bk_last_error());
    EXPECT(bk_image_read(img, 3, 0, &in) == BK_OK && bk_image_read(mask, 1, 0, &um) == BK_OK, "inputs");
    snprintf(out, sizeof out, "%s/used.png", dir);
    EXPECT(bk_image_read(out, 1, 0, &used) == BK_OK, "%s", bk_last_error());
    EXPECT(a.width == in.width && a.height == in.height && b.width == in.width, "rendered sizes differ from the input");
    /* strength 0 keeps everything in focus: the output is the input's round trip through the
     * model size, far closer to the input than the full blur */
    size_t n = (size_t)in.width * in.height * 3;
    double d_none = bk_psnr_u8(b.pixels, in.pixels, n), d_pred = bk_psnr_u8(c.pixels, in.pixels, n);
    EXPECT(d_none > d_pred + 3, "strength 0 (PSNR to the input %.2f) is not closer to the input than strength 1 (%.2f)",
           d_none, d_pred);
    EXPECT(memcmp(a.pixels, c.pixels, n) != 0, "the user mask changed nothing");
    double mdiff = 0;
    for (size_t i = 0; i < (size_t)um.width * um.height; i++) mdiff += fabs((double)used.pixels[i] - um.pixels[i]);
    mdiff /= (double)um.width * um.height;
    EXPECT(mdiff < 8, "the saved mask is not the user's (mean difference %.1f levels)", mdiff);
    EXPECT(sh("%s/render --checkpoint %s/ckpt/best.h5 --input %s --output %s/x.png --strength 2 > /dev/null 2>&1", bins, run,
              img, dir) == 2, "a strength outside [0,1] was accepted");
    EXPECT(sh("%s/plot %s/log.csv > /dev/null", bins, run) == 0, "plot failed");
    snprintf(out, sizeof out, "%s/curves.png", run);
    EXPECT(access(out, R_OK) == 0, "no curves.png");
    bk_image_free(&a), bk_image_free(&b), bk_image_free(&c), bk_image_free(&in), bk_image_free(&um), bk_image_free(&used);
    sh("rm -rf %s", dir);
}

BK_TEST_MAIN(BK_TEST(end_to_end))
