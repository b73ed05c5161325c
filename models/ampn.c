/* ampn.c — AMPN (Georgiadis et al. 2022) as SPEC §4 fixes it: images in [0,1], H and W
 * multiples of 128, 5,421,501 parameters.
 *     h0, h1, I_L = pyramid(x)                                    (2-level Laplacian, LPTN)
 *     M_L  = sigmoid(g1(I_L))            or a user mask at I_L's size (then g1 is not run)
 *     M_L  = 1 - s (1 - M_L)             blur strength s (1: unchanged); used everywhere below
 *     Iint = g2(cat(I_L, M_L))
 *     B_L  = att_il(I_L) + att_iint(Iint)
 *     z    = cat(h1, up2(I_L), up2(M_L), up2(B_L))                (10 channels)
 *     M_R  = att_bl(up2(B_L)) + att_ref(refine(z))
 *     B_int = lap_up(lap_up(B_L) + h1 * ft1(M_R)) + h0 * ft0(up2(M_R))
 *     m0   = up4(M_L);  B0 = m0 x + (1 - m0) B_int                returns (B0, M_L)
 * refine (LeakyReLU 0.01 = lrelu; RBL(c) = x + conv2(lrelu(conv1(x)))): a = rb_full(lrelu(
 * head(z))) (10->40); b = lrelu(down(a)) (40->64 s2); b = rb_half.1(rb_half.0(b));
 * c = lrelu(up(up2(b))) + a (64->40); out = tail(c) (40->3); convs k3 p1 with bias.
 * ft1, ft0: conv1x1 3->16 -> lrelu -> conv1x1 16->3, with biases.
 * Ablations (AMPN Table 3): no_refine (M_R = att_bl(up2(B_L)); no refine, att_ref),
 * no_g2 (B_L = att_il(I_L); no g2, att_iint), no_attention (each CA is the identity),
 * external_mask (no g1; M_L comes from the data or the user).
 * Init: He-normal (fan_in, LeakyReLU 0.01) everywhere, BN gamma 1 beta 0, biases 0.
 */
#include <stdlib.h>

#include "layers/attention.h"
#include "layers/mobilenet.h"
#include "layers/pyramid.h"
#include "models/model.h"

typedef struct rbl {
    bk_conv_layer conv1, conv2;
} rbl;

typedef struct ampn {
    bool no_refine, no_g2, no_attention, external;
    bk_gnet g1, g2;
    bk_coord_att att_il, att_iint, att_bl, att_ref;
    bk_conv_layer head, down, up, tail;
    rbl rb_full, rb_half[2];
    bk_conv_layer ft1[2], ft0[2];
} ampn;

static const float SLOPE = 0.01f;

static rbl make_rbl(bk_ctx *ctx, bk_params *ps, const char *name, int c, bk_init he) {
    char n[BK_NAME_MAX];
    rbl r;
    r.conv1 = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.conv1", name), c, c, 3, 1, 1, 1, true, he);
    r.conv2 = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.conv2", name), c, c, 3, 1, 1, 1, true, he);
    return r;
}

static bk_tensor *rbl_fwd(bk_ctx *ctx, const rbl *r, bk_tensor *x) {
    bk_tensor *h = bk_conv_layer_fwd(ctx, &r->conv1, x, bk_act_leaky_relu(SLOPE), NULL);
    return bk_conv_layer_fwd_residual_last(ctx, &r->conv2, h, bk_act_none(), x);
}

static void make_ft(bk_ctx *ctx, bk_params *ps, bk_conv_layer *ft, const char *name, bk_init he) {
    char n[BK_NAME_MAX];
    ft[0] = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.conv1", name), 3, 16, 1, 1, 0, 1, true, he);
    ft[1] = bk_conv_layer_make(ctx, ps, bk_name(n, "%s.conv2", name), 16, 3, 1, 1, 0, 1, true, he);
}

static bk_tensor *ft_fwd(bk_ctx *ctx, const bk_conv_layer *ft, const char *name, bk_tensor *x) {
    bk_block_begin(ctx, name);
    bk_tensor *y = bk_conv_layer_fwd(ctx, &ft[0], x, bk_act_leaky_relu(SLOPE), NULL);
    y = bk_conv_layer_fwd(ctx, &ft[1], y, bk_act_none(), NULL);
    bk_block_end(ctx, name, y);
    return y;
}

static void *create(bk_ctx *ctx, bk_params *ps, const char *variant, uint64_t seed) {
    ampn *a = calloc(1, sizeof *a);
    BK_CHECK(a, "out of memory");
    a->no_refine = bk_variant_has(variant, "no_refine");
    a->no_g2 = bk_variant_has(variant, "no_g2");
    a->no_attention = bk_variant_has(variant, "no_attention");
    a->external = bk_variant_has(variant, "external_mask");
    bk_rng rng;
    bk_rng_seed(&rng, seed);
    bk_init he = {BK_INIT_HE, SLOPE, &rng};
    if (!a->external) bk_gnet_make(ctx, ps, &a->g1, "g1", 3, 1, &rng);
    if (!a->no_g2) bk_gnet_make(ctx, ps, &a->g2, "g2", 4, 3, &rng);
    if (!a->no_attention) {
        bk_coord_att_make(ctx, ps, &a->att_il, "att_il", 3, &rng);
        if (!a->no_g2) bk_coord_att_make(ctx, ps, &a->att_iint, "att_iint", 3, &rng);
        bk_coord_att_make(ctx, ps, &a->att_bl, "att_bl", 3, &rng);
        if (!a->no_refine) bk_coord_att_make(ctx, ps, &a->att_ref, "att_ref", 3, &rng);
    }
    if (!a->no_refine) {
        a->head = bk_conv_layer_make(ctx, ps, "refine.head", 10, 40, 3, 1, 1, 1, true, he);
        a->rb_full = make_rbl(ctx, ps, "refine.rb_full", 40, he);
        a->down = bk_conv_layer_make(ctx, ps, "refine.down", 40, 64, 3, 2, 1, 1, true, he);
        a->rb_half[0] = make_rbl(ctx, ps, "refine.rb_half.0", 64, he);
        a->rb_half[1] = make_rbl(ctx, ps, "refine.rb_half.1", 64, he);
        a->up = bk_conv_layer_make(ctx, ps, "refine.up", 64, 40, 3, 1, 1, 1, true, he);
        a->tail = bk_conv_layer_make(ctx, ps, "refine.tail", 40, 3, 3, 1, 1, 1, true, he);
    }
    make_ft(ctx, ps, a->ft1, "ft1", he);
    make_ft(ctx, ps, a->ft0, "ft0", he);
    return a;
}

static bk_tensor *attend(bk_ctx *ctx, const ampn *a, const bk_coord_att *att, bk_tensor *x, bool training) {
    return a->no_attention ? x : bk_coord_att_fwd(ctx, att, x, training);
}

static bk_tensor *refine_fwd(bk_ctx *ctx, const ampn *a, bk_tensor *z) {
    bk_block_begin(ctx, "refine");
    bk_tensor *t = rbl_fwd(ctx, &a->rb_full, bk_conv_layer_fwd(ctx, &a->head, z, bk_act_leaky_relu(SLOPE), NULL));
    bk_tensor *b = bk_conv_layer_fwd(ctx, &a->down, t, bk_act_leaky_relu(SLOPE), NULL);
    b = rbl_fwd(ctx, &a->rb_half[1], rbl_fwd(ctx, &a->rb_half[0], b));
    bk_tensor *c = bk_add(ctx, bk_conv_layer_fwd(ctx, &a->up, bk_up2(ctx, b), bk_act_leaky_relu(SLOPE), NULL), t);
    bk_tensor *out = bk_conv_layer_fwd(ctx, &a->tail, c, bk_act_none(), NULL);
    bk_block_end(ctx, "refine", out);
    return out;
}

static void forward(bk_ctx *ctx, const void *impl, bk_tensor *x, const bk_forward_opts *o,
                    bk_model_out *out) {
    const ampn *a = impl;
    const bool tr = o->training;
    bk_block_begin(ctx, "pyramid");
    bk_pyramid pyr;
    bk_pyramid_decompose(ctx, x, 2, &pyr);
    bk_tensor *h0 = pyr.high[0], *h1 = pyr.high[1], *il = pyr.low;
    bk_block_end(ctx, "pyramid", il);

    bk_tensor *ml;
    if (o->mask) {
        ml = o->mask;
    } else {
        BK_CHECK(!a->external, "ampn external_mask needs a mask");
        bk_block_begin(ctx, "g1");
        ml = bk_sigmoid(ctx, bk_gnet_fwd(ctx, &a->g1, il, tr));
        bk_block_end(ctx, "g1", ml);
    }
    if (o->strength != 1.0f) ml = bk_affine(ctx, ml, o->strength, 1.0f - o->strength);

    bk_tensor *bl = attend(ctx, a, &a->att_il, il, tr);
    if (!a->no_g2) {
        bk_tensor *pair[2] = {il, ml};
        bk_block_begin(ctx, "g2");
        bk_tensor *iint = bk_gnet_fwd(ctx, &a->g2, bk_concat(ctx, 2, pair, BK_AXIS_C), tr);
        bk_block_end(ctx, "g2", iint);
        bl = bk_add(ctx, bl, attend(ctx, a, &a->att_iint, iint, tr));
    }
    bk_tensor *bl_up = bk_up2(ctx, bl);
    bk_tensor *mr = attend(ctx, a, &a->att_bl, bl_up, tr);
    if (!a->no_refine) {
        bk_tensor *four[4] = {h1, bk_up2(ctx, il), bk_up2(ctx, ml), bl_up};
        bk_tensor *r = refine_fwd(ctx, a, bk_concat(ctx, 4, four, BK_AXIS_C));
        mr = bk_add(ctx, mr, attend(ctx, a, &a->att_ref, r, tr));
    }
    bk_block_begin(ctx, "reconstruct");
    if (!ctx->grad_enabled) { /* inference: each level in one pass, nothing to record */
        bk_tensor *level1 = bk_detail_blend_infer(ctx, &a->ft1[0], SLOPE, &a->ft1[1], bk_lap_up(ctx, bl, h1->h, h1->w),
                                                  h1, mr, 1, NULL, 1, NULL);
        out->y = bk_detail_blend_infer(ctx, &a->ft0[0], SLOPE, &a->ft0[1], bk_lap_up(ctx, level1, h0->h, h0->w), h0,
                                       mr, 2, ml, 4, x);
    } else {
        bk_tensor *level1 = bk_add(ctx, bk_lap_up(ctx, bl, h1->h, h1->w), bk_mul(ctx, h1, ft_fwd(ctx, a->ft1, "ft1", mr)));
        bk_tensor *b_int = bk_add(ctx, bk_lap_up(ctx, level1, h0->h, h0->w),
                                  bk_mul(ctx, h0, ft_fwd(ctx, a->ft0, "ft0", bk_up2(ctx, mr))));
        bk_tensor *m0 = bk_up4(ctx, ml);
        out->y = bk_add(ctx, b_int, bk_mul(ctx, m0, bk_sub(ctx, x, b_int)));
    }
    bk_block_end(ctx, "reconstruct", out->y);
    out->aux = ml;
}

/* g1 and g2 (MobileNetV2) see the image at 1/4 size and downscale it 32 times; without them the
 * deepest batch norm is att_il's at 1/4 size. */
static int bn_stride(const char *variant) {
    return bk_variant_has(variant, "external_mask") && bk_variant_has(variant, "no_g2") ? 4 : 128;
}

const bk_model_kind bk_ampn_kind = {
    .name = "ampn",
    .description = "AMPN (adaptive mask-based pyramid network), 5,421,501 parameters",
    .multiple = 128,
    .bn_stride = bn_stride,
    .switches = {"no_refine", "no_g2", "no_attention", "external_mask", NULL},
    .out_names = {"y", "mask"},
    .create = create,
    .forward = forward,
    .destroy = free,
};
