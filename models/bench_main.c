/* bench — times a model's inference or training step (SPEC §6).
 *
 *   bench --model NAME [--variant V] --mode infer|train --size HxW --batch B [--reps R]
 *         [--profile]
 *
 * Prints the machine's FP32 peak (an FMA loop) once, then one line
 *   bench MODEL MODE BxCxHxW threads=T median_s=S gflop=G gflops=R mfu=F
 * gflop counts the direct-convolution FLOPs of one step (2 x multiply-accumulates of the
 * forward convolutions, x3 for a training step); mfu is gflops over the peak. infer: eval
 * forward without a tape. train: training-mode forward (batch statistics, dropout on), L1 to a
 * fixed target, backward, one Adam step. Median of R runs after 2 warm-up runs (reps 5).
 * --profile adds one line per block of the last run: time, output shape, step memory.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conv_choice.h"
#include "core/bokehlab.h"
#include "core/peak.h"
#include "losses/l1.h"
#include "models/model.h"
#include "train/optim.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void) {
    fprintf(stderr, "usage: bench --model NAME [--variant V] --mode infer|train --size HxW --batch B "
                    "[--reps R] [--profile]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *name = NULL, *variant = "", *mode = NULL;
    int h = 0, w = 0, batch = 1, reps = 5;
    bool prof = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--profile")) { prof = true; continue; }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(argv[i - 1], "--model")) name = v;
        else if (!strcmp(argv[i - 1], "--variant")) variant = v;
        else if (!strcmp(argv[i - 1], "--mode")) mode = v;
        else if (!strcmp(argv[i - 1], "--size")) { if (sscanf(v, "%dx%d", &h, &w) != 2) usage(); }
        else if (!strcmp(argv[i - 1], "--batch")) batch = atoi(v);
        else if (!strcmp(argv[i - 1], "--reps")) reps = atoi(v);
        else usage();
    }
    if (!name || !mode || (strcmp(mode, "infer") && strcmp(mode, "train")) || h < 1 || w < 1 || batch < 1 || reps < 1)
        usage();
    bool train = !strcmp(mode, "train");
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) {
        fprintf(stderr, "bench: %s\n", bk_last_error());
        return 1;
    }
    bk_model *m;
    if (bk_model_create(&ctx, name, variant, 1, &m) != BK_OK) {
        fprintf(stderr, "bench: %s\n", bk_last_error());
        return 1;
    }
    bk_shape xs = {batch, 3, h, w};
    bool external = bk_variant_has(m->variant, "external_mask");
    bk_shape ms = {batch, 1, h / 4, w / 4};
    if (bk_model_check_input(m, xs, NULL) != BK_OK && !external) {
        fprintf(stderr, "bench: %s\n", bk_last_error());
        return 1;
    }
    double peak = bk_measure_peak_gflops(0);
    printf("peak fp32 %.1f GFLOP/s with %d threads\n", peak, ctx.threads);

    /* inputs: a fixed pseudo-random image and target in the model's range */
    float lo = m->kind->minus_one_to_one ? -1.0f : 0.0f;
    float *xv = malloc((size_t)bk_shape_numel(xs) * sizeof *xv), *tv = malloc((size_t)bk_shape_numel(xs) * sizeof *tv);
    uint64_t s = 12345;
    for (int64_t i = 0; i < bk_shape_numel(xs); i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        xv[i] = lo + (1.0f - lo) * (float)(s >> 40) / 16777216.0f;
        tv[i] = 0.5f * xv[i] + 0.25f * (1.0f + lo);
    }
    /* FLOPs of one forward, counted */
    bk_set_grad_enabled(&ctx, false);
    {
        bk_forward_opts o = bk_forward_eval();
        if (external) o.mask = bk_tensor_full(&ctx, ms, 0.5f);
        bk_model_out out;
        double before = ctx.stats.conv_macs;
        bk_model_forward(&ctx, m, bk_tensor_from_nchw(&ctx, xs, xv), &o, &out);
        double macs = ctx.stats.conv_macs - before;
        bk_step_end(&ctx);
        ctx.stats.conv_macs = macs; /* keep the figure */
    }
    double gflop = 2.0 * ctx.stats.conv_macs / 1e9 * (train ? 3.0 : 1.0);
    bk_set_grad_enabled(&ctx, train);

    bk_adam adam;
    bk_adam_init(&ctx, &adam, &m->params, (bk_adam_config){1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f});
    bk_block_log log = {0};
    double *t = malloc((size_t)reps * sizeof *t);
    for (int r = -2; r < reps; r++) {
        if (prof && r == reps - 1) bk_block_log_attach(&ctx, &log);
        bk_tensor *x = bk_tensor_from_nchw(&ctx, xs, xv);
        bk_forward_opts o = bk_forward_eval();
        o.training = train;
        o.dropout_seed = (uint64_t)(r + 3);
        if (external) o.mask = bk_tensor_full(&ctx, ms, 0.5f);
        double t0 = omp_get_wtime();
        bk_model_out out;
        bk_model_forward(&ctx, m, x, &o, &out);
        if (train) {
            bk_tensor *target = bk_tensor_from_nchw(&ctx, bk_shape_of(out.y), tv);
            bk_tensor *loss = bk_l1(&ctx, out.y, bk_shape_eq(bk_shape_of(out.y), xs) ? target : bk_tensor_zeros(&ctx, bk_shape_of(out.y)));
            if (out.aux && !strcmp(m->kind->name, "multi_rf_discriminator"))
                loss = bk_add(&ctx, loss, bk_l1(&ctx, out.aux, bk_tensor_zeros(&ctx, bk_shape_of(out.aux))));
            bk_params_zero_grad(&m->params);
            bk_backward(&ctx, loss, false);
            bk_adam_step(&adam, 1e-4f);
        }
        double dt = omp_get_wtime() - t0;
        if (r >= 0) t[r] = dt;
        bk_block_log_detach(&ctx);
        if (!(prof && r == reps - 1)) bk_step_end(&ctx);
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    printf("bench %s%s%s %s %dx3x%dx%d threads=%d median_s=%.4f gflop=%.2f gflops=%.1f mfu=%.3f\n", m->kind->name,
           m->variant[0] ? ":" : "", m->variant, mode, batch, h, w, ctx.threads, med, gflop, gflop / med,
           gflop / med / peak);
    if (prof) {
        for (int i = 0; i < log.n; i++) {
            const bk_block_record *b = &log.b[i];
            char sh[64];
            printf("  profile %*s%-*s %8.2f ms %-18s %+8.1f MiB\n", 2 * b->depth, "", 36 - 2 * b->depth, b->name,
                   1e3 * (b->t1 - b->t0), bk_shape_str(b->out, sh), ((double)b->mem1 - (double)b->mem0) / 1048576.0);
        }
        bk_conv_choices_print(&ctx, stdout);
        bk_ctx_print_memory(&ctx, stdout);
        bk_step_end(&ctx);
        bk_block_log_free(&log);
    }
    free(t);
    free(xv);
    free(tv);
    bk_adam_free(&ctx, &adam);
    bk_model_free(&ctx, m);
    bk_ctx_free(&ctx);
    return 0;
}
