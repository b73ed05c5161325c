/* predict.h — a model applied to an 8-bit photograph, as the tables and `render` do it
 * (SPEC §5): the image (any size) is resized to the model's input size (bilinear,
 * antialiased along a shrinking axis), run in eval mode, and the prediction is resized back to
 * the original size (bilinear, align_corners=False) and quantised q = floor(255 clamp(y,0,1)
 * + 0.5) ([-1,1] models mapped to [0,1] first). AMPN can take a user mask (8-bit gray, the
 * image's size, 255 = in focus), reduced to 1/4 of the input size by the same resize, and a
 * blur strength. bk_predict_image ends the context's step (its tensors are released).
 */
#ifndef BK_PREDICT_H
#define BK_PREDICT_H

#include "data/image.h"
#include "models/model.h"

typedef struct bk_predict_opts {
    int size_h, size_w;          /* model input size; 0: the image's size rounded to the rule */
    float strength;              /* AMPN blur strength (1: as trained) */
    const bk_image *user_mask;   /* AMPN: gray mask of the image's size, or NULL */
} bk_predict_opts;

/* The input size for an image: the given size, or its own rounded to multiples of `multiple`. */
void bk_predict_size(const bk_model *m, const bk_predict_opts *o, int h, int w, int *ph, int *pw);
/* out: RGB at the image's size; mask_out (may be NULL): the mask used (AMPN), gray, image
 * size; seconds: time of the whole prediction. */
bk_status bk_predict_image(bk_ctx *ctx, const bk_model *m, const bk_image *in,
                           const bk_predict_opts *o, bk_image *out, bk_image *mask_out,
                           double *seconds);

#endif
