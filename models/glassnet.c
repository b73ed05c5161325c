/* glassnet.c — BGGAN's Glass-Net generator (Qian et al. 2020; SPEC §3), two stages, images in
 * [-1,1], H and W multiples of 8.
 *   stage1 (c = c1): e = x; e = ReLU(enc.k(e)) for k = 0..3 (3->c s1, c->2c s2, 2c->4c s2,
 *                    4c->8c s2); h = res.0..8(e); h = cat(h, e); h = ReLU(dec.0(h)) (16c->4c),
 *                    ReLU(dec.1) (4c->2c), ReLU(dec.2) (2c->c); R = tanh(out(h)) (c->3)
 *   stage2 (c = c2): z = cat(R, x - R); e0..e3 = ReLU(enc.k(..)) chained (6->c, c->2c, 2c->4c,
 *                    4c->8c); h = ReLU(merge(e3)); h = res.0..8(h); h = ReLU(dec.0(cat(e3, h)));
 *                    h = ReLU(dec.1(cat(e2, h))); h = ReLU(dec.2(cat(e1, h))); y = tanh(out(h))
 * conv = k3, padding 1 on every side, no bias; dec = ConvTranspose k4 s2 p1 with bias.
 * res.i: y = ReLU(IN(conv1(x))); y = dropout 0.1 (training only); y = IN(conv2(y));
 * out = ReLU(x + y); instance norm eps 1e-5, no affine. Returns (y, R).
 * Widths: glassnet c1 = 16, c2 = 32 (the paper; 16,027,856 parameters); glassnet_c24
 * c2 = 24 (the released code; 10,352,784).
 * Init: conv weights N(0, 0.02^2); deconv weights Glorot-uniform, biases 0.
 */
#include <stdint.h>
#include <stdlib.h>

#include "layers/layer.h"
#include "models/model.h"

enum { RES_BLOCKS = 9 };

typedef struct res_block {
    bk_conv_layer conv1, conv2;
} res_block;

typedef struct stage {
    bk_conv_layer enc[4], merge, dec[3], out;
    res_block res[RES_BLOCKS];
    bool second;
} stage;

typedef struct glassnet {
    stage s1, s2;
} glassnet;

static void make_stage(bk_ctx *ctx, bk_params *ps, stage *s, const char *m, int c, bool second,
                       bk_rng *rng) {
    bk_init conv_init = {BK_INIT_NORMAL, 0.02f, rng}, deconv_init = {BK_INIT_GLOROT, 0, rng};
    char n[BK_NAME_MAX];
    s->second = second;
    int cin = second ? 6 : 3;
    for (int k = 0; k < 4; k++) {
        int cout = c << k;
        s->enc[k] = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.enc.%d", m, k), cin, cout, 3, k ? 2 : 1, 1, 1,
                                       false, conv_init);
        cin = cout;
    }
    if (second) s->merge = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.merge", m), 8 * c, 8 * c, 3, 1, 1, 1, false, conv_init);
    for (int i = 0; i < RES_BLOCKS; i++) {
        s->res[i].conv1 = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.res.%d.conv1", m, i), 8 * c, 8 * c, 3, 1, 1, 1,
                                             false, conv_init);
        s->res[i].conv2 = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.res.%d.conv2", m, i), 8 * c, 8 * c, 3, 1, 1, 1,
                                             false, conv_init);
    }
    /* decoder inputs: stage 1 16c, 4c, 2c; stage 2 16c, 8c, 4c (skips concatenated) */
    int dec_in[3] = {16 * c, second ? 8 * c : 4 * c, second ? 4 * c : 2 * c};
    int dec_out[3] = {4 * c, 2 * c, c};
    for (int k = 0; k < 3; k++)
        s->dec[k] = bk_deconv_layer_make(ctx, ps, bk_name(n, "%s.dec.%d", m, k), dec_in[k], dec_out[k], 4, 2, 1, true,
                                         deconv_init);
    s->out = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.out", m), c, 3, 3, 1, 1, 1, false, conv_init);
}

static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bk_tensor *res_fwd(bk_ctx *ctx, const res_block *r, bk_tensor *x, const bk_forward_opts *o,
                          uint64_t tag) {
    bk_tensor *y = bk_conv_layer_fwd(ctx, &r->conv1, x, bk_act_none(), NULL);
    y = bk_relu(ctx, bk_instance_norm(ctx, y, 1e-5f));
    if (o->training) y = bk_dropout(ctx, y, 0.1f, mix(o->dropout_seed ^ mix(tag)));
    y = bk_instance_norm(ctx, bk_conv_layer_fwd(ctx, &r->conv2, y, bk_act_none(), NULL), 1e-5f);
    return bk_relu(ctx, bk_add(ctx, x, y));
}

static bk_tensor *relu_deconv(bk_ctx *ctx, const bk_conv_layer *l, bk_tensor *x) {
    return bk_relu(ctx, bk_conv_layer_fwd(ctx, l, x, bk_act_none(), NULL));
}

static bk_tensor *stage_fwd(bk_ctx *ctx, const stage *s, const char *m, bk_tensor *x,
                            const bk_forward_opts *o) {
    char n[BK_NAME_MAX];
    bk_block_begin(ctx, m);
    bk_tensor *e[4];
    bk_tensor *h = x;
    bk_block_begin(ctx, bk_name(n, "%s.enc", m));
    for (int k = 0; k < 4; k++) h = e[k] = bk_conv_layer_fwd(ctx, &s->enc[k], h, bk_act_relu(), NULL);
    bk_block_end(ctx, n, h);
    if (s->second) h = bk_conv_layer_fwd(ctx, &s->merge, h, bk_act_relu(), NULL);
    bk_block_begin(ctx, bk_name(n, "%s.res", m));
    for (int i = 0; i < RES_BLOCKS; i++) h = res_fwd(ctx, &s->res[i], h, o, (uint64_t)(s->second * 16 + i));
    bk_block_end(ctx, n, h);
    bk_block_begin(ctx, bk_name(n, "%s.dec", m));
    if (!s->second) {
        bk_tensor *pair[2] = {h, e[3]};
        h = relu_deconv(ctx, &s->dec[0], bk_concat(ctx, 2, pair, BK_AXIS_C));
        h = relu_deconv(ctx, &s->dec[1], h);
        h = relu_deconv(ctx, &s->dec[2], h);
    } else {
        for (int k = 0; k < 3; k++) {
            bk_tensor *pair[2] = {e[3 - k], h};
            h = relu_deconv(ctx, &s->dec[k], bk_concat(ctx, 2, pair, BK_AXIS_C));
        }
    }
    bk_block_end(ctx, n, h);
    h = bk_tanh(ctx, bk_conv_layer_fwd(ctx, &s->out, h, bk_act_none(), NULL));
    bk_block_end(ctx, m, h);
    return h;
}

static void *create(bk_ctx *ctx, bk_params *ps, int c2, uint64_t seed) {
    glassnet *g = calloc(1, sizeof *g);
    BK_CHECK(g, "out of memory");
    bk_rng rng;
    bk_rng_seed(&rng, seed);
    make_stage(ctx, ps, &g->s1, "stage1", 16, false, &rng);
    make_stage(ctx, ps, &g->s2, "stage2", c2, true, &rng);
    return g;
}

static void *create_paper(bk_ctx *ctx, bk_params *ps, const char *variant, uint64_t seed) {
    (void)variant;
    return create(ctx, ps, 32, seed);
}

static void *create_c24(bk_ctx *ctx, bk_params *ps, const char *variant, uint64_t seed) {
    (void)variant;
    return create(ctx, ps, 24, seed);
}

static void forward(bk_ctx *ctx, const void *impl, bk_tensor *x, const bk_forward_opts *o,
                    bk_model_out *out) {
    const glassnet *g = impl;
    bk_tensor *r = stage_fwd(ctx, &g->s1, "stage1", x, o);
    bk_tensor *pair[2] = {r, bk_sub(ctx, x, r)};
    out->y = stage_fwd(ctx, &g->s2, "stage2", bk_concat(ctx, 2, pair, BK_AXIS_C), o);
    out->aux = r;
}

const bk_model_kind bk_glassnet_kind = {
    .name = "glassnet",
    .description = "Glass-Net (BGGAN generator) at the paper's widths 16/32, 16,027,856 parameters",
    .minus_one_to_one = true,
    .multiple = 8,
    .out_names = {"y", "r"},
    .create = create_paper,
    .forward = forward,
    .destroy = free,
};

const bk_model_kind bk_glassnet_c24_kind = {
    .name = "glassnet_c24",
    .description = "Glass-Net with the released code's stage-2 width 24, 10,352,784 parameters",
    .minus_one_to_one = true,
    .multiple = 8,
    .out_names = {"y", "r"},
    .create = create_c24,
    .forward = forward,
    .destroy = free,
};
