/* test_reorder.c — a chain of ten 3x3 convs with LeakyReLU, forward and backward, in the
 * canonical layout: no activation is ever reordered, the weights are reordered once per layer
 * and kernel direction per optimizer step, and a repeated step creates no primitive and
 * allocates nothing. Counted from oneDNN's own verbose log (DNNL_VERBOSE=1 lines) and from
 * bokehlab's counters. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/harness.h"

enum { LAYERS = 10 };
#define N_ 2
#define C_ 16
#define H_ 32
#define W_ 32

typedef struct chain {
    bk_tensor *w[LAYERS], *b[LAYERS];
} chain;

static void chain_init(bk_ctx *ctx, chain *m) {
    for (int i = 0; i < LAYERS; i++) {
        m->w[i] = bk_tensor_new_persistent(ctx, "w", 4, (bk_shape){C_, C_, 3, 3});
        m->b[i] = bk_tensor_new_persistent(ctx, "b", 1, (bk_shape){1, C_, 1, 1});
        bk_test_fill_uniform(m->w[i]->data, (size_t)bk_numel(m->w[i]), -0.15f, 0.15f, 100 + i);
        bk_test_fill_uniform(m->b[i]->data, C_, -0.1f, 0.1f, 200 + i);
        m->w[i]->requires_grad = m->b[i]->requires_grad = true;
    }
}

static void chain_step(bk_ctx *ctx, chain *m, uint64_t seed) {
    bk_tensor *y = bk_test_tensor(ctx, (bk_shape){N_, C_, H_, W_}, -1, 1, seed);
    for (int i = 0; i < LAYERS; i++)
        y = bk_conv2d(ctx, y, m->w[i], m->b[i], bk_conv_opts_make(1, 1, 1),
                      bk_act_leaky_relu(0.01f), NULL);
    bk_backward(ctx, bk_mean(ctx, bk_square(ctx, y)), false);
}

/* Runs one step with oneDNN's verbose output captured; returns the log (malloc'd). */
static char *captured_step(bk_ctx *ctx, chain *m) {
    char path[] = "/tmp/bk_verbose_XXXXXX";
    int fd = mkstemp(path);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    dnnl_set_verbose(1);
    chain_step(ctx, m, 2);
    fflush(stdout);
    dnnl_set_verbose(0);
    dup2(saved, 1);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *log = calloc((size_t)len + 1, 1);
    pread(fd, log, (size_t)len, 0);
    close(fd);
    unlink(path);
    return log;
}

static void ten_conv_chain_has_no_activation_reorders(void) {
    bk_ctx *ctx = bk_test_ctx();
    chain m;
    chain_init(ctx, &m);
    chain_step(ctx, &m, 1); /* creates every primitive */
    bk_step_end(ctx);

    bk_stats before = ctx->stats;
    size_t reserved = ctx->step.reserved;
    char *log = captured_step(ctx, &m);
    if (getenv("BK_TEST_VERBOSE")) fputs(log, stdout);
    int convs = 0, nhwc_convs = 0, reorders = 0, activation_reorders = 0, other = 0;
    char act[64];
    snprintf(act, sizeof act, ",%dx%dx%dx%d,", N_, C_, H_, W_);
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "onednn_verbose,exec,", 20) != 0) continue;
        if (strstr(line, ",convolution,")) {
            convs++;
            nhwc_convs += strstr(line, "src_f32::blocked:acdb") != NULL;
        } else if (strstr(line, ",reorder,")) {
            reorders++;
            activation_reorders += strstr(line, act) != NULL;
        } else {
            other++;
        }
    }
    /* 10 forward, 9 backward data (the input needs no gradient), 10 backward weights+bias */
    EXPECT(convs == 29, "%d convolution executions, expected 29", convs);
    EXPECT(nhwc_convs == convs, "%d of %d convolutions not on NHWC activations", convs - nhwc_convs, convs);
    EXPECT(activation_reorders == 0, "%d activation reorders between layers", activation_reorders);
    /* the only reorders left bring weight gradients from the kernel's layout back */
    EXPECT(reorders == LAYERS, "%d reorders, expected %d (weight gradients only)", reorders, LAYERS);
    EXPECT(other == 0, "%d other oneDNN executions (activations should be fused)", other);
    EXPECT(ctx->stats.weight_reorders == before.weight_reorders,
           "unchanged weights reordered %llu times", (unsigned long long)(ctx->stats.weight_reorders - before.weight_reorders));
    EXPECT(ctx->stats.primitives_created == before.primitives_created,
           "a repeated step created %llu primitives",
           (unsigned long long)(ctx->stats.primitives_created - before.primitives_created));
    EXPECT(ctx->step.reserved == reserved, "a repeated step grew the arena %zu -> %zu", reserved,
           ctx->step.reserved);
    free(log);
    bk_step_end(ctx);

    /* after an optimizer step every weight is reordered exactly once per kernel direction */
    for (int i = 0; i < LAYERS; i++) bk_tensor_touch(m.w[i]);
    uint64_t r0 = ctx->stats.weight_reorders;
    chain_step(ctx, &m, 3);
    uint64_t r = ctx->stats.weight_reorders - r0;
    EXPECT(r == 2 * LAYERS - 1, "%llu weight reorders after an update, expected %d (forward 10, "
           "backward data 9)", (unsigned long long)r, 2 * LAYERS - 1);
    for (int i = 0; i < LAYERS; i++) {
        bk_tensor_free(ctx, m.w[i]);
        bk_tensor_free(ctx, m.b[i]);
    }
}

BK_TEST_MAIN(BK_TEST(ten_conv_chain_has_no_activation_reorders))
