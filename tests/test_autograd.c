/* test_autograd.c — the tape and the backward engine: accumulation, grad mode, targets,
 * skipped terms, persistent and step leaves, second order, refusal of third order through
 * instance norm. Values are checked against closed forms. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "tests/support/harness.h"

/* y = sum(x*x + x): x is used three times, dy/dx = 2x + 1. */
static void gradients_accumulate_over_uses(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *x = bk_test_tensor(ctx, (bk_shape){2, 3, 4, 5}, -1, 1, 7);
    x->requires_grad = true;
    bk_tensor *y = bk_sum(ctx, bk_add(ctx, bk_mul(ctx, x, x), x));
    bk_backward(ctx, y, false);
    EXPECT(x->grad && x->grad->life == BK_STEP, "step leaf has no step gradient");
    int64_t n = bk_numel(x);
    float *want = malloc((size_t)n * sizeof *want);
    for (int64_t i = 0; i < n; i++) want[i] = 2.0f * x->data[i] + 1.0f;
    EXPECT_CLOSE("dy/dx", x->grad->data, want, (size_t)n, 1e-6);
    free(want);
}

/* Two backward passes add into a persistent leaf's gradient. */
static void persistent_gradients_accumulate(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *w = bk_tensor_new_persistent(ctx, "w", 1, (bk_shape){1, 4, 1, 1});
    for (int i = 0; i < 4; i++) w->data[i] = (float)(i + 1);
    w->requires_grad = true;
    bk_tensor *x = bk_test_tensor(ctx, (bk_shape){3, 4, 2, 2}, -1, 1, 8);
    for (int pass = 0; pass < 2; pass++) {
        bk_tensor *l = bk_sum(ctx, bk_mul(ctx, x, w)); /* dl/dw_c = sum over n,h,w of x */
        bk_backward(ctx, l, false);
    }
    EXPECT(w->grad && w->grad->life == BK_PERSISTENT, "no persistent gradient");
    for (int c = 0; c < 4; c++) {
        double s = 0;
        for (int a = 0; a < 3; a++)
            for (int h = 0; h < 2; h++)
                for (int v = 0; v < 2; v++) s += x->data[bk_offset(x, a, c, h, v)];
        EXPECT(fabs(w->grad->data[c] - 2 * s) <= 1e-5 * (1 + fabs(s)), "channel %d: %g vs %g", c,
               w->grad->data[c], 2 * s);
    }
    bk_tensor_free(ctx, w);
}

static void no_grad_records_nothing(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *x = bk_test_tensor(ctx, (bk_shape){1, 2, 3, 3}, -1, 1, 9);
    x->requires_grad = true;
    bool prev = bk_set_grad_enabled(ctx, false);
    bk_tensor *y = bk_relu(ctx, bk_scale(ctx, x, 3.0f));
    EXPECT(prev, "grad mode was not on by default");
    EXPECT(ctx->tape_len == 0 && !y->requires_grad, "inference recorded %zu nodes", ctx->tape_len);
    bk_set_grad_enabled(ctx, true);
    bk_tensor *c = bk_test_tensor(ctx, (bk_shape){1, 2, 3, 3}, -1, 1, 10);
    bk_tensor *z = bk_mul(ctx, c, c); /* no source requires grad */
    EXPECT(ctx->tape_len == 0 && !z->requires_grad, "constant op recorded");
    bk_tensor *s = bk_sign(ctx, x); /* not differentiable: a constant */
    EXPECT(!s->requires_grad && ctx->tape_len == 0, "sign recorded");
}

/* bk_grad of an intermediate, of an unreached input (zeros), and the grad mode afterwards. */
static void grad_targets(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *x = bk_test_tensor(ctx, (bk_shape){2, 2, 3, 3}, 0.5f, 2.0f, 11);
    bk_tensor *unused = bk_test_tensor(ctx, (bk_shape){1, 1, 1, 1}, 1, 2, 12);
    x->requires_grad = unused->requires_grad = true;
    bk_tensor *m = bk_sqrt(ctx, x);
    bk_tensor *l = bk_sum(ctx, bk_scale(ctx, m, 4.0f));
    bk_tensor *in[3] = {m, x, unused}, *g[3];
    bk_grad(ctx, l, NULL, 3, in, g, false);
    int64_t n = bk_numel(x);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        bad += fabsf(g[0]->data[i] - 4.0f) > 1e-6f;
        bad += fabsf(g[1]->data[i] - 2.0f / sqrtf(x->data[i])) > 1e-5f;
    }
    EXPECT(bad == 0, "%d wrong gradient values", bad);
    EXPECT(g[2]->data[0] == 0.0f && bk_same_shape(g[2], unused), "unreached input not zero");
    EXPECT(!x->grad && !m->grad, "bk_grad wrote ->grad");
    EXPECT(ctx->grad_enabled, "grad mode not restored");
}

/* Only terms on a path to the wanted tensor are computed: the gradient with respect to the
 * input of a conv needs backward data only, never backward weights. */
static void grad_skips_unneeded_terms(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *w = bk_tensor_new_persistent(ctx, "w", 4, (bk_shape){4, 3, 3, 3});
    bk_test_fill_uniform(w->data, (size_t)bk_numel(w), -1, 1, 13);
    w->requires_grad = true;
    bk_tensor *x = bk_test_tensor(ctx, (bk_shape){1, 3, 8, 8}, -1, 1, 14);
    x->requires_grad = true;
    bk_tensor *y = bk_sum(ctx, bk_conv2d(ctx, x, w, NULL, bk_conv_opts_make(1, 1, 1), bk_act_none(), NULL));
    uint64_t after_fwd = ctx->stats.primitives_created;
    bk_tensor *gx;
    bk_grad(ctx, y, NULL, 1, &x, &gx, false);
    /* backward data and the reorder of the weights into its layout: two primitives */
    uint64_t for_gx = ctx->stats.primitives_created - after_fwd;
    EXPECT(for_gx == 2, "gradient w.r.t. the input created %llu primitives, expected 2",
           (unsigned long long)for_gx);
    EXPECT(!w->grad, "weights received a gradient");
    bk_tensor *gw;
    bk_grad(ctx, y, NULL, 1, &w, &gw, false);
    EXPECT(ctx->stats.primitives_created > after_fwd + for_gx, "backward weights never created");
    bk_tensor_free(ctx, w);
}

/* f = sum(x^2 * x): f' = 3x^2, and d/dx sum(v * f') = 6 x v. */
static void second_order_closed_form(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *x = bk_test_tensor(ctx, (bk_shape){2, 3, 2, 2}, -1.5f, 1.5f, 15);
    bk_tensor *v = bk_test_tensor(ctx, (bk_shape){2, 3, 2, 2}, -1, 1, 16);
    x->requires_grad = true;
    bk_tensor *f = bk_sum(ctx, bk_mul(ctx, bk_square(ctx, x), x));
    bk_tensor *g;
    bk_grad(ctx, f, NULL, 1, &x, &g, true);
    EXPECT(g->requires_grad, "gradient made with create_graph is not differentiable");
    bk_tensor *s = bk_sum(ctx, bk_mul(ctx, g, v));
    bk_tensor *h;
    bk_grad(ctx, s, NULL, 1, &x, &h, false);
    int64_t n = bk_numel(x);
    float *w1 = malloc((size_t)n * sizeof *w1), *w2 = malloc((size_t)n * sizeof *w2);
    for (int64_t i = 0; i < n; i++) {
        w1[i] = 3.0f * x->data[i] * x->data[i];
        w2[i] = 6.0f * x->data[i] * v->data[i];
    }
    EXPECT_CLOSE("first order", g->data, w1, (size_t)n, 1e-6);
    EXPECT_CLOSE("second order", h->data, w2, (size_t)n, 1e-6);
    free(w1);
    free(w2);
}

/* The gradient penalty pattern on a single conv + LeakyReLU, with closed form second order:
 * with D = sum(leaky(conv(x, w))) and fixed masks, g = dD/dx is linear in w, so the
 * gradient of sum(g * v) with respect to w equals bwd_weights of v against the masked ones. */
static void create_graph_through_conv(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *w = bk_tensor_new_persistent(ctx, "w", 4, (bk_shape){2, 3, 3, 3});
    bk_test_fill_uniform(w->data, (size_t)bk_numel(w), -1, 1, 17);
    w->requires_grad = true;
    bk_tensor *x = bk_test_tensor(ctx, (bk_shape){1, 3, 6, 6}, -1, 1, 18);
    bk_tensor *v = bk_test_tensor(ctx, (bk_shape){1, 3, 6, 6}, -1, 1, 19);
    x->requires_grad = true;
    bk_conv_opts o = bk_conv_opts_make(1, 1, 1);
    bk_tensor *y = bk_conv2d(ctx, x, w, NULL, o, bk_act_leaky_relu(0.2f), NULL);
    bk_tensor *g;
    bk_grad(ctx, bk_sum(ctx, y), NULL, 1, &x, &g, true);
    bk_backward(ctx, bk_sum(ctx, bk_mul(ctx, g, v)), false);
    /* closed form: mask m = leaky'(y); sum(v * bwd_data(m, w)) = sum(conv(v, w) * m), so
     * d/dw = bwd_weights(v, m) */
    bool prev = bk_set_grad_enabled(ctx, false);
    bk_tensor *ones = bk_tensor_full(ctx, bk_shape_of(y), 1.0f);
    bk_tensor *m = bk_relu_bwd(ctx, ones, y, 0.2f);
    bk_conv_geom geo = bk_conv_geom_make(bk_shape_of(x), bk_shape_of(w), o, 0);
    bk_tensor *want = bk_conv_bwd_weights(ctx, v, m, &geo);
    bk_set_grad_enabled(ctx, prev);
    EXPECT(w->grad != NULL, "no weight gradient");
    if (w->grad) EXPECT_CLOSE("d/dw sum(v * dD/dx)", w->grad->data, want->data, (size_t)bk_numel(want), 1e-5);
    bk_tensor_free(ctx, w);
}

/* A node whose first source already leads to a leaf must still pass gradient to the leaves in
 * its other sources (regression: the reach scan once stopped at the first reaching source). */
static void every_leaf_of_a_node_gets_its_gradient(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *x = bk_test_tensor(ctx, (bk_shape){1, 2, 2, 2}, 0.5f, 1.0f, 21);
    bk_tensor *a = bk_test_tensor(ctx, (bk_shape){1, 2, 1, 1}, 0.5f, 1.0f, 22);
    bk_tensor *b = bk_test_tensor(ctx, (bk_shape){1, 2, 1, 1}, 0.5f, 1.0f, 23);
    x->requires_grad = a->requires_grad = b->requires_grad = true;
    /* l = sum((x * a) * b): dl/db_c = a_c * sum_hw x, dl/da_c = b_c * sum_hw x */
    bk_tensor *l = bk_sum(ctx, bk_mul(ctx, bk_mul(ctx, x, a), b));
    bk_backward(ctx, l, false);
    EXPECT(a->grad && b->grad && x->grad, "a leaf got no gradient: x %p a %p b %p",
           (void *)x->grad, (void *)a->grad, (void *)b->grad);
    if (!a->grad || !b->grad) return;
    for (int c = 0; c < 2; c++) {
        double s = 0;
        for (int h = 0; h < 2; h++)
            for (int w = 0; w < 2; w++) s += x->data[bk_offset(x, 0, c, h, w)];
        EXPECT(fabs(b->grad->data[c] - a->data[c] * s) < 1e-5, "db[%d]", c);
        EXPECT(fabs(a->grad->data[c] - b->data[c] * s) < 1e-5, "da[%d]", c);
    }
}

/* relu(x)^p with p < 1 has an infinite pow gradient at x = 0; ReLU's backward must select 0
 * there (as torch does) rather than multiply, which would give 0 * inf = NaN. MS-SSIM relies
 * on it. */
static void relu_gradient_selects_zero(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *x = bk_tensor_new(ctx, (bk_shape){1, 4, 1, 1});
    float v[4] = {-1.0f, 0.0f, 0.25f, 4.0f};
    for (int i = 0; i < 4; i++) x->data[i] = v[i];
    x->requires_grad = true;
    bk_backward(ctx, bk_sum(ctx, bk_pow(ctx, bk_relu(ctx, x), 0.5f)), false);
    float want[4] = {0.0f, 0.0f, 1.0f, 0.25f}; /* 0.5 x^-0.5 */
    for (int i = 0; i < 4; i++)
        EXPECT(x->grad->data[i] == want[i], "x = %g: gradient %g, want %g", v[i], x->grad->data[i], want[i]);
}

/* Asking for a third-order gradient through instance norm stops with a message. */
static void third_order_instance_norm_refused(void) {
    char path[] = "/tmp/bk_test_stderr_XXXXXX";
    int fd = mkstemp(path);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 2); /* keep the expected message */
        bk_ctx *ctx = bk_test_ctx();
        bk_tensor *x = bk_test_tensor(ctx, (bk_shape){1, 2, 4, 4}, -1, 1, 20);
        x->requires_grad = true;
        bk_tensor *y = bk_sum(ctx, bk_square(ctx, bk_instance_norm(ctx, x, 1e-5f)));
        bk_tensor *g, *h, *k;
        bk_grad(ctx, y, NULL, 1, &x, &g, true);
        bk_grad(ctx, bk_sum(ctx, bk_square(ctx, g)), NULL, 1, &x, &h, true);
        bk_grad(ctx, bk_sum(ctx, bk_square(ctx, h)), NULL, 1, &x, &k, false);
        _exit(0); /* reaching this is the failure */
    }
    int status;
    waitpid(pid, &status, 0);
    char msg[4096] = {0};
    FILE *f = fopen(path, "r");
    if (f) {
        size_t got = fread(msg, 1, sizeof msg - 1, f);
        msg[got] = 0;
        fclose(f);
    }
    close(fd);
    unlink(path);
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
           "third order through instance norm was not refused (status %d)", status);
    EXPECT(strstr(msg, "'instance_norm_bwd2' cannot be differentiated") != NULL,
           "refused with the wrong message: %s", msg);
}

BK_TEST_MAIN(BK_TEST(gradients_accumulate_over_uses), BK_TEST(persistent_gradients_accumulate),
             BK_TEST(no_grad_records_nothing), BK_TEST(grad_targets),
             BK_TEST(grad_skips_unneeded_terms), BK_TEST(second_order_closed_form),
             BK_TEST(create_graph_through_conv), BK_TEST(every_leaf_of_a_node_gets_its_gradient),
             BK_TEST(relu_gradient_selects_zero),
             BK_TEST(third_order_instance_norm_refused))
