/* l1.h — the L1 loss: mean |a - b| over N,C,H,W (torch.nn.functional.l1_loss; gradient 0 where
 * a == b). */
#ifndef BK_L1_H
#define BK_L1_H

#include "core/ops.h"

bk_tensor *bk_l1(bk_ctx *ctx, bk_tensor *a, bk_tensor *b);

#endif
