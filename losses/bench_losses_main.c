/* bench-losses — times the image losses, forward and backward, and reports their step memory.
 *
 *   bench-losses [--size HxW] [--batch B] [--reps R]        (default 1024x1024, batch 2, reps 5)
 *
 * One step: L1(p, t) + (1 - SSIM(p, t)) + (1 - MS-SSIM(p, t)) (standard mode, range 1) and its
 * backward to the prediction p, on smooth random images. Prints the median of R steps after
 * one warm-up step, and the step arena's peak (core/arena.h).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bokehlab.h"
#include "losses/l1.h"
#include "losses/ssim.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void) {
    fprintf(stderr, "usage: bench-losses [--size HxW] [--batch B] [--reps R]\n");
    exit(2);
}

/* Smooth images in [0,1] with a phase per image, so SSIM is neither 0 nor 1. */
static void fill(float *v, bk_shape s, double phase) {
    size_t i = 0;
    for (int64_t n = 0; n < s.n; n++)
        for (int64_t c = 0; c < s.c; c++)
            for (int64_t y = 0; y < s.h; y++)
                for (int64_t x = 0; x < s.w; x++)
                    v[i++] = (float)(0.5 + 0.4 * sin(0.05 * x + 0.031 * y + phase + n + 0.7 * c));
}

int main(int argc, char **argv) {
    int h = 1024, w = 1024, batch = 2, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            if (sscanf(argv[++i], "%dx%d", &h, &w) != 2) usage();
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else usage();
    }
    if (h < BK_MSSSIM_MIN_SIDE || w < BK_MSSSIM_MIN_SIDE || batch < 1 || reps < 1) {
        fprintf(stderr, "bench-losses: the size must be at least %dx%d (MS-SSIM), batch and reps at least 1\n",
                BK_MSSSIM_MIN_SIDE, BK_MSSSIM_MIN_SIDE);
        return 2;
    }
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) {
        fprintf(stderr, "bench-losses: %s\n", bk_last_error());
        return 1;
    }
    const bk_shape s = {batch, 3, h, w};
    const size_t n = (size_t)batch * 3 * h * w;
    float *pv = malloc(n * sizeof *pv), *tv = malloc(n * sizeof *tv);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!pv || !tv || !t) bk_fatal_oom("bench-losses images", 2 * n * sizeof *pv, 0);
    fill(pv, s, 0.0);
    fill(tv, s, 0.4);
    double total = 0.0;
    for (int r = -1; r < reps; r++) {
        bk_tensor *p = bk_tensor_from_nchw(&ctx, s, pv), *tg = bk_tensor_from_nchw(&ctx, s, tv);
        p->requires_grad = true;
        double t0 = omp_get_wtime();
        bk_tensor *ms;
        if (bk_ms_ssim(&ctx, p, tg, 1.0f, BK_MSSSIM_STANDARD, &ms) != BK_OK) {
            fprintf(stderr, "bench-losses: %s\n", bk_last_error());
            return 1;
        }
        bk_tensor *loss = bk_add(&ctx, bk_l1(&ctx, p, tg), bk_affine(&ctx, bk_ssim(&ctx, p, tg, 1.0f), -1.0f, 1.0f));
        loss = bk_add(&ctx, loss, bk_affine(&ctx, ms, -1.0f, 1.0f));
        bk_backward(&ctx, loss, false);
        double dt = omp_get_wtime() - t0;
        if (r >= 0) t[r] = dt;
        total = loss->data[0];
        bk_step_end(&ctx);
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    printf("bench-losses l1+ssim+ms_ssim forward+backward %dx3x%dx%d threads=%d median_s=%.4f loss=%.5f "
           "step_peak_mib=%.1f\n",
           batch, h, w, ctx.threads, med, total, ctx.step.peak / 1048576.0);
    free(pv), free(tv), free(t);
    bk_ctx_free(&ctx);
    return 0;
}
