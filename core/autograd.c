/* autograd.c — tape recording and the backward walk (see autograd.h). */
#include "core/autograd.h"

#include <stdlib.h>

#include "core/kernels.h"
#include "core/ops.h"

/* Appends t to a growable array of tensor pointers (the tape, the list of reached leaves). */
static void push(bk_tensor ***arr, size_t *len, size_t *cap, bk_tensor *t) {
    if (*len == *cap) {
        size_t grown_cap = *cap ? 2 * *cap : 1024;
        bk_tensor **grown = realloc(*arr, grown_cap * sizeof *grown);
        BK_CHECK(grown, "out of memory");
        *arr = grown;
        *cap = grown_cap;
    }
    (*arr)[(*len)++] = t;
}

static bool differentiable_src(const bk_tensor *t, int j) {
    return t->src[j] && ((bk_op_table[t->op].diff_mask >> j) & 1u);
}

void bk_record(bk_ctx *ctx, bk_tensor *out) {
    if (!ctx->grad_enabled) return;
    bool any = false;
    for (int j = 0; j < BK_MAX_SRC; j++)
        if (differentiable_src(out, j) && out->src[j]->requires_grad) any = true;
    if (!any) return;
    out->requires_grad = true;
    push(&ctx->tape, &ctx->tape_len, &ctx->tape_cap, out);
}

bool bk_would_record(const bk_ctx *ctx, const bk_tensor *a, const bk_tensor *b) {
    return ctx->grad_enabled && ((a && a->requires_grad) || (b && b->requires_grad));
}

/* ---- one backward pass ---- */

static void mark(bk_tensor *t, uint32_t pass, bool reach) {
    t->bw_pass = pass;
    t->bw_reach = reach;
    t->bw_grad = NULL;
    t->bw_owned = false;
    t->bw_leaf_listed = false;
}

/* Does gradient need to flow into s? all_leaves: every leaf requiring grad is wanted. */
static bool reaches(bk_tensor *s, uint32_t pass, bool all_leaves) {
    if (s->bw_pass == pass) return s->bw_reach;
    if (all_leaves && s->op == BK_OP_NONE && s->requires_grad) {
        mark(s, pass, true);
        return true;
    }
    return false;
}

static void list_leaf(bk_ctx *ctx, bk_tensor *s) {
    if (s->op != BK_OP_NONE || s->bw_leaf_listed) return;
    s->bw_leaf_listed = true;
    push(&ctx->bw_leaves, &ctx->bw_leaves_len, &ctx->bw_leaves_cap, s);
}

static void accumulate(bk_ctx *ctx, bk_tensor *s, bk_tensor *g, bool create_graph) {
    char a[64], b[64];
    BK_CHECK(bk_same_shape(s, g), "gradient of shape %s for a tensor of shape %s",
             bk_shape_str(bk_shape_of(g), a), bk_shape_str(bk_shape_of(s), b));
    if (!s->bw_grad) {
        s->bw_grad = g; /* may alias another gradient: never written in place */
        s->bw_owned = false;
        list_leaf(ctx, s);
    } else if (!create_graph && s->bw_owned) {
        bk_kernel_add_inplace(s->bw_grad->data, g->data, bk_numel(g));
    } else {
        s->bw_grad = bk_add(ctx, s->bw_grad, g);
        s->bw_owned = !create_graph;
    }
}

/* Marks what to differentiate, seeds `root` with `seed` and walks the tape backwards. Targets
 * NULL means every leaf that requires grad. */
static void run_pass(bk_ctx *ctx, bk_tensor *root, bk_tensor *seed, int n_targets,
                     bk_tensor **targets, bool create_graph) {
    char a[64], b[64];
    BK_CHECK(root->requires_grad, "backward from a tensor that does not require grad");
    BK_CHECK(bk_same_shape(root, seed), "seed of shape %s for an output of shape %s",
             bk_shape_str(bk_shape_of(seed), a), bk_shape_str(bk_shape_of(root), b));
    uint32_t pass = ++ctx->bw_pass;
    bool all_leaves = targets == NULL;
    ctx->bw_leaves_len = 0;
    for (int i = 0; i < n_targets; i++) mark(targets[i], pass, true);

    size_t len = ctx->tape_len; /* nodes appended by this pass (create_graph) are not walked */
    for (size_t i = 0; i < len; i++) {
        bk_tensor *t = ctx->tape[i];
        bool reach = t->bw_pass == pass && t->bw_reach; /* an intermediate target */
        /* every source is visited (no early exit): reaches() also marks wanted leaves */
        for (int j = 0; j < BK_MAX_SRC; j++)
            if (differentiable_src(t, j) && reaches(t->src[j], pass, all_leaves)) reach = true;
        mark(t, pass, reach);
    }
    if (root->bw_pass != pass) mark(root, pass, all_leaves && root->op == BK_OP_NONE);
    root->bw_grad = seed;
    list_leaf(ctx, root);

    bool prev = bk_set_grad_enabled(ctx, create_graph);
    for (size_t i = len; i-- > 0;) {
        bk_tensor *t = ctx->tape[i];
        if (!t->bw_reach || !t->bw_grad) continue;
        int need[BK_MAX_SRC] = {0}, any = 0;
        for (int j = 0; j < BK_MAX_SRC; j++) {
            need[j] = differentiable_src(t, j) && t->src[j]->bw_pass == pass && t->src[j]->bw_reach;
            any |= need[j];
        }
        if (!any) continue;
        const bk_op_info *info = &bk_op_table[t->op];
        BK_CHECK(info->backward, "op '%s' cannot be differentiated (a gradient of this order "
                 "through it is not supported)", info->name);
        bk_tensor *gsrc[BK_MAX_SRC] = {0};
        info->backward(ctx, t, t->bw_grad, gsrc, need);
        for (int j = 0; j < BK_MAX_SRC; j++) {
            if (!need[j]) continue;
            BK_CHECK(gsrc[j], "op '%s' gave no gradient for source %d", info->name, j);
            accumulate(ctx, t->src[j], gsrc[j], create_graph);
        }
    }
    bk_set_grad_enabled(ctx, prev);
}

void bk_backward(bk_ctx *ctx, bk_tensor *loss, bool create_graph) {
    BK_CHECK(bk_numel(loss) == 1, "bk_backward needs a scalar loss");
    run_pass(ctx, loss, bk_scalar(ctx, 1.0f), 0, NULL, create_graph);
    bool prev = bk_set_grad_enabled(ctx, false);
    for (size_t i = 0; i < ctx->bw_leaves_len; i++) {
        bk_tensor *leaf = ctx->bw_leaves[i];
        if (!leaf->requires_grad || !leaf->bw_grad) continue;
        if (leaf->life == BK_PERSISTENT) {
            if (!leaf->grad) {
                leaf->grad = bk_tensor_new_persistent(ctx, NULL, leaf->ndim, bk_shape_of(leaf));
            }
            bk_kernel_add_inplace(leaf->grad->data, leaf->bw_grad->data, bk_numel(leaf));
        } else {
            leaf->grad = leaf->grad ? bk_add(ctx, leaf->grad, leaf->bw_grad) : leaf->bw_grad;
        }
    }
    bk_set_grad_enabled(ctx, prev);
}

void bk_grad(bk_ctx *ctx, bk_tensor *out, bk_tensor *gout, int n, bk_tensor **inputs,
             bk_tensor **grads, bool create_graph) {
    if (!gout) {
        BK_CHECK(bk_numel(out) == 1, "bk_grad without gout needs a scalar output");
        gout = bk_scalar(ctx, 1.0f);
    }
    run_pass(ctx, out, gout, n, inputs, create_graph);
    for (int i = 0; i < n; i++) {
        bk_tensor *g = inputs[i]->bw_grad;
        grads[i] = g ? g : bk_tensor_zeros(ctx, bk_shape_of(inputs[i]));
    }
}
