/* bench-conv — the convolution engine against this machine's FP32 peak.
 *
 *   bench-conv [--reps R] [--n N] [--c C] [--hw H W]
 *
 * Measures the FP32 peak with an FMA loop, then times a 3x3 stride-1 convolution C->C on
 * N x C x H x W (default 1x64x256x256) in bokehlab's activation layout through the public ops:
 * forward (bk_conv2d with bias), backward data (bk_conv_bwd_data) and backward weights with bias
 * (bk_conv_bwd_weights_bias), direct algorithm, median of R runs after warm-up. Prints GFLOP/s
 * and the fraction of peak for each, and the oneDNN implementation names.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bokehlab.h"
#include "core/peak.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fill(float *p, int64_t n, float scale) {
    uint64_t s = 0x12345678;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = scale * ((float)(s >> 40) / 16777216.0f - 0.5f);
    }
}

static void usage(void) {
    fprintf(stderr, "usage: bench-conv [--reps R] [--n N] [--c C] [--hw H W]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int reps = 20;
    int64_t N = 1, C = 64, H = 256, W = 256;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) N = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--c") && i + 1 < argc) C = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--hw") && i + 2 < argc) {
            H = atoll(argv[++i]);
            W = atoll(argv[++i]);
        } else usage();
    }
    if (reps < 1 || N < 1 || C < 1 || H < 3 || W < 3) usage();

    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) {
        fprintf(stderr, "bench-conv: %s\n", bk_last_error());
        return 1;
    }
    bk_set_grad_enabled(&ctx, false);
    double peak = bk_measure_peak_gflops(0);
    printf("peak fp32: %.1f GFLOP/s with %d threads (FMA loop)\n", peak, ctx.threads);

    bk_shape xs = {N, C, H, W};
    bk_tensor *w = bk_tensor_new_persistent(&ctx, "w", 4, (bk_shape){C, C, 3, 3});
    bk_tensor *b = bk_tensor_new_persistent(&ctx, "b", 1, (bk_shape){1, C, 1, 1});
    fill(w->data, bk_numel(w), 0.1f);
    fill(b->data, C, 0.1f);
    bk_conv_opts o = bk_conv_opts_make(1, 1, 1);
    bk_conv_geom g = bk_conv_geom_make(xs, bk_shape_of(w), o, 0);
    const double gflop = 2.0 * N * C * H * W * C * 9 / 1e9;

    const char *names[3] = {"forward", "backward data", "backward weights"};
    double *t = malloc((size_t)reps * sizeof *t);
    for (int dir = 0; dir < 3; dir++) {
        for (int r = -3; r < reps; r++) {
            bk_tensor *x = bk_tensor_new(&ctx, xs);
            fill(x->data, bk_numel(x), 1.0f);
            double t0 = omp_get_wtime();
            if (dir == 0) {
                bk_conv2d(&ctx, x, w, b, o, bk_act_none(), NULL);
            } else if (dir == 1) {
                bk_conv_bwd_data(&ctx, x, w, &g);
            } else {
                bk_tensor *gw, *gb;
                bk_conv_bwd_weights_bias(&ctx, x, x, &g, &gw, &gb);
            }
            double dt = omp_get_wtime() - t0;
            if (r >= 0) t[r] = dt;
            bk_step_end(&ctx);
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
        printf("conv3x3 %lldx%lldx%lldx%lld %-16s median %7.2f ms  %6.1f GFLOP/s  %5.1f %% of peak"
               "  (best %.2f ms)\n",
               (long long)N, (long long)C, (long long)H, (long long)W, names[dir], med * 1e3,
               gflop / med, 100.0 * gflop / med / peak, t[0] * 1e3);
    }
    bk_ctx_print_memory(&ctx, stdout);
    printf("primitives created %llu, weight reorders %llu, reference implementations %llu\n",
           (unsigned long long)ctx.stats.primitives_created,
           (unsigned long long)ctx.stats.weight_reorders,
           (unsigned long long)ctx.stats.ref_impls);
    free(t);
    bk_tensor_free(&ctx, w);
    bk_tensor_free(&ctx, b);
    bk_ctx_free(&ctx);
    return 0;
}
