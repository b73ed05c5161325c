/* l1.c — see l1.h. */
#include "losses/l1.h"

bk_tensor *bk_l1(bk_ctx *ctx, bk_tensor *a, bk_tensor *b) {
    char sa[64], sb[64];
    BK_CHECK(bk_same_shape(a, b), "L1 of %s and %s", bk_shape_str(bk_shape_of(a), sa),
             bk_shape_str(bk_shape_of(b), sb));
    return bk_mean(ctx, bk_abs(ctx, bk_sub(ctx, a, b)));
}
