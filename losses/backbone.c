/* backbone.c — AlexNet / VGG16 / VGG19 feature stacks (see backbone.h). */
#include "losses/backbone.h"

#include <stdio.h>
#include <string.h>

/* One entry per conv (k > 0) or pool (k == 0 marks a pool with pool_k) in torchvision order. */
typedef struct spec {
    int index, cin, cout, k, stride, pad, pool_k, tap;
} spec;

#define CONV(i, ci, co, k, s, p, t) {i, ci, co, k, s, p, 0, t}
#define POOL(i, k) {i, 0, 0, 0, 0, 0, k, -1}

static const spec alex[] = {
    CONV(0, 3, 64, 11, 4, 2, 0), POOL(2, 3), CONV(3, 64, 192, 5, 1, 2, 1), POOL(5, 3),
    CONV(6, 192, 384, 3, 1, 1, 2), CONV(8, 384, 256, 3, 1, 1, 3), CONV(10, 256, 256, 3, 1, 1, 4),
};
static const spec vgg16[] = {
    CONV(0, 3, 64, 3, 1, 1, -1), CONV(2, 64, 64, 3, 1, 1, 0), POOL(4, 2),
    CONV(5, 64, 128, 3, 1, 1, -1), CONV(7, 128, 128, 3, 1, 1, 1), POOL(9, 2),
    CONV(10, 128, 256, 3, 1, 1, -1), CONV(12, 256, 256, 3, 1, 1, -1), CONV(14, 256, 256, 3, 1, 1, 2), POOL(16, 2),
    CONV(17, 256, 512, 3, 1, 1, -1), CONV(19, 512, 512, 3, 1, 1, -1), CONV(21, 512, 512, 3, 1, 1, 3), POOL(23, 2),
    CONV(24, 512, 512, 3, 1, 1, -1), CONV(26, 512, 512, 3, 1, 1, -1), CONV(28, 512, 512, 3, 1, 1, 4),
};
static const spec vgg19[] = {
    CONV(0, 3, 64, 3, 1, 1, -1), CONV(2, 64, 64, 3, 1, 1, -1), POOL(4, 2),
    CONV(5, 64, 128, 3, 1, 1, -1), CONV(7, 128, 128, 3, 1, 1, -1), POOL(9, 2),
    CONV(10, 128, 256, 3, 1, 1, -1), CONV(12, 256, 256, 3, 1, 1, -1), CONV(14, 256, 256, 3, 1, 1, -1),
    CONV(16, 256, 256, 3, 1, 1, -1), POOL(18, 2),
    CONV(19, 256, 512, 3, 1, 1, -1), CONV(21, 512, 512, 3, 1, 1, -1), CONV(23, 512, 512, 3, 1, 1, -1),
    CONV(25, 512, 512, 3, 1, 1, -1), POOL(27, 2),
    CONV(28, 512, 512, 3, 1, 1, -1), CONV(30, 512, 512, 3, 1, 1, -1), CONV(32, 512, 512, 3, 1, 1, -1),
    CONV(34, 512, 512, 3, 1, 1, 0), /* relu5_4 = features[35] */
};

const char *bk_net_name(bk_net_kind kind) {
    return kind == BK_NET_ALEX ? "alex" : kind == BK_NET_VGG16 ? "vgg16" : "vgg19";
}

bk_status bk_net_parse(const char *name, bk_net_kind *kind) {
    if (!strcmp(name, "alex")) *kind = BK_NET_ALEX;
    else if (!strcmp(name, "vgg") || !strcmp(name, "vgg16")) *kind = BK_NET_VGG16;
    else if (!strcmp(name, "vgg19")) *kind = BK_NET_VGG19;
    else return bk_fail(BK_ERR_ARG, "unknown network \"%s\": use alex, vgg (vgg16) or vgg19", name);
    return BK_OK;
}

void bk_backbone_init(bk_ctx *ctx, bk_backbone *b, bk_net_kind kind) {
    memset(b, 0, sizeof *b);
    b->kind = kind;
    const spec *s = kind == BK_NET_ALEX ? alex : kind == BK_NET_VGG16 ? vgg16 : vgg19;
    int n = kind == BK_NET_ALEX ? (int)(sizeof alex / sizeof *alex)
          : kind == BK_NET_VGG16 ? (int)(sizeof vgg16 / sizeof *vgg16) : (int)(sizeof vgg19 / sizeof *vgg19);
    for (int i = 0; i < n; i++) {
        bk_backbone_layer *L = &b->layers[b->n_layers++];
        L->index = s[i].index;
        L->is_pool = s[i].pool_k > 0;
        L->k = L->is_pool ? s[i].pool_k : s[i].k;
        L->stride = L->is_pool ? 2 : s[i].stride;
        L->pad = s[i].pad;
        L->cin = s[i].cin;
        L->cout = s[i].cout;
        L->tap = s[i].tap;
        if (L->is_pool) continue;
        char name[64];
        snprintf(name, sizeof name, "features.%d.weight", L->index);
        L->w = bk_params_add(ctx, &b->params, name, 4, (bk_shape){L->cout, L->cin, L->k, L->k}, BK_PARAM);
        snprintf(name, sizeof name, "features.%d.bias", L->index);
        L->b = bk_params_add(ctx, &b->params, name, 1, (bk_shape){1, L->cout, 1, 1}, BK_PARAM);
        L->w->requires_grad = L->b->requires_grad = false; /* frozen */
        if (L->tap >= 0) {
            b->tap_channels[L->tap] = L->cout;
            if (L->tap + 1 > b->n_taps) b->n_taps = L->tap + 1;
        }
    }
}

void bk_backbone_free(bk_ctx *ctx, bk_backbone *b) { bk_params_free(ctx, &b->params); }

void bk_backbone_forward(bk_ctx *ctx, const bk_backbone *b, bk_tensor *x, bk_tensor **taps) {
    bk_tensor *h = x;
    for (int i = 0; i < b->n_layers; i++) {
        const bk_backbone_layer *L = &b->layers[i];
        if (L->is_pool) {
            h = bk_max_pool(ctx, h, L->k, L->stride);
            continue;
        }
        h = bk_conv2d(ctx, h, L->w, L->b, bk_conv_opts_make(L->stride, L->pad, 1), bk_act_relu(), NULL);
        if (L->tap >= 0) {
            taps[L->tap] = h;
            if (L->tap == b->n_taps - 1) return;
        }
    }
}
