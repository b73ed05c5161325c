/* test_impl.c — every convolution shape the models of SPEC §2-§4 use, in every direction, lands
 * on a fast oneDNN kernel: the context fails on any "ref:" implementation (BK_IMPL_FAIL), so a
 * shape that falls back to reference code fails here. Spatial sizes are those of a 256x384
 * input (the training crops of the speed targets), batch 1. */
#include <stdio.h>

#include "tests/support/harness.h"

typedef struct shape_case {
    const char *where;
    int ic, oc, k, stride, pad, groups, transposed, h, w, bias;
    bk_act act;
} shape_case;

#define LEAKY(a) {.kind = BK_ACT_RELU, .alpha = a}
#define RELU {.kind = BK_ACT_RELU}
#define RELU6 {.kind = BK_ACT_CLIP, .alpha = 0.0f, .beta = 6.0f}
#define NONE {.kind = BK_ACT_NONE}

static const shape_case cases[] = {
    /* DMSHN (level 1 at 256x384; levels 2, 3 are the same shapes at half and quarter size) */
    {"dmshn layer1", 3, 32, 3, 1, 1, 1, 0, 256, 384, 1, NONE},
    {"dmshn rb32", 32, 32, 3, 1, 1, 1, 0, 256, 384, 1, RELU},
    {"dmshn layer5", 32, 64, 3, 2, 1, 1, 0, 256, 384, 1, NONE},
    {"dmshn rb64", 64, 64, 3, 1, 1, 1, 0, 128, 192, 1, RELU},
    {"dmshn layer9", 64, 128, 3, 2, 1, 1, 0, 128, 192, 1, NONE},
    {"dmshn rb128", 128, 128, 3, 1, 1, 1, 0, 64, 96, 1, RELU},
    {"dmshn layer16", 128, 64, 4, 2, 1, 1, 1, 64, 96, 1, NONE},
    {"dmshn layer20", 64, 32, 4, 2, 1, 1, 1, 128, 192, 1, NONE},
    {"dmshn layer24", 32, 3, 3, 1, 1, 1, 0, 256, 384, 1, NONE},
    /* Glass-Net at paper widths (c1 16, c2 32): no bias on convs, deconvs with bias */
    {"glassnet enc0", 3, 16, 3, 1, 1, 1, 0, 256, 384, 0, RELU},
    {"glassnet s2 enc0", 6, 32, 3, 1, 1, 1, 0, 256, 384, 0, RELU},
    {"glassnet enc s2", 32, 64, 3, 2, 1, 1, 0, 256, 384, 0, RELU},
    {"glassnet res 8c1", 128, 128, 3, 1, 1, 1, 0, 32, 48, 0, NONE},
    {"glassnet res 8c2", 256, 256, 3, 1, 1, 1, 0, 32, 48, 0, NONE},
    {"glassnet dec0", 512, 128, 4, 2, 1, 1, 1, 32, 48, 1, NONE},
    {"glassnet dec2", 128, 32, 4, 2, 1, 1, 1, 128, 192, 1, NONE},
    {"glassnet out", 32, 3, 3, 1, 1, 1, 0, 256, 384, 0, NONE},
    /* multi-receptive-field critic: k4 p2, LeakyReLU 0.2 */
    {"critic conv0", 3, 64, 4, 2, 2, 1, 0, 256, 384, 1, LEAKY(0.2f)},
    {"critic conv1", 64, 128, 4, 2, 2, 1, 0, 129, 193, 1, NONE},
    {"critic conv3", 256, 512, 4, 1, 2, 1, 0, 33, 49, 1, NONE},
    {"critic final", 512, 1, 4, 1, 2, 1, 0, 34, 50, 1, NONE},
    /* AMPN: MobileNetV2 encoder on I_L (64x96 for a 256x384 input), decoder, attention,
     * refinement, fine-tune blocks and the pyramid's fixed depthwise 5x5 */
    {"ampn g1 features.0", 3, 32, 3, 2, 1, 1, 0, 64, 96, 0, NONE},
    {"ampn g1 folded expand (inference)", 24, 144, 1, 1, 0, 1, 0, 64, 96, 0, RELU6},
    {"ampn g1 folded depthwise (inference)", 144, 144, 3, 1, 1, 144, 0, 64, 96, 0, RELU6},
    {"ampn g2 features.0", 4, 32, 3, 2, 1, 1, 0, 64, 96, 0, NONE},
    {"ampn dw3x3 32", 32, 32, 3, 1, 1, 32, 0, 32, 48, 0, NONE},
    {"ampn dw3x3 96 s2", 96, 96, 3, 2, 1, 96, 0, 32, 48, 0, NONE},
    {"ampn dw3x3 144", 144, 144, 3, 1, 1, 144, 0, 16, 24, 0, NONE},
    {"ampn dw3x3 576", 576, 576, 3, 1, 1, 576, 0, 4, 6, 0, NONE},
    {"ampn expand 1x1", 24, 144, 1, 1, 0, 1, 0, 16, 24, 0, NONE},
    {"ampn project 1x1", 960, 320, 1, 1, 0, 1, 0, 2, 3, 0, NONE},
    {"ampn reduce 1x1", 320, 224, 1, 1, 0, 1, 0, 2, 3, 0, NONE},
    {"ampn dec dw5x5 960", 960, 960, 5, 1, 2, 960, 0, 4, 6, 0, NONE},
    {"ampn dec dw5x5 144", 144, 144, 5, 1, 2, 144, 0, 32, 48, 0, NONE},
    {"ampn head", 32, 16, 3, 1, 1, 1, 0, 64, 96, 0, NONE},
    {"ampn head out", 16, 1, 3, 1, 1, 1, 0, 64, 96, 1, NONE},
    {"ampn ca conv1", 3, 8, 1, 1, 0, 1, 0, 160, 1, 1, NONE},
    {"ampn ca conv_h", 8, 3, 1, 1, 0, 1, 0, 64, 1, 1, NONE},
    {"ampn refine head", 10, 40, 3, 1, 1, 1, 0, 128, 192, 1, LEAKY(0.01f)},
    {"ampn refine rb", 40, 40, 3, 1, 1, 1, 0, 128, 192, 1, LEAKY(0.01f)},
    {"ampn refine down", 40, 64, 3, 2, 1, 1, 0, 128, 192, 1, LEAKY(0.01f)},
    {"ampn refine up", 64, 40, 3, 1, 1, 1, 0, 128, 192, 1, LEAKY(0.01f)},
    {"ampn refine tail", 40, 3, 3, 1, 1, 1, 0, 128, 192, 1, NONE},
    {"ampn ft 1x1", 3, 16, 1, 1, 0, 1, 0, 256, 384, 1, LEAKY(0.01f)},
    {"ampn ft out 1x1", 16, 3, 1, 1, 0, 1, 0, 256, 384, 1, NONE},
    {"ampn pyramid gauss", 3, 3, 5, 1, 0, 3, 0, 260, 388, 0, NONE},
};

static void model_conv_shapes_use_fast_kernels(void) {
    bk_ctx *ctx = bk_test_ctx();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const shape_case *c = &cases[i];
        bk_shape xs = {1, c->ic, c->h, c->w};
        bk_shape ws = c->transposed ? (bk_shape){c->ic, c->oc / c->groups, c->k, c->k}
                                    : (bk_shape){c->oc, c->ic / c->groups, c->k, c->k};
        bk_tensor *x = bk_test_tensor(ctx, xs, -1, 1, 1);
        bk_tensor *w = bk_test_tensor(ctx, ws, -0.1f, 0.1f, 2);
        bk_tensor *b = c->bias ? bk_test_tensor(ctx, (bk_shape){1, c->oc, 1, 1}, -0.1f, 0.1f, 3) : NULL;
        x->requires_grad = w->requires_grad = true;
        if (b) b->requires_grad = true;
        bk_conv_opts o = bk_conv_opts_make(c->stride, c->pad, c->groups);
        bk_tensor *y = c->transposed ? bk_conv_transpose2d(ctx, x, w, b, o)
                                     : bk_conv2d(ctx, x, w, b, o, c->act, NULL);
        bk_backward(ctx, bk_sum(ctx, y), false); /* forward, backward data, backward weights */
        EXPECT(x->grad && w->grad && (!b || b->grad), "%s: a gradient is missing", c->where);
        bk_step_end(ctx);
    }
    EXPECT(ctx->stats.ref_impls == 0, "%llu reference implementations",
           (unsigned long long)ctx->stats.ref_impls);
    printf("    %zu shapes, %llu primitives, all on fast kernels\n", sizeof cases / sizeof cases[0],
           (unsigned long long)ctx->stats.primitives_created);
}

BK_TEST_MAIN(BK_TEST(model_conv_shapes_use_fast_kernels))
