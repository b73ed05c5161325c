/* op_backward.h — declarations of the backward functions named in the op table (op.h).
 * Internal to core/: each is defined next to its op's builder. */
#ifndef BK_OP_BACKWARD_H
#define BK_OP_BACKWARD_H

#include "core/op.h"

#define BK_BACKWARD(fn) \
    void fn(bk_ctx *ctx, bk_tensor *out __attribute__((unused)), bk_tensor *gout, bk_tensor **gsrc, \
            const int *need)

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
BK_BACKWARD(bk_clamp_backward);
BK_BACKWARD(bk_clamp_bwd_backward);
BK_BACKWARD(bk_hardswish_backward);
BK_BACKWARD(bk_sigmoid_backward);
BK_BACKWARD(bk_tanh_backward);
BK_BACKWARD(bk_exp_backward);
BK_BACKWARD(bk_log_backward);
BK_BACKWARD(bk_pow_backward);
BK_BACKWARD(bk_concat_backward);
BK_BACKWARD(bk_slice_backward);
BK_BACKWARD(bk_embed_backward);
BK_BACKWARD(bk_transpose_hw_backward);
BK_BACKWARD(bk_reflect_pad_backward);
BK_BACKWARD(bk_reflect_pad_bwd_backward);
BK_BACKWARD(bk_zero_insert_backward);
BK_BACKWARD(bk_subsample_backward);
BK_BACKWARD(bk_resample_backward);
BK_BACKWARD(bk_resample_t_backward);
BK_BACKWARD(bk_max_pool_backward);
BK_BACKWARD(bk_batch_norm_backward);

#endif
