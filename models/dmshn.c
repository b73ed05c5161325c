/* dmshn.c — DMSHN and Stacked DMSHN (Dutta et al. 2021; SPEC §2), with the forward of the
 * released code (not the paper's Eq. 10):
 *     i2 = down2(x); i3 = down2(i2)
 *     g3 = encoder_lv3(i3);              r3 = decoder_lv3(g3)
 *     g2 = encoder_lv2(i2 + up2(r3));    r2 = decoder_lv2(g2 + up2(g3))
 *     g1 = encoder_lv1(x  + up2(r2));    y  = decoder_lv1(g1 + up2(g2))      (no clamp)
 * Encoder: layer1 conv 3->32; layer2, 3 RB(32); layer5 conv 32->64 s2; layer6, 7 RB(64);
 * layer9 conv 64->128 s2; layer10, 11 RB(128). Decoder: layer13, 14 RB(128); layer16
 * ConvTranspose 128->64 k4 s2 p1; layer17, 18 RB(64); layer20 ConvTranspose 64->32; layer21,
 * 22 RB(32); layer24 conv 32->3. Convs k3 p1 with bias; RB(c): x + conv(layerN.2)(relu(
 * conv(layerN.0)(x))), the ReLU and the residual fused into the convolutions; no other
 * activation. Stacked: y = net2(net1(x)). Inputs in [0,1], H and W multiples of 16.
 * Init: every conv and deconv weight N(0, (0.5 sqrt(2/(k k C_out)))^2), biases 0.
 */
#include <stdio.h>
#include <stdlib.h>

#include "layers/layer.h"
#include "models/model.h"

typedef struct rb {
    bk_conv_layer c0, c2;
} rb;

typedef struct encoder {
    bk_conv_layer l1, l5, l9;
    rb l2, l3, l6, l7, l10, l11;
} encoder;

typedef struct decoder {
    rb l13, l14, l17, l18, l21, l22;
    bk_conv_layer l16, l20, l24;
} decoder;

typedef struct dmshn {
    encoder enc[3];
    decoder dec[3];
    char prefix[32]; /* "" or "net1." */
} dmshn;

typedef struct stacked {
    dmshn net[2];
} stacked;

static rb make_rb(bk_ctx *ctx, bk_params *ps, const char *module, int c, bk_init init) {
    char n[BK_NAME_MAX];
    rb r;
    r.c0 = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.0", module), c, c, 3, 1, 1, 1, true, init);
    r.c2 = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.2", module), c, c, 3, 1, 1, 1, true, init);
    return r;
}

/* `own`: x is this block's alone (made inside the encoder or decoder), so inference may write the
 * result over it; the decoder's first block gets the caller's tensor, which lives on. */
static bk_tensor *rb_fwd(bk_ctx *ctx, const rb *r, bk_tensor *x, bool own) {
    bk_tensor *h = bk_conv_layer_fwd(ctx, &r->c0, x, bk_act_relu(), NULL);
    return own ? bk_conv_layer_fwd_residual_last(ctx, &r->c2, h, bk_act_none(), x)
               : bk_conv_layer_fwd(ctx, &r->c2, h, bk_act_none(), x);
}

static void make_dmshn(bk_ctx *ctx, bk_params *ps, dmshn *d, const char *prefix, bk_rng *rng) {
    snprintf(d->prefix, sizeof d->prefix, "%s", prefix);
    bk_init init = {BK_INIT_DMSHN, 0, rng};
    char m[BK_NAME_MAX], n[BK_NAME_MAX];
    for (int lv = 0; lv < 3; lv++) {
        encoder *e = &d->enc[lv];
        bk_name(m, "%sencoder_lv%d", prefix, lv + 1);
        e->l1 = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.layer1", m), 3, 32, 3, 1, 1, 1, true, init);
        e->l2 = make_rb(ctx, ps, bk_name(n, "%s.layer2", m), 32, init);
        e->l3 = make_rb(ctx, ps, bk_name(n, "%s.layer3", m), 32, init);
        e->l5 = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.layer5", m), 32, 64, 3, 2, 1, 1, true, init);
        e->l6 = make_rb(ctx, ps, bk_name(n, "%s.layer6", m), 64, init);
        e->l7 = make_rb(ctx, ps, bk_name(n, "%s.layer7", m), 64, init);
        e->l9 = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.layer9", m), 64, 128, 3, 2, 1, 1, true, init);
        e->l10 = make_rb(ctx, ps, bk_name(n, "%s.layer10", m), 128, init);
        e->l11 = make_rb(ctx, ps, bk_name(n, "%s.layer11", m), 128, init);
    }
    for (int lv = 0; lv < 3; lv++) {
        decoder *dc = &d->dec[lv];
        bk_name(m, "%sdecoder_lv%d", prefix, lv + 1);
        dc->l13 = make_rb(ctx, ps, bk_name(n, "%s.layer13", m), 128, init);
        dc->l14 = make_rb(ctx, ps, bk_name(n, "%s.layer14", m), 128, init);
        dc->l16 = bk_deconv_layer_make(ctx, ps, bk_name(n, "%s.layer16", m), 128, 64, 4, 2, 1, true, init);
        dc->l17 = make_rb(ctx, ps, bk_name(n, "%s.layer17", m), 64, init);
        dc->l18 = make_rb(ctx, ps, bk_name(n, "%s.layer18", m), 64, init);
        dc->l20 = bk_deconv_layer_make(ctx, ps, bk_name(n, "%s.layer20", m), 64, 32, 4, 2, 1, true, init);
        dc->l21 = make_rb(ctx, ps, bk_name(n, "%s.layer21", m), 32, init);
        dc->l22 = make_rb(ctx, ps, bk_name(n, "%s.layer22", m), 32, init);
        dc->l24 = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.layer24", m), 32, 3, 3, 1, 1, 1, true, init);
    }
}

static bk_tensor *encoder_fwd(bk_ctx *ctx, const dmshn *d, int lv, bk_tensor *x) {
    char m[BK_NAME_MAX];
    bk_name(m, "%sencoder_lv%d", d->prefix, lv + 1);
    bk_block_begin(ctx, m);
    const encoder *e = &d->enc[lv];
    bk_tensor *h = bk_conv_layer_fwd(ctx, &e->l1, x, bk_act_none(), NULL);
    h = rb_fwd(ctx, &e->l3, rb_fwd(ctx, &e->l2, h, true), true);
    h = bk_conv_layer_fwd(ctx, &e->l5, h, bk_act_none(), NULL);
    h = rb_fwd(ctx, &e->l7, rb_fwd(ctx, &e->l6, h, true), true);
    h = bk_conv_layer_fwd(ctx, &e->l9, h, bk_act_none(), NULL);
    h = rb_fwd(ctx, &e->l11, rb_fwd(ctx, &e->l10, h, true), true);
    bk_block_end(ctx, m, h);
    return h;
}

static bk_tensor *decoder_fwd(bk_ctx *ctx, const dmshn *d, int lv, bk_tensor *x) {
    char m[BK_NAME_MAX];
    bk_name(m, "%sdecoder_lv%d", d->prefix, lv + 1);
    bk_block_begin(ctx, m);
    const decoder *dc = &d->dec[lv];
    bk_tensor *h = rb_fwd(ctx, &dc->l14, rb_fwd(ctx, &dc->l13, x, false), true);
    h = bk_conv_layer_fwd(ctx, &dc->l16, h, bk_act_none(), NULL);
    h = rb_fwd(ctx, &dc->l18, rb_fwd(ctx, &dc->l17, h, true), true);
    h = bk_conv_layer_fwd(ctx, &dc->l20, h, bk_act_none(), NULL);
    h = rb_fwd(ctx, &dc->l22, rb_fwd(ctx, &dc->l21, h, true), true);
    h = bk_conv_layer_fwd(ctx, &dc->l24, h, bk_act_none(), NULL);
    bk_block_end(ctx, m, h);
    return h;
}

static bk_tensor *dmshn_fwd(bk_ctx *ctx, const dmshn *d, bk_tensor *x) {
    bk_tensor *i2 = bk_down2(ctx, x), *i3 = bk_down2(ctx, i2);
    bk_tensor *g3 = encoder_fwd(ctx, d, 2, i3);
    bk_tensor *r3 = decoder_fwd(ctx, d, 2, g3);
    bk_tensor *g2 = encoder_fwd(ctx, d, 1, bk_add(ctx, i2, bk_up2(ctx, r3)));
    bk_tensor *r2 = decoder_fwd(ctx, d, 1, bk_add(ctx, g2, bk_up2(ctx, g3)));
    bk_tensor *g1 = encoder_fwd(ctx, d, 0, bk_add(ctx, x, bk_up2(ctx, r2)));
    return decoder_fwd(ctx, d, 0, bk_add(ctx, g1, bk_up2(ctx, g2)));
}

static void *create_dmshn(bk_ctx *ctx, bk_params *ps, const char *variant, uint64_t seed) {
    (void)variant;
    dmshn *d = calloc(1, sizeof *d);
    BK_CHECK(d, "out of memory");
    bk_rng rng;
    bk_rng_seed(&rng, seed);
    make_dmshn(ctx, ps, d, "", &rng);
    return d;
}

static void *create_stacked(bk_ctx *ctx, bk_params *ps, const char *variant, uint64_t seed) {
    (void)variant;
    stacked *s = calloc(1, sizeof *s);
    BK_CHECK(s, "out of memory");
    bk_rng rng;
    bk_rng_seed(&rng, seed);
    make_dmshn(ctx, ps, &s->net[0], "net1.", &rng);
    make_dmshn(ctx, ps, &s->net[1], "net2.", &rng);
    return s;
}

static void forward_dmshn(bk_ctx *ctx, const void *impl, bk_tensor *x, const bk_forward_opts *o,
                          bk_model_out *out) {
    (void)o;
    out->y = dmshn_fwd(ctx, impl, x);
}

static void forward_stacked(bk_ctx *ctx, const void *impl, bk_tensor *x, const bk_forward_opts *o,
                            bk_model_out *out) {
    (void)o;
    const stacked *s = impl;
    bk_block_begin(ctx, "net1");
    bk_tensor *y1 = dmshn_fwd(ctx, &s->net[0], x);
    bk_block_end(ctx, "net1", y1);
    bk_block_begin(ctx, "net2");
    out->y = dmshn_fwd(ctx, &s->net[1], y1);
    bk_block_end(ctx, "net2", out->y);
}

const bk_model_kind bk_dmshn_kind = {
    .name = "dmshn",
    .description = "DMSHN (Dutta et al. 2021), 5,424,393 parameters",
    .multiple = 16,
    .out_names = {"y", NULL},
    .create = create_dmshn,
    .forward = forward_dmshn,
    .destroy = free,
};

const bk_model_kind bk_stacked_dmshn_kind = {
    .name = "stacked_dmshn",
    .description = "Stacked DMSHN, two DMSHNs in sequence, 10,848,786 parameters",
    .multiple = 16,
    .out_names = {"y", NULL},
    .create = create_stacked,
    .forward = forward_stacked,
    .destroy = free,
};
