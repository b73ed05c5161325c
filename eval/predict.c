/* predict.c — see predict.h. */
#include "eval/predict.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void bk_predict_size(const bk_model *m, const bk_predict_opts *o, int h, int w, int *ph, int *pw) {
    int k = m->kind->multiple;
    if (o->size_h > 0 && o->size_w > 0) {
        *ph = o->size_h, *pw = o->size_w;
        return;
    }
    *ph = (int)lround((double)h / k) * k;
    *pw = (int)lround((double)w / k) * k;
    if (*ph < k) *ph = k;
    if (*pw < k) *pw = k;
}

static inline uint8_t quantize(float v) {
    v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    return (uint8_t)floorf(255.0f * v + 0.5f);
}

bk_status bk_predict_image(bk_ctx *ctx, const bk_model *m, const bk_image *in,
                           const bk_predict_opts *o, bk_image *out, bk_image *mask_out,
                           double *seconds) {
    BK_CHECK(in->channels == 3, "prediction of a %d-channel image", in->channels);
    const bool ampn = !strcmp(m->kind->name, "ampn");
    const bool external = bk_variant_has(m->variant, "external_mask");
    if (o->user_mask && !ampn)
        return bk_fail(BK_ERR_ARG, "%s takes no mask (only ampn does)", m->kind->name);
    if (o->strength != 1.0f && !ampn)
        return bk_fail(BK_ERR_ARG, "%s has no blur strength (only ampn does)", m->kind->name);
    if (external && !o->user_mask)
        return bk_fail(BK_ERR_ARG, "this ampn was trained with external masks: give one (--mask MASK.png)");
    if (o->user_mask && (o->user_mask->width != in->width || o->user_mask->height != in->height))
        return bk_fail(BK_ERR_SHAPE, "the mask is %dx%d but the image is %dx%d", o->user_mask->width,
                       o->user_mask->height, in->width, in->height);
    const int h = in->height, w = in->width;
    int H, W;
    bk_predict_size(m, o, h, w, &H, &W);
    bk_status st = bk_model_check_input(m, (bk_shape){1, 3, H, W}, NULL);
    if (st != BK_OK && !external) return st;

    double t0 = omp_get_wtime();
    const float a = m->kind->minus_one_to_one ? 2.0f / 255.0f : 1.0f / 255.0f, b = m->kind->minus_one_to_one ? -1.0f : 0.0f;
    size_t n = (size_t)h * w * 3;
    float *f = malloc(n * sizeof *f);
    BK_CHECK(f, "out of memory");
    for (size_t i = 0; i < n; i++) f[i] = in->pixels[i] * a + b;
    bool prev = bk_set_grad_enabled(ctx, false);
    bk_tensor *x = bk_tensor_new(ctx, (bk_shape){1, 3, H, W});
    bk_resize_image(f, h, w, 3, x->data, H, W, BK_RESAMPLE_BILINEAR_AA);
    free(f);
    bk_forward_opts fo = bk_forward_eval();
    fo.strength = o->strength;
    if (o->user_mask) {
        float *mf = malloc((size_t)h * w * sizeof *mf);
        BK_CHECK(mf, "out of memory");
        for (size_t i = 0; i < (size_t)h * w; i++) mf[i] = o->user_mask->pixels[i] / 255.0f;
        fo.mask = bk_tensor_new(ctx, (bk_shape){1, 1, H / 4, W / 4});
        bk_resize_image(mf, h, w, 1, fo.mask->data, H / 4, W / 4, BK_RESAMPLE_BILINEAR_AA);
        free(mf);
    }
    bk_model_out mo;
    bk_model_forward(ctx, m, x, &fo, &mo);
    /* back to the image's size, in [0,1] */
    float *y01 = malloc((size_t)H * W * 3 * sizeof *y01), *back = malloc(n * sizeof *back);
    BK_CHECK(y01 && back, "out of memory");
    for (size_t i = 0; i < (size_t)H * W * 3; i++)
        y01[i] = m->kind->minus_one_to_one ? (mo.y->data[i] + 1.0f) * 0.5f : mo.y->data[i];
    bk_resize_image(y01, H, W, 3, back, h, w, BK_RESAMPLE_BILINEAR);
    st = bk_image_alloc(out, w, h, 3);
    if (st == BK_OK)
        for (size_t i = 0; i < n; i++) out->pixels[i] = quantize(back[i]);
    free(y01);
    free(back);
    if (st == BK_OK && mask_out && ampn && mo.aux) {
        float *mb = malloc((size_t)h * w * sizeof *mb);
        BK_CHECK(mb, "out of memory");
        bk_resize_image(mo.aux->data, mo.aux->h, mo.aux->w, 1, mb, h, w, BK_RESAMPLE_BILINEAR);
        if ((st = bk_image_alloc(mask_out, w, h, 1)) == BK_OK)
            for (size_t i = 0; i < (size_t)h * w; i++) mask_out->pixels[i] = quantize(mb[i]);
        free(mb);
    }
    bk_set_grad_enabled(ctx, prev);
    bk_step_end(ctx);
    if (seconds) *seconds = omp_get_wtime() - t0;
    return st;
}
