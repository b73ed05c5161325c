/* critic.c — the multi-receptive-field critic (see critic.h). */
#include "models/critic.h"

#include <stdio.h>

#include "core/rng.h"

static void init_one(bk_ctx *ctx, bk_params *ps, bk_patch_critic *p, const char *name, int n,
                     bk_rng *rng) {
    p->n = n;
    int64_t cin = 3;
    char buf[128];
    for (int k = 0; k <= n; k++) {
        int64_t cout = k == 0 ? 64 : (cin * 2 > 512 ? 512 : cin * 2);
        snprintf(buf, sizeof buf, "%s.convs.%d.weight", name, k);
        p->w[k] = bk_params_add(ctx, ps, buf, 4, (bk_shape){cout, cin, 4, 4}, BK_PARAM);
        snprintf(buf, sizeof buf, "%s.convs.%d.bias", name, k);
        p->b[k] = bk_params_add(ctx, ps, buf, 1, (bk_shape){1, cout, 1, 1}, BK_PARAM);
        bk_rng_fill_normal(rng, p->w[k]->data, bk_numel(p->w[k]), 0.0, 0.02);
        cin = cout;
    }
    snprintf(buf, sizeof buf, "%s.final.weight", name);
    p->final_w = bk_params_add(ctx, ps, buf, 4, (bk_shape){1, cin, 4, 4}, BK_PARAM);
    snprintf(buf, sizeof buf, "%s.final.bias", name);
    p->final_b = bk_params_add(ctx, ps, buf, 1, (bk_shape){1, 1, 1, 1}, BK_PARAM);
    bk_rng_fill_normal(rng, p->final_w->data, bk_numel(p->final_w), 0.0, 0.02);
}

void bk_critic_init(bk_ctx *ctx, bk_critic *c, uint64_t seed) {
    *c = (bk_critic){0};
    bk_rng rng;
    bk_rng_seed(&rng, seed);
    init_one(ctx, &c->params, &c->patch, "patch", 3, &rng);
    init_one(ctx, &c->params, &c->full, "full", 5, &rng);
}

void bk_critic_free(bk_ctx *ctx, bk_critic *c) { bk_params_free(ctx, &c->params); }

bk_tensor *bk_patch_critic_forward(bk_ctx *ctx, const bk_patch_critic *p, bk_tensor *x) {
    bk_tensor *h = x;
    for (int k = 0; k <= p->n; k++) {
        bk_conv_opts o = bk_conv_opts_make(k < p->n ? 2 : 1, 2, 1);
        if (k == 0) {
            h = bk_conv2d(ctx, h, p->w[k], p->b[k], o, bk_act_leaky_relu(0.2f), NULL);
        } else {
            h = bk_conv2d(ctx, h, p->w[k], p->b[k], o, bk_act_none(), NULL);
            h = bk_leaky_relu(ctx, bk_instance_norm(ctx, h, 1e-5f), 0.2f);
        }
    }
    return bk_conv2d(ctx, h, p->final_w, p->final_b, bk_conv_opts_make(1, 2, 1), bk_act_none(), NULL);
}

/* ---------------------------------------------------------------- as a registry kind */

#include <stdlib.h>

#include "models/model.h"

static void *create_kind(bk_ctx *ctx, bk_params *ps, const char *variant, uint64_t seed) {
    (void)variant;
    bk_critic *c = calloc(1, sizeof *c);
    BK_CHECK(c, "out of memory");
    bk_critic_init(ctx, c, seed);
    *ps = c->params; /* the model owns the parameter set; the struct keeps its tensor pointers */
    c->params = (bk_params){0};
    return c;
}

static void forward_kind(bk_ctx *ctx, const void *impl, bk_tensor *x, const bk_forward_opts *o,
                         bk_model_out *out) {
    (void)o;
    const bk_critic *c = impl;
    bk_block_begin(ctx, "patch");
    out->y = bk_patch_critic_forward(ctx, &c->patch, x);
    bk_block_end(ctx, "patch", out->y);
    bk_block_begin(ctx, "full");
    out->aux = bk_patch_critic_forward(ctx, &c->full, x);
    bk_block_end(ctx, "full", out->aux);
}

const bk_model_kind bk_critic_kind = {
    .name = "multi_rf_discriminator",
    .description = "BGGAN's critic: PatchGAN critics with receptive fields 70 and 286, 13,919,106 parameters",
    .minus_one_to_one = true,
    .multiple = 1,
    .out_names = {"y_patch", "y_full"},
    .create = create_kind,
    .forward = forward_kind,
    .destroy = free,
};
