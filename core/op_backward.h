/* op_backward.h — declarations of the backward functions named in the op table (op.h).
 * Internal to core/: each is defined next to its op's builder. */
#ifndef BK_OP_BACKWARD_H
#define BK_OP_BACKWARD_H

#include "core/op.h"

#define BK_BACKWARD(fn) \
    void fn(bk_ctx *ctx, bk_tensor *out, bk_tensor *gout, bk_tensor **gsrc, const int *need)

BK_BACKWARD(bk_conv_backward);
BK_BACKWARD(bk_conv_bwd_data_backward);
BK_BACKWARD(bk_conv_bwd_weights_backward);
BK_BACKWARD(bk_instance_norm_backward);
BK_BACKWARD(bk_instance_norm_bwd_backward);
BK_BACKWARD(bk_leaky_relu_backward);
BK_BACKWARD(bk_relu_bwd_backward);
BK_BACKWARD(bk_add_backward);
BK_BACKWARD(bk_sub_backward);
BK_BACKWARD(bk_mul_backward);
BK_BACKWARD(bk_div_backward);
BK_BACKWARD(bk_affine_backward);
BK_BACKWARD(bk_abs_backward);
BK_BACKWARD(bk_square_backward);
BK_BACKWARD(bk_sqrt_backward);
BK_BACKWARD(bk_sum_to_backward);
BK_BACKWARD(bk_expand_backward);

#endif
