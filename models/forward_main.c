/* forward — runs a model on tensors from HDF5 files (SPEC §6): the interop and parity tool.
 *
 *   forward --model NAME --weights W.h5 --input X.h5 --output Y.h5 [--mask M.h5]
 *           [--strength S] [--train-step l1 --target T.h5] [--summary]
 *
 * Reads float32 dataset x (N,C,H,W, the model's range) and runs the model in eval mode (batch
 * norm with running statistics, no dropout); writes dataset y and the model's second output
 * (AMPN: mask, Glass-Net: r; the critic writes y_patch and y_full). AMPN: --mask M.h5 holds
 * dataset mask (N,1,H/4,W/4) and replaces g1; --strength scales the blur. With
 * --train-step l1 --target T.h5 (dataset x, same shape as y) it runs the same forward, then
 * L1 = mean|y - target| and its backward, and writes loss and grad/<name> for every parameter
 * instead. The model and its variant come from the weights file; --model must agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bokehlab.h"
#include "core/h5.h"
#include "losses/l1.h"
#include "models/checkpoint.h"

static void usage(void) {
    fprintf(stderr, "usage: forward --model NAME --weights W.h5 --input X.h5 --output Y.h5 [--mask M.h5]\n"
                    "               [--strength S] [--train-step l1 --target T.h5] [--summary]\n");
    exit(2);
}

static int fail(const char *what) {
    fprintf(stderr, "forward: %s%s\n", what ? what : "", bk_last_error());
    return 1;
}

static bk_status read_input(bk_ctx *ctx, const char *path, const char *name, bk_tensor **t) {
    bk_h5 f;
    bk_status st = bk_h5_open_data(&f, path);
    if (st != BK_OK) return st;
    st = bk_h5_read_tensor(ctx, &f, name, t);
    bk_h5_close(&f, false);
    if (st == BK_OK && (*t)->ndim != 4)
        st = bk_fail(BK_ERR_SHAPE, "%s: dataset %s must be N,C,H,W", path, name);
    return st;
}

typedef struct run_args {
    const char *input, *output, *mask_path, *loss, *target_path;
    float strength;
    bool summary;
} run_args;

/* Reads the inputs, runs the model and writes the output file; 0 or 1 (the message printed). */
static int run(bk_ctx *ctx, const bk_model *m, const run_args *a) {
    bk_tensor *x, *mask = NULL, *target = NULL;
    if (read_input(ctx, a->input, "x", &x) != BK_OK) return fail(NULL);
    if (a->mask_path && read_input(ctx, a->mask_path, "mask", &mask) != BK_OK) return fail(NULL);
    if (bk_model_check_input(m, bk_shape_of(x), mask) != BK_OK) return fail("input: ");
    if (a->summary) bk_model_summary(ctx, m, bk_shape_of(x), stdout);

    bk_forward_opts o = bk_forward_eval();
    o.mask = mask;
    o.strength = a->strength;
    bk_model_out out;
    bk_h5 f;
    if (!a->loss) {
        bk_set_grad_enabled(ctx, false);
        bk_model_forward(ctx, m, x, &o, &out);
        if (bk_h5_create(&f, a->output) != BK_OK) return fail(NULL);
        bk_status st = bk_h5_write_tensor(&f, m->kind->out_names[0], out.y);
        if (st == BK_OK && out.aux && m->kind->out_names[1])
            st = bk_h5_write_tensor(&f, m->kind->out_names[1], out.aux);
        if (bk_h5_close(&f, st == BK_OK) != BK_OK || st != BK_OK) return fail(NULL);
        return 0;
    }
    if (read_input(ctx, a->target_path, "x", &target) != BK_OK) return fail(NULL);
    bk_model_forward(ctx, m, x, &o, &out);
    if (!bk_same_shape(target, out.y)) {
        char s1[64], s2[64];
        fprintf(stderr, "forward: target is %s, the output is %s\n", bk_shape_str(bk_shape_of(target), s1),
                bk_shape_str(bk_shape_of(out.y), s2));
        return 1;
    }
    bk_tensor *l = bk_l1(ctx, out.y, target);
    bk_backward(ctx, l, false);
    if (bk_h5_create(&f, a->output) != BK_OK) return fail(NULL);
    bk_status st = bk_h5_write_tensor(&f, "loss", l);
    for (int i = 0; st == BK_OK && i < m->params.n; i++) {
        const bk_param *p = &m->params.v[i];
        if (p->kind != BK_PARAM) continue;
        char name[300];
        snprintf(name, sizeof name, "grad/%s", p->name);
        bk_tensor *g = p->t->grad ? p->t->grad : bk_tensor_zeros(ctx, bk_shape_of(p->t));
        g->ndim = p->t->ndim;
        st = bk_h5_write_tensor(&f, name, g);
    }
    if (bk_h5_close(&f, st == BK_OK) != BK_OK || st != BK_OK) return fail(NULL);
    return 0;
}

int main(int argc, char **argv) {
    const char *model = NULL, *weights = NULL, *input = NULL, *output = NULL, *mask_path = NULL,
               *loss = NULL, *target_path = NULL;
    float strength = 1.0f;
    bool summary = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--summary")) { summary = true; continue; }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--input")) input = v;
        else if (!strcmp(a, "--output")) output = v;
        else if (!strcmp(a, "--mask")) mask_path = v;
        else if (!strcmp(a, "--train-step")) loss = v;
        else if (!strcmp(a, "--target")) target_path = v;
        else if (!strcmp(a, "--strength")) {
            char *end;
            strength = strtof(v, &end);
            if (*end || strength < 0.0f || strength > 1.0f) {
                fprintf(stderr, "forward: --strength must be a number from 0 to 1, not \"%s\"\n", v);
                return 2;
            }
        } else usage();
    }
    if (!weights || !input || !output) usage();
    if (loss && strcmp(loss, "l1") != 0) {
        fprintf(stderr, "forward: --train-step supports l1, not \"%s\"\n", loss);
        return 2;
    }
    if (loss && !target_path) {
        fprintf(stderr, "forward: --train-step needs --target T.h5\n");
        return 2;
    }

    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) return fail(NULL);
    bk_model *m = NULL;
    int rc = bk_model_load(&ctx, weights, &m) != BK_OK ? fail(NULL) : 0;
    if (rc == 0 && model && strcmp(model, m->kind->name) != 0) {
        fprintf(stderr, "forward: %s holds a %s model, not %s\n", weights, m->kind->name, model);
        rc = 1;
    }
    if (rc == 0) {
        const run_args a = {input, output, mask_path, loss, target_path, strength, summary};
        rc = run(&ctx, m, &a);
    }
    bk_model_free(&ctx, m);
    bk_ctx_free(&ctx);
    return rc;
}
